"""The `bitsback-toy` family: the small latent-variable model of tests/test_bitsback.py made a real
family, to prove bits-back levels (hiercodec.families.latent) and shared streams end to end.

The model (tests/test_bitsback.py's `Model`, same seed, same tables): a latent z in {0 .. Z-1}
with prior p(z); an observation x in {0 .. 15}^D with p(x | z) = prod_d p(x_d | z), each factor a
table whose weights are powers of two falling off around a mode; an approximate posterior
q(z | x) proportional to p(z) prod_{d < P} p(x_d | z) that looks at the first P dimensions only.
Defaults Z = 8, D = 6, P = 3. Every table is an integer tensor of the model file, normalized by
coding.tables.normalize, so the codec's tables are exact and so is the negative ELBO computed
from them.

Levels of an image (colour or gray samples; alpha is the usual last level):
- `latent`: the high nibbles (v >> 4) of the colour samples, flattened in C order and cut into
  samples of D (the last may be shorter: its likelihood and posterior use the dimensions it has,
  nothing is padded), coded by bits-back (BitsBackLevel). With `network.shared` (the default) it
  joins the next level: both are coded on one stream, `low` pushed first, so that the latents
  are drawn from its bits and no initial bits are needed (but for tiny images);
- `low`: the low nibbles (v & 15), every sample with the fixed table `low` (uniform in the
  shipped model: exactly 4 bits a sample).
The image is (hi << 4) | lo; a file decoded without `low` gives (hi << 4) | 8.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from hiercodec.coding.tables import MAX_INPUT, normalize
from hiercodec.errors import HiercodecError
from hiercodec.families.base import Level, Schedule, ScheduledLevel
from hiercodec.families.family import Family
from hiercodec.families.latent import BitsBackLevel
from hiercodec.families.registry import register
from hiercodec.geometry import Geometry
from hiercodec.tiling import TileLayout

VALUES = 16  # the alphabet of x: a nibble
LOW_GROUP = 4096  # low nibbles per group (one table row each: bounded memory)


@dataclass(frozen=True)
class ToyConfig:
    """The `network` table of a bitsback-toy model."""

    latents: int = 8  # Z: values of the latent
    dims: int = 6  # D: nibbles per sample
    posterior_dims: int = 3  # P: the dimensions q(z | x) looks at
    shared: bool = True  # the latent level pops from the low level's bits (one stream)

    @classmethod
    def from_dict(cls, d: dict, where: str = "[network]") -> "ToyConfig":
        """Fields from a JSON/TOML table; a one-line HiercodecError for a wrong one."""
        kinds = {f.name: f.type for f in fields(cls)}
        for key, value in d.items():
            if key not in kinds:
                raise HiercodecError(f"{where} {key}: unknown field; bitsback-toy networks have {', '.join(kinds)}")
            if (type(value) is not bool) if kinds[key] == "bool" else (type(value) is not int or value < 0):
                raise HiercodecError(f"{where} {key} = {value!r}: expected "
                                     + ("true or false" if kinds[key] == "bool" else "a non-negative integer"))
        config = cls(**d)
        if not 2 <= config.latents <= 4096 or not 1 <= config.dims <= 4096 or config.posterior_dims > config.dims:
            raise HiercodecError(f"{where}: need 2 <= latents <= 4096, 1 <= dims <= 4096, posterior_dims <= dims; "
                                 f"got {config}")
        return config

    def to_dict(self) -> dict:
        return asdict(self)


def toy_tensors(config: ToyConfig = ToyConfig(), seed: int = 0) -> dict[str, np.ndarray]:
    """The integer tensors of a toy model, drawn exactly as tests/test_bitsback.py's Model draws
    them (same generator calls, so seed 0 gives its tables): `prior` (Z,) in 4..63, `likelihood`
    (Z, D, 16) = 2^max(0, 10 - |x - mode(z, d)|), and `low` (16,), uniform."""
    z, d = config.latents, config.dims
    rng = np.random.default_rng(seed)
    prior = rng.integers(4, 64, size=z).astype(np.int64)
    modes = rng.integers(0, VALUES, size=(z, d))
    dist = np.abs(np.arange(VALUES)[None, None, :] - modes[:, :, None])
    likelihood = (np.int64(1) << np.maximum(0, 10 - dist)).astype(np.int64)
    return {"prior": prior, "likelihood": likelihood, "low": np.ones(VALUES, np.int64)}


def _integer(tensors: dict, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in tensors:
        raise HiercodecError(f"bitsback-toy model has no tensor '{name}'")
    t = tensors[name]
    a = t.numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    if not np.issubdtype(a.dtype, np.integer) or a.shape != shape or (a.size and a.min() < 0):
        raise HiercodecError(f"bitsback-toy tensor '{name}' must be non-negative integers of shape {shape}, "
                             f"got {a.dtype} {a.shape}")
    return a.astype(np.int64)


class LowLevel(ScheduledLevel):
    """The low nibbles, every one with the same fixed table, in groups of LOW_GROUP in C order."""

    name = "low"

    def __init__(self, shape: tuple[int, ...], table: np.ndarray, channels: int):
        self.shape, self.table, self.channels = shape, table, channels

    def analyze(self, image: np.ndarray, above: dict[str, np.ndarray]) -> np.ndarray:
        return image[..., : self.channels] & 15

    def schedule(self, above, values=None, stats=None) -> Schedule:
        n = int(np.prod(self.shape))
        flat = np.empty(n, np.uint8) if values is None else np.ascontiguousarray(values).reshape(-1)
        for a in range(0, n, LOW_GROUP):
            b = min(n, a + LOW_GROUP)
            table = np.broadcast_to(self.table, (b - a, VALUES))
            if values is None:
                flat[a:b] = yield None, table
            else:
                yield flat[a:b].astype(np.int32), table
        return flat.reshape(self.shape)

    def push_order(self, values, above, stats) -> Iterator:
        return reversed(list(self.schedule(above, values, stats)))


@register("bitsback-toy", network=ToyConfig)
class ToyFamily(Family):
    """The toy latent-variable model as a codec (see the module docstring)."""

    tile = 65535  # one tile: the levels are not tiled, the header holds the image size

    def __init__(self, config: dict, tensors: dict[str, torch.Tensor]):
        super().__init__(config, tensors)
        self.net = net = ToyConfig.from_dict(config.get("network", {}))
        z, d = net.latents, net.dims
        self.prior_raw = _integer(tensors, "prior", (z,))
        self.lik_raw = _integer(tensors, "likelihood", (z, d, VALUES))
        low = _integer(tensors, "low", (VALUES,))
        # q's weights multiply P + 1 raw entries; normalize() needs them below 2^38
        biggest = int(self.prior_raw.max()) * int(self.lik_raw.max()) ** net.posterior_dims
        if biggest >= MAX_INPUT or int(low.max()) >= MAX_INPUT:
            raise HiercodecError(f"bitsback-toy tables too large: posterior weights reach {biggest}, "
                                 f"at most 2^38 - 1 allowed")
        self.prior = normalize(self.prior_raw[None, :])  # (1, Z)
        self.lik = normalize(self.lik_raw.reshape(z * d, VALUES)).reshape(z, d, VALUES)
        self.low = normalize(low[None, :])  # (1, 16)

    # the three parts of the bits-back level ------------------------------------------------------

    def posterior(self, x: np.ndarray) -> np.ndarray:
        """q(z | x) ∝ p(z) prod_{d < P} p(x_d | z), in integers (below 2^38: checked at load)."""
        w = self.prior_raw.copy()
        for d in range(min(self.net.posterior_dims, len(x))):
            w = w * self.lik_raw[:, d, int(x[d])]
        return normalize(w[None, :])

    def likelihood(self, z: np.ndarray, size: int, x: np.ndarray | None = None) -> Schedule:
        """p(x | z) for a sample of `size` dimensions: one group."""
        table = self.lik[int(z[0]), :size]
        if x is None:
            return (yield None, table)
        yield x, table
        return x

    def color_levels(self, geometry: Geometry, layout: TileLayout) -> list[Level]:
        c = geometry.color
        shape = (geometry.height, geometry.width, c)
        n, d = geometry.height * geometry.width * c, self.net.dims

        def size(i: int) -> int:  # sample i's dimensions: D, the last possibly fewer
            return min(d, n - i * d)

        latent = BitsBackLevel(
            "latent", shape, self.net.dims,
            posterior=lambda i, x, above: self.posterior(x),
            likelihood=lambda i, z, above, x=None: self.likelihood(z, size(i), x),
            prior=lambda i, above, z=None: self.prior,
            observe=lambda image, above: image[..., :c] >> 4,
            joins_next=self.net.shared)
        return [latent, LowLevel(shape, self.low, c)]

    def reconstruct_color(self, decoded: dict[str, np.ndarray], geometry: Geometry, full_size: bool) -> np.ndarray:
        hi = decoded["latent"].astype(np.uint8)
        lo = decoded["low"] if "low" in decoded else np.uint8(8)
        return (hi << 4) | lo
