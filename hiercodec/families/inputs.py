"""How a level's values become a network's input: the one place for it.

An input is integers read at a fixed power-of-two scale: the network sees `integer(values) x
2^-frac`, with |integer| <= `max`. The exact networks (hiercodec.exact) take the integers; the
float networks of training and calibration take the same numbers as float32, so training, export
and the codec see identical inputs.

- `PIXELS`: an 8-bit sample x as (x - 128) / 128; a gray level is replicated to R, G and B, so one
  network serves gray and colour images;
- `PSI`: the 4-bit gray image psi of the Grayscale PixelCNN as (2 psi - 15) / 16 (psi - 7.5 in
  1/8 units).
- `BINARY`: a binary sample b (0 or 1: binarized MNIST) as 2b - 1 (PixelVAE's MNIST models).
- `CodeInput`: a code map (vqvae2) read through a learned embedding: the float model's
  `nn.Embedding` in training, its rows quantized by export and stored under the same name, read
  by the exact network (hiercodec.families.vqvae2.CodeLevel).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Input:
    name: str
    channels: int  # of the network's input
    frac: int  # fractional bits: the network reads integer x 2^-frac
    max: int  # the largest |integer|
    integer: Callable[[torch.Tensor], torch.Tensor]  # float64 values (N, C, ...) -> integers (N, C', ...)

    def float(self, values: np.ndarray, model: torch.nn.Module | None = None) -> torch.Tensor:
        """Values (N, H, W, C) (any integer dtype) -> the float network's input (N, C', H, W) float32."""
        x = torch.from_numpy(np.ascontiguousarray(values).astype(np.float64)).permute(0, 3, 1, 2)
        return (self.integer(x) * 2.0 ** -self.frac).float()

    def exact(self, values: torch.Tensor) -> torch.Tensor:
        """Values (N, C, ...) float64 -> the exact network's integer inputs (N, C', ...) float64."""
        return self.integer(values)

    def planes(self, values: np.ndarray) -> torch.Tensor:
        """Level values (H, W, C) -> the integer inputs (C', H, W) float64 (an embedding's source)."""
        return self.exact(torch.from_numpy(values.astype(np.float64)).permute(2, 0, 1)[None])[0]


def _pixels(values: torch.Tensor) -> torch.Tensor:
    x = values - 128
    return x.expand(-1, 3, *x.shape[2:]).contiguous() if x.shape[1] == 1 else x


@dataclass(frozen=True)
class CodeInput:
    table: str  # the embedding's name: a module of the float model, a tensor of the model file

    def float(self, codes: np.ndarray | torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
        """Code maps (N, h, w) or (N, h, w, 1) -> the float network's input (N, E, h, w)."""
        codes = torch.as_tensor(np.asarray(codes, dtype=np.int64) if isinstance(codes, np.ndarray) else codes)
        if codes.dim() == 4:
            codes = codes[..., 0]
        embed = model[self.table]
        return embed(codes.to(embed.weight.device)).permute(0, 3, 1, 2)


GRAY_LEVELS = 16  # the 4-bit grayscale auxiliary variable (Kolesnikov & Lampert 2017, sec. 3.1)
PIXELS = Input("pixels", 3, 7, 128, _pixels)
PSI = Input("psi", 1, 4, GRAY_LEVELS - 1, lambda v: 2 * v - (GRAY_LEVELS - 1))
BINARY = Input("binary", 1, 0, 1, lambda v: 2 * v - 1)
