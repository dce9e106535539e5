"""Exact seeded sampling from integer tables: the same symbols on every machine.

A level that a file does not hold can be drawn instead of decoded (HAM's lossy files, De Fauw et
al. 2019 sec. 6: the levels below the codes are sampled from the autoregressive decoders). The
draw must not depend on the machine, the thread count or how tiles are batched, so it uses
integers only:

- the uniform number of each position is a counter-based hash, splitmix64 (Steele, Lea & Flood
  2014) of (seed, level, group, row): each draw depends only on where it is in the level's
  schedule, never on how many draws came before it elsewhere;
- its top PRECISION_BITS bits pick the symbol by inverse CDF on the table's integer frequencies
  (every row sums to 2^24, coding.tables), so symbol s is drawn with probability exactly
  f[s] / 2^24, the probability the coder would have coded it with.

`sample_schedule` drives any group decoder (a level's schedule run without symbols) with drawn
symbols instead of popped ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hiercodec.coding.groups import GroupDecoder, Progress
from hiercodec.coding.tables import PRECISION_BITS, check

_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15  # splitmix64's increment: 2^64 / golden ratio, odd


def splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer of uint64 values (wrapping arithmetic): a bijection of 64-bit
    integers whose outputs pass statistical tests as if independent for consecutive inputs."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + np.uint64(_GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniforms(seed: int, level: int, group: int, n: int) -> np.ndarray:
    """n uniform 64-bit integers for rows 0 ... n-1 of group `group` of level `level`: the hash
    of the key chained through splitmix64, one step per key part, then of the row."""
    key = np.uint64(seed & _MASK)
    for part in (level, group):
        key = splitmix64(key ^ np.uint64(part & _MASK))
    return splitmix64(key ^ np.arange(n, dtype=np.uint64))


def draw(freqs: np.ndarray, seed: int, level: int, group: int) -> np.ndarray:
    """One symbol per row of the table `freqs` (n, K) (checked: entries >= 1, rows summing to
    2^24), int32 (n,): row i's symbol is the first s with u_i < cumsum(f_i)[s], u_i the top 24 bits
    of its uniform, so P(s) = f[s] / 2^24 exactly."""
    f = check(freqs)
    u = (uniforms(seed, level, group, f.shape[0]) >> np.uint64(64 - PRECISION_BITS)).astype(np.int64)
    cdf = np.cumsum(f, axis=1)
    return (cdf <= u[:, None]).sum(axis=1).astype(np.int32)


@dataclass(frozen=True)
class Sampling:
    """How to draw the levels a file does not hold: the seed of the draws and the temperature in
    thousandths (hiercodec.exact.temperature; 1000: the model's own distribution)."""

    seed: int = 0
    milli: int = 1000


def sample_schedule(decoder: GroupDecoder, seed: int, level: int, progress: Progress | None = None) -> object:
    """Run a group decoder with drawn symbols: group g's symbols are `draw(table, seed, level, g)`.
    Returns the decoder's value (the level's sampled values); `progress` is told each group's size."""
    try:
        table = next(decoder)
        group = 0
        while True:
            symbols = draw(table, seed, level, group)
            if progress:
                progress(len(symbols))
            table = decoder.send(symbols)
            group += 1
    except StopIteration as stop:
        return stop.value
