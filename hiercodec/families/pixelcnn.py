"""The `pixelcnn` family: one level of pixels coded by a gated PixelCNN with a discretized logistic
mixture head, the baseline of every paper in ../shared/papers (e.g. Kolesnikov & Lampert 2017,
Table 1). Autoregression runs over positions in raster order and, within a pixel, over R, G, B
(the mixture's channel coupling); the schedule is hiercodec.families.raster's. Gray images code
channel 0 of a network that sees the gray value replicated to R, G and B.
"""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.exact.mixture import ExactMixture
from hiercodec.exact.pixelcnn import ExactPixelCNN
from hiercodec.families.base import Level
from hiercodec.families.family import Family
from hiercodec.families.pixelcnn_config import PixelCNNConfig
from hiercodec.families.raster import RasterLevel
from hiercodec.families.registry import register
from hiercodec.geometry import Geometry
from hiercodec.tiling import TileLayout

FILL = 128  # value of padded positions: network input 0, as the zero padding of training


def pixel_input(values: torch.Tensor) -> torch.Tensor:
    """Pixel values (T, C, ...) float64, C = 1 or 3 -> network inputs (T, 3, ...) pixel - 128
    (gray replicated to R, G and B)."""
    x = values - 128
    return x.expand(-1, 3, *x.shape[2:]).contiguous() if x.shape[1] == 1 else x


class PixelLevel(RasterLevel):
    """Pixels (H, W, C'), C' = 3 for colour and 1 for gray, alphabet 256."""

    fill = FILL

    def __init__(self, net: ExactPixelCNN, mixture: ExactMixture, layout: TileLayout, channels: int,
                 name: str = "pixels"):
        super().__init__(name, net, mixture, layout, channels)

    def analyze(self, image: np.ndarray, above: dict[str, np.ndarray]) -> np.ndarray:
        return image[..., : self.channels]

    def to_input(self, values: torch.Tensor) -> torch.Tensor:
        return pixel_input(values)


@register("pixelcnn", network=PixelCNNConfig,
          configs=("pixelcnn", "pixelcnn-small", "pixelcnn-codec", "pixelcnn-codec8", "pixelcnn-relay"),
          task="hiercodec.train.pixelcnn:PixelCNNTask")
class PixelCNNFamily(Family):
    """Builds the levels of an image for a loaded `pixelcnn` model."""

    def __init__(self, config: dict, tensors: dict[str, torch.Tensor]):
        super().__init__(config, tensors)
        net = config["network"]
        self.tile = int(net["tile"])
        self.net = ExactPixelCNN(tensors, net["channels"], net["layers"], config["exact"]["h_frac"])
        self.mixture = ExactMixture.stored(net["mixtures"], tensors)

    def color_levels(self, geometry: Geometry, layout: TileLayout) -> list[Level]:
        return [PixelLevel(self.net, self.mixture, layout, geometry.color)]
