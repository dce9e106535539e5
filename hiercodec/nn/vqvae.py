"""The hierarchical VQ-VAE of Razavi et al. 2019 (VQ-VAE-2), float, for training (sec. 3.1, Fig. 2a,
Table 5): an encoder that downsamples the image x4 to the bottom latent map and x2 more to the top
one, vector quantizers with codebooks updated by exponential moving averages, and a feed-forward
decoder that takes both quantized maps.

Shapes for an input of H x W (multiples of 8): bottom codes H/4 x W/4, top codes H/8 x W/8.
The bottom encoder sees the top codes (Algorithm 1: h_bottom = E_bottom(x, e_top)), so each level
carries what the other does not (sec. 3.1).

Every layer of the decoder has an exact integer twin (hiercodec.exact.vqdecoder): 3x3 and 1x1
convolutions, ReLU, and transposed 4x4 stride-2 convolutions (Table 5's "upsampling conv filter
size 4"), which are 3x3 convolutions to 4x the channels followed by a pixel shuffle
(`transposed_as_conv`). The encoder and the quantizer run only at encode time and stay float
(DESIGN.md, exactness contract).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class ResidualStack(nn.Module):
    """`layers` blocks h <- h + conv1x1(relu(conv3x3(relu(h)))), then a ReLU: VQ-VAE's residual
    block (van den Oord et al. 2017, sec. 4.1), sized by Table 5 (hidden 128, residual units 64,
    2 layers)."""

    def __init__(self, channels: int, residual: int, layers: int):
        super().__init__()
        self.conv3 = nn.ModuleList(nn.Conv2d(channels, residual, 3, padding=1) for _ in range(layers))
        self.conv1 = nn.ModuleList(nn.Conv2d(residual, channels, 1) for _ in range(layers))

    def forward(self, h: torch.Tensor, trace: dict | None = None, name: str = "") -> torch.Tensor:
        for a, b in zip(self.conv3, self.conv1):
            r = a(F.relu(h))
            _record(trace, f"{name}r", r)
            h = h + b(F.relu(r))
            _record(trace, f"{name}h", h)
        return F.relu(h)


class VectorQuantizer(nn.Module):
    """Nearest-codebook quantization (eq. 1) with the codebook updated by exponential moving
    averages of the encoder outputs assigned to each code (sec. 2.1, decay gamma = 0.99) instead of
    the codebook loss; returns the straight-through quantized vectors, the codes and the commitment
    loss ||sg[e] - E(x)||^2 (eq. 2, weighted by beta by the caller).

    Beyond the paper: the codebook starts on encoder outputs of the first batch, and a code whose
    moving count falls below `restart_below` (unused for about 300 steps) is moved onto a random
    encoder output of the batch, so that short runs (a CPU, thousands of steps) use the codebook."""

    def __init__(self, codes: int, dim: int, decay: float = 0.99, eps: float = 1e-5, restart_below: float = 0.05):
        super().__init__()
        self.codes, self.dim, self.decay, self.eps, self.restart_below = codes, dim, decay, eps, restart_below
        embed = torch.randn(codes, dim)
        self.register_buffer("embed", embed)
        self.register_buffer("count", torch.ones(codes))
        self.register_buffer("total", embed.clone())
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d).float()
        codes = self.nearest(flat)
        q = self.embed[codes].view(b, h, w, d).permute(0, 3, 1, 2).to(z.dtype)
        if self.training:
            self._update(flat.detach(), codes)
        commitment = (q.detach() - z).pow(2).mean(dim=(1, 2, 3))
        return z + (q - z).detach(), codes.view(b, h, w), commitment

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codebook vector of each row of flat (N, D) (eq. 1)."""
        dist2 = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed.t() + self.embed.pow(2).sum(1)[None]
        return dist2.argmin(dim=1)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        if not self.started:  # start the codebook on encoder outputs (beyond the paper: no dead start)
            self.embed.copy_(flat[torch.randint(len(flat), (self.codes,), device=flat.device)])
            self.total.copy_(self.embed)
            self.started.fill_(True)
            codes = self.nearest(flat)
        onehot = F.one_hot(codes, self.codes).type(flat.dtype)
        n, s = onehot.sum(0), onehot.t() @ flat
        if dist.is_available() and dist.is_initialized():  # every process sees the same codebook
            dist.all_reduce(n)
            dist.all_reduce(s)
        self.count.mul_(self.decay).add_(n, alpha=1 - self.decay)
        self.total.mul_(self.decay).add_(s, alpha=1 - self.decay)
        # Laplace smoothing of the counts, so an unused code does not divide by zero
        total = self.count.sum()
        smoothed = (self.count + self.eps) / (total + self.codes * self.eps) * total
        self.embed.copy_(self.total / smoothed[:, None])
        dead = self.count < self.restart_below
        if dead.any() and not (dist.is_available() and dist.is_initialized()):
            pick = flat[torch.randint(len(flat), (int(dead.sum()),), device=flat.device)]
            self.embed[dead] = pick
            self.total[dead] = pick
            self.count[dead] = 1.0


