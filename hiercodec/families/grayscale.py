"""The `grayscale` family: Grayscale PixelCNN (Kolesnikov & Lampert 2017, sec. 3.1 and 3.3).

Levels, top first:
1. `gray`: psi(x), the image's 4-bit grayscale, H x W values 0 ... 15, coded by a PixelCNN with a
   16-way softmax (hiercodec.exact.categorical), input 2 psi - 15 (psi - 7.5 in 1/2 units);
2. `pixels`: the colour (or gray) samples given psi(x): a conditional PixelCNN whose layers are
   biased by an embedding f_w(psi(x)) (hiercodec.exact.embedding), computed once per tile;
3. `alpha` for images with an alpha channel (hiercodec.families.alpha).

The exact integer conversion (bitstreams/FORMAT.md): Y = floor((299 R + 587 G + 114 B + 500) / 1000)
(ITU-R BT.601 luma, rounded; Y = the sample itself for gray images), psi = floor(Y / 16).

Beyond the paper, consistency-constrained coding: psi(x) and the channels decoded so far leave
an interval of values for the next channel, and its table is restricted to it (`luma_bounds`).
The file is then smaller than the paper's bound -log p(psi(x)) - log p(x | psi(x)), which
`hiercodec verify` shows next to it. A file cut after `gray` decodes to the 4-bit gray image
(psi x 17, so 0 ... 15 span 0 ... 255).
"""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.exact.embedding import ExactEmbedding
from hiercodec.exact.layers import subset
from hiercodec.families.auxiliary_config import GrayscaleConfig
from hiercodec.families.base import Level
from hiercodec.families.family import Family
from hiercodec.families.hierarchy import CATEGORICAL, MIXTURE, Condition, Hierarchy, LevelSpec
from hiercodec.families.inputs import GRAY_LEVELS, PIXELS, PSI
from hiercodec.families.pixelcnn import PixelLevel
from hiercodec.families.raster import RasterLevel, exact_network
from hiercodec.families.registry import register
from hiercodec.geometry import Geometry
from hiercodec.images import luma
from hiercodec.tiling import TileLayout

GRAY_SHIFT = 4  # psi = Y >> 4: 16 levels
# 299 R + 587 G + 114 B lies in [16000 psi - 500, 16000 psi + 15499] exactly when psi(x) = psi
_W = (299, 587, 114)


def psi(color: np.ndarray) -> np.ndarray:
    """The 4-bit gray image (..., H, W, 1) uint8 of colour samples (..., H, W, 3) or gray (..., H, W, 1)."""
    y = luma(color) if color.shape[-1] == 3 else color[..., 0].astype(np.int64)
    return (y >> GRAY_SHIFT).astype(np.uint8)[..., None]


def hierarchy(net: GrayscaleConfig) -> Hierarchy:
    """psi(x) by a 16-way PixelCNN (`prior`), then the colour by a PixelCNN (`cond`) biased by an
    embedding (`embed`) of psi(x) (sec. 3.1, 3.3)."""
    return Hierarchy((LevelSpec("gray", "prior", PSI, CATEGORICAL, GRAY_LEVELS),
                      LevelSpec("pixels", "cond", PIXELS, MIXTURE, net.mixtures, Condition("embed", "gray", PSI, 1))),
                     lambda images, model=None: {"gray": psi(images), "pixels": images})


def luma_bounds(p: np.ndarray, prev: np.ndarray, c: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Interval (lo, hi) of channel c's values consistent with psi = p (int64 (n,)) given the
    earlier channels prev (int64 (n, c)). Gray: [16 psi, 16 psi + 15]. Colour: with S = 299 R + 587 G +
    114 B in [16000 psi - 500, 16000 psi + 15499], the values of channel c for which the channels
    after it can still reach S (each in 0 ... 255). Integer arithmetic only."""
    p = p.astype(np.int64)
    if channels == 1:
        return p << GRAY_SHIFT, (p << GRAY_SHIFT) + (1 << GRAY_SHIFT) - 1
    known = sum(_W[k] * prev[:, k].astype(np.int64) for k in range(c)) if c else 0
    rest = 255 * sum(_W[c + 1 :])
    lo_sum, hi_sum = 16000 * p - 500 - known, 16000 * p + 15499 - known
    lo = -((rest - lo_sum) // _W[c])  # ceil((lo_sum - rest) / w)
    hi = hi_sum // _W[c]
    return np.clip(lo, 0, 255), np.clip(hi, 0, 255)


class GrayLevel(RasterLevel):
    """psi(x), (H, W, 1), alphabet 16."""

    fill = GRAY_LEVELS // 2  # padding: network input 1 (1/16), next to the 0 of training's padding

    def analyze(self, image: np.ndarray, above: dict[str, np.ndarray]) -> np.ndarray:
        return psi(image[..., : 3 if image.shape[-1] >= 3 else 1])


class _LumaBounds:
    """The colour values consistent with psi(x) (`luma_bounds`), per tile and position."""

    def __init__(self, level: "ColorLevel", gray: np.ndarray):
        self.psi = level.layout.to_tiles(gray, 0)[:, 0]  # (T, th, tw)
        self.channels = level.channels

    def __call__(self, tiles: slice, values: np.ndarray, i: int, j0: int, j1: int, c: int):
        p = self.psi[tiles][:, i, j0:j1].T.reshape(-1)  # (j, tile), as the tables are ordered
        prev = values[:, :c, i, j0:j1].transpose(2, 0, 1).reshape(len(p), c)
        lo, hi = luma_bounds(p, prev, c, self.channels)
        n = j1 - j0
        return lo.reshape(n, -1), hi.reshape(n, -1)


class ColorLevel(PixelLevel):
    """The pixels given psi(x): features of each tile from the embedding, tables restricted to the
    values consistent with psi(x)."""

    def bounds(self, above: dict[str, np.ndarray]) -> _LumaBounds:
        return _LumaBounds(self, above["gray"])


@register("grayscale", network=GrayscaleConfig, configs=("grayscale", "grayscale-small", "grayscale-codec"),
          task="hiercodec.train.auxiliary:GrayscaleTask")
class GrayscaleFamily(Family):
    hierarchy = staticmethod(hierarchy)
    def __init__(self, config: dict, tensors: dict[str, torch.Tensor]):
        super().__init__(config, tensors)
        net = GrayscaleConfig.from_dict(config["network"])
        exact = config["exact"]
        self.net, self.tile = net, net.tile
        self.gray, self.color = hierarchy(net).levels
        self.prior, self.categorical = exact_network(self.gray, tensors, exact, net.prior_channels, net.prior_layers)
        self.embedding = ExactEmbedding(subset(tensors, "embed."), net.embed_blocks, net.embed_down,
                                        net.embed_up, in_max=PSI.max)
        self.cond, self.mixture = exact_network(self.color, tensors, exact, net.channels, net.layers)

    def color_levels(self, geometry: Geometry, layout: TileLayout) -> list[Level]:
        return [GrayLevel(self.gray, self.prior, self.categorical, layout, 1),
                ColorLevel(self.color, self.cond, self.mixture, layout, geometry.color, self.embedding, self.net.halo)]

    def reconstruct_color(self, decoded: dict[str, np.ndarray], geometry: Geometry, full_size: bool) -> np.ndarray:
        """The pixels; a file cut after `gray` gives psi x 17 (gray)."""
        if "pixels" not in decoded:
            return (decoded["gray"] * (255 // (GRAY_LEVELS - 1))).astype(np.uint8)
        return decoded["pixels"]
