"""The `hiercodec` command, run through click's CliRunner on real files in tmp_path.

Images are small (the decoder costs a few ms per pixel position). Every command must leave its
input untouched (bytes and mtime), write outputs atomically (no temporary files left behind, no
output at all on failure), and report errors as one line `hiercodec: error: ...`, exit 1.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from hiercodec import container
from hiercodec.cli.main import cli
from hiercodec.images import load_image
from hiercodec.zoo import ALIASES

DEFAULT_ID = ALIASES["default"]

torch.set_num_threads(1)  # the decoder is overhead-bound; OpenMP threads only contend


@pytest.fixture(autouse=True)
def _no_user_models(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HIERCODEC_MODELS", str(tmp_path_factory.mktemp("user-models")))


def rng(seed=0):
    return np.random.default_rng(seed)


def smooth(h, w, c, seed=0):
    """A smooth-ish image (gradients plus a little noise), cheap to code."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 // max(w - 1, 1) + 40 * k + y * 7) % 256 for k in range(c)], -1)
    noise = rng(seed).integers(-3, 4, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def save(path: Path, array: np.ndarray, mode: str | None = None, **kw) -> Path:
    data = array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array
    Image.fromarray(data, mode).save(path, **kw) if mode else Image.fromarray(data).save(path, **kw)
    return path


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def assert_error(result, *needles: str, code: int = 1) -> str:
    """Exit status `code`, exactly one line on stderr starting with `hiercodec: error:`, no
    traceback; returns the message."""
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hiercodec: error: "), lines[0]
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def no_temp_files(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def png16(path: Path, w: int, h: int, color_type: int, samples: int) -> Path:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit RGB)."""
    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    raw = b"".join(b"\x00" + bytes((i * 37 + r) % 256 for i in range(w * samples * 2)) for r in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


# ---------------------------------------------------------------------------------------------
# Round trips


def _palette_image(path: Path, transparency: bool) -> Path:
    im = Image.fromarray(smooth(9, 11, 3, seed=3)).quantize(colors=7)
    if transparency:
        im.save(path, transparency=2)
    else:
        im.save(path)
    return path


CASES = {
    "gray": lambda p: save(p, smooth(9, 7, 1)),
    "gray+alpha": lambda p: save(p, smooth(8, 8, 2), "LA"),
    "rgb-odd": lambda p: save(p, smooth(11, 13, 3)),
    "rgba": lambda p: save(p, smooth(8, 10, 4), "RGBA"),
    "palette": lambda p: _palette_image(p, False),
    "palette-transparent": lambda p: _palette_image(p, True),
    "strip-1xN": lambda p: save(p, smooth(1, 19, 3)),
    "column-Nx1": lambda p: save(p, smooth(17, 1, 1)),
    "bilevel": lambda p: (Image.fromarray(smooth(8, 9, 1)[:, :, 0] > 128).save(p), p)[1],
}
CHANNELS = {"gray": 1, "gray+alpha": 2, "rgb-odd": 3, "rgba": 4, "palette": 3,
            "palette-transparent": 4, "strip-1xN": 3, "column-Nx1": 1, "bilevel": 1}


@pytest.mark.parametrize("case", list(CASES))
def test_roundtrip(tmp_path, case):
    src = CASES[case](tmp_path / "in.png")
    expected = load_image(src)
    assert expected.shape[2] == CHANNELS[case]
    before = snapshot(src)

    hc = tmp_path / "out.hc"
    r = run("compress", src, hc)
    assert r.exit_code == 0, r.output
    assert r.stderr == ""
    summary = r.stdout.strip().splitlines()
    assert len(summary) == 1
    assert re.search(rf"{hc.stat().st_size:,} bytes, \d+\.\d+ bits/dim \(model bound \d+\.\d+ bits/dim", summary[0])
    assert snapshot(src) == before

    hc_before = snapshot(hc)
    back = tmp_path / "back.png"
    r = run("decompress", hc, back)
    assert r.exit_code == 0, r.output
    assert snapshot(hc) == hc_before
    decoded = np.asarray(Image.open(back))
    decoded = decoded[:, :, None] if decoded.ndim == 2 else decoded
    assert decoded.dtype == np.uint8 and decoded.shape == expected.shape
    np.testing.assert_array_equal(decoded, expected)
    no_temp_files(tmp_path)


def test_compress_jpeg_input_and_model_option(tmp_path):
    src = save(tmp_path / "in.jpg", smooth(8, 8, 3), quality=90)
    r = run("compress", "--model", "pixelcnn-s1", src, tmp_path / "o.hc")
    assert r.exit_code == 0, r.output
    r = run("decompress", tmp_path / "o.hc", tmp_path / "o.png")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(load_image(tmp_path / "o.png"), load_image(src))


# ---------------------------------------------------------------------------------------------
# Outputs: --force, atomicity, same file


@pytest.fixture(scope="module")
def hc_file(tmp_path_factory):
    """A small RGB image and its .hc file (made once)."""
    folder = tmp_path_factory.mktemp("hc")
    src = save(folder / "img.png", smooth(6, 7, 3, seed=5))
    r = CliRunner().invoke(cli, ["compress", str(src), str(folder / "img.hc")])
    assert r.exit_code == 0, r.output
    return src, folder / "img.hc"


def test_compress_refuses_existing_output_without_force(tmp_path, hc_file):
    src = hc_file[0]
    out = tmp_path / "out.hc"
    out.write_bytes(b"precious")
    before = snapshot(out), snapshot(src)
    r = run("compress", src, out)
    assert_error(r, f"{out} exists; use --force to overwrite")
    assert (snapshot(out), snapshot(src)) == before
    r = run("compress", "--force", src, out)
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == hc_file[1].read_bytes()
    assert snapshot(src) == before[1]
    no_temp_files(tmp_path)


def test_decompress_refuses_existing_output_without_force(tmp_path, hc_file):
    hc = hc_file[1]
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    before = snapshot(out), snapshot(hc)
    assert_error(run("decompress", hc, out), "out.png exists; use --force to overwrite")
    assert (snapshot(out), snapshot(hc)) == before
    r = run("decompress", "-f", hc, out)
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(load_image(out), load_image(hc_file[0]))
    assert snapshot(hc) == before[1]


def test_output_same_as_input_is_refused_even_with_force(tmp_path):
    src = save(tmp_path / "x.png", smooth(5, 5, 3))
    before = snapshot(src)
    assert_error(run("compress", "--force", src, src), "is the input file")
    assert snapshot(src) == before


def test_decompress_output_must_be_png(tmp_path, hc_file):
    r = run("decompress", hc_file[1], tmp_path / "back.jpg")
    assert r.exit_code == 2
    assert ".png" in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "back.jpg").exists()


def test_output_folder_missing(tmp_path, hc_file):
    assert_error(run("compress", hc_file[0], tmp_path / "nope" / "o.hc"), "does not exist")


# ---------------------------------------------------------------------------------------------
# Bad inputs


def test_missing_input(tmp_path):
    for cmd in (["compress"], ["decompress"]):
        out = tmp_path / ("o.hc" if cmd == ["compress"] else "o.png")
        assert_error(run(*cmd, tmp_path / "missing.png", out), "missing.png", "no such file")
        assert not out.exists()
    assert_error(run("info", tmp_path / "missing.hc"), "missing.hc", "no such file")
    assert_error(run("verify", tmp_path / "missing.png"), "missing.png", "no such file")


def test_not_an_image(tmp_path):
    src = tmp_path / "notes.png"
    src.write_text("these are not pixels\n")
    before = snapshot(src)
    assert_error(run("compress", src, tmp_path / "o.hc"), "notes.png", "not an image")
    assert not (tmp_path / "o.hc").exists()
    assert snapshot(src) == before


def test_truncated_image(tmp_path):
    full = save(tmp_path / "full.png", rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    src = tmp_path / "cut.png"
    src.write_bytes(full.read_bytes()[:-200])
    assert_error(run("compress", src, tmp_path / "o.hc"), "cut.png", "truncated")
    assert not (tmp_path / "o.hc").exists()


@pytest.mark.parametrize("kind", ["gray16", "rgb16", "rgba16"])
def test_16_bit_png_is_refused(tmp_path, kind):
    src = tmp_path / f"{kind}.png"
    if kind == "gray16":
        Image.fromarray((np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8)).save(src)
    else:
        png16(src, 4, 3, 2 if kind == "rgb16" else 6, 3 if kind == "rgb16" else 4)
    before = snapshot(src)
    assert_error(run("compress", src, tmp_path / "o.hc"),
                 "16-bit images are not supported: convert to 8 bits per sample first")
    assert not (tmp_path / "o.hc").exists()
    assert snapshot(src) == before


def test_cmyk_is_refused(tmp_path):
    src = tmp_path / "c.jpg"
    Image.fromarray(smooth(8, 8, 3)).convert("CMYK").save(src)
    assert_error(run("compress", src, tmp_path / "o.hc"), "CMYK", "convert")


def test_directory_as_input(tmp_path):
    folder = tmp_path / "folder.png"
    folder.mkdir()
    assert_error(run("compress", folder, tmp_path / "o.hc"), "no image")  # a folder is a set: this one is empty
    assert_error(run("decompress", folder, tmp_path / "o.png"), "is a directory")
    assert_error(run("info", folder), "is a directory")
    assert not (tmp_path / "o.hc").exists() and not (tmp_path / "o.png").exists()


def test_directory_as_output(tmp_path, hc_file):
    (tmp_path / "d.hc").mkdir()
    assert_error(run("compress", "--force", hc_file[0], tmp_path / "d.hc"), "is a directory")
    assert (tmp_path / "d.hc").is_dir()


def _flip(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 0x40]) + data[pos + 1:]


@pytest.mark.parametrize("damage", ["header-byte", "payload-byte", "last-byte", "truncated",
                                    "truncated-header", "appended", "empty", "not-hc"])
def test_damaged_hc_file(tmp_path, hc_file, damage):
    data = hc_file[1].read_bytes()
    bad = {
        "header-byte": lambda: _flip(data, 30),
        "payload-byte": lambda: _flip(data, len(data) - 20),
        "last-byte": lambda: _flip(data, len(data) - 1),
        "truncated": lambda: data[:-8],
        "truncated-header": lambda: data[:40],
        "appended": lambda: data + b"\0\0\0\0",
        "empty": lambda: b"",
        "not-hc": lambda: hc_file[0].read_bytes(),
    }[damage]()
    src = tmp_path / "bad.hc"
    src.write_bytes(bad)
    before = snapshot(src)
    out = tmp_path / "back.png"
    msg = assert_error(run("decompress", src, out))
    assert re.search(r"damaged|truncated|corrupt|not a \.hc|trailing|empty", msg), msg
    assert not out.exists()
    no_temp_files(tmp_path)
    assert_error(run("info", src))
    assert snapshot(src) == before


def _rewrite_header(data: bytes, **changes) -> bytes:
    box = container.read(data)
    return container.write(container.Container(replace(box.header, **changes), box.chunks))


def test_model_not_installed(tmp_path, hc_file):
    src = tmp_path / "foreign.hc"
    src.write_bytes(_rewrite_header(hc_file[1].read_bytes(), model_id="pixelcnn-s9"))
    out = tmp_path / "back.png"
    assert_error(run("decompress", src, out), "pixelcnn-s9", "not installed")
    assert not out.exists()
    r = run("info", src)  # info needs no model
    assert r.exit_code == 0 and "pixelcnn-s9" in r.stdout


def test_model_with_other_weights(tmp_path, hc_file):
    src = tmp_path / "other.hc"
    src.write_bytes(_rewrite_header(hc_file[1].read_bytes(), model_hash=bytes(range(32))))
    assert_error(run("decompress", src, tmp_path / "back.png"), DEFAULT_ID, "other weights", "000102030405")


def test_unknown_model_option(tmp_path, hc_file):
    assert_error(run("compress", "--model", "nosuch", hc_file[0], tmp_path / "o.hc"), "nosuch", "not installed")
    assert not (tmp_path / "o.hc").exists()
    assert_error(run("verify", "--model", "nosuch", hc_file[0]), "nosuch")


# ---------------------------------------------------------------------------------------------
# info, verify, models, help


def test_info(hc_file):
    src, hc = hc_file
    before = snapshot(hc)
    r = run("info", hc)
    assert r.exit_code == 0, r.output
    out = r.stdout
    size = hc.stat().st_size
    box = container.read(hc.read_bytes())
    chunk = box.chunks[0]
    assert "7x6 RGB" in out and DEFAULT_ID in out and "constriction-ans 0.5" in out
    assert "lossless, 1 of 1 levels present" in out
    assert f"{size:,} bytes" in out
    level_row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["0"])
    assert "levels:   pixels (decompress --levels K decodes the first K)" in out  # the model is installed
    assert level_row == ["0", "pixels", f"{len(chunk.data):,}", f"{8 * len(chunk.data) / 126:.3f}",
                         f"{chunk.bound_bits:,}", f"{chunk.bound_bits / 126:.3f}"]
    total_row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["total"])
    assert total_row[1] == f"{size:,}" and total_row[2] == f"{8 * size / 126:.3f}"
    assert snapshot(hc) == before


def test_info_rgba_has_two_levels(tmp_path):
    src = save(tmp_path / "a.png", smooth(5, 6, 4), "RGBA")
    assert run("compress", src, tmp_path / "a.hc").exit_code == 0
    r = run("info", tmp_path / "a.hc")
    assert r.exit_code == 0
    assert "6x5 RGBA" in r.stdout and "2 of 2 levels present" in r.stdout
    rows = [" ".join(line.split()[:2]) for line in r.stdout.splitlines() if line.startswith("  ")]
    assert [row.split()[0] for row in rows] == ["level", "0", "1", "header", "total"]
    assert rows[1:3] == ["0 pixels", "1 alpha"]


def test_verify_dir(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    a = save(folder / "b.png", smooth(6, 7, 3, seed=1))
    b = save(folder / "a.png", smooth(5, 5, 4, seed=2), "RGBA")
    (folder / "readme.txt").write_text("not an image, ignored")
    before = snapshot(a), snapshot(b)
    r = run("verify", folder)
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert out.index("a.png") < out.index("b.png")  # name order
    assert out.count("round trip ok") == 2 and "overhead" in out
    assert "alpha" in out and "pixels" in out
    assert re.search(r"pixels\s+[\d,.]+\s+[\d,]+\s+[+-]\d+\.\d+%", out)
    assert "2 of 2 images ok" in out
    assert (snapshot(a), snapshot(b)) == before
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.png", "readme.txt"]


def test_verify_reports_failed_roundtrip(tmp_path, monkeypatch):
    import hiercodec.codec

    real = hiercodec.codec.decode_container

    def broken(*args, **kwargs):
        image, report = real(*args, **kwargs)
        image = image.copy()
        image[0, 0, 0] ^= 1
        return image, report

    monkeypatch.setattr(hiercodec.codec, "decode_container", broken)
    src = save(tmp_path / "x.png", smooth(4, 4, 1))
    r = run("verify", src)
    assert r.exit_code == 1
    assert "ROUND TRIP FAILED" in r.stdout
    assert_error(r, "1 of 1 round trips failed")


def test_verify_empty_dir(tmp_path):
    assert_error(run("verify", tmp_path), "holds no images")


def test_models():
    r = run("models")
    assert r.exit_code == 0, r.output
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:]}
    assert rows[DEFAULT_ID][:4] == [DEFAULT_ID, "default", "pixelcnn", "shipped"]
    assert rows["pixelcnn-s1"][2:4] == ["pixelcnn", "shipped"]


@pytest.mark.parametrize("cmd", [[], ["compress"], ["decompress"], ["info"], ["verify"], ["models"]])
def test_help(cmd):
    r = run(*cmd, "--help")
    assert r.exit_code == 0
    assert "Usage: " in r.stdout
    assert "Example" in r.stdout


def test_usage_error_exit_2():
    r = run("compress", "only-one-arg.png")
    assert r.exit_code == 2
    assert "Missing argument" in r.stderr


def test_info_marks_a_bits_back_level(tmp_path):
    """A bits-back level (its latents drawn from its stream) says so in `info`; others do not."""
    src = save(tmp_path / "a.png", smooth(14, 21, 4), "RGBA")
    assert run("compress", "--model", "bitsback-toy-1", src, tmp_path / "a.hc").exit_code == 0
    r = run("info", tmp_path / "a.hc")
    assert r.exit_code == 0
    rows = [line.split() for line in r.stdout.splitlines() if line.startswith("  0 ") or line.startswith("  1 ")]
    labels = {row[1]: "(bits-back)" in row for row in rows}
    assert len(labels) == 2 and sum(labels.values()) == 1, r.stdout


def test_export_band_refuses_a_family_without_bits_back(tmp_path, monkeypatch):
    """`export --band` is a bits-back family's coding choice: a pixelcnn run gets one clear line."""
    monkeypatch.setenv("HIERCODEC_MODELS", str(tmp_path))
    relay = Path(__file__).resolve().parents[1] / "relay" / "run"
    r = run("export", relay, "--name", "x-band", "--band")
    assert r.exit_code == 1 and "--band is for bits-back families" in r.output and "Traceback" not in r.output
