"""Exact twins of hiercodec.nn.pixelvae's networks: the encoder of q(z|x) and the upsampler of z.

The posterior runs in exact mode on both sides of a bits-back level: the decoder recomputes
q(z|x) from the decoded x to give back the bits the encoder borrowed, so its table must be the
encoder's bit for bit (hiercodec.coding.bitsback). Every layer is a QConv (integer weights, float64
accumulators of integers, power-of-two requantization, floor); ReLU is the layer's lower clamp at 0
(stored as `.lo`). A stride-2 convolution is the stride-1 one sampled at even positions, and a
stride-2 transposed convolution the convolution of its input spread onto the even positions of a
zero map twice its size (export stores the flipped, transposed kernel): the same integers in any
order of summation.

Stored tensors, per step k of a ConvSteps list: `<prefix>.<k>.w|b|shift|lo|hi`; the encoder's
last layer `out` (2L outputs: mu at 2^-MU_FRAC, log sigma in 1/LS_SCALE nat, clamped to the
ranges of hiercodec.exact.gaussian); the upsampler's first layer `inp` (a 1x1 product on z).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hiercodec.exact.layers import QConv, qconv
from hiercodec.exact.quant import ACT_MIN, DTYPE
from hiercodec.nn.pixelvae import resample


class ExactConvSteps:
    """The exact form of a hiercodec.nn.pixelvae.ConvSteps list of steps."""

    def __init__(self, tensors: dict[str, torch.Tensor], prefix: str, steps: tuple, in_max: float = -ACT_MIN):
        self.steps, self.layers = steps, []
        for k, (kind, _, _) in enumerate(s for s in steps if s[0] in ("conv", "deconv")):
            self.layers.append(qconv(tensors, f"{prefix}{k}", (3, 3), in_max if k == 0 else -ACT_MIN))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) integers (float64) -> the last layer's activations."""
        it = iter(self.layers)
        for kind, stride, _ in self.steps:
            if kind in ("pad", "crop"):
                x = resample(x, kind)
            elif kind == "conv":
                x = next(it).conv(F.pad(x, (1, 1, 1, 1)))[:, :, ::stride, ::stride]
            else:  # "deconv": spread onto the even positions of a map twice the size
                b, c, h, w = x.shape
                spread = torch.zeros(b, c, 2 * h, 2 * w, dtype=DTYPE)
                spread[:, :, ::2, ::2] = x
                x = next(it).conv(F.pad(spread, (1, 1, 1, 1)))
        return x


class ExactEncoder:
    """x (B, C, 28, 28) integer inputs -> (mu, ls) integers (B, L) each (hiercodec.exact.gaussian)."""

    def __init__(self, tensors: dict[str, torch.Tensor], steps: tuple, latents: int, in_max: float):
        self.body = ExactConvSteps(tensors, "encoder.body.", steps, in_max)
        self.out: QConv = qconv(tensors, "encoder.out", (4, 4))
        self.latents = latents

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.out.conv(self.body.forward(x))[:, :, 0, 0]
        return y[:, : self.latents], y[:, self.latents :]


class ExactUpsampler:
    """z (B, L) integers at the gaussian tables' Z_FRAC -> features (B, hidden, 28, 28) integers."""

    def __init__(self, tensors: dict[str, torch.Tensor], steps: tuple, z_max: float):
        self.inp: QConv = qconv(tensors, "upsampler.inp", (1, 1), z_max)
        self.body = ExactConvSteps(tensors, "upsampler.body.", steps)
        self.base = steps[0][2]  # the channels of the 4x4 maps the linear map makes

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        h = self.inp.conv(z[:, :, None, None]).reshape(-1, self.base, 4, 4)
        return self.body.forward(h)
