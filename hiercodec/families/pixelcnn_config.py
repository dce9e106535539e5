"""Configuration of the `pixelcnn` family's network, shared by training and export."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from hiercodec.nn.gated import GatedPixelCNN
from hiercodec.nn.mixture import params_per_pixel


@dataclass(frozen=True)
class PixelCNNConfig:
    channels: int = 64  # hidden units of both stacks
    layers: int = 6  # gated layers after the input layer
    head: int = 128  # hidden units of the 1x1 output network
    # logistic components: Kolesnikov & Lampert 2017 sec. 3 (PixelCNN++) use 10; the exact head costs
    # pixels x channels x K x 256 table entries at decode time, so 5 halve it (decode speed)
    mixtures: int = 5
    tile: int = 64  # tile side used by the codec (tiles decode in lockstep)

    def build(self, dropout: float = 0.0) -> GatedPixelCNN:
        return GatedPixelCNN(3, params_per_pixel(self.mixtures), self.channels, self.layers, self.head,
                             dropout)

    def to_dict(self) -> dict:
        return asdict(self)


def to_input(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (B, 3, H, W) -> network input (x - 128) / 128, exactly representable in the
    exact model's first layer (integers x - 128 at scale 2^-7)."""
    return (x.float() - 128.0) / 128.0
