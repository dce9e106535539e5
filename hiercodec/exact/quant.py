"""Integer arithmetic of exact mode (DESIGN.md, "The exactness contract").

Every tensor on the path to a probability table holds integers. A tensor with `frac` fractional
bits stands for value * 2^-frac. Integers are carried in float64 so that BLAS can do the matrix
products: every product and every partial sum is an integer of magnitude below 2^53 (checked by
`accumulator_bound`), hence exact whatever the order of summation, the thread count or the
instruction set. Requantization multiplies by a power of two (exact) and floors (exact).
Nonlinearities are lookup tables computed once at export and stored with the model, so no libm
function runs at decode time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from hiercodec import OMP_PASSIVE

ACT_BITS = 12  # activations are integers in [-2^11, 2^11 - 1]
ACT_MIN, ACT_MAX = -(1 << (ACT_BITS - 1)), (1 << (ACT_BITS - 1)) - 1
WEIGHT_BITS = 10  # weights are integers in [-(2^9 - 1), 2^9 - 1], one power-of-two scale per output channel
WEIGHT_MAX = (1 << (WEIGHT_BITS - 1)) - 1
GATE_FRAC = 11  # tanh and sigmoid tables, and gated outputs, have 11 fractional bits
EXACT_LIMIT = 1 << 53  # float64 represents every integer below this exactly
DTYPE = torch.float64


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Run a block of large products on n torch threads (at most 8), then restore the count.
    With spinning OpenMP threads (torch loaded without OMP_WAIT_POLICY=PASSIVE, see
    hiercodec/__init__.py) it keeps the current count: spinning threads that compete with another
    process are far slower than one thread."""
    before = torch.get_num_threads()
    if not OMP_PASSIVE:
        n = before
    torch.set_num_threads(max(1, min(n, 8)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def frac_bits_for(max_abs: float, limit: int = ACT_MAX, lo: int = 0, hi: int = 24) -> int:
    """Largest number of fractional bits with which values up to max_abs still fit in `limit`."""
    if max_abs <= 0:
        return hi
    return int(min(hi, max(lo, math.floor(math.log2(limit / max_abs)))))


def quantize_weights(w: np.ndarray, max_int: int = WEIGHT_MAX) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel (axis 0): integer weights and their fractional bits."""
    flat = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    frac = np.array([frac_bits_for(m, max_int, lo=-8, hi=30) for m in flat], dtype=np.int64)
    scale = np.exp2(frac).reshape((-1,) + (1,) * (w.ndim - 1))
    return np.clip(np.rint(w * scale), -max_int, max_int).astype(np.int64), frac


def quantize_bias(b: np.ndarray, acc_frac: np.ndarray) -> np.ndarray:
    return np.rint(b * np.exp2(acc_frac)).astype(np.int64)


def requant_shift(acc_frac: np.ndarray, out_frac: np.ndarray | int) -> np.ndarray:
    """Right shift that takes an accumulator with acc_frac fractional bits to out_frac bits."""
    return (np.asarray(acc_frac) - np.asarray(out_frac)).astype(np.int64)


def rounding_offset(shift: np.ndarray) -> np.ndarray:
    """Added to the accumulator before the floor so that the shift rounds half up."""
    return np.where(shift > 0, np.exp2(np.maximum(shift, 1) - 1), 0.0)


def accumulator_bound(w_int: np.ndarray, bias_int: np.ndarray, in_max: float = -ACT_MIN) -> float:
    """Largest |partial sum| any input with |a| <= in_max can produce: sum |w| * in_max + |b|
    (the bias already holds the rounding offset)."""
    per_out = np.abs(w_int.reshape(w_int.shape[0], -1)).sum(axis=1) * in_max
    return float((per_out + np.abs(bias_int)).max())


def lut_index_range() -> np.ndarray:
    return np.arange(ACT_MIN, ACT_MAX + 1, dtype=np.float64)


def gate_luts(in_frac: int) -> tuple[np.ndarray, np.ndarray]:
    """tanh and sigmoid of every activation integer with in_frac fractional bits, 11 output bits."""
    x = lut_index_range() * 2.0 ** -in_frac
    tanh = np.rint(np.tanh(x) * (1 << GATE_FRAC))
    sig = np.rint((1 / (1 + np.exp(-x))) * (1 << GATE_FRAC))
    return tanh.astype(np.int64), sig.astype(np.int64)


def elu_lut(in_frac: int, out_frac: int) -> np.ndarray:
    """ELU of every activation integer (in_frac fractional bits), out_frac bits out, clamped."""
    x = lut_index_range() * 2.0 ** -in_frac
    y = np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    return np.clip(np.rint(y * 2.0 ** out_frac), ACT_MIN, ACT_MAX).astype(np.int64)


def relu_lut(in_frac: int, out_frac: int) -> np.ndarray:
    """ReLU as a table, for the residual networks of the families that condition on levels above."""
    x = lut_index_range() * 2.0 ** -in_frac
    return np.clip(np.rint(np.maximum(x, 0) * 2.0 ** out_frac), ACT_MIN, ACT_MAX).astype(np.int64)