def transposed_as_conv(weight: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A ConvTranspose2d(kernel 4, stride 2, padding 1) weight (Cin, Cout, 4, 4) as the weight of a
    3x3 convolution (4 Cout, Cin, 3, 3) (padding 1) whose output, pixel-shuffled by 2, is the same:
    output pixel (2i + a, 2j + b) reads input rows i - 1 + dy with kernel row TAP[a][dy] (columns
    likewise), output channel c of the 3x3 convolution is 4 c' + 2 a + b (torch's pixel_shuffle)."""
    cin, cout = weight.shape[:2]
    out = weight.new_zeros(cout, 2, 2, cin, 3, 3)
    for a in range(2):
        for dy, ky in TAP[a].items():
            for b in range(2):
                for dx, kx in TAP[b].items():
                    out[:, a, b, :, dy, dx] = weight[:, :, ky, kx].t()
    return out.reshape(4 * cout, cin, 3, 3), None if bias is None else bias.repeat_interleave(4)


# For output phase a (row 2i + a) of a 4x4 stride-2 padding-1 transposed convolution: input row
# i - 1 + dy contributes through kernel row TAP[a][dy] (2i + a = 2m - 1 + k).
TAP = ({0: 3, 1: 1}, {1: 2, 2: 0})


class Upsample(nn.Module):
    """Table 5's upsampling convolution: a transposed 4x4 convolution of stride 2, trained as
    such; export converts it with transposed_as_conv."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class VQVAE2(nn.Module):
    """Two-level VQ-VAE: bottom codes at 1/4, top codes at 1/8 of the input (sec. 3.1)."""

    def __init__(self, hidden: int = 128, residual: int = 64, layers: int = 2, codes: int = 512, dim: int = 64,
                 decay: float = 0.99, top_only_rate: float = 0.0):
        super().__init__()
        half = hidden // 2
        self.top_only_rate = top_only_rate
        # bottom encoder: x4 down by two 4x4 stride-2 convolutions (VQ-VAE sec. 4.1), then 3x3
        self.enc_b = nn.ModuleList([nn.Conv2d(3, half, 4, 2, 1), nn.Conv2d(half, hidden, 4, 2, 1),
                                    nn.Conv2d(hidden, hidden, 3, padding=1)])
        self.res_b = ResidualStack(hidden, residual, layers)
        # top encoder: x2 down from the bottom encoder's features
        self.enc_t = nn.ModuleList([nn.Conv2d(hidden, half, 4, 2, 1), nn.Conv2d(half, hidden, 3, padding=1)])
        self.res_t = ResidualStack(hidden, residual, layers)
        self.pre_t = nn.Conv2d(hidden, dim, 1)
        self.vq_t = VectorQuantizer(codes, dim, decay)
        # the top codes as the bottom encoder sees them (Algorithm 1, line 3)
        self.dec_t = nn.ModuleList([nn.Conv2d(dim, hidden, 3, padding=1)])
        self.res_dt = ResidualStack(hidden, residual, layers)
        self.up_dt = Upsample(hidden, dim)
        self.pre_b = nn.Conv2d(hidden + dim, dim, 1)
        self.vq_b = VectorQuantizer(codes, dim, decay)
        # the decoder: top vectors upsampled to the bottom map, both maps, residual stack, x4 up
        self.up_t = Upsample(dim, dim)
        self.dec_in = nn.Conv2d(2 * dim, hidden, 3, padding=1)
        self.res_d = ResidualStack(hidden, residual, layers)
        self.up1 = Upsample(hidden, half)
        self.up2 = Upsample(half, 3)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, 3, H, W) in [-1, 1], H and W multiples of 8 -> (quantized top, quantized bottom
        (straight-through), top codes, bottom codes, commitment loss per image)."""
        h = F.relu(self.enc_b[0](x))
        h = F.relu(self.enc_b[1](h))
        h_b = self.res_b(self.enc_b[2](h))
        t = self.res_t(self.enc_t[1](F.relu(self.enc_t[0](h_b))))
        q_t, codes_t, commit_t = self.vq_t(self.pre_t(t))
        d_t = self.up_dt(self.res_dt(self.dec_t[0](q_t)))
        q_b, codes_b, commit_b = self.vq_b(self.pre_b(torch.cat([h_b, d_t], dim=1)))
        return q_t, q_b, codes_t, codes_b, commit_t + commit_b

    def decode(self, q_t: torch.Tensor, q_b: torch.Tensor | None, trace: dict | None = None) -> torch.Tensor:
        """Quantized vectors (B, D, H/8, W/8) and (B, D, H/4, W/4) -> (B, 3, H, W) in about [-1, 1].
        q_b None: the top codes alone (a file cut after them), the bottom vectors taken as zeros."""
        u = self.up_t(q_t)
        _record(trace, "u", u)
        if q_b is None:
            q_b = torch.zeros_like(u)
        h = self.dec_in(torch.cat([u, q_b], dim=1))
        _record(trace, "h", h)
        h = self.res_d(h, trace, "d")
        y = self.up1(h)
        _record(trace, "y1", y)
        return self.up2(F.relu(y))

    def decode_codes(self, codes_t: torch.Tensor, codes_b: torch.Tensor | None) -> torch.Tensor:
        """The decoder from code indices (B, H/8, W/8), (B, H/4, W/4) or None."""
        q_t = self.vq_t.embed[codes_t].permute(0, 3, 1, 2)
        q_b = None if codes_b is None else self.vq_b.embed[codes_b].permute(0, 3, 1, 2)
        return self.decode(q_t, q_b)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction, commitment loss per image, top codes, bottom codes). In training, a
        fraction top_only_rate of the images is reconstructed from the top codes alone, so that a
        file cut after the top codes decodes to a useful image (beyond the paper)."""
        q_t, q_b, codes_t, codes_b, commitment = self.encode(x)
        if self.training and self.top_only_rate > 0:
            keep = (torch.rand(len(x), 1, 1, 1, device=x.device) >= self.top_only_rate).to(q_b.dtype)
            q_b = q_b * keep
        return self.decode(q_t, q_b), commitment, codes_t, codes_b


def reconstruction_pixels(y: torch.Tensor) -> np.ndarray:
    """The decoder's output (B, 3, H, W) about [-1, 1] -> uint8 pixels (B, H, W, 3), rounded as the
    exact decoder's last layer rounds (hiercodec.exact.vqdecoder: 128 y + 128, half up, clamped)."""
    return torch.clamp(torch.floor(y.detach().float() * 128 + 128.5), 0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _record(trace: dict | None, key: str, t: torch.Tensor) -> None:
    if trace is not None:
        trace.setdefault(key, []).append(t.detach())
