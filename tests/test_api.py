"""The Python API (hiercodec.encode / decode / verify / info / models), image loading and saving,
and safe file writing. Images are small: the decoder costs a few ms per pixel position."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zlib
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

import hiercodec
from hiercodec import container, fileio, images
from hiercodec.errors import (FormatError, HiercodecError, ImageError, IntegrityError,
                              ModelNotFoundError, OutputExistsError)
from hiercodec.zoo import ALIASES

DEFAULT_ID = ALIASES["default"]

torch.set_num_threads(1)  # the decoder is overhead-bound; OpenMP threads only contend


@pytest.fixture(autouse=True)
def _no_user_models(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HIERCODEC_MODELS", str(tmp_path_factory.mktemp("user-models")))


def smooth(h, w, c, seed=0):
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 // max(w - 1, 1) + 40 * k + y * 7) % 256 for k in range(c)], -1)
    return np.clip(base + np.random.default_rng(seed).integers(-3, 4, base.shape), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# encode / decode


@pytest.mark.parametrize("shape", [(7, 6), (6, 5, 1), (5, 6, 2), (6, 7, 3), (5, 5, 4), (1, 9, 3), (9, 1)])
def test_roundtrip_arrays(shape):
    image = smooth(shape[0], shape[1], shape[2] if len(shape) == 3 else 1).reshape(shape)
    data = hiercodec.encode(image)
    assert isinstance(data, bytes) and data[:8] == container.MAGIC
    out = hiercodec.decode(data)
    expected = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    assert out.dtype == np.uint8 and out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)


def test_encode_accepts_path_pil_and_views(tmp_path):
    rgb = smooth(6, 8, 3)
    path = tmp_path / "x.png"
    Image.fromarray(rgb).save(path)
    by_path = hiercodec.encode(path)
    assert hiercodec.encode(str(path)) == by_path
    assert hiercodec.encode(Image.open(path)) == by_path
    assert hiercodec.encode(rgb, model=DEFAULT_ID) == by_path
    big = np.zeros((12, 16, 3), np.uint8)
    big[::2, ::2] = rgb  # a strided view is accepted and coded as its values
    np.testing.assert_array_equal(hiercodec.decode(hiercodec.encode(big[::2, ::2])), rgb)


def test_encode_is_deterministic_and_input_untouched():
    image = smooth(5, 6, 3)
    copy = image.copy()
    assert hiercodec.encode(image) == hiercodec.encode(image)
    np.testing.assert_array_equal(image, copy)


def test_progress_flag_runs_quietly_for_short_work(capsys):
    image = smooth(4, 5, 3)
    out = hiercodec.decode(hiercodec.encode(image, progress=True), progress=True)
    np.testing.assert_array_equal(out, image)
    assert capsys.readouterr().err == ""  # tqdm delay=1: nothing for work under a second


def test_progress_bar_counts_symbols(monkeypatch, capsys):
    import tqdm

    seen = {}
    real = tqdm.tqdm

    def spy(*args, **kwargs):
        bar = real(*args, **{**kwargs, "delay": 0})
        seen.setdefault("bars", []).append((kwargs, bar))
        return bar

    monkeypatch.setattr(tqdm, "tqdm", spy)
    image = smooth(4, 5, 4)
    hiercodec.decode(hiercodec.encode(image, progress=True), progress=True)
    assert len(seen["bars"]) == 2
    for kwargs, bar in seen["bars"]:
        assert kwargs["unit"] == "sym" and kwargs["delay"] == 1.0 and kwargs["file"] is sys.stderr
        assert bar.total == image.size and bar.n == image.size
    assert "sym" in capsys.readouterr().err


@pytest.mark.parametrize("bad, needle", [
    (np.zeros((4, 4), np.float32), "uint8"),
    (np.zeros((4, 4), np.uint16), "16-bit"),
    (np.zeros((4, 4, 5), np.uint8), "shape (4, 4, 5)"),
    (np.zeros((4,), np.uint8), "shape (4,)"),
    (np.zeros((2, 2, 3, 1), np.uint8), "shape"),
    (np.zeros((0, 4, 3), np.uint8), "empty"),
    (np.zeros((4, 0), np.uint8), "empty"),
    ([[1, 2], [3, 4]], "list"),
])
def test_encode_rejects_bad_arrays(bad, needle):
    with pytest.raises(ImageError) as err:
        hiercodec.encode(bad)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_decode_rejects_non_bytes():
    with pytest.raises(TypeError, match="not a path"):
        hiercodec.decode("x.hc")
    with pytest.raises(TypeError):
        hiercodec.decode(123)


@pytest.fixture(scope="module")
def rgb_file():
    image = smooth(5, 7, 3, seed=4)
    return image, hiercodec.encode(image)


def test_decode_rejects_damage(rgb_file):
    _, data = rgb_file
    with pytest.raises(IntegrityError):
        hiercodec.decode(data[:-10] + bytes([data[-10] ^ 1]) + data[-9:])
    with pytest.raises(FormatError, match="truncated"):
        hiercodec.decode(data[:-4])
    with pytest.raises(FormatError, match="not a .hc file"):
        hiercodec.decode(b"GIF89a" + data[6:])
    assert hiercodec.decode(bytearray(data)).shape == (5, 7, 3)


def _rewrite(data, **changes):
    box = container.read(data)
    return container.write(container.Container(replace(box.header, **changes), box.chunks))


def test_decode_model_not_installed(rgb_file):
    with pytest.raises(ModelNotFoundError) as err:
        hiercodec.decode(_rewrite(rgb_file[1], model_id="ham-imagenet-9"))
    assert "ham-imagenet-9" in str(err.value) and "not installed" in str(err.value)
    with pytest.raises(ModelNotFoundError, match="other weights"):
        hiercodec.decode(_rewrite(rgb_file[1], model_hash=b"\x07" * 32))
    with pytest.raises(FormatError, match="constriction-ans 0.9"):
        hiercodec.decode(_rewrite(rgb_file[1], coder_version="0.9"))


# ---------------------------------------------------------------------------------------------
# verify / info / models


@pytest.mark.parametrize("channels, names", [(3, ["pixels"]), (4, ["pixels", "alpha"]), (1, ["pixels"])])
def test_verify(channels, names):
    image = smooth(6, 5, channels, seed=channels)
    r = hiercodec.verify(image)
    assert isinstance(r, hiercodec.VerifyResult)
    assert r.roundtrip_ok and r.error is None
    assert r.model_id == DEFAULT_ID and (r.height, r.width, r.channels) == (6, 5, channels)
    assert [lv.name for lv in r.levels] == names
    data = hiercodec.encode(image)
    assert r.file_bytes == len(data) and r.file_bits == 8 * len(data)
    d = hiercodec.info(data)
    for lv, stored in zip(r.levels, d["levels"]):
        assert lv.written_bits == 8 * stored["bytes"]
        assert stored["bound_bits"] == int(np.ceil(lv.bound_bits))
        # DESIGN.md budget: bits written <= bound + 0.5% + 64 bits per chunk (+32: word rounding)
        assert lv.written_bits <= lv.bound_bits * 1.005 + 64 + 32
        assert lv.overhead_percent == pytest.approx(100 * (lv.written_bits / lv.bound_bits - 1))
    assert r.written_bits + r.header_bits == r.file_bits
    assert r.bits_per_dim == pytest.approx(8 * len(data) / image.size)
    assert r.bound_bits_per_dim == pytest.approx(r.bound_bits / image.size)
    assert r.file_overhead_percent > r.overhead_percent
    assert r.encode_seconds > 0 and r.decode_seconds > 0


def test_verify_reports_failure_instead_of_raising(monkeypatch):
    import hiercodec.codec

    def broken(box, file_bytes, loader=None, progress=None, full_size=False):
        raise IntegrityError("level 0 (pixels) decoded to values whose CRC32 does not match")

    monkeypatch.setattr(hiercodec.codec, "decode_container", broken)
    r = hiercodec.verify(smooth(3, 3, 3))
    assert not r.roundtrip_ok and "CRC32" in r.error


def test_info(rgb_file):
    image, data = rgb_file
    d = hiercodec.info(data)
    assert (d["height"], d["width"], d["channels"], d["color"], d["bit_depth"]) == (5, 7, 3, "RGB", 8)
    assert d["model"] == DEFAULT_ID and d["coder"] == "constriction-ans 0.5"
    assert d["mode"] == "lossless" and (d["levels_present"], d["levels_total"]) == (1, 1)
    assert d["file_bytes"] == len(data) and d["dims"] == 105
    assert d["header_bytes"] + sum(lv["bytes"] for lv in d["levels"]) == len(data)
    lv = d["levels"][0]
    assert lv["level"] == 0 and lv["bits_per_dim"] == pytest.approx(8 * lv["bytes"] / 105)
    assert lv["bound_bits_per_dim"] == pytest.approx(lv["bound_bits"] / 105)
    assert d["bits_per_dim"] == pytest.approx(8 * len(data) / 105)
    assert len(d["model_hash"]) == 64 and d["tiles"] == 1 and d["tile"] == (5, 7)
    with pytest.raises(IntegrityError):
        hiercodec.info(data[:-1] + bytes([data[-1] ^ 1]))


def test_info_and_import_do_not_need_torch(tmp_path, rgb_file):
    path = tmp_path / "x.hc"
    path.write_bytes(rgb_file[1])
    code = ("import sys, hiercodec; d = hiercodec.info(open(sys.argv[1], 'rb').read()); "
            "assert d['width'] == 7; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)


def test_models():
    found = {m.id: m for m in hiercodec.list_models()}
    assert DEFAULT_ID in found and "default" in found[DEFAULT_ID].aliases
    assert found[DEFAULT_ID].shipped and found[DEFAULT_ID].family == "pixelcnn"
    assert hiercodec.load_model("default").id == DEFAULT_ID
    # a model the golden files name stays installed when the default moves on
    assert found["pixelcnn-s1"].shipped
    with pytest.raises(ModelNotFoundError, match="nosuch"):
        hiercodec.load_model("nosuch")
    with pytest.raises(ModelNotFoundError):
        hiercodec.encode(smooth(2, 2, 3), model="nosuch")


# ---------------------------------------------------------------------------------------------
# load_image


def _pil(mode, size=(5, 4)):
    return Image.fromarray(smooth(size[1], size[0], 3)).convert(mode)


def test_load_image_modes():
    rgb = smooth(4, 5, 3)
    assert images.load_image(Image.fromarray(rgb)).shape == (4, 5, 3)
    assert images.load_image(Image.fromarray(rgb[:, :, 0])).shape == (4, 5, 1)
    la = images.load_image(Image.fromarray(smooth(4, 5, 2), "LA"))
    np.testing.assert_array_equal(la, smooth(4, 5, 2))
    bilevel = images.load_image(Image.fromarray(rgb[:, :, 0] > 100))
    assert bilevel.shape == (4, 5, 1) and set(np.unique(bilevel)) <= {0, 255}
    np.testing.assert_array_equal(bilevel[:, :, 0], np.where(rgb[:, :, 0] > 100, 255, 0))
    pal = Image.fromarray(rgb).quantize(colors=5)
    out = images.load_image(pal)
    assert out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out, np.asarray(pal.convert("RGB")))
    pa = pal.convert("PA")
    assert images.load_image(pa).shape == (4, 5, 4)
    rgbx = images.load_image(Image.fromarray(rgb).convert("RGBX"))
    np.testing.assert_array_equal(rgbx, rgb)


def test_load_image_transparency_becomes_alpha(tmp_path):
    rgb = smooth(4, 5, 3)
    pal = Image.fromarray(rgb).quantize(colors=5)
    pal.save(tmp_path / "p.png", transparency=1)
    out = images.load_image(tmp_path / "p.png")
    assert out.shape == (4, 5, 4)
    idx = np.asarray(pal)
    np.testing.assert_array_equal(out[:, :, 3], np.where(idx == 1, 0, 255))
    gray = rgb[:, :, 0].copy()
    gray[0, 0] = 77
    Image.fromarray(gray).save(tmp_path / "g.png", transparency=77)
    out = images.load_image(tmp_path / "g.png")
    assert out.shape == (4, 5, 2) and out[0, 0, 1] == 0
    np.testing.assert_array_equal(out[:, :, 0], gray)


@pytest.mark.parametrize("mode, needle", [
    ("CMYK", "mode CMYK"), ("YCbCr", "mode YCbCr"), ("HSV", "mode HSV"), ("RGBa", "RGBA (straight"),
    ("I", "16-bit"), ("F", "16-bit"), ("I;16", "16-bit")])
def test_load_image_refuses_modes(mode, needle):
    with pytest.raises(ImageError) as err:
        images.load_image(_pil(mode) if mode != "I;16" else Image.fromarray(np.zeros((3, 3), np.uint16)))
    assert needle in str(err.value)
    assert "convert" in str(err.value)


def test_load_image_refuses_16_bit_rgb_png(tmp_path):
    def chunk(tag, body):
        return len(body).to_bytes(4, "big") + tag + body + zlib.crc32(tag + body).to_bytes(4, "big")
    raw = b"".join(b"\x00" + bytes(range(2 * 3 * 3)) for _ in range(2))
    ihdr = (3).to_bytes(4, "big") + (2).to_bytes(4, "big") + bytes([16, 2, 0, 0, 0])
    path = tmp_path / "rgb16.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    assert Image.open(path).mode == "RGB"  # Pillow would narrow it silently
    with pytest.raises(ImageError, match="16-bit images are not supported: convert to 8 bits per sample first"):
        images.load_image(path)


def test_load_image_file_errors(tmp_path):
    with pytest.raises(ImageError, match="nope.png: no such file"):
        images.load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a directory"):
        images.load_image(tmp_path)
    (tmp_path / "t.png").write_bytes(b"hello")
    with pytest.raises(ImageError, match="t.png is not an image"):
        images.load_image(tmp_path / "t.png")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[:-100])
    with pytest.raises(ImageError, match="cut.png: the image file is truncated"):
        images.load_image(tmp_path / "cut.png")
    frames = [Image.fromarray(smooth(4, 4, 3, seed=s)) for s in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match="3 frames"):
        images.load_image(tmp_path / "anim.gif")
    with pytest.raises(ImageError, match="cannot read an image from a int"):
        images.load_image(5)


def test_to_public():
    assert images.to_public(np.zeros((3, 4, 1), np.uint8)).shape == (3, 4)
    assert images.to_public(np.zeros((3, 4, 2), np.uint8)).shape == (3, 4, 2)


# ---------------------------------------------------------------------------------------------
# save_image / atomic_write / read_input


def test_save_image(tmp_path):
    for shape in [(3, 4), (3, 4, 1), (3, 4, 2), (3, 4, 3), (3, 4, 4)]:
        a = smooth(3, 4, shape[2] if len(shape) == 3 else 1).reshape(shape)
        path = tmp_path / f"{len(shape)}-{shape[-1]}.png"
        images.save_image(a, path)
        np.testing.assert_array_equal(images.to_public(images.load_image(path)), images.to_public(a.reshape(3, 4, -1)))
    with pytest.raises(ImageError, match=".png"):
        images.save_image(np.zeros((2, 2), np.uint8), tmp_path / "x.jpg")
    with pytest.raises(OutputExistsError):
        images.save_image(np.zeros((2, 2), np.uint8), path)
    images.save_image(np.zeros((2, 2), np.uint8), path, force=True)
    assert images.load_image(path).shape == (2, 2, 1)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write(tmp_path):
    out = tmp_path / "out.hc"
    fileio.atomic_write(out, b"one", force=False)
    assert out.read_bytes() == b"one"
    with pytest.raises(OutputExistsError) as err:
        fileio.atomic_write(out, b"two", force=False)
    assert str(err.value) == f"{out} exists; use --force to overwrite"
    assert out.read_bytes() == b"one"
    fileio.atomic_write(out, b"two", force=True)
    assert out.read_bytes() == b"two"
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask
    with pytest.raises(HiercodecError, match="does not exist"):
        fileio.atomic_write(tmp_path / "no" / "x", b"", force=True)
    with pytest.raises(HiercodecError, match="is a directory"):
        fileio.atomic_write(tmp_path, b"", force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.hc"]


def test_atomic_write_leaves_nothing_on_error(tmp_path, monkeypatch):
    def fail(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(HiercodecError, match="cannot write .*new.hc: No space left on device"):
        fileio.atomic_write(tmp_path / "new.hc", b"x" * 100, force=False)
    (tmp_path / "old.hc").write_bytes(b"old")
    with pytest.raises(HiercodecError, match="No space left"):
        fileio.atomic_write(tmp_path / "old.hc", b"new", force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.hc"]
    assert (tmp_path / "old.hc").read_bytes() == b"old"


def test_atomic_write_never_replaces_a_file_that_appears(tmp_path, monkeypatch):
    out = tmp_path / "race.hc"
    real = os.fsync

    def racing_fsync(fd):
        real(fd)
        if not out.exists():
            out.write_bytes(b"theirs")  # another process creates the output meanwhile

    monkeypatch.setattr(os, "fsync", racing_fsync)
    with pytest.raises(OutputExistsError):
        fileio.atomic_write(out, b"ours", force=False)
    assert out.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.hc"]


def test_read_input(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    assert fileio.read_input(tmp_path / "a") == b"abc"
    with pytest.raises(HiercodecError, match="b: no such file"):
        fileio.read_input(tmp_path / "b")
    with pytest.raises(HiercodecError, match="is a directory"):
        fileio.read_input(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads everything")
def test_read_input_permission(tmp_path):
    p = tmp_path / "secret"
    p.write_bytes(b"x")
    p.chmod(0)
    with pytest.raises(HiercodecError, match="permission denied"):
        fileio.read_input(p)


def test_decode_parses_the_header_once(monkeypatch):
    """One decode reads the file's header and chunk table once (container._parse), however many
    layers (api, codec) look at them."""
    from hiercodec import container

    data = hiercodec.encode(smooth(5, 4, 3))
    real, calls = container._parse, []

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(container, "_parse", counted)
    hiercodec.decode(data)
    assert len(calls) == 1
