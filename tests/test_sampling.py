"""hiercodec.coding.sampling: exact seeded draws from integer tables, and sampling a whole level
through its decoder's schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hiercodec.coding.sampling import draw, sample_schedule, splitmix64, uniforms
from hiercodec.coding.tables import TOTAL, normalize
from hiercodec.families.base import ScheduledLevel
from hiercodec.geometry import Geometry


def test_splitmix64_reference_values():
    """The published generator (Steele, Lea & Flood 2014) seeded with 0 gives these first three
    outputs: state += gamma, then the finalizer; so do we, for inputs 0, gamma, 2 gamma."""
    gamma = 0x9E3779B97F4A7C15
    states = np.array([0, gamma, (2 * gamma) % 2**64], dtype=np.uint64)
    assert [int(v) for v in splitmix64(states)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


def test_draws_depend_only_on_their_key():
    a = uniforms(7, 1, 5, 10)
    assert np.array_equal(a, uniforms(7, 1, 5, 10))
    assert np.array_equal(a[:4], uniforms(7, 1, 5, 4))  # a row's number does not depend on n
    assert not np.array_equal(a, uniforms(8, 1, 5, 10))
    assert not np.array_equal(a, uniforms(7, 2, 5, 10))
    assert not np.array_equal(a, uniforms(7, 1, 6, 10))


def test_draw_frequencies_match_the_table():
    """200,000 draws of a skewed 5-symbol table: each symbol's count within 5 standard deviations
    of n f / 2^24 (a draw that ignored the table, or an off-by-one in the CDF, fails)."""
    table = normalize(np.array([[1, 10, 100, 1000, 5]], dtype=np.int64))
    n = 200_000
    symbols = np.concatenate([draw(np.repeat(table, 1000, axis=0), 3, 0, g) for g in range(n // 1000)])
    counts = np.bincount(symbols, minlength=5)
    p = table[0] / TOTAL
    sd = np.sqrt(n * p * (1 - p))
    assert (np.abs(counts - n * p) <= 5 * sd + 1).all(), (counts, n * p)


def test_draw_is_exact_at_the_cdf_boundaries():
    """u below f[0] draws 0; a symbol of frequency 1 is drawn exactly for its one value of u."""
    table = np.array([[TOTAL - 2, 1, 1]], dtype=np.int64)
    hits = [int(draw(table, s, 0, 0)[0]) for s in range(3000)]
    assert set(hits) == {0}  # 2 chances in 2^24 each for 1 and 2: none in 3000 draws
    cdf = np.cumsum(table[0])
    u = np.array([0, cdf[0] - 1, cdf[0], cdf[1]])
    assert ((cdf <= u[:, None]).sum(axis=1)).tolist() == [0, 0, 1, 2]


@pytest.mark.parametrize("threads", [1, 2])
def test_sampling_a_level_is_the_same_for_any_thread_count(tiny_model, threads):
    """A level sampled through its decoder's schedule: the same values for 1 and 2 threads, and the
    values are those whose tables gave them (the encoder, given them, yields the same tables)."""
    g = Geometry(9, 11, 3)
    (level,) = tiny_model.family.levels(g)
    assert isinstance(level, ScheduledLevel)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        values = sample_schedule(level.decode_groups({}), 42, 0)
    finally:
        torch.set_num_threads(before)
    torch.set_num_threads(1)
    again = sample_schedule(level.decode_groups({}), 42, 0)
    assert np.array_equal(values, again) and values.shape == (9, 11, 3)
    other = sample_schedule(level.decode_groups({}), 43, 0)
    assert not np.array_equal(values, other)
    # the draws follow the tables: the encoder's tables for the sampled values redraw them exactly
    redrawn = [draw(t, 42, 0, i) for i, (_, t) in enumerate(level.encode_groups(values, {}))]
    assert np.array_equal(np.concatenate(redrawn), np.concatenate([s for s, _ in level.encode_groups(values, {})]))


def _decode_sampled(model, data, levels, seed=5, milli=1000):
    from hiercodec.codec import decode_image
    from hiercodec.coding.sampling import Sampling

    return decode_image(data, loader=lambda name: model, levels=levels, sample=Sampling(seed, milli))[0]


def _natural(h, w, c, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    planes = [128 + 90 * np.sin((rng.uniform(1, 3) * x + rng.uniform(1, 3) * y) / 9 + rng.uniform(0, 6)) for _ in range(c)]
    return np.clip(np.stack(planes, -1) + rng.normal(0, 4, (h, w, c)), 0, 255).astype(np.uint8)


def test_sampled_pyramid_levels_are_consistent_with_the_decoded_ones(tiny_pyramid):
    """A pyramid file cut after its coarsest level, decoded by sampling the rest: every sampled
    level downsamples exactly to the one above it (the tables are restricted to the consistent
    values), the image is full size, and the draws are deterministic and depend on the seed."""
    from hiercodec.codec import encode_image
    from hiercodec.families.pyramid import downsample

    image = _natural(19, 23, 3)
    data, _ = encode_image(tiny_pyramid, image, levels=1)
    a = _decode_sampled(tiny_pyramid, data, None)
    assert a.shape == image.shape
    x, coarse = a, image
    for _ in range(tiny_pyramid.family.net.levels - 1):
        x, coarse = downsample(x), downsample(coarse)
    assert np.array_equal(x, coarse)  # the decoded coarsest level, reproduced by the samples
    assert np.array_equal(a, _decode_sampled(tiny_pyramid, data, None))
    assert not np.array_equal(a, _decode_sampled(tiny_pyramid, data, None, seed=6))
    assert not np.array_equal(a, _decode_sampled(tiny_pyramid, data, None, milli=500))


def test_sampled_grayscale_colour_has_the_decoded_gray(tiny_grayscale):
    from hiercodec.codec import encode_image
    from hiercodec.families.grayscale import psi

    image = _natural(12, 9, 3, seed=1)
    data, _ = encode_image(tiny_grayscale, image, levels=1)
    a = _decode_sampled(tiny_grayscale, data, None)
    assert a.shape == image.shape and np.array_equal(psi(a), psi(image))


@pytest.mark.parametrize("threads", [1, 2])
def test_sampling_a_cut_file_is_the_same_for_any_thread_count_and_batch(tiny_pyramid, threads, monkeypatch):
    """1 or 2 threads, and the embedding's features computed one tile at a time or in batches:
    the same samples (MAX_TILES is part of the format: it orders the groups, hence the draws)."""
    from hiercodec.codec import encode_image
    from hiercodec.families import conditioning

    data, _ = encode_image(tiny_pyramid, _natural(17, 21, 3, seed=2), levels=2)
    torch.set_num_threads(1)
    want = _decode_sampled(tiny_pyramid, data, None)
    monkeypatch.setattr(conditioning, "TILE_BATCH", 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        got = _decode_sampled(tiny_pyramid, data, None)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(got, want)


def test_sampling_a_whole_file_changes_nothing(tiny_pyramid):
    from hiercodec.codec import encode_image

    image = _natural(10, 11, 4, seed=3)
    data, _ = encode_image(tiny_pyramid, image)
    assert np.array_equal(_decode_sampled(tiny_pyramid, data, None), image)


def test_sample_options_are_checked(tmp_path):
    import hiercodec
    from click.testing import CliRunner

    from hiercodec.cli.main import cli
    from hiercodec.errors import HiercodecError

    data = hiercodec.encode(_natural(4, 5, 3))
    with pytest.raises(HiercodecError, match="temperature"):
        hiercodec.decode(data, sample=True, temperature=0.0)
    src = tmp_path / "a.hc"
    src.write_bytes(data)
    r = CliRunner().invoke(cli, ["decompress", "--reconstruct", "mean", "--seed", "3", str(src), str(tmp_path / "b.png")])
    assert r.exit_code == 2 and "go with sampling" in r.output
    r = CliRunner().invoke(cli, ["decompress", "--reconstruct", "mean", "--sample", str(src), str(tmp_path / "b.png")])
    assert r.exit_code == 2 and "contradict" in r.output
    with pytest.raises(HiercodecError, match="lossy files"):
        hiercodec.encode(_natural(4, 5, 3), sample=True)
    r = CliRunner().invoke(cli, ["decompress", "--sample", "--seed", "3", str(src), str(tmp_path / "b.png")])
    assert r.exit_code == 0, r.output
