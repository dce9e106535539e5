"""Network configuration of the `pixelvae` family (Gulrajani et al. 2016), shared by training,
export and the codec.

The binarized-MNIST models of Table 1 and appendix E.1: a 28x28 binary image, an encoder to a
Gaussian posterior over `latents` continuous latents (prior N(0, I)), and a decoder ending in a gated
PixelCNN of `layers` gated layers after its input layer with a 2-way output. `upsample` = 1: the
PixelCNN reads the upsampled feature map of z ("Gated PixelVAE"); 0: a linear map of z biases
every layer ("Gated PixelVAE without upsampling", the better row of Table 1). The codec codes z by
bits-back over 2^`latent_bits` bins of equal prior mass (hiercodec.exact.gaussian).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hiercodec.errors import HiercodecError
from hiercodec.families.auxiliary_config import _Config
from hiercodec.nn.gated import GatedPixelCNN
from hiercodec.nn.mixture import params_per_pixel
from hiercodec.families.inputs import PIXELS
from hiercodec.nn.pixelvae import MNIST_SIDE, MNISTEncoder, MNISTUpsampler, binary_input, broadcast


@dataclass(frozen=True)
class PixelVAEConfig(_Config):
    """Defaults: appendix E.1 and the authors' released MNIST script (mnist_pixelvae_train.py:
    latent_dim 64, dim_pix 32)."""

    family = "pixelvae"
    may_be_zero = ("upsample", "layers", "kl_warmup", "binary", "latents")
    binary: int = 1  # 1: binary images (a 2-way output, Table 1); 0: 8-bit gray or RGB, a logistic mixture
    mixtures: int = 5  # logistic components of an 8-bit model's output (hiercodec.nn.mixture)
    latents: int = 64  # 0: no latent, a plain PixelCNN coded by the same codec (Figure 4a's baseline)
    hidden: int = 32  # the encoder's and upsampler's channels: hidden and 2 x hidden (E.1: 32 and 64)
    upsample: int = 0  # 1: "Gated PixelVAE"; 0: "... without upsampling" (Table 1)
    layers: int = 1  # "PixelCNN gated residual block(s) [5x5] x N" after the input block (E.1)
    channels: int = 32  # E.1: 32 channels in every PixelCNN layer
    head: int = 32  # E.1: "PixelCNN gated convolution 1x1, 32" before the output
    latent_bits: int = 12  # the codec's bins per latent: 2^latent_bits (hiercodec.exact.gaussian)
    # the KL term's weight rises linearly from 0 to 1 over this many steps (the authors' released
    # code: alpha_iters = 10000); the paper's text states no warm-up
    kl_warmup: int = 0

    @property
    def tile(self) -> int:
        return MNIST_SIDE

    def check(self) -> None:
        if self.binary not in (0, 1):
            raise HiercodecError(f"[network] binary = {self.binary}: must be 0 or 1")
        if self.upsample not in (0, 1):
            raise HiercodecError(f"[network] upsample = {self.upsample}: must be 0 or 1")
        if self.latents == 0 and self.upsample:
            raise HiercodecError("[network] a model without latents (latents = 0) has nothing to upsample")
        if not 1 <= self.latent_bits <= 16:
            raise HiercodecError(f"[network] latent_bits = {self.latent_bits}: must be 1 to 16")

    def build(self, dropout: float = 0.0) -> nn.ModuleDict:
        """`encoder` (q(z|x)), `upsampler` (upsample = 1 only) and `pixels` (p(x|z))."""
        inputs = 1 if self.binary else 3  # an 8-bit model sees gray as R = G = B (families.inputs.PIXELS)
        parts = {"encoder": MNISTEncoder(self.latents, inputs, self.hidden)} if self.latents else {}
        features = self.latents
        if self.upsample:
            parts["upsampler"] = MNISTUpsampler(self.latents, self.hidden)
            features = parts["upsampler"].out_channels
        outputs = 2 if self.binary else params_per_pixel(self.mixtures)
        parts["pixels"] = GatedPixelCNN(inputs, outputs, self.channels, self.layers, self.head, dropout,
                                        features=features)
        return nn.ModuleDict(parts)


# the float model's view of images and latents, shared by training and export


def binary_pixels(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W, 1) of 0s and 255s -> bits (N, 1, H, W) as int64."""
    return (x > 127).permute(0, 3, 1, 2).long()


def conditioning(model, z: torch.Tensor) -> torch.Tensor:
    """The PixelCNN's conditioning features of latents z (B, L): the upsampled map, or z broadcast
    (None for a model without latents)."""
    if "encoder" not in model:
        return None
    return model["upsampler"](z) if "upsampler" in model else broadcast(z)


def network_input(net, x: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W, C) -> the encoder's and the PixelCNN's input (N, C', H, W)."""
    if net.binary:
        return binary_input(binary_pixels(x))
    return PIXELS.float(x.cpu().numpy()).to(x.device)
