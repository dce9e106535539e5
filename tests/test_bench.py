"""`hiercodec bench`, run through click's CliRunner on two tiny PNGs with the real peer codecs
(nothing mocked) and the tiny exact model installed as a user model (fast on any image)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import hiercodec  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import TINY_ID, make_tiny_model
from hiercodec.cli.main import cli
from hiercodec.bench.peers import available_peers

torch.set_num_threads(1)

PEERS = available_peers()
if not PEERS:
    pytest.skip("no peer codec is installed (pip install imagecodecs pyoxipng)", allow_module_level=True)
CODECS = [TINY_ID, *PEERS]
SHAPES = {"gray.png": (5, 7, 1), "rgb.png": (9, 12, 3)}  # name order = the order bench lists them


@pytest.fixture(scope="module", autouse=True)
def _tiny_model_installed(tmp_path_factory):
    """The tiny model as a user model, so `--model tiny-test` loads it like any installed model."""
    models = tmp_path_factory.mktemp("models")
    (models / TINY_ID).mkdir()
    model = make_tiny_model(models / TINY_ID)  # writes weights.safetensors there
    (models / TINY_ID / "config.json").write_text(json.dumps(model.config))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HIERCODEC_MODELS", str(models))
        yield


def smooth(h: int, w: int, c: int, seed: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    base = np.stack([x * 20 + y * 9 + 30 * k for k in range(c)], -1) + rng.integers(-4, 5, (h, w, c))
    return np.clip(base, 0, 255).astype(np.uint8)


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(smooth(9, 12, 3, 0)).save(folder / "rgb.png")
    Image.fromarray(smooth(5, 7, 1, 1)[:, :, 0]).save(folder / "gray.png")
    return folder


def run(*args) -> object:
    return CliRunner().invoke(cli, ["bench", "--model", TINY_ID, *map(str, args)], catch_exceptions=False)


def table(stdout: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in stdout.splitlines() if line.startswith("|")]


def assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code in (1, 2), (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hiercodec: error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0]


# ----------------------------------------------------------------------------- the table


def test_markdown_table_has_every_codec_image_and_all(images):
    result = run(images)  # a folder: its images in name order
    assert result.exit_code == 0, result.output
    head, sep, *rows = table(result.stdout)
    expected = ["image", "shape", f"{TINY_ID} bpd", f"{TINY_ID} bound bpd", f"{TINY_ID} enc s", f"{TINY_ID} dec s"]
    for peer in PEERS:
        expected += [f"{peer} bpd", f"{peer} enc s", f"{peer} dec s"]
    assert head == expected
    assert sep == ["---"] * len(head)
    assert [r[0] for r in rows] == [*SHAPES, "all"]
    assert [r[1] for r in rows[:-1]] == ["5x7x1", "9x12x3"]
    assert rows[-1][1] == f"{sum(np.prod(s) for s in SHAPES.values())} dims"
    for row in rows:
        assert len(row) == len(head)
        values = [float(cell) for cell in row[2:]]  # every cell a number: nothing missing
        assert all(v >= 0 for v in values)
        bpd = {codec: float(row[head.index(f"{codec} bpd")]) for codec in CODECS}
        assert all(0 < v < 200 for v in bpd.values()), bpd  # tiny files: headers dominate


def test_explicit_files_and_repeated_model_give_one_column_group(images):
    result = run(images / "rgb.png", images / "gray.png", "--model", "tiny-test", "--peers", PEERS[0])
    assert result.exit_code == 0, result.output
    head, _, *rows = table(result.stdout)
    assert [h for h in head if h.endswith(" bpd") and "bound" not in h] == [f"{TINY_ID} bpd", f"{PEERS[0]} bpd"]
    assert [r[0] for r in rows] == ["rgb.png", "gray.png", "all"]


# ----------------------------------------------------------------------------- --out


def test_out_json_rows_agree_with_bytes_and_table(images, tmp_path):
    out = tmp_path / "bench.json"
    result = run(images, "--out", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    meta = doc["meta"]
    assert meta["torch_threads"] == 1 and meta["models"].keys() == {TINY_ID}
    assert meta["threads"] >= 1 and meta["engine"]
    assert list(meta["peers"]) == PEERS and "platform" in meta and "imagecodecs" in meta
    assert [i["name"] for i in doc["images"]] == list(SHAPES)
    assert list(doc["codecs"]) == CODECS
    rows = doc["rows"]
    assert len(rows) == len(SHAPES) * len(CODECS)
    for row in rows:
        dims = int(np.prod(SHAPES[row["image"]]))
        assert row["dims"] == dims
        assert row["bits_per_dim"] == pytest.approx(8 * row["bytes"] / dims)
        assert (row["bound_bits_per_dim"] is None) == (row["codec"] != TINY_ID)
        assert row["encode_s"] > 0 and row["decode_s"] > 0
    model_rows = [r for r in rows if r["codec"] == TINY_ID]
    assert all(r["bits_per_dim"] > r["bound_bits_per_dim"] > 0 for r in model_rows)  # file = bound + overhead
    overall = {o["codec"]: o for o in doc["overall"]}
    assert list(overall) == CODECS
    for codec, o in overall.items():
        mine = [r for r in rows if r["codec"] == codec]
        assert o["image"] == "all" and o["images"] == len(SHAPES)
        assert o["bytes"] == sum(r["bytes"] for r in mine)
        assert o["bits_per_dim"] == pytest.approx(8 * o["bytes"] / sum(r["dims"] for r in mine))
        assert o["decode_s"] == pytest.approx(sum(r["decode_s"] for r in mine))
    head, _, *lines = table(result.stdout)
    for codec in CODECS:
        assert float(lines[-1][head.index(f"{codec} bpd")]) == pytest.approx(overall[codec]["bits_per_dim"], abs=5e-4)


def test_out_csv(images, tmp_path):
    out = tmp_path / "bench.csv"
    result = run(images, "-o", out)
    assert result.exit_code == 0, result.output
    records = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(records[0]) == ["image", "shape", "dims", "codec", "kind", "bytes", "bits_per_dim",
                                "bound_bits_per_dim", "paper_bound_bits_per_dim", "encode_s", "decode_s"]
    assert [(r["image"], r["codec"]) for r in records] == \
        [(i, c) for i in SHAPES for c in CODECS] + [("all", c) for c in CODECS]
    for r in records:
        assert float(r["bits_per_dim"]) == pytest.approx(8 * int(r["bytes"]) / int(r["dims"]))
        assert (r["bound_bits_per_dim"] == "") == (r["kind"] == "peer")


def test_existing_out_needs_force(images, tmp_path):
    out = tmp_path / "bench.csv"
    out.write_text("old")
    assert_one_line_error(run(images, "--out", out, "--peers", "png"), "exists", "--force")
    assert out.read_text() == "old"
    assert run(images, "--out", out, "--peers", "png", "--force").exit_code == 0
    assert out.read_text().startswith("image,")


@pytest.mark.parametrize("name", ["bench.txt", "bench"])
def test_bad_out_suffix_is_one_line_error(images, tmp_path, name):
    result = run(images, "--out", tmp_path / name)
    assert_one_line_error(result, ".csv", ".json")
    assert not (tmp_path / name).exists()
    assert result.stdout == ""  # refused before any coding


def test_unknown_peer_is_one_line_error(images):
    assert_one_line_error(run(images, "--peers", "png,gif"), "gif", "jpegxl")


# ----------------------------------------------------------------------------- --plot


def test_plot_writes_png(images, tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "bench.png"
    result = run(images, "--plot", plot)
    assert result.exit_code == 0, result.output
    with Image.open(plot) as im:
        assert im.format == "PNG" and im.width > 400 and im.height > 200
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_plot_needs_png_name(images, tmp_path):
    assert_one_line_error(run(images, "--plot", tmp_path / "bench.svg"), ".png")


# ----------------------------------------------------------------------------- layouts


def test_gray_alpha_is_coded_by_the_models_only(tmp_path):
    path = tmp_path / "la.png"
    Image.fromarray(smooth(6, 5, 2, 2), "LA").save(path)
    result = run(path, "--peers", "png")
    assert result.exit_code == 0, result.output
    head, _, row, total = table(result.stdout)
    assert row[1] == "6x5x2" and float(row[head.index(f"{TINY_ID} bpd")]) > 0
    assert row[head.index("png bpd")] == "-" and total[head.index("png bpd")] == "-"
    assert "la.png: png left out" in result.stderr


def test_held_out_photo_by_name(images):
    pytest.importorskip("skimage")  # where `chelsea` comes from; coding it would take seconds
    from hiercodec.bench.lossless import load_targets

    loaded = load_targets((images / "rgb.png", Path("chelsea")))
    assert {k: v.shape for k, v in loaded.items()} == {"rgb.png": (9, 12, 3), "chelsea": (300, 451, 3)}
