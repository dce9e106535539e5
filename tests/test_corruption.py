"""Damaged files (DESIGN.md, "The container"): anything wrong gives a HiercodecError with a message,
never another exception, a hang, or a wrong image.

A small .hc file made with the tiny model is truncated at every byte and has every single bit
flipped. Those are caught by the container (sizes, CRC32s); to reach the decoder itself, the same
damage is also applied with the CRC32s recomputed (a crafted file): then the coder, the values
CRC32 of the decoded pixels and the check that the stream ends exactly must catch it.
"""

from __future__ import annotations

import signal
import struct
import time
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pytest

from hiercodec import container
from hiercodec.codec import decode_image, encode_image
from hiercodec.errors import FormatError, HiercodecError

LIMIT_S = 5.0


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    """Interrupt a decode that runs past `seconds` (SIGALRM where available), and check the time."""
    use_alarm = hasattr(signal, "setitimer")

    def on_alarm(signum, frame):
        raise Hang(f"decode ran past {seconds} s")

    if use_alarm:
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.perf_counter()
    try:
        yield
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - start
    assert elapsed < seconds, f"decode took {elapsed:.2f} s"


def attempt(data: bytes, loader) -> tuple[str, object]:
    """Decode under the time limit: ('error', HiercodecError) or ('image', pixels). Any other
    exception (or a hang) fails the test with what caused it."""
    try:
        with time_limit(LIMIT_S):
            image, _ = decode_image(data, loader=loader)
    except HiercodecError as err:
        assert str(err).strip() and "\n" not in str(err).strip(), f"error message not one line: {err!r}"
        return "error", err
    except Hang as err:
        pytest.fail(f"{err}")
    except BaseException as err:  # noqa: BLE001 - the point is that nothing else escapes
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        pytest.fail(f"decode raised {type(err).__name__}: {err}, not a HiercodecError")
    return "image", image


@pytest.fixture(scope="module")
def sample(tiny_model):
    rng = np.random.default_rng(99)
    yy, xx = np.mgrid[0:6, 0:5]
    image = np.clip(rng.normal(0, 9, (6, 5, 3)) + (90 + 12 * yy + 7 * xx)[..., None] + [0, 30, -20], 0, 255)
    image = image.astype(np.uint8)
    data, _ = encode_image(tiny_model, image)
    return image, data


def test_sample_decodes(sample, tiny_loader):
    image, data = sample
    kind, out = attempt(data, tiny_loader)
    assert kind == "image"
    np.testing.assert_array_equal(out, image)


def test_truncation_at_every_byte(sample, tiny_loader):
    _, data = sample
    for n in range(len(data)):
        kind, result = attempt(data[:n], tiny_loader)
        assert kind == "error", f"file truncated to {n} of {len(data)} bytes decoded to an image"
        assert isinstance(result, FormatError), f"truncated to {n} bytes: {type(result).__name__}: {result}"


def test_trailing_data(sample, tiny_loader):
    _, data = sample
    for extra in (b"\x00", b"\x00" * 4, b"garbage!"):
        kind, result = attempt(data + extra, tiny_loader)
        assert kind == "error" and isinstance(result, FormatError)


def test_every_single_bit_flip(sample, tiny_loader):
    image, data = sample
    caught = 0
    for bit in range(8 * len(data)):
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        kind, result = attempt(bytes(damaged), tiny_loader)
        if kind == "image":
            np.testing.assert_array_equal(result, image, err_msg=f"bit {bit} flipped: a different image")
        else:
            caught += 1
    assert caught == 8 * len(data)  # every flip is caught by a CRC32 or a range check


# -- crafted damage: CRC32s recomputed, so the decoder itself must catch it --------------------


def rewrite_chunk(data: bytes, chunk: int, new: bytes) -> bytes:
    box = container.read(data)
    chunks = list(box.chunks)
    chunks[chunk] = replace(chunks[chunk], data=new)
    return container.write(container.Container(box.header, tuple(chunks)))


