"""Network configuration of the `agave` family (Lucas & Verbeek 2018, auxiliary guided
autoregressive VAEs), shared by training, export and the codec.

A VAE encoder gives a Gaussian posterior over `latents` per tile (the encoder of PixelVAE's
appendix E.1, hiercodec.nn.pixelvae); the VAE decoder f(z) (PixelVAE's upsampling decoder and a
1x1 layer) outputs the per-pixel means of a factorial auxiliary image y (sec. 3, eq. 7): y = x
quantized to `aux_levels` colour levels (256: x itself; binary models: a Bernoulli per pixel); a
gated PixelCNN models x given f(z) through a stack of unmasked convolutions over f(z) feeding every
layer (sec. 4.1). Training weighs the KL by `kl_weight` (lambda; 12 is the paper's best, Table 1)
and adds the auxiliary reconstruction; the codec codes x under the true bound (lambda = 1, no
auxiliary term) by bits-back, exactly as `pixelvae`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hiercodec.errors import HiercodecError
from hiercodec.families.auxiliary_config import _Config
from hiercodec.nn.embedding import Embedding
from hiercodec.nn.gated import GatedPixelCNN
from hiercodec.nn.mixture import params_per_pixel
from hiercodec.nn.pixelvae import MNIST_SIDE, MNISTEncoder, MNISTUpsampler


@dataclass(frozen=True)
class AGAVEConfig(_Config):
    family = "agave"
    may_be_zero = ("binary", "kl_warmup", "band")
    binary: int = 1  # 1: binary images (y: a Bernoulli per pixel); 0: 8-bit gray or RGB
    mixtures: int = 5  # logistic components of the PixelCNN's output (8-bit models)
    latents: int = 64
    hidden: int = 32  # encoder and VAE decoder channels (hidden, 2 x hidden), as pixelvae's
    aux_levels: int = 256  # colour levels b of y = x quantized (sec. 4.5, eq. 10); 256: y = x
    embed_channels: int = 32  # the unmasked convolution stack over f(z) (sec. 4.1)
    embed_blocks: int = 2
    layers: int = 2
    channels: int = 32
    head: int = 32
    latent_bits: int = 12
    # the codec's bits-back samples: 0, each tile; 1, each row of tiles (its tiles' latents drawn
    # together, its networks run over its tiles as one batch: fewer, larger decoding steps)
    band: int = 0
    kl_weight: int = 12  # lambda of eq. 7: "AGAVE, lambda = 12 (this paper)", Table 1
    kl_warmup: int = 0

    @property
    def tile(self) -> int:
        return MNIST_SIDE

    # what the PixelVAE codec reads (hiercodec.families.pixelvae): one level, the upsampling decoder
    levels = 1
    upsample = 1

    @property
    def aux_channels(self) -> int:
        return 1 if self.binary else 3

    def check(self) -> None:
        if self.binary not in (0, 1):
            raise HiercodecError(f"[network] binary = {self.binary}: must be 0 or 1")
        if not 2 <= self.aux_levels <= 256 or 256 % self.aux_levels:
            raise HiercodecError(f"[network] aux_levels = {self.aux_levels}: must divide 256 (2 ... 256)")
        if self.band not in (0, 1):
            raise HiercodecError(f"[network] band = {self.band}: must be 0 (a tile per sample) or 1 (a row of tiles)")
        if not 1 <= self.latent_bits <= 16:
            raise HiercodecError(f"[network] latent_bits = {self.latent_bits}: must be 1 to 16")

    def build(self, dropout: float = 0.0) -> nn.ModuleDict:
        """`encoder`, `upsampler` and `aux` (f(z): the means of y), `aux_scale` (the logistics'
        per-channel log scales, shared by all pixels: sec. 4.1), `embed` (unmasked convolutions over
        f(z)) and `pixels` (the PixelCNN)."""
        inputs = 1 if self.binary else 3
        upsampler = MNISTUpsampler(self.latents, self.hidden)
        outputs = 2 if self.binary else params_per_pixel(self.mixtures)
        parts = {
            "encoder": MNISTEncoder(self.latents, inputs, self.hidden),
            "upsampler": upsampler,
            "aux": nn.Conv2d(upsampler.out_channels, self.aux_channels, 1),
            "aux_scale": _Scale(self.aux_channels),
            "embed": Embedding(self.aux_channels, self.embed_channels, self.embed_blocks, dropout=dropout),
            "pixels": GatedPixelCNN(inputs, outputs, self.channels, self.layers, self.head, dropout,
                                    features=self.embed_channels),
        }
        return nn.ModuleDict(parts)


class _Scale(nn.Module):
    """Per-channel log scales of the auxiliary logistics (a parameter, shared across pixels)."""

    def __init__(self, channels: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(channels))
