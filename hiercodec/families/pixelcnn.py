"""The `pixelcnn` family: one level of pixels coded by a gated PixelCNN with a discretized logistic
mixture head, the baseline of every paper in ../shared/papers (e.g. Kolesnikov & Lampert 2017,
Table 1). Autoregression runs over positions in raster order and, within a pixel, over R, G, B
(the mixture's channel coupling); the schedule is hiercodec.families.raster's. Gray images code
channel 0 of a network that sees the gray value replicated to R, G and B.
"""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.families.base import Level
from hiercodec.families.family import Family
from hiercodec.families.hierarchy import MIXTURE, Hierarchy, LevelSpec
from hiercodec.families.inputs import PIXELS
from hiercodec.families.pixelcnn_config import PixelCNNConfig
from hiercodec.families.raster import RasterLevel, exact_network
from hiercodec.families.registry import register
from hiercodec.geometry import Geometry
from hiercodec.tiling import TileLayout

FILL = 128  # value of padded positions: network input 0, as the zero padding of training


def hierarchy(net: PixelCNNConfig) -> Hierarchy:
    """One level: the pixels, by a PixelCNN with a mixture head (the model is that one network)."""
    return Hierarchy((LevelSpec("pixels", "", PIXELS, MIXTURE, net.mixtures),),
                     lambda images, model=None: {"pixels": images})


class PixelLevel(RasterLevel):
    """Pixels (H, W, C'), C' = 3 for colour and 1 for gray, alphabet 256."""

    fill = FILL

    def analyze(self, image: np.ndarray, above: dict[str, np.ndarray]) -> np.ndarray:
        return image[..., : self.channels]


@register("pixelcnn", network=PixelCNNConfig,
          configs=("pixelcnn", "pixelcnn-small", "pixelcnn-codec", "pixelcnn-codec8", "pixelcnn-relay"),
          task="hiercodec.train.pixelcnn:PixelCNNTask")
class PixelCNNFamily(Family):
    """Builds the levels of an image for a loaded `pixelcnn` model."""

    hierarchy = staticmethod(hierarchy)

    def __init__(self, config: dict, tensors: dict[str, torch.Tensor]):
        super().__init__(config, tensors)
        net = PixelCNNConfig(**config["network"])
        self.tile = net.tile
        (self.spec,) = hierarchy(net).levels
        self.net, self.mixture = exact_network(self.spec, tensors, config["exact"], net.channels, net.layers)

    def color_levels(self, geometry: Geometry, layout: TileLayout) -> list[Level]:
        return [PixelLevel(self.spec, self.net, self.mixture, layout, geometry.color)]
