"""hiercodec.exact.temperature: a head at a temperature, with integer arithmetic only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hiercodec.coding.tables import TOTAL
from hiercodec.exact.categorical import ExactCategorical
from hiercodec.exact.mixture import ExactMixture, build_luts
from hiercodec.exact.temperature import Tempered, log_scale_shift, scaled_logits


@pytest.fixture(scope="module")
def luts():
    return {name: torch.from_numpy(v) for name, v in build_luts().items()}


def test_log_scale_shift_is_round_32_ln_t():
    for milli in (1, 10, 500, 990, 999, 1000, 1001, 1500, 65535):
        assert log_scale_shift(milli) == round(32 * math.log(milli / 1000))  # no tie among these
    assert log_scale_shift(1000) == 0 and log_scale_shift(990) == 0  # 0.99 is within half a step


def test_scaled_logits_are_integer_arithmetic():
    l = torch.tensor([[-2047.0, -17.0, 0.0, 16.0, 2047.0]], dtype=torch.float64)
    assert scaled_logits(l, 1000).tolist() == l.tolist()
    assert scaled_logits(l, 2000).tolist() == [[-1024.0, -9.0, 0.0, 8.0, 1023.0]]  # floor
    assert scaled_logits(l, 500).tolist() == [[-2047.0, -34.0, 0.0, 32.0, 2047.0]]  # clamped


def test_categorical_temperature_sharpens_and_flattens(luts):
    head = ExactCategorical(luts["exp"])
    logits = torch.tensor([[0.0, 16.0, 40.0, -30.0]], dtype=torch.float64)
    base = head.table(head.begin(logits))
    assert np.array_equal(Tempered(head, 1000).table(Tempered(head, 1000).begin(logits)), base)
    cold, hot = Tempered(head, 500), Tempered(head, 2000)
    c, h = cold.table(cold.begin(logits)), hot.table(hot.begin(logits))
    for t in (c, h):
        assert t.sum() == TOTAL and t.min() >= 1
    assert c.max() > base.max() > h.max()  # p^(1/T): sharper below 1, flatter above


def test_mixture_temperature_widens_the_logistics(luts):
    k = 2
    head = ExactMixture(k, luts)
    params = torch.zeros(1, 10 * k, dtype=torch.float64)
    params[0, k : 4 * k] = 128 * 16  # mu: pixel value 128, in 1/16
    params[0, 4 * k : 7 * k] = 32  # log scale 1 (scale e)
    before = params.clone()
    tables = {}
    for milli in (500, 1000, 2000):
        h = Tempered(head, milli)
        state = h.begin(params)
        tables[milli] = h.table(state, 0, None)
        assert tables[milli].sum() == TOTAL and tables[milli].min() >= 1
    assert np.array_equal(tables[1000], head.table(head.begin(params), 0, None))
    assert tables[500].max() > tables[1000].max() > tables[2000].max()
    assert torch.equal(params, before)  # the network's parameters are not modified in place


def test_temperature_out_of_range(luts):
    with pytest.raises(ValueError, match="out of range"):
        Tempered(ExactCategorical(luts["exp"]), 0)
