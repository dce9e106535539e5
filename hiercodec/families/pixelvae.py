"""The `pixelvae` family: PixelVAE (Gulrajani et al. 2016) as a codec whose file size is the
negative ELBO, made real by bits-back coding of the continuous latents (Townsend et al. 2019).

An image is cut into 28x28 tiles (the size of appendix E.1's encoder; edge tiles are padded with a
fixed value the decoder knows, and only their inside is coded). Each tile is one sample of a
bits-back level (hiercodec.families.latent.TiledBitsBackLevel) with its own latent vector z:

- posterior q(z|x): the exact encoder (hiercodec.exact.convnet) gives the integer mean and log
  scale of each latent; the table is the Gaussian's mass in each of 2^P bins of equal mass under
  the prior N(0, 1) (HiLLoC's discretization, hiercodec.exact.gaussian);
- prior p(z): uniform over those bins (exactly P bits a latent);
- likelihood p(x|z): the exact conditional PixelCNN over the tile in raster order
  (hiercodec.families.raster), its every layer biased by a linear map of z (the bin centres), or
  by the upsampled features of z (`upsample`).

The tiles form a chain on one stream: tile i draws its z from the bits of tiles 0 ... i-1; the
first finds the stream nearly empty and pushes fixed initial bits, reported apart
(hiercodec.coding.bitsback). The decoder pops x given z, recomputes q(z|x) exactly and pushes z
back with it. Binary models (binarized MNIST, a 2-way output) code gray images of 0s and 255s;
8-bit models any image, gray as R = G = B.

Two-level models (`levels` = 2, sec. 3.1, appendix E.2; hiercodec.families.pixelvae_maps): tiles of
`map_tile` pixels, each a bits-back sample of two latent maps z2, z1 under autoregressive Gaussian
priors (hiercodec.families.latent_map.TiledMapsLevel), the pixels given the decoded z1.
"""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.errors import HiercodecError
from hiercodec.exact.convnet import ExactEncoder, ExactUpsampler
from hiercodec.exact.gaussian import ExactGaussian
from hiercodec.families.base import Level, Schedule
from hiercodec.families.family import Family
from hiercodec.families.hierarchy import CATEGORICAL, MIXTURE, LevelSpec
from hiercodec.families.inputs import BINARY, PIXELS
from hiercodec.families.latent import TiledBitsBackLevel
from hiercodec.families.latent_map import MapsSample, TiledMapsLevel
from hiercodec.families.pixelcnn import FILL
from hiercodec.families.pixelvae_config import PixelVAEConfig
from hiercodec.families.pixelvae_maps import HierarchyNets
from hiercodec.families.raster import Context, RasterLevel, exact_network
from hiercodec.families.registry import register
from hiercodec.geometry import Geometry
from hiercodec.nn.pixelvae import MNIST_SIDE, encoder_steps, upsampler_steps
from hiercodec.tiling import TileLayout

TILE = MNIST_SIDE


