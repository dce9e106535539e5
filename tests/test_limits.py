"""Decoding work is bounded before it starts: a header that claims a huge image is refused at once
(max_pixels, default Pillow's 89,478,485), by the library and the CLI, unless the caller raises it."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from click.testing import CliRunner

import hiercodec
from hiercodec import container
from hiercodec.cli.main import cli
from hiercodec.codec import decode_image, encode_image
from hiercodec.errors import FormatError
from hiercodec.zoo import load


@pytest.fixture(scope="module")
def small_file() -> bytes:
    image = np.random.default_rng(0).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    return encode_image(load("default"), image)[0]


def forged(data: bytes, height: int, width: int) -> bytes:
    """`data` with a header claiming height x width (the model's 64-pixel tiles), CRCs recomputed."""
    box = container.read(data)
    header = dataclasses.replace(box.header, height=height, width=width, tile_height=64, tile_width=64)
    return container.write(dataclasses.replace(box, header=header))


def test_a_huge_claimed_image_is_refused_at_once(small_file):
    data = forged(small_file, 16384, 16384)  # 2^28 pixels: within the format, above the decoder's limit
    start = time.perf_counter()
    with pytest.raises(FormatError, match="above this reader's limit of 89478485"):
        hiercodec.decode(data)
    with pytest.raises(FormatError, match="limit of 1000 "):
        decode_image(forged(small_file, 40, 40), max_pixels=1000)
    assert time.perf_counter() - start < 1.0


def test_the_limit_can_be_raised_for_trusted_files(small_file):
    assert hiercodec.decode(small_file, max_pixels=15).shape == (3, 5, 3)
    with pytest.raises(FormatError, match="limit of 14 "):
        hiercodec.decode(small_file, max_pixels=14)
    assert hiercodec.decode(small_file, max_pixels=None).shape == (3, 5, 3)  # the format's own limit


def test_cli_max_pixels(tmp_path, small_file):
    src = tmp_path / "huge.hc"
    src.write_bytes(forged(small_file, 16384, 16384))
    result = CliRunner().invoke(cli, ["decompress", str(src), str(tmp_path / "out.png")])
    assert result.exit_code == 1 and "above this reader's limit of 89478485" in result.output
    assert not (tmp_path / "out.png").exists()
    ok = tmp_path / "small.hc"
    ok.write_bytes(small_file)
    refused = CliRunner().invoke(cli, ["decompress", "--max-pixels", "14", str(ok), str(tmp_path / "a.png")])
    assert refused.exit_code == 1 and "limit of 14 " in refused.output
    for limit in ("15", "0"):
        result = CliRunner().invoke(cli, ["decompress", "--max-pixels", limit, str(ok), str(tmp_path / f"{limit}.png")])
        assert result.exit_code == 0, result.output


def test_a_forged_geometry_stops_when_the_coded_data_runs_out():
    """Issue 12's reproduction: a 1x1 file whose header (CRCs recomputed) claims 2048x2048 used to
    decode for many minutes, popping zeros from an exhausted stream; it now stops at once."""
    one = encode_image(load("default"), np.full((1, 1, 3), 77, np.uint8))[0]
    data = forged(one, 2048, 2048)
    decoded = []  # symbols decoded before it stops: the first position of the 1024 tiles at most
    with pytest.raises(FormatError, match="coded data ends before the end of the pixels level"):
        decode_image(data, progress=decoded.append)
    assert sum(decoded) <= 2 * 1024 * 3


def test_sound_chunks_never_fall_below_the_sentinel():
    """The exhaustion check is exact for sound streams: between pops the coder always holds at
    least the sentinel's bits, also with skewed tables whose last symbols cost nothing (free pops
    of a likely symbol 0 at the end of a chunk)."""
    from hiercodec.coding.ans import SENTINEL_BITS, StackCoder

    rng = np.random.default_rng(1)
    lowest = 10**9
    for _ in range(400):
        k, n = int(rng.integers(2, 300)), int(rng.integers(1, 6))
        groups = []
        for _ in range(int(rng.integers(1, 30))):
            w = rng.random((n, k)) ** rng.uniform(1, 30)
            w[:, 0] += rng.random() * rng.uniform(0, 50)  # symbol 0 often the likely one
            f = np.maximum(1, np.floor(w / w.sum(1, keepdims=True) * (1 << 24))).astype(np.int64)
            f[np.arange(n), f.argmax(1)] += (1 << 24) - f.sum(1)
            symbols = np.array([rng.choice(k, p=row / row.sum()) if rng.random() < 0.7 else 0 for row in f], np.int32)
            groups.append((symbols, f))
        coder = StackCoder()
        coder.push_sentinel()
        for symbols, f in reversed(groups):
            coder.push(symbols, f)
        decoder = StackCoder(coder.to_bytes())
        for symbols, f in groups:
            decoder.check_not_exhausted()
            np.testing.assert_array_equal(decoder.pop(f), symbols)
            lowest = min(lowest, decoder.num_valid_bits())
        decoder.pop_sentinel()
    assert lowest == SENTINEL_BITS  # reached (the free pops), never passed
