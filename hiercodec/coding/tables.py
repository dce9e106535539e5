"""Exact integer probability tables: the only form in which probabilities reach the coder.

A table is an int64 array of shape (n, K): row i holds the frequencies of the K symbols of
position i. Its probabilities are ``f[i, s] / f[i].sum()``. The coder (``ans.StackCoder``)
accepts a table only if it passes :func:`check`: every entry >= 1 (every symbol codable) and
every row sum exactly ``2**PRECISION_BITS``. The coder is then given ``f - 1`` as float64:
constriction's lazy categorical model computes cdf(i) = floor(C(i) * (2**24 - K) / S) + i, which
with S = 2**24 - K is exactly the cumulative sum of ``f``. So the probabilities that code are
exactly ``f / 2**24``, the ones reported as the model's bound.

Everything here that produces a table uses integer arithmetic only (numpy int64), so that the
encoder and the decoder compute bit-identical tables on every machine. Floats appear only in
:func:`bits`, which reports a cost and never feeds the coder.
"""

from __future__ import annotations

import numpy as np

# Precision of constriction's ``Categorical`` model inside ``stream.stack.AnsCoder``
# (``DefaultAnsCoder``: 32-bit words, 64-bit state, 24-bit probabilities). Verified by
# tests/test_coding.py: a symbol of frequency 1 in a row summing to 2**24 costs exactly 24 bits.
PRECISION_BITS = 24
TOTAL = 1 << PRECISION_BITS

# Largest alphabet a table may have. constriction refuses K >= 2**24 - 1; a much smaller bound
# keeps at least 2**4 units of probability mass free for the largest entry of any row.
MAX_ALPHABET = 1 << 20

# normalize() computes f * (2**24 - K) in int64: entries must stay below 2**38 so that the
# product (< 2**62) and the row sums (< 2**20 * 2**38 = 2**58) cannot overflow.
MAX_INPUT_BITS = 38
MAX_INPUT = 1 << MAX_INPUT_BITS


def _as_table(freqs: np.ndarray, name: str = "freqs") -> np.ndarray:
    a = np.asarray(freqs)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D table (positions, alphabet), got shape {a.shape}")
    if a.shape[1] < 1 or a.shape[1] > MAX_ALPHABET:
        raise ValueError(f"{name} alphabet size must be in 1..{MAX_ALPHABET}, got {a.shape[1]}")
    return a


def normalize(freqs: np.ndarray) -> np.ndarray:
    """Any table of non-negative integers -> a valid coder table, with integer arithmetic only.

    ``freqs``: integer array (n, K), 1 <= K <= MAX_ALPHABET, entries in [0, 2**38) (ValueError
    otherwise; bool and float arrays are refused, so no float can sneak into a table).
    Returns int64 (n, K) with ``out = f * (2**24 - K) // rowsum + 1`` and the remainder that
    brings the row sum to exactly 2**24 (in [0, K)) added to the row's first largest entry of
    ``f`` (the first argmax of the input, not of the floored values: two inputs that floor to the
    same value must not swap order): every entry >= 1, every row sum == 2**24, proportional to
    ``f`` up to the floor, the +1 and the remainder, and ``f[a] < f[b]`` implies
    ``out[a] <= out[b]``. A row that is all zeros is read as all ones: uniform (exactly
    ``2**24 / K`` each when K is a power of two; otherwise the remainder goes to symbol 0).
    """
    a = _as_table(freqs)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"normalize() needs an integer table, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= MAX_INPUT):
        raise ValueError(f"normalize() needs entries in [0, 2**{MAX_INPUT_BITS}), "
                         f"got range [{a.min()}, {a.max()}]")
    f = a.astype(np.int64)
    k = f.shape[1]
    f = np.where(f.sum(axis=1, keepdims=True) == 0, np.int64(1), f)  # all-zero row: uniform
    out = (f * (TOTAL - k) // f.sum(axis=1, keepdims=True) + 1).astype(np.int64)
    return fill_to_total(out, f.argmax(axis=1) if f.size else None)


def fill_to_total(table: np.ndarray, at: np.ndarray | None = None, total: int = TOTAL) -> np.ndarray:
    """Add total - rowsum to one entry of each row, in place, and return the table: entry
    ``at[i]`` of row i, or by default the row's first largest entry. Rows must sum to at most
    ``total`` (ValueError otherwise: the remainder must not make an entry smaller)."""
    if table.size:
        rows = np.arange(table.shape[0])
        remainder = total - table.sum(axis=1)
        if remainder.min() < 0:
            raise ValueError(f"fill_to_total() needs rows summing to at most {total}")
        table[rows, table.argmax(axis=1) if at is None else at] += remainder
    return table


def check(freqs: np.ndarray) -> np.ndarray:
    """Validate a coder table and return it (the same array): 2-D int64, 1 <= K <= MAX_ALPHABET,
    every entry >= 1, every row sum == 2**24. ValueError otherwise: a bad table is a bug in the
    code that computed it, never a user error."""
    a = _as_table(freqs)
    if a.dtype != np.int64:
        raise ValueError(f"freqs must be int64, got {a.dtype}")
    if a.size:
        if a.min() < 1:
            raise ValueError("freqs must be >= 1 everywhere (every symbol must stay codable)")
        # entries are >= 1 and the max is bounded first, so the row sums cannot overflow
        if a.max() > TOTAL or (a.sum(axis=1) != TOTAL).any():
            raise ValueError(f"freqs row sums must be exactly 2**{PRECISION_BITS}")
    return a


def check_symbols(symbols: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Validate symbols for a checked table: shape (n,), integers in [0, K). Returns int32."""
    s = np.asarray(symbols)
    if s.ndim != 1 or s.shape[0] != freqs.shape[0]:
        raise ValueError(f"symbols must have shape ({freqs.shape[0]},), got {s.shape}")
    if not np.issubdtype(s.dtype, np.integer):
        raise ValueError(f"symbols must be integers, got dtype {s.dtype}")
    if s.size and (s.min() < 0 or s.max() >= freqs.shape[1]):
        raise ValueError(f"symbols must be in [0, {freqs.shape[1]}), "
                         f"got range [{s.min()}, {s.max()}]")
    return s.astype(np.int32)


def bits(symbols: np.ndarray, freqs: np.ndarray) -> float:
    """The exact model's cost of ``symbols`` under ``freqs``: sum of -log2(f[s] / rowsum), in
    float64. For reporting only (never used to compute a table)."""
    f = np.asarray(freqs)
    s = np.asarray(symbols)
    if f.shape[0] == 0:
        return 0.0
    rowsum = f.sum(axis=1).astype(np.float64)
    chosen = f[np.arange(f.shape[0]), s].astype(np.float64)
    return float(np.sum(np.log2(rowsum) - np.log2(chosen)))


def restrict(freqs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A table restricted to the symbols lo[i] ... hi[i] of each row and renormalised, in integers:
    ``normalize`` of the row with every entry outside the interval set to 0. Symbols outside keep
    frequency 1 (the least a coder table holds, so that a damaged file still decodes to something
    the CRCs reject): together under 2^-16 of the mass. An empty interval (lo > hi, possible only
    for a damaged stream) gives the uniform row."""
    f = _as_table(freqs)
    s = np.arange(f.shape[1])
    inside = (s >= np.asarray(lo)[:, None]) & (s <= np.asarray(hi)[:, None])
    return normalize(np.where(inside, f, 0))
