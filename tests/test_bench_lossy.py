"""`hiercodec bench --lossy`: the quality metrics, the lossy peers' rate matching, the benchmark on
two tiny images with the shipped `pyramid` model (its lossy prefixes K = 1, 2, 3) and the CLI.
Real codecs throughout, nothing mocked; the whole file runs in seconds."""

from __future__ import annotations

import csv
import io
import json
import math

import hiercodec  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from hiercodec.bench.lossy import (CURVE, MATCHED, MODEL, lossy_steps, markdown, plot_lossy, run_lossy_bench,
                                   to_csv, to_json, write_lossy_output)
from hiercodec.cli.main import cli
from hiercodec.errors import HiercodecError, ImageError
from hiercodec.bench.peers_lossy import LOSSY_PEERS, available_lossy_peers, code, matched
from hiercodec.bench.quality import ms_scales, ms_ssim, psnr

torch.set_num_threads(1)

needs_jpeg = pytest.mark.skipif("jpeg" not in available_lossy_peers(), reason="imagecodecs without JPEG8")
needs_jpegxl = pytest.mark.skipif("jpegxl" not in available_lossy_peers(), reason="imagecodecs without JPEGXL")
needs_webp = pytest.mark.skipif("webp" not in available_lossy_peers(), reason="imagecodecs without WEBP")


