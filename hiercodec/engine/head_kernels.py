"""numba kernels of the exact heads: the discretized logistic mixture (hiercodec.exact.mixture) and
the softmax (hiercodec.exact.categorical), integer parameters -> integer frequency tables.

The reference computes the logistic's table index in float32, floor((16 e - mu16) M 2^Q), exact
there because every operand and result is an integer below 2^24 times a power of two; here it is
the same integer by int64 arithmetic: ((16 e - mu16) M) shifted by Q. Everything else is int64 as
in the reference (its float64 products of integers below 2^53 are exact).

One thread, but for the encoder's tables (`mixture_table_threads`): the decoder's calls hold one
position of each tile (tens of positions), where waking sleeping threads (OMP_WAIT_POLICY is
PASSIVE, hiercodec/__init__.py: about 40 us a call here) costs more than the work.
"""

from __future__ import annotations

import numba as nb
import numpy as np

PI_SPAN = 4094  # pi - max pi + PI_SPAN indexes the exp table
MU_MIN, MU_MAX = -1024, 5120
LS_MIN = -64
T_RANGE = 4096
CDF_ONE = 1 << 16
WEIGHT_TOTAL = 1 << 16
TABLE_TOTAL = 1 << 24
SYMBOLS = 256


@nb.njit(inline="always")
def _fill(row, total):
    """Add total - sum(row) to the row's first largest entry (coding.tables.fill_to_total); 1 if
    the row sums to more than total (the reference raises: so does the caller), else 0."""
    s = np.int64(0)
    best = 0
    for v in range(row.shape[0]):
        s += row[v]
        if row[v] > row[best]:
            best = v
    if s > total:
        return 1
    row[best] += total - s
    return 0


@nb.njit(inline="always")
def _normalize(row):
    """coding.tables.normalize of one row of non-negative integers, in place: an all-zero row is
    read as all ones; f (2^24 - K) // sum + 1, the remainder to the first largest input entry."""
    k = row.shape[0]
    s = np.int64(0)
    best = 0
    for v in range(k):
        s += row[v]
        if row[v] > row[best]:
            best = v
    if s == 0:
        row[:] = 1
        s = k
    t = np.int64(0)
    for v in range(k):
        row[v] = row[v] * (TABLE_TOTAL - k) // s + 1
        t += row[v]
    row[best] += TABLE_TOTAL - t


@nb.njit(boundscheck=False, cache=True)
def _normalise_weights(w):
    """Weights (K,) int64, not all zero -> floor(w 2^16 / sum), the remainder to the first largest."""
    s = np.int64(0)
    for k in range(w.shape[0]):
        s += w[k]
    for k in range(w.shape[0]):
        w[k] = w[k] * WEIGHT_TOTAL // s
    return _fill(w, WEIGHT_TOTAL)


@nb.njit(boundscheck=False, cache=True, nogil=True)
def mixture_begin(params, k, exp, w, mu, ls, coeff):
    """params (P, 10K) -> normalised weights w (P, K), and mu, ls, coeff (P, 3, K) (3 channels)."""
    bad = 0
    for p in range(params.shape[0]):
        top = params[p, 0]
        for m in range(1, k):
            top = max(top, params[p, m])
        for m in range(k):
            w[p, m] = exp[params[p, m] - top + PI_SPAN]
        bad += _normalise_weights(w[p])
        for c in range(3):
            for m in range(k):
                mu[p, c, m] = params[p, k + c * k + m]
                ls[p, c, m] = params[p, 4 * k + c * k + m]
                coeff[p, c, m] = params[p, 7 * k + c * k + m]
    return bad


@nb.njit(inline="always")
def _index_at(e16, mean, inv_m, inv_q):
    """The sigmoid table index (before clamping) of the edge e16 (in 1/16 level)."""
    t = (e16 - mean) * inv_m
    return t >> -inv_q if inv_q <= 0 else t << inv_q


@nb.njit(inline="always")
def _index(v, mean, inv_m, inv_q):
    """The index of inner edge v (0 .. 254), 16 (v + 1) - 8 in 1/16 level."""
    return _index_at(16 * v + 8, mean, inv_m, inv_q)


@nb.njit(inline="always")
def _cdf_at(e16, mean, inv_m, inv_q, cdf):
    t = _index_at(e16, mean, inv_m, inv_q)
    return cdf[(-T_RANGE if t < -T_RANGE else (T_RANGE if t > T_RANGE else t)) + T_RANGE]


@nb.njit(inline="always")
def _first_reaching(level, mean, inv_m, inv_q):
    """The first inner edge v (0 .. 255) whose index is at least `level` (255: none); the index
    grows with v, so a bisection finds it."""
    lo, hi = 0, SYMBOLS - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if _index(mid, mean, inv_m, inv_q) >= level:
            hi = mid
        else:
            lo = mid + 1
    return lo


