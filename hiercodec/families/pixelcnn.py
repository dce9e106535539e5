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
from hiercodec.families.alpha import alpha_levels, with_alpha
from hiercodec.families.base import Geometry, Level
from hiercodec.families.raster import RasterLevel
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


class PixelCNNFamily:
    """Builds the levels of an image for a loaded `pixelcnn` model."""

    family = "pixelcnn"

    def __init__(self, config: dict, tensors: dict[str, torch.Tensor]):
        net = config["network"]
        self.tile = int(net["tile"])
        self.net = ExactPixelCNN(tensors, net["channels"], net["layers"], config["exact"]["h_frac"])
        self.mixture = ExactMixture.stored(net["mixtures"], tensors)

    def layout(self, geometry: Geometry) -> TileLayout:
        return TileLayout.for_image(geometry.height, geometry.width, self.tile)

    def levels(self, geometry: Geometry, layout: TileLayout) -> list[Level]:
        color = 3 if geometry.channels >= 3 else 1
        return [PixelLevel(self.net, self.mixture, layout, color), *alpha_levels(geometry)]

    def reconstruct(self, decoded: dict[str, np.ndarray], geometry: Geometry, full_size: bool = False) -> np.ndarray:
        """The image (H, W, C) from the decoded levels (pixels, then alpha if present): a file cut
        after the pixels decodes to the colour image without its alpha."""
        return with_alpha(decoded["pixels"], decoded)
