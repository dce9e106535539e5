"""The written bounds of the exact head (hiercodec/exact/mixture.py) hold for every value the
integer parameters can take, and the lookup tables are what they claim to be."""

import math

import numpy as np
import torch

from hiercodec.exact import mixture as xm
from hiercodec.exact.quant import ACT_MAX, ACT_MIN, elu_lut, gate_luts, relu_lut


def test_float32_sigmoid_index_is_exact_for_every_parameter():
    luts = xm.build_luts()
    m = luts["inv_m"]
    assert m.min() >= 1 << (xm.INV_M_BITS - 1) and m.max() < 1 << xm.INV_M_BITS  # 11-bit mantissas
    edges = xm.EDGES16.numpy().astype(np.int64)
    worst = max(abs(edges.min() - xm.MU_MAX), abs(edges.max() - xm.MU_MIN))
    assert worst < 1 << 13
    assert worst * int(m.max()) < 1 << 24  # (16 e - mu16) * M is an exact float32 integer
    # and float32 really computes it exactly: compare with integer arithmetic at the extremes
    mus = torch.tensor([xm.MU_MIN, xm.MU_MAX, 0, 2047], dtype=torch.float32)
    for ls in (0, len(m) // 2, len(m) - 1):
        a = torch.tensor(float(m[ls]) * 2.0 ** float(luts["inv_q"][ls]), dtype=torch.float32)
        t = torch.addcmul(-(mus[:, None] * a), xm.EDGES16[None, :], a)
        exact = (edges[None, :] - mus.numpy().astype(np.int64)[:, None]) * int(m[ls])
        assert np.array_equal(t.double().numpy(), exact * 2.0 ** float(luts["inv_q"][ls]))


def test_inverse_scale_table_is_accurate():
    luts = xm.build_luts()
    ls = np.arange(xm.LS_MIN, xm.LS_MAX + 1)
    approx = luts["inv_m"] * np.exp2(luts["inv_q"].astype(float))
    assert np.allclose(approx, 16 * np.exp(-ls / 32), rtol=2 ** -(xm.INV_M_BITS))


def test_mixture_sums_stay_exact():
    total = xm.WEIGHT_TOTAL << xm.CDF_BITS
    assert total == 1 << 32  # sum_k w_k CDF_k with sum_k w_k = 2^16: every partial sum <= 2^32
    assert total * ((1 << 16) - 1) < 2 ** 53  # f = floor(m (2^16 - 1) 2^-24) + 1 in float64
    assert total * ((1 << 16) - 1) >> 24 <= (1 << 24) - 256  # so the row sum is at most 2^24
    assert (1 << 32) * xm.WEIGHT_TOTAL < 2 ** 63  # weight renormalisation in int64 (w < 2^32)


def test_weights_sum_to_two_to_the_16_and_tables_to_two_to_the_24():
    k = 5
    mix = xm.ExactMixture(k, {n: torch.from_numpy(v) for n, v in xm.build_luts().items()})
    g = torch.Generator().manual_seed(0)
    params = torch.cat([torch.randint(xm.PI_MIN, xm.PI_MAX + 1, (300, k), generator=g),
                        torch.randint(xm.MU_MIN, xm.MU_MAX + 1, (300, 3 * k), generator=g),
                        torch.randint(xm.LS_MIN, xm.LS_MAX + 1, (300, 3 * k), generator=g),
                        torch.randint(xm.COEFF_MIN, xm.COEFF_MAX + 1, (300, 3 * k), generator=g)], 1).double()
    state = mix.begin(params)
    prev = torch.randint(0, 256, (300, 3), generator=g).double()
    for c in range(3):
        assert (state["w"].sum(1) == xm.WEIGHT_TOTAL).all()
        table = mix.table(state, c, prev[:, :c])
        assert (table.sum(1) == 1 << 24).all() and table.min() >= 1
        mix.update(state, prev[:, c])


def test_lookup_tables_cover_every_activation_and_match_the_functions():
    n = ACT_MAX - ACT_MIN + 1
    tanh, sig = gate_luts(8)
    x = np.arange(ACT_MIN, ACT_MAX + 1) / 256
    assert len(tanh) == len(sig) == n
    assert np.abs(tanh / 2048 - np.tanh(x)).max() <= 0.5 / 2048 + 1e-12
    assert np.abs(sig / 2048 - 1 / (1 + np.exp(-x))).max() <= 0.5 / 2048 + 1e-12
    relu = relu_lut(8, 8)
    assert np.array_equal(relu, np.clip(np.maximum(np.arange(ACT_MIN, ACT_MAX + 1), 0), ACT_MIN, ACT_MAX))
    elu = elu_lut(8, 8)
    assert elu.min() >= -256 and np.array_equal(elu[-n // 2:], np.arange(0, ACT_MAX + 1))
    assert math.isclose(elu[0] / 256, math.expm1(ACT_MIN / 256), abs_tol=1 / 256)
