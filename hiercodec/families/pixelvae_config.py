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
from hiercodec.nn.embedding import Embedding
from hiercodec.nn.gated import GatedPixelCNN
from hiercodec.nn.mixture import params_per_pixel
from hiercodec.families.inputs import PIXELS
from hiercodec.nn.pixelvae import MNIST_SIDE, MNISTEncoder, MNISTUpsampler, binary_input, broadcast


@dataclass(frozen=True)
class PixelVAEConfig(_Config):
    """Defaults: appendix E.1 and the authors' released MNIST script (mnist_pixelvae_train.py:
    latent_dim 64, dim_pix 32)."""

    family = "pixelvae"
    may_be_zero = ("upsample", "layers", "kl_warmup", "binary", "latents", "band")
    binary: int = 1  # 1: binary images (a 2-way output, Table 1); 0: 8-bit gray or RGB, a logistic mixture
    mixtures: int = 5  # logistic components of an 8-bit model's output (hiercodec.nn.mixture)
    latents: int = 64  # 0: no latent, a plain PixelCNN coded by the same codec (Figure 4a's baseline)
    hidden: int = 32  # the encoder's and upsampler's channels: hidden and 2 x hidden (E.1: 32 and 64)
    upsample: int = 0  # 1: "Gated PixelVAE"; 0: "... without upsampling" (Table 1)
    layers: int = 1  # "PixelCNN gated residual block(s) [5x5] x N" after the input block (E.1)
    channels: int = 32  # E.1: 32 channels in every PixelCNN layer
    head: int = 32  # E.1: "PixelCNN gated convolution 1x1, 32" before the output
    latent_bits: int = 12  # the codec's bins per latent: 2^latent_bits (hiercodec.exact.gaussian)
    # the codec's bits-back samples: 0, each tile; 1, each row of tiles (its tiles' latents drawn
    # together, its networks run over its tiles as one batch: fewer, larger decoding steps)
    band: int = 0
    # the KL term's weight rises linearly from 0 to 1 over this many steps (the authors' released
    # code: alpha_iters = 10000); the paper's text states no warm-up
    kl_warmup: int = 0
    # levels = 2, the hierarchical model for photos (sec. 3.1, appendix E.2): tiles of `map_tile`
    # pixels; z1 maps of `c1` channels at 1/4, z2 maps of `c2` channels at 1/16; encoders and
    # decoders are residual networks of `blocks` blocks of `hidden` channels (pre-activation, ELU,
    # x2 resampling after the first two: E.2); each latent level's prior is a gated PixelCNN of
    # `prior_layers` x `prior_channels` with Gaussian outputs; the pixels' PixelCNN is `layers` x
    # `channels` with the mixture head
    levels: int = 1
    map_tile: int = 32
    blocks: int = 2
    c1: int = 8
    c2: int = 8
    prior_layers: int = 2
    prior_channels: int = 32

    @property
    def tile(self) -> int:
        return MNIST_SIDE if self.levels == 1 else self.map_tile

    def check(self) -> None:
        if self.binary not in (0, 1):
            raise HiercodecError(f"[network] binary = {self.binary}: must be 0 or 1")
        if self.upsample not in (0, 1):
            raise HiercodecError(f"[network] upsample = {self.upsample}: must be 0 or 1")
        if self.latents == 0 and self.upsample:
            raise HiercodecError("[network] a model without latents (latents = 0) has nothing to upsample")
        if self.band not in (0, 1):
            raise HiercodecError(f"[network] band = {self.band}: must be 0 (a tile per sample) or 1 (a row of tiles)")
        if not 1 <= self.latent_bits <= 16:
            raise HiercodecError(f"[network] latent_bits = {self.latent_bits}: must be 1 to 16")
        if self.levels not in (1, 2):
            raise HiercodecError(f"[network] levels = {self.levels}: must be 1 (E.1) or 2 (sec. 3.1, E.2)")
        if self.levels == 2 and (self.binary or self.map_tile % 16 or self.blocks < 2):
            raise HiercodecError("[network] a two-level model codes 8-bit images (binary = 0) in tiles of a "
                                 "multiple of 16 (map_tile) with blocks >= 2")

    def build(self, dropout: float = 0.0) -> nn.ModuleDict:
        """`encoder` (q(z|x)), `upsampler` (upsample = 1 only) and `pixels` (p(x|z)); for two
        levels see `build_hierarchy`."""
        if self.levels == 2:
            return build_hierarchy(self, dropout)
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


def build_hierarchy(net: PixelVAEConfig, dropout: float = 0.0) -> nn.ModuleDict:
    """The two-level model (sec. 3.1, appendix E.2): `enc1` x -> h1 (x4 down) and `q1` (mu, log
    sigma of z1); `enc2` h1 -> h2 (x4 down) and `q2` (of z2); `prior2` p(z2), `dec2` z2 -> features
    of `prior1` p(z1 | z2); `dec1` z1 -> features of `pixels` p(x | z1)."""
    h, k = net.hidden, params_per_pixel(net.mixtures)

    def down(cin: int) -> Embedding:
        return Embedding(cin, h, net.blocks, down_after=(1, 2), dropout=dropout)

    def up(cin: int) -> Embedding:
        return Embedding(cin, h, net.blocks, up_after=(1, 2), dropout=dropout)

    def prior(c: int, features: int) -> GatedPixelCNN:
        return GatedPixelCNN(c, 2 * c, net.prior_channels, net.prior_layers, 2 * net.prior_channels, dropout,
                             features=features)

    return nn.ModuleDict({
        "enc1": down(3), "q1": nn.Conv2d(h, 2 * net.c1, 1),
        "enc2": down(h), "q2": nn.Conv2d(h, 2 * net.c2, 1),
        "prior2": prior(net.c2, 0), "dec2": up(net.c2), "prior1": prior(net.c1, h),
        "dec1": up(net.c1),
        "pixels": GatedPixelCNN(3, k, net.channels, net.layers, net.head, dropout, features=h),
    })
