"""Bits-back levels: a level built from a posterior, a likelihood and a prior over a discrete
latent, in the spirit of craystack's `BBANS(prior, likelihood, posterior)` (Townsend et al. 2019).

The level's values are the observed variable x, cut into independent samples x_0 ... x_{N-1}.
Each sample has a latent z_i that is not stored: the encoder draws it from the stream with the
posterior q(z | x_i, above) (popping bits pushed before it), then pushes x_i with the likelihood
p(x | z_i, above) and z_i with the prior p(z | above); the decoder pops z_i and x_i and pushes z_i
back with q, which returns the bits it was drawn from (hiercodec.coding.bitsback, one sample at a
time). Samples are pushed in order, so the decoder meets them last first; sample i draws its z from
the bits of samples 0 ... i-1, and the first from the bits of the levels coded under it: a family
sets `joins_next` so that the codec pushes the next level first on the same stream (one chunk).
Only when the stream holds too little does a sample push a fixed seed first: those are the initial
bits, which the level reports apart (`LevelStats.initial_bits`), never in its bound. A level given
`direct` (fixed latents per sample) instead codes such a sample without bits-back, x given those
latents, as HiLLoC codes a first part of the image, and marks each sample's mode in the stream;
what a direct sample pays beyond its negative ELBO counts as initial bits.

The three parts are small callables, so that any family can build a level from its own networks:

    posterior(i, x_i, above) -> table (n_z, K_z)                     q(z | x_i, above)
    likelihood(i, z, above, x_i=None) -> Schedule                    p(x_i | z, above), in groups
    prior(i, above, z=None) -> table (n_z, K_z) or Schedule          p(z | above)

A Schedule is the generator of hiercodec.families.base: given the symbols it yields (symbols,
table) groups in decode order; without them it yields (None, table), is sent the symbols popped
and returns the sample's values. Every table is an exact integer table (hiercodec.coding.tables)
and every choice that shapes the stream is made in integers (bitsback), so encoder and decoder
agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

import numpy as np

from hiercodec.coding.ans import StackCoder
from hiercodec.coding.bitsback import BitsBackStats, bits_back_pop, bits_back_push, bits_needed
from hiercodec.coding.groups import Group, GroupDecoder, Progress, pop_groups, push_in_order, table_decoder
from hiercodec.coding.tables import TOTAL, bits
from hiercodec.families.base import Level, LevelStats, Schedule, decoder
from hiercodec.tiling import TileLayout

Table = np.ndarray
# With `direct`: after each sample, its mode, 0 = bits-back, 1 = coded directly (the stream held too
# few bits to pop the latents from); 1 costs 10 bits, 0 about 9e-4.
MODE_TABLE = np.array([[TOTAL - (1 << 14), 1 << 14]], dtype=np.int64)
Above = dict[str, np.ndarray]
Posterior = Callable[[int, np.ndarray, Above], Table]
Likelihood = Callable[..., Schedule]  # (i, z, above, x=None)
Prior = Callable[..., "Table | Schedule"]  # (i, above, z=None)


def schedule_groups(schedule: Schedule) -> list[Group]:
    """The groups of a schedule run with known symbols, in decode order."""
    return [(np.asarray(symbols, dtype=np.int32), table) for symbols, table in schedule]


def direct_stats(paid: float, elbo: BitsBackStats) -> BitsBackStats:
    """The costs of a sample coded directly: it paid `paid` bits; what that is beyond its negative
    ELBO estimate `elbo` counts as initial bits (none when the latents would not have helped)."""
    if paid < elbo.elbo_bits:  # it paid no more than its bound
        return BitsBackStats(likelihood_bits=paid, samples=1, injections=1)
    elbo.initial_bits = paid - elbo.elbo_bits
    return elbo


class BitsBackLevel(Level):
    """A level coded by bits-back over independent samples (see the module docstring).

    `shape`: the shape of the level's values; `sample_size`: the values, flattened in C order,
    are cut into consecutive samples of this size (the last may be shorter: the parts see its
    length); a subclass may cut them otherwise (`cut`, `paste`: TiledBitsBackLevel's samples are
    tiles); `observe(image, above)`: the values of an image (the level's `analyze`). Nothing is
    allocated per sample before coding, so that a forged geometry costs nothing until the stream
    runs out.
    """

    def __init__(self, name: str, shape: tuple[int, ...], sample_size: int,
                 posterior: Posterior, likelihood: Likelihood, prior: Prior,
                 observe: Callable[[np.ndarray, Above], np.ndarray], dtype: type = np.uint8,
                 joins_next: bool = False, direct: Callable[[int], np.ndarray] | None = None):
        if sample_size < 1:
            raise ValueError(f"sample size must be positive, not {sample_size}")
        self.name, self.shape, self.dtype, self.sample_size = name, tuple(shape), dtype, sample_size
        self.size = int(np.prod(self.shape))
        self.posterior, self.likelihood, self.prior, self.observe = posterior, likelihood, prior, observe
        self.joins_next, self.direct = joins_next, direct

    @property
    def samples(self) -> int:
        return -(-self.size // self.sample_size)

    def bounds(self, i: int) -> tuple[int, int]:
        """Where sample i lies in the flattened values."""
        return i * self.sample_size, min(self.size, (i + 1) * self.sample_size)

    def analyze(self, image: np.ndarray, above: Above) -> np.ndarray:
        values = np.asarray(self.observe(image, above))
        if values.shape != self.shape:
            raise ValueError(f"{self.name}: observed values of shape {values.shape}, expected {self.shape}")
        return values.astype(self.dtype, copy=False)

    def _prior_for_push(self, i: int, above: Above) -> "Table | Callable[[np.ndarray], list[Group]]":
        probe = self.prior(i, above)
        if isinstance(probe, np.ndarray):
            return probe
        probe.close()  # a schedule: run it again with z once z is drawn
        return lambda z: schedule_groups(self.prior(i, above, z))

    def _prior_for_pop(self, i: int, above: Above) -> "Table | Callable[[], GroupDecoder]":
        p = self.prior(i, above)
        return p if isinstance(p, np.ndarray) else (lambda: decoder(p))

    def cut(self, values: np.ndarray, i: int) -> np.ndarray:
        """Sample i of the level's values, flattened (int32)."""
        a, b = self.bounds(i)
        return np.ascontiguousarray(values).reshape(-1)[a:b].astype(np.int32)

    def size_of(self, i: int) -> int:
        a, b = self.bounds(i)
        return b - a

    def paste(self, out: np.ndarray, i: int, x: np.ndarray) -> None:
        """Put sample i's decoded values x (flat) into `out` (the level's values)."""
        a, b = self.bounds(i)
        out.reshape(-1)[a:b] = x

    def encode(self, values: np.ndarray, above: Above, coder: StackCoder,
               progress: Progress | None = None) -> LevelStats:
        total = BitsBackStats()
        symbols = direct = 0
        for i in range(self.samples):  # sample i draws its latent from the bits of those before it
            x = self.cut(values, i)
            symbols += x.size
            st, was_direct = self.push_sample(coder, i, x, above)
            total += st
            direct += was_direct
            if progress:
                progress(len(x))
        return LevelStats(self.name, bound_bits=total.net_bits, symbols=symbols,
                          initial_bits=total.initial_bits, extra=asdict(total) | {"direct_samples": direct})

    def push_sample(self, coder: StackCoder, i: int, x: np.ndarray, above: Above) -> tuple[BitsBackStats, bool]:
        """Push sample i (values x, flat); returns its costs and whether it was coded directly."""
        q = self.posterior(i, x, above)
        if self.direct is not None and coder.num_valid_bits() < bits_needed(q):
            return self._push_direct(coder, i, x, q, above), True
        _, st = bits_back_push(
            coder, q, lambda z: schedule_groups(self.likelihood(i, z, above, x)), self._prior_for_push(i, above))
        if self.direct is not None:
            st.flag_bits += push_in_order(coder, [(np.zeros(1, np.int32), MODE_TABLE)]).bits
        return st, False

    def _push_direct(self, coder: StackCoder, i: int, x: np.ndarray, q: Table, above: Above) -> BitsBackStats:
        """Code sample i without bits-back, x given the fixed latents `direct(i)` (HiLLoC: a first
        part coded so, so that later samples draw their latents from the file's own bits). What it
        costs beyond the sample's negative ELBO counts as initial bits; the ELBO is estimated from
        the exact tables as -log p(x|z*) at q's most probable latents z* plus KL(q || p) (exact
        for a prior table, else its one-point estimate at z*)."""
        paid = push_in_order(coder, schedule_groups(self.likelihood(i, self.direct(i), above, x))).bits
        paid += push_in_order(coder, [(np.ones(1, np.int32), MODE_TABLE)]).bits
        mode = q.argmax(axis=1).astype(np.int32)
        elbo = BitsBackStats(samples=1, injections=1)
        elbo.likelihood_bits = sum(bits(s, f) for s, f in schedule_groups(self.likelihood(i, mode, above, x)))
        prior = self._prior_for_push(i, above)
        if isinstance(prior, np.ndarray):
            qp = q / float(TOTAL)
            elbo.prior_bits = float((qp * (np.log2(q) - np.log2(prior))).sum())  # KL(q || p)
        else:
            elbo.prior_bits = sum(bits(s, f) for s, f in prior(mode)) - bits(mode, q)
        return direct_stats(paid, elbo)

    def decode(self, above: Above, coder: StackCoder, progress: Progress | None = None) -> np.ndarray:
        out = np.empty(self.shape, dtype=self.dtype)
        for i in reversed(range(self.samples)):  # a stack: the last sample pushed comes off first
            x = np.asarray(self.pop_sample(coder, i, above)).reshape(-1)
            if x.size != self.size_of(i):
                raise ValueError(f"{self.name}: the likelihood of sample {i} gave {x.size} values, not {self.size_of(i)}")
            self.paste(out, i, x)
            if progress:
                progress(len(x))
        return out

    def pop_sample(self, coder: StackCoder, i: int, above: Above) -> np.ndarray:
        """Pop sample i (the last pushed) and give back the bits its latent was drawn from."""
        what = f"{self.name} level"
        mode = 0
        if self.direct is not None:
            mode = int(pop_groups(coder, table_decoder(MODE_TABLE), what=what)[0][0])
        if mode:
            return pop_groups(coder, decoder(self.likelihood(i, self.direct(i), above)), what=what)[0]
        _, x, _ = bits_back_pop(
            coder, self._prior_for_pop(i, above), lambda z: decoder(self.likelihood(i, z, above)),
            lambda x: self.posterior(i, x, above), what=what)
        return x


class TiledBitsBackLevel(BitsBackLevel):
    """A bits-back level whose samples are the tiles of `layout` (row-major grid order): sample i
    is the part of tile i inside the level, (h_i, w_i, C) flattened in C order, so that each sample
    has its own latent (a PixelVAE's z per tile) and the tiles form a chain on one stream (each
    tile's latent drawn from the bits of the tiles before it, HiLLoC). With `band`, sample i is
    the i-th row of tiles instead (h_i, W, C): its latents are those of all its tiles, and its
    networks run over the row's tiles as one batch (fewer, larger steps when decoding)."""

    def __init__(self, name: str, layout: TileLayout, channels: int, posterior: Posterior,
                 likelihood: Likelihood, prior: Prior, observe: Callable[[np.ndarray, Above], np.ndarray],
                 dtype: type = np.uint8, joins_next: bool = False, direct: Callable[[int], np.ndarray] | None = None,
                 band: bool = False):
        super().__init__(name, (layout.height, layout.width, channels), layout.tile_h * layout.tile_w * channels,
                         posterior, likelihood, prior, observe, dtype, joins_next, direct)
        self.layout, self.band = layout, band

    @property
    def samples(self) -> int:
        return self.layout.rows if self.band else self.layout.count

    def region(self, i: int) -> tuple[slice, slice]:
        """Where sample i lies in the level (rows, columns)."""
        lay = self.layout
        if self.band:
            return slice(i * lay.tile_h, min(lay.height, (i + 1) * lay.tile_h)), slice(0, lay.width)
        y, x = i // lay.cols * lay.tile_h, i % lay.cols * lay.tile_w
        return slice(y, min(lay.height, y + lay.tile_h)), slice(x, min(lay.width, x + lay.tile_w))

    def tile_shape(self, i: int) -> tuple[int, int, int]:
        """The shape of sample i's values (a tile, or a row of tiles with `band`)."""
        rows, cols = self.region(i)
        return rows.stop - rows.start, cols.stop - cols.start, self.shape[2]

    def tiles_in(self, i: int) -> int:
        """How many tiles sample i holds."""
        return self.layout.cols if self.band else 1

    def cut(self, values: np.ndarray, i: int) -> np.ndarray:
        return np.ascontiguousarray(values[self.region(i)]).reshape(-1).astype(np.int32)

    def size_of(self, i: int) -> int:
        return int(np.prod(self.tile_shape(i)))

    def paste(self, out: np.ndarray, i: int, x: np.ndarray) -> None:
        out[self.region(i)] = x.reshape(self.tile_shape(i))