@nb.njit(boundscheck=False, cache=True)
def _component_cdf(acc, top, wm, mean, inv_m, inv_q, cdf):
    """acc[v] += wm CDF(edge v) for the 255 inner edges of one component. Below the table's range
    the CDF is cdf[0] = 0 and adds nothing; from the edge where the index reaches the top of the
    range it is 2^16, added through `top` (a difference array the caller sums); only the edges in
    between read the table."""
    first = _first_reaching(-T_RANGE + 1, mean, inv_m, inv_q)
    last = _first_reaching(T_RANGE, mean, inv_m, inv_q)
    if _index(last, mean, inv_m, inv_q) >= T_RANGE:
        top[last] += wm * CDF_ONE
    else:  # no edge reaches the top: the last one reads the table too
        last = SYMBOLS - 1
    for v in range(first, last):
        acc[v] += wm * np.int64(cdf[_index(v, mean, inv_m, inv_q) + T_RANGE])


@nb.njit(boundscheck=False, cache=True, nogil=True)
def mixture_table(w, mu, ls, coeff, c, prev, inv_m, inv_q, cdf, cur, out, p0, p1):
    """Frequencies out (P, 256) of channel c at positions p0 .. p1-1 given prev (P, c) decoded
    values; the means used go to cur (P, K) for `mixture_update`. cdf is int32 (its entries are
    at most 2^16): half the cache of int64 for the lookups."""
    k = w.shape[1]
    bad = 0
    for p in range(p0, p1):
        acc = np.zeros(SYMBOLS - 1, np.int64)  # the mixture CDF at each inner edge, in units of 2^-32
        top = np.zeros(SYMBOLS - 1, np.int64)  # saturated components, from their first saturated edge
        for m in range(k):
            mean = mu[p, c, m]
            if c == 1:
                mean += (coeff[p, 0, m] * (prev[p, 0] - 128) + 32) >> 6
            elif c == 2:
                mean += (coeff[p, 1, m] * (prev[p, 0] - 128) + coeff[p, 2, m] * (prev[p, 1] - 128) + 32) >> 6
            mean = MU_MIN if mean < MU_MIN else (MU_MAX if mean > MU_MAX else mean)
            cur[p, m] = mean
            li = ls[p, c, m] - LS_MIN
            _component_cdf(acc, top, w[p, m], mean, inv_m[li], inv_q[li], cdf)
        row = out[p]
        below = np.int64(0)
        saturated = np.int64(0)
        for v in range(SYMBOLS - 1):
            saturated += top[v]
            here = acc[v] + saturated
            row[v] = ((here - below) * (CDF_ONE - 1) >> 24) + 1
            below = here
        row[SYMBOLS - 1] = (((WEIGHT_TOTAL << 16) - below) * (CDF_ONE - 1) >> 24) + 1
        bad += _fill(row, TABLE_TOTAL)
    return bad


@nb.njit(parallel=True, boundscheck=False, cache=True)
def mixture_table_threads(w, mu, ls, coeff, c, prev, inv_m, inv_q, cdf, cur, out, blocks):
    """`mixture_table` of all positions, in `blocks` blocks on the threads (the encoder's blocks
    of thousands of positions)."""
    n = w.shape[0]
    bad = 0
    for q in nb.prange(blocks):
        bad += mixture_table(w, mu, ls, coeff, c, prev, inv_m, inv_q, cdf, cur, out, q * n // blocks,
                             (q + 1) * n // blocks)
    return bad


@nb.njit(boundscheck=False, cache=True, nogil=True)
def mixture_update(w, ls, c, cur, symbols, inv_m, inv_q, cdf):
    """Condition the weights w (P, K) on the symbols (P,) of channel c (its bin's mass per component)."""
    k = w.shape[1]
    bad = 0
    for p in range(w.shape[0]):
        s = symbols[p]
        new = np.empty(k, np.int64)
        total = np.int64(0)
        for m in range(k):
            li = ls[p, c, m] - LS_MIN
            lo = 0 if s == 0 else _cdf_at(16 * s - 8, cur[p, m], inv_m[li], inv_q[li], cdf)
            hi = CDF_ONE if s == SYMBOLS - 1 else _cdf_at(16 * s + 8, cur[p, m], inv_m[li], inv_q[li], cdf)
            new[m] = w[p, m] * (hi - lo)
            total += new[m]
        if total != 0:  # cannot be zero for a symbol the table coded, but be total
            for m in range(k):
                w[p, m] = new[m]
        bad += _normalise_weights(w[p])
    return bad


@nb.njit(boundscheck=False, cache=True, nogil=True)
def categorical_table(logits, exp, out):
    """normalize(EXP[l - max l + 4094]) per row (coding.tables.normalize): logits (P, K) -> (P, K)."""
    k = logits.shape[1]
    for p in range(logits.shape[0]):
        top = logits[p, 0]
        for m in range(1, k):
            top = max(top, logits[p, m])
        for m in range(k):
            out[p, m] = exp[logits[p, m] - top + PI_SPAN]
        _normalize(out[p])



@nb.njit(boundscheck=False, cache=True, nogil=True)
def restrict(freqs, lo, hi, out):
    """coding.tables.restrict: each row's entries outside lo[p] .. hi[p] set to 0, then normalize
    (an all-zero row is uniform; f (2^24 - K) // sum + 1, the remainder to the first largest)."""
    n, k = freqs.shape
    for p in range(n):
        for v in range(k):
            out[p, v] = freqs[p, v] if lo[p] <= v <= hi[p] else 0
        _normalize(out[p])