def photo_like(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth gradients, an edge and mild noise: compresses like a (small) photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = [90 + 60 * np.sin(x / 7 + k) + 40 * np.cos(y / 5 - k) + 50 * (x > w / 2) for k in range(c)]
    return np.clip(np.stack(planes, -1) + rng.normal(0, 6, (h, w, c)), 0, 255).astype(np.uint8)


def noisy(image: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- quality


def test_identical_images():
    a = photo_like(40, 48)
    assert psnr(a, a) == math.inf
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_psnr_known_value():
    a = np.full((16, 16, 3), 100, np.uint8)
    b = a + 1  # MSE 1 over every sample
    assert psnr(a, b) == pytest.approx(20 * math.log10(255))
    c = a.copy()
    c[0, 0, 0] += 16  # one sample off by 16: MSE 256 / 768
    assert psnr(a, c) == pytest.approx(10 * math.log10(255 ** 2 / (256 / 768)))


def test_symmetric():
    a, b = photo_like(64, 60), noisy(photo_like(64, 60), 12)
    assert psnr(a, b) == pytest.approx(psnr(b, a))
    assert ms_ssim(a, b) == pytest.approx(ms_ssim(b, a), rel=1e-12)


def test_decreasing_with_noise():
    a = photo_like(96, 96)  # 4 scales
    values = [(psnr(a, noisy(a, s)), ms_ssim(a, noisy(a, s))) for s in (2, 5, 10, 20, 40)]
    for (p1, m1), (p2, m2) in zip(values, values[1:]):
        assert p1 > p2 and m1 > m2
    assert 0 < values[-1][1] < values[0][1] < 1


def test_per_channel_average_and_gray():
    a, b = photo_like(48, 40), noisy(photo_like(48, 40), 10)
    per_channel = [ms_ssim(a[..., k], b[..., k]) for k in range(3)]
    assert ms_ssim(a, b) == pytest.approx(np.mean(per_channel), rel=1e-12)
    assert ms_ssim(a[..., :1], b[..., :1]) == pytest.approx(per_channel[0], rel=1e-12)  # (H, W, 1) == (H, W)


def test_scales_that_fit():
    assert ms_scales(176, 300) == 5 and ms_scales(175, 300) == 4
    assert ms_scales(11, 11) == 1 and ms_scales(22, 40) == 2 and ms_scales(10, 50) == 0
    with pytest.raises(ImageError, match="at least 11x11"):
        ms_ssim(np.zeros((10, 20), np.uint8), np.zeros((10, 20), np.uint8))
    with pytest.raises(ImageError, match="shapes"):
        psnr(np.zeros((12, 12), np.uint8), np.zeros((12, 13), np.uint8))


def test_one_scale_matches_scikit_image():
    """Below 22 pixels a side only one scale fits, and MS-SSIM is plain SSIM (Gaussian window 11,
    sigma 1.5, population covariances, valid region): scikit-image's definition."""
    metrics = pytest.importorskip("skimage.metrics")
    a, b = photo_like(20, 21), noisy(photo_like(20, 21), 15)
    expected = metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                             data_range=255, channel_axis=-1)
    assert ms_ssim(a, b) == pytest.approx(expected, abs=1e-9)


# ----------------------------------------------------------------------------- lossy peers


@needs_jpeg
def test_matched_jpeg_is_the_closest_setting():
    image = photo_like(64, 64)
    every = {q: code("jpeg", image, q).bpp for q in range(1, 101)}
    for target in (every[30] * 1.03, every[75] * 0.98, (every[90] + every[91]) / 2):
        point = matched("jpeg", image, target)
        assert point.target_bpp == target and point.peer == "jpeg"
        assert abs(point.bpp - target) == pytest.approx(min(abs(b - target) for b in every.values()))
        # the target lies between the rates of the neighbouring settings
        q = int(point.setting)
        assert every[max(q - 1, 1)] <= target <= every[min(q + 1, 100)]
        assert point.psnr > 20 and 0 < point.ms_ssim < 1 and point.encode_s >= 0 and point.decode_s >= 0


@needs_jpegxl
def test_matched_jpegxl_approaches_the_target():
    image = photo_like(64, 64)
    for distance in (4.0, 1.5):
        target = code("jpegxl", image, distance).bpp * 1.01
        point = matched("jpegxl", image, target)
        assert point.bpp == pytest.approx(target, rel=0.02), point
        assert 0.1 <= point.setting <= 25


@needs_jpeg
def test_matched_outside_the_range_gives_the_end():
    image = photo_like(32, 32)
    assert matched("jpeg", image, 1e-3).setting == LOSSY_PEERS["jpeg"].fewest
    assert matched("jpeg", image, 1e3).setting == LOSSY_PEERS["jpeg"].most
    with pytest.raises(HiercodecError, match="positive"):
        matched("jpeg", image, 0.0)
    with pytest.raises(HiercodecError, match="unknown lossy peer"):
        matched("png", image, 1.0)


@needs_webp
def test_gray_and_alpha():
    gray = photo_like(24, 20, 1)[..., 0]
    point = code("webp", gray, 60)  # WebP has no gray: coded as R=G=B, measured as gray
    assert point.bpp > 0 and point.psnr > 20
    with pytest.raises(ImageError, match="gray or RGB"):
        code("webp", np.zeros((16, 16, 4), np.uint8), 50)


# ----------------------------------------------------------------------------- the benchmark


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    return {"a": photo_like(24, 20, seed=0), "b": photo_like(24, 20, seed=1)[::-1].copy()}


@pytest.fixture(scope="module")
def result(images):
    if "jpeg" not in available_lossy_peers():
        pytest.skip("imagecodecs without JPEG8")
    steps = []
    out = run_lossy_bench(images, ["pyramid"], ["jpeg"], on_step=lambda image, what: steps.append((image, what)))
    out.steps = steps
    return out


def test_model_points(result, images):
    rows = [r for r in result.rows if r.kind == MODEL]
    assert [(r.image, r.levels) for r in rows] == [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("b", 3)]
    assert result.models == {"pyramid-s1": 4} and all(r.levels_total == 4 for r in rows)
    for name in images:
        mine = [r for r in rows if r.image == name]
        assert [r.bpp for r in mine] == sorted(r.bpp for r in mine)  # more levels, more bits
        assert mine[-1].psnr > mine[0].psnr and mine[-1].ms_ssim > mine[0].ms_ssim
    # the row measures what the public API writes and reads
    k2 = next(r for r in rows if r.image == "a" and r.levels == 2)
    data = hiercodec.encode(images["a"], "pyramid", levels=2)
    assert hiercodec.info(data)["levels_present"] == 2 and hiercodec.info(data)["levels_total"] == 4
    assert k2.nbytes == len(data) and k2.bpp == 8 * len(data) / (24 * 20)
    decoded = hiercodec.decode(data, full_size=True)
    assert k2.psnr == psnr(images["a"], decoded) and k2.ms_ssim == ms_ssim(images["a"], decoded)


def test_matched_and_curve_rows(result):
    models = {(r.image, r.levels): r for r in result.rows if r.kind == MODEL}
    matched_rows = [r for r in result.rows if r.kind == MATCHED]
    assert len(matched_rows) == 6
    for r in matched_rows:
        assert r.codec == "jpeg" and r.model == "pyramid-s1" and r.target_bpp == models[(r.image, r.levels)].bpp
    curve = [r for r in result.rows if r.kind == CURVE]
    assert len(curve) == 2 * len(LOSSY_PEERS["jpeg"].grid)
    assert len(result.steps) == 2 * (3 * 2 + 1)


def test_pooled(result):
    points = result.points()
    assert [p.label for p in points] == ["pyramid-s1 1 level", "pyramid-s1 2 levels", "pyramid-s1 3 levels"]
    for p in points:
        rows = [r for r in result.rows if r.kind == MODEL and r.levels == p.levels]
        assert p.bpp == pytest.approx(8 * sum(r.nbytes for r in rows) / sum(r.pixels for r in rows))
        assert p.psnr == pytest.approx(np.mean([r.psnr for r in rows]))
        (peer,) = result.matched("pyramid-s1", p.levels)
        assert peer.codec == "jpeg" and peer.images == 2 and len(peer.settings) == 2
    assert len(result.curve("jpeg")) == len(LOSSY_PEERS["jpeg"].grid)


def test_outputs(result, tmp_path):
    table = markdown(result)
    assert "| pyramid-s1 2 levels | pyramid-s1 | K=2 of 4 |" in table and "| pyramid-s1 2 levels | jpeg |" in table
    doc = json.loads(to_json(result))
    assert doc["meta"]["imagecodecs"] and doc["meta"]["hiercodec"] and "jpeg" in doc["meta"]["peers"]
    assert len(doc["rows"]) == len(result.rows) and doc["models"] == {"pyramid-s1": 4}
    lines = list(csv.DictReader(io.StringIO(to_csv(result))))
    assert len(lines) == len(result.rows) + len(result.pooled())
    assert {line["decoding"] for line in lines} == {""}  # pyramid decodes one way only
    for suffix in (".md", ".json", ".csv"):
        write_lossy_output(result, tmp_path / f"r{suffix}")
    assert (tmp_path / "r.md").read_text() == table
    with pytest.raises(HiercodecError, match="must end in"):
        write_lossy_output(result, tmp_path / "r.txt")


def test_refused_before_any_coding(images):
    with pytest.raises(HiercodecError, match="single level"):
        run_lossy_bench(images, ["default"], [])
    with pytest.raises(ImageError, match="alpha"):
        run_lossy_bench({"rgba": np.zeros((16, 16, 4), np.uint8)}, ["pyramid"], [])
    with pytest.raises(HiercodecError, match="unknown lossy peer"):
        run_lossy_bench(images, ["pyramid"], ["avif"])


# ----------------------------------------------------------------------------- a family that samples (ham)


@pytest.fixture(scope="module")
def ham_result(tiny_ham):
    """tiny_ham (3 levels: K = 1, 2) on one 24x24 image, with JPEG where it is installed."""
    peers = ["jpeg"] if "jpeg" in available_lossy_peers() else []
    image = photo_like(24, 24, seed=2)
    steps = []
    out = run_lossy_bench({"c": image}, [tiny_ham], peers, on_step=lambda name, what: steps.append(what))
    out.steps, out.image = steps, image
    return out


def test_sampling_family_gives_a_mean_and_a_sampled_point_per_k(ham_result, tiny_ham):
    from hiercodec import container
    from hiercodec.codec import decode_image, encode_image
    from hiercodec.coding.sampling import Sampling

    result, image = ham_result, ham_result.image
    assert tiny_ham.family.sample_temperature == 0.99
    total = result.models[tiny_ham.id]
    assert total >= 2
    rows = [r for r in result.rows if r.kind == MODEL]
    assert [(r.levels, r.decoding) for r in rows] == [(k, d) for k in range(1, total) for d in ("mean", "sample")]
    assert len(result.steps) == lossy_steps([image.shape], [tiny_ham], result.peers)
    for mean, sample in zip(rows[::2], rows[1::2]):
        k = mean.levels
        assert sample.levels == k and mean.levels_total == sample.levels_total == total
        assert sample.nbytes == mean.nbytes + 11  # format version 3 stores the seed and the temperature
        assert (mean.temperature, sample.temperature) == (None, 0.99)
        # the mean row: the file without stored sampling, decoded by the mean reconstruction
        plain, _ = encode_image(tiny_ham, image, levels=k)
        assert container.read(plain).version == 2 and len(plain) == mean.nbytes
        decoded, report = decode_image(plain, lambda _id: tiny_ham, full_size=True, sample=False)
        assert report.sampled is None and mean.psnr == psnr(image, decoded)
        # the sample row: the file that stores seed 0 at 0.99, decoded as it says
        drawn, _ = encode_image(tiny_ham, image, levels=k, sample=Sampling(0, 990))
        box = container.read(drawn)
        assert box.version == 3 and box.header.sampling == (0, 990) and len(drawn) == sample.nbytes
        decoded, report = decode_image(drawn, lambda _id: tiny_ham, full_size=True)
        assert report.sampled == (0, 990) and sample.psnr == psnr(image, decoded)
        # the peers: once per K, at the mean file's rate
        peers = [r for r in result.rows if r.kind == MATCHED and r.levels == k]
        assert [r.codec for r in peers] == result.peers
        assert all(r.target_bpp == mean.bpp and r.decoding is None for r in peers)
        assert [p.codec for p in result.matched(tiny_ham.id, k)] == result.peers


def test_sampling_family_outputs(ham_result, tiny_ham, tmp_path, monkeypatch):
    result, name = ham_result, tiny_ham.id
    points = result.points()
    assert [p.label for p in points[:2]] == [f"{name} 1 level, mean", f"{name} 1 level, sample T=0.99"]
    assert [p.decoding for p in points] == ["mean", "sample"] * (result.models[name] - 1)
    table = markdown(result)
    assert f"| {name} 1 level, mean | {name} | K=1 of" in table
    assert f"| {name} 1 level, sample T=0.99 | {name} | K=1 of" in table
    for k in range(1, result.models[name]):
        for peer in result.peers:  # each matched peer once, named by the rate it matched
            assert table.count(f"| {peer} |") == result.models[name] - 1
            assert table.count(f"| {name} {k} level{'s' if k > 1 else ''}, mean | {peer} |") == 1
    assert "sample T" in table.split("\n\n")[1]  # the note says what the decodings are
    lines = list(csv.DictReader(io.StringIO(to_csv(result))))
    assert "decoding" in lines[0]
    models = [line for line in lines if line["kind"] == MODEL]
    assert [line["decoding"] for line in models] == ["mean", "sample"] * 2 * (result.models[name] - 1)  # rows, pooled
    assert {line["decoding"] for line in lines if line["kind"] != MODEL} == {""}
    doc = json.loads(to_json(result))
    assert doc["meta"]["sampling"] == {name: {"seed": 0, "temperature": 0.99}}
    assert [r["decoding"] for r in doc["rows"] if r["kind"] == MODEL] == ["mean", "sample"] * (result.models[name] - 1)
    pytest.importorskip("matplotlib")
    import hiercodec.bench.lossy as lossy

    figures = []
    monkeypatch.setattr(lossy, "save_png", lambda fig, path, force: figures.append(fig))
    plot_lossy(result, tmp_path / "rd.png")
    for ax in figures[0].axes:
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == [*result.peers, f"{name}, mean", f"{name}, sample T=0.99"]
        fills = {line.get_label(): line.get_fillstyle() for line in ax.get_lines()}
        assert fills[f"{name}, mean"] == "full" and fills[f"{name}, sample T=0.99"] == "none"


# ----------------------------------------------------------------------------- the CLI


def run(*args):
    return CliRunner().invoke(cli, ["bench", "--lossy", *map(str, args)], catch_exceptions=False)


def assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hiercodec: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


@needs_jpeg
def test_cli_writes_json_and_plot(tmp_path):
    Image.fromarray(photo_like(24, 20)).save(tmp_path / "tiny.png")
    out, plot = tmp_path / "rd.json", tmp_path / "rd.png"
    result = run(tmp_path / "tiny.png", "-m", "pyramid", "--peers", "jpeg", "--out", out, "--plot", plot)
    assert result.exit_code == 0, result.output
    assert "| pyramid-s1 1 level | jpeg |" in result.stdout
    doc = json.loads(out.read_text())
    assert {r["kind"] for r in doc["rows"]} == {MODEL, MATCHED, CURVE}
    assert [r["levels"] for r in doc["rows"] if r["kind"] == MODEL] == [1, 2, 3]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_errors(tmp_path):
    Image.fromarray(photo_like(24, 20)).save(tmp_path / "tiny.png")
    assert_one_line_error(run(tmp_path / "tiny.png", "-m", "default", "--peers", "none"), "single level")
    assert_one_line_error(run(tmp_path / "tiny.png", "-m", "no-such-model", "--peers", "none"), "no-such-model",
                          "not installed")
    assert_one_line_error(run(tmp_path / "tiny.png", "-m", "pyramid", "--peers", "png"), "unknown lossy peer")
    assert_one_line_error(run(tmp_path / "tiny.png", "-m", "pyramid", "--out", tmp_path / "r.txt"), ".json, .md or .csv")
    try:
        hiercodec.load_model("vqvae2")
    except HiercodecError:  # not installed yet: the default model's error says what to do
        assert_one_line_error(run(tmp_path / "tiny.png", "--peers", "none"), "vqvae2", "-m pyramid")


def test_cli_help():
    text = CliRunner().invoke(cli, ["bench", "--help"]).output
    assert "--lossy" in text and "first K" in text and "matched rate" in text
