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
