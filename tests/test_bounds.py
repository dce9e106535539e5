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
    k_max = 64
    assert k_max * (1 << xm.CDF_BITS) * (1 << 16) < 2 ** 53  # sum_k w_k CDF_k in float64
    assert k_max * (1 << 32) * (1 << 24) < 2 ** 63  # normalisation in int64


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