class TilePixels(RasterLevel):
    """The pixels of one tile given its latents: a raster level over a single tile whose
    features are fixed (computed from z), not embedded from a level above."""

    def __init__(self, spec: LevelSpec, family: "PixelVAEFamily", shape: tuple[int, int, int], features: torch.Tensor):
        t = family.tile
        super().__init__(spec, family.pixelcnn, family.head, TileLayout(shape[0], shape[1], t, t), shape[2])
        self.fill = family.fill
        self._features = features

    def context(self, above: dict[str, np.ndarray]) -> Context | None:
        return None if self._features is None else Context(lambda tiles: self._features[tiles])

    def analyze(self, image: np.ndarray, above: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError("a tile's pixels are analysed by the bits-back level that holds them")


@register("pixelvae", network=PixelVAEConfig, configs=("pixelvae", "pixelvae-upsample", "pixelvae-small", "pixelvae-codec", "pixelvae-fashion",
                   "pixelvae-photos"),
          task="hiercodec.train.pixelvae:PixelVAETask", exporter="hiercodec.export.pixelvae:export_pixelvae")
class PixelVAEFamily(Family):
    network = PixelVAEConfig  # (AGAVE's family reads its own)

    def __init__(self, config: dict, tensors: dict[str, torch.Tensor]):
        super().__init__(config, tensors)
        self.net = net = self.network.from_dict(config["network"])
        self.tile = net.tile
        exact = config["exact"]
        self.gauss = ExactGaussian.stored(tensors)
        if self.gauss.bits != net.latent_bits:
            raise HiercodecError(f"model file's latent tables have {self.gauss.bits} bits, its network says {net.latent_bits}")
        source = BINARY if net.binary else PIXELS
        self.spec = LevelSpec("pixels", "pixels", source, CATEGORICAL if net.binary else MIXTURE,
                              2 if net.binary else net.mixtures)
        self.fill = 0 if net.binary else FILL
        self.pixelcnn, self.head = exact_network(self.spec, tensors, exact, net.channels, net.layers)
        if net.levels == 2:  # sec. 3.1: latent maps z2, z1 per tile
            self.maps = HierarchyNets(net, tensors, exact, self.gauss, source.max)
            return
        self.encoder = ExactEncoder(tensors, encoder_steps(net.hidden), net.latents, source.max) if net.latents else None
        z_max = float(np.abs(self.gauss.luts["centres"]).max())
        self.upsampler = ExactUpsampler(tensors, upsampler_steps(net.hidden), z_max) if net.upsample else None

    # -- the three parts of the bits-back level ---------------------------------------------------

    def posterior(self, x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        """q(z|x) of one sample's values x (flat, `shape`: inside one tile, or a row of tiles): the
        padded tiles through the exact encoder as one batch, then the discretized Gaussians (tile
        after tile, L rows each)."""
        if self.encoder is None:  # no latents: an empty table, nothing to draw
            return np.zeros((0, self.gauss.bins), np.int64)
        mu, ls = self.encoder(self.tile_inputs(x, shape))
        return self.gauss.posterior_table(mu.reshape(-1).numpy().astype(np.int64), ls.reshape(-1).numpy().astype(np.int64))

    def tile_inputs(self, x: np.ndarray, shape: tuple[int, int, int]) -> torch.Tensor:
        """A sample's values x (flat, `shape` = (h, w, C) inside one tile or a row of tiles) -> the
        encoder's exact inputs (n, C', T, T) of its n tiles, padded with the family's fill."""
        h, w, c = shape
        t, n = self.tile, -(-w // self.tile)
        area = np.full((t, n * t, c), self.fill, dtype=np.float64)
        area[:h, :w] = np.asarray(x, dtype=np.float64).reshape(shape)
        tiles = np.ascontiguousarray(area.reshape(t, n, t, c).transpose(1, 3, 0, 2))
        return self.spec.input.exact(torch.from_numpy(tiles))

    def features(self, bins: np.ndarray) -> torch.Tensor | None:
        """The PixelCNN's conditioning features (n, E, T, T) of n tiles' latents' bins (flat, tile
        after tile; None without latents)."""
        if self.encoder is None:
            return None
        z = torch.from_numpy(self.gauss.values(bins).astype(np.float64)).reshape(-1, self.net.latents)
        f = self.upsampler(z) if self.upsampler is not None else z[:, :, None, None].expand(-1, -1, TILE, TILE)
        return f.to(torch.int16)

    def likelihood(self, z: np.ndarray, shape: tuple[int, int, int], x: np.ndarray | None = None) -> Schedule:
        return self.pixels(self.features(z), shape, x)

    def pixels(self, features: torch.Tensor | None, shape: tuple[int, int, int], x: np.ndarray | None = None) -> Schedule:
        """p(x | features) of one sample's values (`shape`: inside one tile, or a row of tiles;
        features (n, E, T, T) of its n tiles), as a Schedule."""
        values = None if x is None else np.asarray(x).reshape(shape).astype(np.uint8)
        return TilePixels(self.spec, self, shape, features).schedule({}, values)

    # -- levels -----------------------------------------------------------------------------------

    def _observe(self, image: np.ndarray, above: dict) -> np.ndarray:
        values = image[..., : 1 if self.net.binary else (3 if image.shape[-1] >= 3 else 1)]
        if self.net.binary:
            if not np.isin(values, (0, 255)).all():
                raise HiercodecError(f"model {self.config.get('id', self.name)} codes binary images (every sample "
                                     "0 or 255); this image has other values: use an 8-bit model")
            return (values > 127).astype(np.uint8)
        return values

    def color_levels(self, geometry: Geometry, layout: TileLayout) -> list[Level]:
        if self.net.binary and geometry.color != 1:
            raise HiercodecError("a binary pixelvae model codes gray images of 0s and 255s, not colour images")
        tiles = TileLayout(geometry.height, geometry.width, self.tile, self.tile)
        if self.net.levels == 2:
            def sample(i: int) -> MapsSample:
                shape = maps.tile_shape(i)
                return self.maps.sample(maps.tiles_in(i), lambda x: self.maps.posterior(self.tile_inputs(x, shape)),
                                        lambda f, x=None: self.pixels(f, shape, x))

            maps = TiledMapsLevel("pixels", tiles, geometry.color, sample, self._observe, joins_next=geometry.has_alpha,
                                  band=bool(self.net.band))
            return [maps]
        level = TiledBitsBackLevel(
            "pixels", tiles, geometry.color,
            posterior=lambda i, x, above: self.posterior(x, level.tile_shape(i)),
            likelihood=lambda i, z, above, x=None: self.likelihood(z, level.tile_shape(i), x),
            prior=lambda i, above, z=None: self.gauss.prior_table(self.net.latents * level.tiles_in(i)),
            observe=self._observe, joins_next=geometry.has_alpha,
            # a sample whose stream holds too few bits to draw its latents from is coded given the
            # latents' middle bins (z ~ 0), not on a seed: no initial bits are pushed (HiLLoC)
            direct=lambda i: np.full(self.net.latents * level.tiles_in(i), self.gauss.bins // 2, np.int64),
            band=bool(self.net.band))
        return [level]

    def reconstruct_color(self, decoded: dict[str, np.ndarray], geometry: Geometry, full_size: bool) -> np.ndarray:
        pixels = decoded["pixels"]
        return (pixels * 255).astype(np.uint8) if self.net.binary else pixels
