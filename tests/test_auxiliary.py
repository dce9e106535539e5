"""The families with auxiliary variables (Kolesnikov & Lampert 2017): `grayscale` and `pyramid`.

What is theirs: the exactness of the conditional networks (the encoder's parallel pass and the
decoder's incremental steps, for any batch size); the categorical head; consistency-constrained
coding (the bounds never exclude the true value, they are exactly the consistent values, and the
file is smaller than the paper's bound); the exact downsampling; what a cut file decodes to (the
4-bit gray image, the downsampled images); configs; the API, CLI and bench around them.

Round trips, encoder = decoder tables, batch, thread and tile-position invariance, cut files in
general and damaged chunks: the family contract, tests/test_contract.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hiercodec import api
from hiercodec.codec import decode_image, encode_image
from hiercodec.coding.tables import TOTAL, check
from hiercodec.container import cut
from hiercodec.errors import HiercodecError
from hiercodec.exact.quant import DTYPE
from hiercodec.families.auxiliary_config import GrayscaleConfig, PyramidConfig
from hiercodec.families.raster import RasterLevel
from hiercodec.geometry import Geometry
from hiercodec.families.grayscale import luma_bounds, psi
from hiercodec.families.pyramid import block_bounds, downsample, level_name, sizes
from hiercodec.images import luma
from test_exact import natural


@pytest.fixture(params=["grayscale", "pyramid"])
def aux_model(request):
    return request.getfixturevalue(f"tiny_{request.param}")


def round_trip(model, image: np.ndarray):
    data, report = encode_image(model, image)
    decoded, _ = decode_image(data, loader=lambda name: model)
    np.testing.assert_array_equal(decoded, image)
    return data, report


# -- exactness ------------------------------------------------------------------------------------


def test_file_smaller_than_paper_bound(aux_model):
    """Consistency-constrained coding: each level costs at most what its unrestricted tables cost
    (the paper's bound), strictly less for the conditioned levels, and the coder stays within its
    budget of the constrained bound."""
    image = natural(np.random.default_rng(3), 24, 20, 3)
    _, report = round_trip(aux_model, image)
    assert report.constrained
    for level in report.levels:
        assert level.saved_bits >= 0
        assert level.written_bits <= level.bound_bits * 1.005 + 64 + 32  # ANS budget + sentinel word
    conditioned = report.levels[1:]
    assert all(level.bound_bits < level.paper_bound_bits for level in conditioned)


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_conditional_network_steps_equal_parallel_pass(tiny_grayscale, tiny_pyramid, batch):
    """The conditional exact PixelCNN: the incremental decoder fed the true inputs gives exactly
    the parameters of the whole-tile pass, for any batch size (features in int16 as the decoder
    holds them)."""
    rng = np.random.default_rng(batch)
    for net, emb, src in ((tiny_grayscale.family.cond, tiny_grayscale.family.embedding, 1),
                          (tiny_pyramid.family.networks["cond0"][0], tiny_pyramid.family.embeddings["embed0"], 3)):
        h, w = 6, 7
        x = torch.from_numpy(rng.integers(-128, 128, (batch, 3, h, w)).astype(np.float64))
        above = torch.from_numpy(rng.integers(-15, 16, (batch, src, h, w)).astype(np.float64))
        features = emb.forward(above)[..., :h, :w].to(torch.int16)
        whole = net.forward(x, features.to(DTYPE))
        dec = net.decoder(batch, w, features)
        for i in range(h):
            dec.row(i)
            for j in range(w):
                torch.testing.assert_close(dec.step(j), whole[:, :, i, j], rtol=0, atol=0)
                dec.set_pixel(j, x[:, :, i, j])


def test_categorical_tables_are_valid(tiny_grayscale):
    head = tiny_grayscale.family.categorical
    logits = torch.tensor([[0.0] * 16, [2047.0] + [-2047.0] * 15, list(range(-800, 800, 100))], dtype=DTYPE)
    table = head.table(head.begin(logits))
    check(table)
    assert table.shape == (3, 16) and (table[0] == TOTAL // 16).all()
    assert table[1, 0] > TOTAL - 16 and (table[1, 1:] == 1).all()
    assert (np.diff(table[2]) >= 0).all()  # monotone in the logit


# -- consistency-constrained coding ----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(rgb=st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)))
def test_luma_bounds_are_exactly_the_consistent_values(rgb):
    """Given psi and the earlier channels, the interval of each channel holds the true value and
    is exactly the set of values for which the later channels can still give that psi."""
    pixel = np.array(rgb, np.int64)
    p = np.array([psi(pixel.reshape(1, 1, 3).astype(np.uint8))[0, 0, 0]], np.int64)
    v = np.arange(256)
    for c in range(3):
        lo, hi = luma_bounds(p, pixel[None, :c], c, 3)
        assert lo[0] <= pixel[c] <= hi[0]
        if c == 2:  # B: psi of (R, G, v) for every v
            ok = (luma(np.stack([np.full(256, pixel[0]), np.full(256, pixel[1]), v], -1)) >> 4) == p[0]
        elif c == 1:  # G = v is consistent iff some B gives psi: the sum S ranges over an interval in B
            s = 299 * pixel[0] + 587 * v
            ok = (s + 114 * 255 + 500 >= 16000 * p[0]) & (s + 500 <= 16000 * p[0] + 15999)
        else:
            s = 299 * v
            ok = (s + 701 * 255 + 500 >= 16000 * p[0]) & (s + 500 <= 16000 * p[0] + 15999)
        assert np.array_equal(np.flatnonzero(ok), np.arange(lo[0], hi[0] + 1))


@settings(max_examples=200, deadline=None)
@given(x=st.integers(0, 255))
def test_luma_bounds_gray(x):
    p = np.array([x >> 4])
    lo, hi = luma_bounds(p, np.zeros((1, 0), np.int64), 0, 1)
    assert lo[0] <= x <= hi[0] and hi[0] - lo[0] == 15


@settings(max_examples=300, deadline=None)
@given(block=st.lists(st.integers(0, 255), min_size=4, max_size=4), rows=st.integers(1, 2),
       cols=st.integers(1, 2))
def test_block_bounds_are_exactly_the_consistent_values(block, rows, cols):
    """A 2 x 2 block (or 1 x 2, 2 x 1, 1 x 1 at the edge of an odd size, extended by repetition):
    in raster order, each sample's interval holds the true value and every value in it can still
    be completed to the block average the level below holds."""
    x = np.array(block, np.int64).reshape(2, 2)[:rows, :cols]
    m = int(downsample(x[..., None].astype(np.uint8))[0, 0, 0])
    weight = np.full((rows, cols), (2 // rows) * (2 // cols), np.int64)
    flat_x, flat_w = x.reshape(-1), weight.reshape(-1)
    for n in range(len(flat_x)):
        known = int((flat_x[:n] * flat_w[:n]).sum())
        rest = int(flat_w[n + 1 :].sum())
        lo, hi = block_bounds(np.int64(m), np.int64(known), np.int64(rest), np.int64(flat_w[n]))
        assert lo <= flat_x[n] <= hi
        s = known + flat_w[n] * np.arange(256)
        ok = (s + 255 * rest >= 4 * m - 2) & (s <= 4 * m + 1)
        assert np.array_equal(np.flatnonzero(ok), np.arange(lo, hi + 1))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 19), w=st.integers(1, 19), c=st.sampled_from([1, 3]), seed=st.integers(0, 2**32 - 1))
def test_level_bounds_never_exclude_the_true_value(tiny_grayscale, tiny_pyramid, h, w, c, seed):
    """Through the levels' own contexts, at every position of every tile of random images: the
    true value lies within its bounds (the encoder passes the full tiles; only values decoded
    earlier are read, which the table-equality tests check)."""
    image = np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)
    g = Geometry(*image.shape)
    for model in (tiny_grayscale, tiny_pyramid):
        above: dict[str, np.ndarray] = {}
        for level in model.family.levels(g, model.family.layout(g)):
            values = level.analyze(image, above)
            bounds = level.bounds(above) if isinstance(level, RasterLevel) else None
            if bounds is not None:
                lay = level.layout
                tiles, valid, everything = lay.to_tiles(values, level.fill), lay.valid(), slice(0, lay.count)
                for i in range(lay.tile_h):
                    for ch in range(level.channels):
                        lo, hi = bounds(everything, tiles, i, 0, lay.tile_w, ch)
                        true = tiles[:, ch, i, :].T
                        inside = (lo <= true) & (true <= hi)
                        assert inside[valid[:, i, :].T].all(), (model.id, level.name, i, ch)
            above[level.name] = values


def test_pyramid_downsampling():
    x = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]], np.uint8)[..., None]
    # blocks (10, 20, 40, 50), (30, 30, 60, 60), (70, 80, 70, 80), (90 x 4); (sum + 2) // 4
    np.testing.assert_array_equal(downsample(x)[..., 0], [[30, 45], [75, 90]])
    assert sizes(5, 8, 4) == [(5, 8), (3, 4), (2, 2), (1, 1)]


# -- progressive decoding ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(19, 23, 3), (7, 5, 1)])
def test_pyramid_cut_levels_are_the_downsampled_images(tiny_pyramid, shape):
    """A pyramid file cut after level k decodes to the image downsampled levels - k times, named
    as that level, and with full_size to it repeated over the blocks (cut files of every family,
    alpha included: tests/test_contract.py)."""
    image = natural(np.random.default_rng(21), *shape)
    data, _ = round_trip(tiny_pyramid, image)
    levels = tiny_pyramid.family.net.levels
    color = image[..., : 3 if shape[2] >= 3 else 1]
    expected = [color]
    for _ in range(levels - 1):
        expected.append(downsample(expected[-1]))
    for k in range(1, levels + 1):
        part = cut(data, k)
        assert len(part) < len(data) or k == levels
        small, report = decode_image(part, loader=lambda name: tiny_pyramid)
        np.testing.assert_array_equal(small, expected[levels - k])
        assert report.levels[-1].name == level_name(levels - k)
        full, _ = decode_image(part, loader=lambda name: tiny_pyramid, full_size=True)
        f = 1 << (levels - k)
        assert full.shape == color.shape
        np.testing.assert_array_equal(full[::f, ::f], expected[levels - k])
    np.testing.assert_array_equal(small, image)


def test_grayscale_file_cut_after_gray(tiny_grayscale):
    image = natural(np.random.default_rng(22), 14, 18, 3)
    data, _ = round_trip(tiny_grayscale, image)
    gray, _ = decode_image(cut(data, 1), loader=lambda name: tiny_grayscale)
    np.testing.assert_array_equal(gray, psi(image) * 17)
    with pytest.raises(HiercodecError, match="cannot decode 3 levels"):
        decode_image(data, loader=lambda name: tiny_grayscale, levels=3)


# -- configs -----------------------------------------------------------------------------------------


def test_config_errors():
    with pytest.raises(HiercodecError, match="as many entries"):
        GrayscaleConfig.from_dict({"embed_down": [1]})
    with pytest.raises(HiercodecError, match="one entry more"):
        PyramidConfig.from_dict({"embed_up": [2]})
    with pytest.raises(HiercodecError, match="unknown field"):
        PyramidConfig.from_dict({"level": 3})
    with pytest.raises(HiercodecError, match="expected a positive integer"):
        GrayscaleConfig.from_dict({"tile": "64"})
    with pytest.raises(HiercodecError, match="name blocks"):
        PyramidConfig.from_dict({"embed_blocks": 2, "embed_down": [2], "embed_up": [3, 4]})
    assert GrayscaleConfig.from_dict(GrayscaleConfig().to_dict()) == GrayscaleConfig()


@pytest.fixture
def installed_pyramid(tmp_path, monkeypatch) -> str:
    """A tiny pyramid model installed as a user model (HIERCODEC_MODELS), as `export` installs one."""
    from conftest import TINY_PYRAMID
    from hiercodec.export.hierarchy import export_hierarchy
    from hiercodec.zoo import save_model

    torch.manual_seed(7)
    calib = natural(np.random.default_rng(7), 16, 16, 3)[None]
    tensors, config = export_hierarchy(TINY_PYRAMID.build().state_dict(), TINY_PYRAMID, calib)
    models = tmp_path / "models"
    monkeypatch.setenv("HIERCODEC_MODELS", str(models))
    save_model(models, "user-pyramid", tensors, config, "test")
    return "user-pyramid"


def test_api_cut_and_levels(installed_pyramid):
    """Through the public API: decode(levels=...), cut(), full_size."""
    image = natural(np.random.default_rng(5), 10, 12, 3)
    data = api.encode(image, installed_pyramid)
    np.testing.assert_array_equal(api.decode(data), image)
    preview = api.decode(api.cut(data, 1), full_size=True)
    assert preview.shape == image.shape
    np.testing.assert_array_equal(api.decode(data, levels=2), downsample(image))


def test_cli_progressive(installed_pyramid, tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from hiercodec.cli.main import cli

    image = natural(np.random.default_rng(6), 21, 18, 3)
    Image.fromarray(image).save(tmp_path / "in.png")
    run = CliRunner().invoke
    r = run(cli, ["verify", "-m", installed_pyramid, str(tmp_path / "in.png")])
    assert r.exit_code == 0 and "paper bound" in r.output and "round trip ok" in r.output, r.output
    assert run(cli, ["compress", "-m", installed_pyramid, str(tmp_path / "in.png"), str(tmp_path / "a.hc")]).exit_code == 0
    r = run(cli, ["cut", "--levels", "2", str(tmp_path / "a.hc"), str(tmp_path / "b.hc")])
    assert r.exit_code == 0 and "2 of 3 levels" in r.output, r.output
    r = run(cli, ["decompress", str(tmp_path / "b.hc"), str(tmp_path / "b.png")])
    assert r.exit_code == 0 and "9x11" in r.output, r.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")), downsample(image))
    r = run(cli, ["decompress", "--levels", "1", "--full-size", str(tmp_path / "a.hc"), str(tmp_path / "c.png")])
    assert r.exit_code == 0 and np.asarray(Image.open(tmp_path / "c.png")).shape == image.shape, r.output
    r = run(cli, ["decompress", "--levels", "5", str(tmp_path / "a.hc"), str(tmp_path / "d.png")])
    assert r.exit_code == 1 and "cannot decode 5 levels: the file has 3" in r.output, r.output
    assert not (tmp_path / "d.png").exists()
    r = run(cli, ["cut", "--levels", "4", str(tmp_path / "a.hc"), str(tmp_path / "e.hc")])
    assert r.exit_code == 1 and "cannot keep 4 levels" in r.output, r.output


def test_bench_shows_paper_bound_and_levels(tiny_pyramid, tiny_model):
    import json

    from hiercodec.bench.lossless import markdown, run_bench, to_json

    images = {"a": natural(np.random.default_rng(8), 12, 10, 3), "b": natural(np.random.default_rng(9), 7, 9, 3)}
    result = run_bench(images, [tiny_pyramid, tiny_model], [])
    table = markdown(result)
    assert "tiny-pyramid paper bpd" in table and "tiny-test paper bpd" not in table  # pixelcnn: no constraint
    doc = json.loads(to_json(result))
    pooled = next(o for o in doc["overall"] if o["codec"] == "tiny-pyramid")
    assert [lv["level"] for lv in pooled["levels"]] == ["pixels/4", "pixels/2", "pixels"]
    assert sum(lv["bound_bits_per_dim"] for lv in pooled["levels"]) == pytest.approx(pooled["bound_bits_per_dim"])
    assert sum(lv["paper_bound_bits_per_dim"] for lv in pooled["levels"]) == pytest.approx(pooled["paper_bound_bits_per_dim"])
    assert pooled["paper_bound_bits_per_dim"] > pooled["bound_bits_per_dim"]