def test_chunk_damage_behind_valid_crcs(sample, tiny_loader):
    image, data = sample
    payload = container.read(data).chunks[0].data
    rng = np.random.default_rng(5)
    bits = rng.choice(8 * len(payload), size=min(8 * len(payload), 100), replace=False)
    outcomes = {"error": 0, "image": 0}
    for bit in sorted(bits):
        damaged = bytearray(payload)
        damaged[bit // 8] ^= 1 << (bit % 8)
        kind, result = attempt(rewrite_chunk(data, 0, bytes(damaged)), tiny_loader)
        outcomes[kind] += 1
        if kind == "image":
            np.testing.assert_array_equal(result, image, err_msg=f"chunk bit {bit} flipped: a different image")
    # words cut off or added at the end of the stream
    for new in (payload[:-4], payload[4:], payload + b"\x01\x00\x00\x00", payload + b"\x00" * 4,
                b"", b"\xff" * len(payload)):
        kind, result = attempt(rewrite_chunk(data, 0, new), tiny_loader)
        outcomes[kind] += 1
        if kind == "image":
            np.testing.assert_array_equal(result, image)
    assert outcomes["error"] >= outcomes["image"], outcomes


def header_fields(data: bytes) -> dict[str, tuple[int, int]]:
    """Byte ranges (start, end) of the header fields of a one-level file of format version 2
    (FORMAT.md, Layout)."""
    pos, fields = 14, {}
    for name in ("model id", "model hash", "coder id", "coder version"):
        size = 32 if name == "model hash" else 1 + data[pos]
        fields[name], pos = (pos, pos + size), pos + size
    for name, size in (("height", 4), ("width", 4), ("channels", 1), ("bit depth", 1), ("tile height", 2),
                       ("tile width", 2), ("mode", 1), ("levels total", 1), ("levels present", 1),
                       ("level index", 1), ("flags", 1), ("coded length", 4), ("chunk crc", 4),
                       ("values crc", 4), ("bound bits", 8), ("initial bits", 8)):
        fields[name], pos = (pos, pos + size), pos + size
    assert pos + 4 == 14 + struct.unpack_from("<I", data, 10)[0]
    return fields


def with_header_crc(damaged: bytearray) -> bytes:
    end = 14 + struct.unpack_from("<I", damaged, 10)[0]
    struct.pack_into("<I", damaged, end - 4, container.crc32(bytes(damaged[: end - 4])))
    return bytes(damaged)


def test_header_damage_behind_valid_crc(sample, tiny_loader):
    """Every bit of every header field flipped with the header CRC32 recomputed. Height and width
    keep to their low 4 bits (a crafted large image is a valid, slow file, not damage), the bound
    and initial bits to 16 of their 64. Only three
    changes may still decode, and then to the exact image: the bound and initial bits
    (informational), and mode lossless -> lossy with every level present."""
    image, data = sample
    fields = header_fields(data)
    decoded = {}
    for name, (start, end) in fields.items():
        bits = range(4) if name in ("height", "width") else range(8 * (end - start))
        if name in ("bound bits", "initial bits"):  # informational: the file decodes; a sample of bits
            bits = [*range(8), *range(56, 64)]
        for bit in bits:
            damaged = bytearray(data)
            damaged[start + bit // 8] ^= 1 << (bit % 8)
            kind, result = attempt(with_header_crc(damaged), tiny_loader)
            if kind == "image":
                decoded[name] = decoded.get(name, 0) + 1
                # the informational bound and initial bits, or lossless -> lossy with every level present
                assert name in ("bound bits", "initial bits", "mode"), f"{name} bit {bit} flipped, yet the file decoded"
                np.testing.assert_array_equal(result, image)
    assert decoded.get("bound bits") == 16, "a file whose bound bits differ must still decode"
    assert decoded.get("initial bits") == 16, "a file whose initial bits differ must still decode"


def test_wrong_model_is_refused(sample, tiny_model, default_model):
    _, data = sample
    kind, result = attempt(data, lambda name: default_model)  # same id, other weights
    assert kind == "error" and "hash" in str(result)


def test_file_cut_after_pixels_decodes_to_the_colour_image(tiny_model):
    """Progressive decoding: an RGBA file cut after its pixel level is a valid file of the RGB image."""
    from hiercodec import container

    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (6, 7, 4), dtype=np.uint8)
    data, _ = encode_image(tiny_model, image)
    cut = container.cut(data, 1)
    decoded, _ = decode_image(cut, loader=lambda name: tiny_model)
    np.testing.assert_array_equal(decoded, image[..., :3])


def test_tile_size_other_than_the_models_is_refused(tiny_model):
    """The header's tile size must be the model's layout for the image: it sizes the decoder's
    memory, so a forged one must not be trusted."""
    import dataclasses

    from hiercodec import container

    image = np.random.default_rng(12).integers(0, 256, (9, 10, 3), dtype=np.uint8)
    data, _ = encode_image(tiny_model, image)
    box = container.read(data)
    forged = container.write(dataclasses.replace(box, header=dataclasses.replace(box.header, tile_height=1, tile_width=1)))
    with pytest.raises(FormatError, match="tile size"):
        decode_image(forged, loader=lambda name: tiny_model)
