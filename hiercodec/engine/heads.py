"""The compiled twins of the exact heads (hiercodec.exact.mixture.ExactMixture and
hiercodec.exact.categorical.ExactCategorical): the same interface (begin / table / update), the
same integer tables, computed by hiercodec.engine.head_kernels."""

from __future__ import annotations

import numba
import numpy as np
import torch

from hiercodec.engine import head_kernels as K
from hiercodec.exact.categorical import ExactCategorical
from hiercodec.exact.mixture import ExactMixture


THREADS_FROM = 2048  # positions from which a call's tables are computed on every thread


def _ints(t: torch.Tensor | np.ndarray) -> np.ndarray:
    """A contiguous int64 copy. No integrality check (unlike gated._ints, which reads a model's
    layers once): these are the networks' own integer outputs and decoded symbols, once per group."""
    a = t.numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return np.ascontiguousarray(a, np.int64)


def _checked(bad: int) -> None:
    if bad:
        raise ValueError(f"{bad} table rows sum to more than their total")  # as fill_to_total


def compiled_head(reference: ExactMixture | ExactCategorical) -> "CompiledMixture | CompiledCategorical":
    if isinstance(reference, ExactMixture):
        return CompiledMixture(reference, reference.luts)
    return CompiledCategorical(reference)


class CompiledMixture:
    """ExactMixture's tables; state is a dict of int64 arrays (weights, means, log scales, coupling)."""

    def __init__(self, reference: ExactMixture, luts: dict[str, torch.Tensor]):
        self.reference, self.k = reference, reference.k
        self.exp, self.cdf = _ints(luts["exp"]), _ints(luts["sigmoid_cdf"]).astype(np.int32)
        self.inv_m, self.inv_q = _ints(luts["inv_m"]), _ints(luts["inv_q"])

    def begin(self, params: torch.Tensor) -> dict:
        p, k = _ints(params), self.k
        n = len(p)
        state = {"w": np.empty((n, k), np.int64), "mu": np.empty((n, 3, k), np.int64),
                 "ls": np.empty((n, 3, k), np.int64), "coeff": np.empty((n, 3, k), np.int64),
                 "cur": np.empty((n, k), np.int64), "c": 0}
        _checked(K.mixture_begin(p, k, self.exp, state["w"], state["mu"], state["ls"], state["coeff"]))
        return state

    def table(self, state: dict, c: int, prev: torch.Tensor | None) -> np.ndarray:
        n = len(state["w"])
        prev = np.zeros((n, 2), np.int64) if c == 0 else _ints(prev)
        out = np.empty((n, K.SYMBOLS), np.int64)
        args = (state["w"], state["mu"], state["ls"], state["coeff"], c, prev, self.inv_m, self.inv_q, self.cdf,
                state["cur"], out)
        blocks = numba.get_num_threads()
        if n >= THREADS_FROM and blocks > 1:
            _checked(K.mixture_table_threads(*args, blocks))
        else:
            _checked(K.mixture_table(*args, 0, n))
        state["c"] = c
        return out

    def update(self, state: dict, symbols: torch.Tensor) -> None:
        _checked(K.mixture_update(state["w"], state["ls"], state["c"], state["cur"], _ints(symbols), self.inv_m,
                                  self.inv_q, self.cdf))


class CompiledCategorical:
    """ExactCategorical's tables; state is the integer logits."""

    def __init__(self, reference: ExactCategorical):
        self.reference = reference
        self.exp = _ints(reference.exp)

    def begin(self, params: torch.Tensor) -> np.ndarray:
        return _ints(params)

    def table(self, state: np.ndarray, c: int = 0, prev: torch.Tensor | None = None) -> np.ndarray:
        out = np.empty(state.shape, np.int64)
        K.categorical_table(state, self.exp, out)
        return out

    def update(self, state: np.ndarray, symbols: torch.Tensor) -> None:
        """One channel: nothing to condition."""


def restrict(freqs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """coding.tables.restrict of a head's table (entries in [1, 2^24]), compiled."""
    out = np.empty(freqs.shape, np.int64)
    K.restrict(np.ascontiguousarray(freqs, np.int64), np.ascontiguousarray(lo, np.int64),
               np.ascontiguousarray(hi, np.int64), out)
    return out
