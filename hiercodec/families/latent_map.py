"""A map of continuous latents with an autoregressive Gaussian prior, coded inside a bits-back
sample: the latent levels of the hierarchical PixelVAE (Gulrajani et al. 2016, sec. 3.1: "each
level's prior a conditional PixelCNN with diagonal Gaussian outputs").

The prior p(z | above) is an exact gated PixelCNN over the map (C channels a position, raster
order) whose head gives, per position, C means and log scales (hiercodec.exact.gaussian's integer
parameters: `export_gated(..., head="gaussian")`). Each latent is a bin of 2^P of equal mass under
its own prior Gaussian (HiLLoC), so:

- the prior's table is uniform, exactly P bits a latent, whatever the prior says;
- the prior places the bins: a latent's value is its bin's centre mapped through the prior's mean
  and scale, and the posterior q(z|x) = N(mu_q, sigma_q) is coded as its mass in those bins.

The bins of position j depend on the values at positions before j, so drawing z from q (the
encoder's pop) is sequential: `pop_schedule` steps the PixelCNN incrementally (its exact decoder),
yields q's table of each position and is sent the bins popped. The decoder pops the bins with the
uniform prior, then `walk` recomputes every position's prior (the same steps, bins known) and the
values, and `posterior_groups` gives the tables with which it pushes the bins back with q. Both
sides step the same exact network over the same values, so their tables are identical.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from hiercodec.coding.ans import StackCoder
from hiercodec.coding.bitsback import MARGIN_BITS, BitsBackStats
from hiercodec.coding.groups import Group, pop_groups, push_in_order, table_decoder
from hiercodec.coding.tables import bits
from hiercodec.exact.gaussian import ExactGaussian
from hiercodec.exact.pixelcnn import ExactPixelCNN
from hiercodec.exact.quant import ACT_MAX, ACT_MIN, DTYPE
from hiercodec.families.base import Schedule, decoder
from hiercodec.families.latent import MODE_TABLE, Above, TiledBitsBackLevel, direct_stats, schedule_groups
from hiercodec.tiling import TileLayout


class GaussianMap:
    """Latents (B, C, h, w) of B tiles under an exact autoregressive Gaussian prior `net` (given its
    conditioning `features` (B, E, h, w), or None), binned by `gauss`; the tiles' maps are
    independent and stepped as one batch. Values are integers at 2^-Z_FRAC; the network reads them
    clamped to the 12-bit activation range. Each position's table holds its B x C latents (tile
    by tile, C rows each)."""

    def __init__(self, net: ExactPixelCNN, gauss: ExactGaussian, channels: int, height: int, width: int,
                 features: torch.Tensor | None = None, batch: int = 1):
        self.net, self.gauss, self.c, self.h, self.w, self.features = net, gauss, channels, height, width, features
        self.b = batch

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.b, self.c, self.h, self.w

    @property
    def size(self) -> int:
        return self.b * self.c * self.h * self.w

    def prior_table(self) -> np.ndarray:
        """The prior's table of every latent, in (tile, row, column, channel) order: uniform."""
        return self.gauss.prior_table(self.size)

    @staticmethod
    def inputs(values: np.ndarray) -> torch.Tensor:
        """Latent values ((B, C) or maps) at 2^-Z_FRAC -> network inputs (clamped to 12 bits)."""
        return torch.from_numpy(np.clip(values, ACT_MIN, ACT_MAX).astype(np.float64))

    def _prior(self, params: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        p = params.numpy().astype(np.int64)
        return p[:, : self.c], p[:, self.c :]

    def pop_schedule(self, mu_q: np.ndarray, ls_q: np.ndarray) -> Schedule:
        """The encoder's draw of z from q (means and log scales (B, C, h, w)): yields (None, table)
        of each position (B x C rows), is sent its bins; returns (bins, values), each (B, C, h, w)."""
        bins, values = np.zeros(self.shape, np.int64), np.zeros(self.shape, np.int64)
        dec = self.net.decoder(self.b, self.w, self.features)
        for i in range(self.h):
            dec.row(i)
            for j in range(self.w):
                mu_p, ls_p = (p.reshape(-1) for p in self._prior(dec.step(j)))
                table = self.gauss.posterior_table(mu_q[:, :, i, j].reshape(-1), ls_q[:, :, i, j].reshape(-1), mu_p, ls_p)
                b = np.asarray((yield None, table), dtype=np.int64)
                bins[:, :, i, j] = b.reshape(self.b, self.c)
                values[:, :, i, j] = self.gauss.values(b, mu_p, ls_p).reshape(self.b, self.c)
                dec.set_pixel(j, self.inputs(values[:, :, i, j]))
        return bins, values

    def walk(self, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The decoder's pass over known bins (B, C, h, w): (values, mu_p, ls_p), each (B, C, h, w)."""
        values, mu, ls = (np.zeros(self.shape, np.int64) for _ in range(3))
        dec = self.net.decoder(self.b, self.w, self.features)
        for i in range(self.h):
            dec.row(i)
            for j in range(self.w):
                mu[:, :, i, j], ls[:, :, i, j] = self._prior(dec.step(j))
                values[:, :, i, j] = self.gauss.values(bins[:, :, i, j].reshape(-1), mu[:, :, i, j].reshape(-1),
                                                       ls[:, :, i, j].reshape(-1)).reshape(self.b, self.c)
                dec.set_pixel(j, self.inputs(values[:, :, i, j]))
        return values, mu, ls

    def posterior_groups(self, bins: np.ndarray, mu_q: np.ndarray, ls_q: np.ndarray,
                         mu_p: np.ndarray, ls_p: np.ndarray) -> list[Group]:
        """q's groups for pushing known bins back, in the order `pop_schedule` popped them: one
        group a position, B x C rows each."""
        groups = []
        for i in range(self.h):
            for j in range(self.w):
                at = (slice(None), slice(None), i, j)
                table = self.gauss.posterior_table(mu_q[at].reshape(-1), ls_q[at].reshape(-1),
                                                   mu_p[at].reshape(-1), ls_p[at].reshape(-1))
                groups.append((bins[at].reshape(-1).astype(np.int32), table))
        return groups

    def whole(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The prior's parameters of every position from known values (B, C, h, w), in one pass of
        the network (what `walk` computes step by step: the same integers)."""
        out = self.net.forward(self.inputs(values), None if self.features is None else self.features.to(DTYPE))
        p = out.numpy().astype(np.int64)
        return p[:, : self.c], p[:, self.c :]

    def to_flat(self, bins: np.ndarray) -> np.ndarray:
        """Bins (B, C, h, w) in the prior table's order (tile, row, column, channel)."""
        return bins.transpose(0, 2, 3, 1).reshape(-1).astype(np.int32)

    def from_flat(self, flat: np.ndarray) -> np.ndarray:
        """The inverse of `to_flat`."""
        return np.asarray(flat, np.int64).reshape(self.b, self.h, self.w, self.c).transpose(0, 3, 1, 2)


# -- a bits-back sample with a hierarchy of latent maps ------------------------------------------

# Bits a latent may take from the stream at most: a row of q has entries >= 1 out of 2^24. After
# each sample its mode (latent.MODE_TABLE): 0 = bits-back, 1 = coded given the middle bins.
BITS_PER_LATENT = 24

class MapsSample:
    """One bits-back sample x with latent maps z_L ... z_1 (top first; Gulrajani et al. 2016 sec.
    3.1: p(z_L) p(z_{L-1} | z_L) ... p(x | z_1), q(z_1 | x) ... q(z_L | x)), in the spirit of
    craystack's BBANS composed over levels:

    - `prior(k, values)`: the GaussianMap of level k given the values of the levels above it (a list,
      top first; empty for the top);
    - `likelihood(values, x=None)`: x's Schedule given the values of every level;
    - `posterior(x)`: [(mu_q, ls_q)] per level, top first, each (B, C, h, w), from the exact
      encoder.

    Encoding pops z_L, ..., z_1 from the stream with q (each map position by position), pushes x,
    then the bins with the priors' uniform tables (z_1 first, so that z_L pops first), then the
    mode. A stream holding fewer than `need` bits codes x given the middle bins instead (mode 1):
    nothing is drawn, nothing is seeded. Decoding undoes it and pushes the bins back with q."""

    def __init__(self, prior, likelihood, posterior, levels: int):
        self.prior, self.likelihood, self.posterior, self.levels = prior, likelihood, posterior, levels

    @staticmethod
    def need(latents: int) -> int:
        """Bits the stream must hold before drawing `latents` latents from it."""
        return BITS_PER_LATENT * latents + MARGIN_BITS

    def _walk_all(self, bins: list[np.ndarray] | None) -> tuple[list[GaussianMap], list[np.ndarray], list]:
        """Each level's map, values and prior parameters for known bins (None: the middle bins)."""
        maps, values, params = [], [], []
        for k in range(self.levels):
            m = self.prior(k, values)
            b = bins[k] if bins is not None else np.full(m.shape, m.gauss.bins // 2, np.int64)
            v, mu, ls = m.walk(b)
            maps.append(m)
            values.append(v)
            params.append((mu, ls))
        return maps, values, params

    def _mode(self, q: list) -> tuple[list[np.ndarray], float, float]:
        """The latents' values at q's most probable bins, drawn level by level as `push` draws
        them; returns (values, prior bits, -log2 q of those bins)."""
        values, prior, posterior = [], 0.0, 0.0
        for k in range(self.levels):
            m = self.prior(k, values)
            schedule = m.pop_schedule(*q[k])
            try:
                _, table = next(schedule)
                while True:
                    b = table.argmax(axis=1).astype(np.int32)
                    posterior += bits(b, table)
                    _, table = schedule.send(b)
            except StopIteration as done:
                values.append(done.value[1])
            prior += m.size * m.gauss.bits
        return values, prior, posterior

    def _push_direct(self, coder: StackCoder, x: np.ndarray, q: list) -> BitsBackStats:
        """x given the middle bins, nothing drawn (HiLLoC's first part). What it pays beyond its
        negative ELBO, estimated at q's most probable latents, counts as initial bits."""
        _, middle, _ = self._walk_all(None)
        paid = push_in_order(coder, schedule_groups(self.likelihood(middle, x))).bits
        paid += push_in_order(coder, [(np.ones(1, np.int32), MODE_TABLE)]).bits
        values, prior, posterior = self._mode(q)
        elbo = BitsBackStats(sum(bits(s, t) for s, t in schedule_groups(self.likelihood(values, x))), prior,
                             posterior, samples=1, injections=1)
        return direct_stats(paid, elbo)

    def push(self, coder: StackCoder, x: np.ndarray) -> tuple[BitsBackStats, bool]:
        """Code x; returns its costs (hiercodec.coding.bitsback.BitsBackStats) and whether it was
        coded directly."""
        q = self.posterior(x)
        if coder.num_valid_bits() < self.need(sum(mu.size for mu, _ in q)):
            return self._push_direct(coder, x, q), True
        maps, bins, values, posterior = [], [], [], 0.0
        for k in range(self.levels):
            m = self.prior(k, values)
            (b, v), coded = pop_groups(coder, decoder(m.pop_schedule(*q[k])), measure=True)
            maps.append(m)
            bins.append(b)
            values.append(v)
            posterior += coded.bits
        lik = push_in_order(coder, schedule_groups(self.likelihood(values, x))).bits
        prior = 0.0
        for m, b in reversed(list(zip(maps, bins))):  # z_1 first, so that z_L pops first
            prior += push_in_order(coder, [(m.to_flat(b), m.prior_table())]).bits
        mode = push_in_order(coder, [(np.zeros(1, np.int32), MODE_TABLE)]).bits
        return BitsBackStats(lik, prior, posterior, mode, samples=1), False

    def pop(self, coder: StackCoder, what: str = "latent maps") -> np.ndarray:
        """Decode the sample on top of the stream (the last `push`) and give back its bits."""
        (mode,), _ = pop_groups(coder, table_decoder(MODE_TABLE), what=what)
        if mode:
            _, values, _ = self._walk_all(None)
            x, _ = pop_groups(coder, decoder(self.likelihood(values)), what=what)
            return x
        maps, bins, values, params = [], [], [], []
        for k in range(self.levels):
            m = self.prior(k, values)
            flat, _ = pop_groups(coder, table_decoder(m.prior_table()), what=what)
            b = m.from_flat(flat)
            v, mu, ls = m.walk(b)
            maps.append(m)
            bins.append(b)
            values.append(v)
            params.append((mu, ls))
        x, _ = pop_groups(coder, decoder(self.likelihood(values)), what=what)
        q = self.posterior(x)
        for k in reversed(range(self.levels)):  # the last drawn goes back first
            push_in_order(coder, maps[k].posterior_groups(bins[k], *q[k], *params[k]))
        return x


class TiledMapsLevel(TiledBitsBackLevel):
    """A level whose samples are the tiles of `layout`, each a MapsSample (`sample(i)`): the
    tiles form a chain on one stream (HiLLoC), the first ones coded directly."""

    def __init__(self, name: str, layout: TileLayout, channels: int, sample: Callable[[int], MapsSample],
                 observe: Callable[[np.ndarray, Above], np.ndarray], dtype: type = np.uint8, joins_next: bool = False,
                 band: bool = False):
        super().__init__(name, layout, channels, None, None, None, observe, dtype, joins_next, band=band)
        self.sample = sample

    def push_sample(self, coder: StackCoder, i: int, x: np.ndarray, above: Above) -> tuple[BitsBackStats, bool]:
        return self.sample(i).push(coder, x)

    def pop_sample(self, coder: StackCoder, i: int, above: Above) -> np.ndarray:
        return self.sample(i).pop(coder, what=f"{self.name} level")
