"""Configuration of the `pixelcnn` family's network, shared by training and export."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from hiercodec.nn.gated import GatedPixelCNN
from hiercodec.nn.mixture import params_per_pixel


@dataclass(frozen=True)
class PixelCNNConfig:
    family = "pixelcnn"  # (a class attribute, not a field)
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

