"""Float PixelVAE networks (Gulrajani et al. 2016), binarized-MNIST form (appendix E.1).

A VAE whose decoder ends in a few gated PixelCNN layers conditioned on the latent z (sec. 3):

- `MNISTEncoder`: x -> (mu, log sigma) of q(z|x), the table of appendix E.1 ("Encoder x -> (mu,
  sigma)"): eight 3x3 ReLU convolutions, strides 1 2 1 2 (then the 7x7 maps padded to 8x8) 1 2 1 1 1,
  and a linear map to 2 x latents;
- `MNISTUpsampler`: z -> a (32, 28, 28) feature map, the table's decoder up to the PixelCNN ("Linear
  4x4x64 ... Convolution 3x3 32"), transposed convolutions of stride 2 with a crop of 8x8 to 7x7;
- the PixelCNN (hiercodec.nn.gated.GatedPixelCNN, 2-way output) reads z through the conditioning
  projections of its every layer (`cond.l`): with the upsampler, of its feature map ("Gated
  PixelVAE"); without it, of z itself broadcast over the image, i.e. a linear map of z biases every
  layer ("Gated PixelVAE without upsampling", Table 1).

`hidden` scales the channels (32: the paper's). Every layer is listed as a step (`*_steps`), so that the exact twin (hiercodec.exact.convnet) runs the
same list with integer arithmetic and export quantizes it step by step. Binary pixels enter as -1
and +1 (`BINARY`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MNIST_SIDE = 28


def encoder_steps(hidden: int = 32) -> tuple:
    """(kind, stride, out channels) of appendix E.1's encoder (hidden = 32: its 32 and 64 channels);
    "pad" pads the 7x7 maps to 8x8."""
    h, h2 = hidden, 2 * hidden
    return (("conv", 1, h), ("conv", 2, h), ("conv", 1, h), ("conv", 2, h2), ("pad", 0, 0),
            ("conv", 1, h2), ("conv", 2, h2), ("conv", 1, h2), ("conv", 1, h2), ("conv", 1, h2))


def upsampler_steps(hidden: int = 32) -> tuple:
    """The E.1 decoder up to the PixelCNN, after its linear map to 4x4 maps of 2 x hidden channels;
    "crop" cuts the 8x8 maps to 7x7."""
    h, h2 = hidden, 2 * hidden
    return (("conv", 1, h2), ("conv", 1, h2), ("deconv", 2, h2), ("conv", 1, h2), ("crop", 0, 0),
            ("deconv", 2, h), ("conv", 1, h), ("deconv", 2, h), ("conv", 1, h))


def binary_input(bits: torch.Tensor) -> torch.Tensor:
    """Binary pixels (any shape, values 0/1) -> the networks' input: -1 and +1, float32."""
    return bits.float() * 2 - 1


def resample(x: torch.Tensor, kind: str) -> torch.Tensor:
    """The shape steps: 7x7 maps padded (bottom, right) to 8x8, or 8x8 maps cropped to 7x7."""
    return F.pad(x, (0, 1, 0, 1)) if kind == "pad" else x[:, :, :7, :7]


class ConvSteps(nn.Module):
    """A list of steps (kind, stride, channels): 3x3 convolutions ("conv", padding 1), 3x3
    transposed convolutions of stride 2 ("deconv", output twice the input), each followed by ReLU,
    and "pad"/"crop" (`resample`). `trace` collects each layer's output before its ReLU."""

    def __init__(self, in_channels: int, steps: tuple):
        super().__init__()
        self.steps = steps
        layers, c = [], in_channels
        for kind, stride, out in steps:
            if kind == "conv":
                layers.append(nn.Conv2d(c, out, 3, stride, padding=1))
            elif kind == "deconv":
                layers.append(nn.ConvTranspose2d(c, out, 3, stride, padding=1, output_padding=1))
            else:
                continue
            c = out
        self.layers = nn.ModuleList(layers)
        self.out_channels = c

    def forward(self, x: torch.Tensor, trace: list | None = None) -> torch.Tensor:
        it = iter(self.layers)
        for kind, _, _ in self.steps:
            if kind in ("pad", "crop"):
                x = resample(x, kind)
                continue
            x = next(it)(x)
            if trace is not None:
                trace.append(x.detach())
            x = F.relu(x)
        return x


class MNISTEncoder(nn.Module):
    """x (B, C, 28, 28) (binary: C = 1, values -1 and 1) -> (mu, log sigma), each (B, latents)."""

    def __init__(self, latents: int, in_channels: int = 1, hidden: int = 32):
        super().__init__()
        self.body = ConvSteps(in_channels, encoder_steps(hidden))
        self.out = nn.Conv2d(2 * hidden, 2 * latents, 4)  # "Flatten, Linear": a 4x4 valid convolution
        self.latents = latents

    def forward(self, x: torch.Tensor, trace: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.out(self.body(x, trace))[:, :, 0, 0]
        return y[:, : self.latents], y[:, self.latents :]


class MNISTUpsampler(nn.Module):
    """z (B, latents) -> features (B, hidden, 28, 28)."""

    def __init__(self, latents: int, hidden: int = 32):
        super().__init__()
        self.base = 2 * hidden
        self.inp = nn.Linear(latents, self.base * 16)  # "Linear 4x4x64, reshape to (64, 4, 4)"
        self.body = ConvSteps(self.base, upsampler_steps(hidden))
        self.out_channels = self.body.out_channels

    def forward(self, z: torch.Tensor, trace: list | None = None) -> torch.Tensor:
        h = self.inp(z).reshape(-1, self.base, 4, 4)
        if trace is not None:
            trace.append(h.detach())
        return self.body(F.relu(h), trace)


def broadcast(z: torch.Tensor, side: int = MNIST_SIDE) -> torch.Tensor:
    """z (B, L) -> (B, L, side, side): the conditioning of PixelVAE without upsampling."""
    return z[:, :, None, None].expand(-1, -1, side, side)


def gaussian_kl(mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) in nats, summed over the last dimension."""
    return 0.5 * (mu.pow(2) + torch.exp(2 * log_sigma) - 1 - 2 * log_sigma).sum(dim=-1)


def reparameterize(mu: torch.Tensor, log_sigma: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    eps = torch.randn(mu.shape, generator=generator, device=mu.device if generator is None else "cpu")
    return mu + torch.exp(log_sigma) * eps.to(mu.device)


def log_normal(z: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, sigma^2), summed over the last dimension (importance sampling)."""
    return (-0.5 * ((z - mu) / torch.exp(log_sigma)).pow(2) - log_sigma - 0.5 * math.log(2 * math.pi)).sum(dim=-1)


def gaussian_kl_between(mu_q: torch.Tensor, ls_q: torch.Tensor, mu_p: torch.Tensor, ls_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2)) in nats, summed over all but the first dimension
    (PixelVAE's hierarchical KL terms, sec. 3.1)."""
    kl = ls_p - ls_q + (torch.exp(2 * ls_q) + (mu_q - mu_p).pow(2)) / (2 * torch.exp(2 * ls_p)) - 0.5
    return kl.flatten(1).sum(dim=1)
