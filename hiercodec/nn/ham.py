"""Float networks of the hierarchical autoregressive models with auxiliary decoders of De Fauw,
Dieleman & Simonyan 2019 (HAM), for training: the encoder with its VQ bottleneck, the feed-forward
auxiliary decoder (sec. 4.1) and the masked self-prediction teacher (sec. 4.2).

Every residual network is the ResNet v2 "full pre-activation" form without batch normalisation,
each block ReLU, 3x3 convolution, ReLU, 1x1 convolution (appendix A): hiercodec.nn.vqvae's
ResidualStack. The encoder downsamples at its end with strided convolutions; the auxiliary
decoder upsamples at its beginning with subpixel convolutions (Shi et al. 2016; appendix A.1.1). Codebooks are updated by exponentially smoothed k-means (sec. 2: VQ-VAE's moving
averages, hiercodec.nn.vqvae.VectorQuantizer).

Masked self-prediction (sec. 4.2, eq. 3): the teacher sees its input in one-hot form with square
regions of side 2s + 1 set to all zeros (so that a masked position differs from a black one,
appendix A) and predicts the value at the centre of each region; the student (the encoder and an
auxiliary decoder reading its codes) sees the input unmasked and is trained to match the
teacher's predictions at those centres (distillation, Hinton et al. 2015). The number of regions
per image depends on their size (appendix A: `MASKS_PER_IMAGE`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hiercodec.nn.embedding import Embedding
from hiercodec.nn.vqvae import ResidualStack, VectorQuantizer

# appendix A: "For mask sizes 1x1 and 3x3 we use 30 masks. For mask sizes 5x5 and 7x7 we use 10
# masks. For sizes 9, 11, 13 and 15 we use 3 masks, and for 17 and 19 we use a single mask."
MASKS_PER_IMAGE = {1: 30, 3: 30, 5: 10, 7: 10, 9: 3, 11: 3, 13: 3, 15: 3, 17: 1, 19: 1}


def one_hot(values: torch.Tensor, k: int) -> torch.Tensor:
    """Integer values (B, H, W, C) in 0 ... k-1 -> one-hot planes (B, C k, H, W), channel c's k
    planes together (appendix A: images and codes enter the MSP teacher and encoder one-hot)."""
    b, h, w, c = values.shape
    planes = F.one_hot(values.long(), k).to(torch.float32)  # (B, H, W, C, k)
    return planes.permute(0, 3, 4, 1, 2).reshape(b, c * k, h, w)


def msp_mask(batch: int, height: int, width: int, size: int, count: int | None = None,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of eq. 3 for a batch: (mask (B, 1, H, W) float, 0 inside every masked square and 1
    elsewhere; centres (B, count, 2) long, row and column of each square's centre). Squares have
    side `size` = 2s + 1 and are clipped at the borders; `count` squares per image, by default
    appendix A's number for the size."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"mask size {size} must be odd and positive (2s + 1)")
    count = MASKS_PER_IMAGE.get(size, 1) if count is None else count
    s = size // 2
    rows = torch.randint(0, height, (batch, count), generator=generator)
    cols = torch.randint(0, width, (batch, count), generator=generator)
    i = torch.arange(height)[None, None, :, None]
    j = torch.arange(width)[None, None, None, :]
    inside = ((i - rows[..., None, None]).abs() <= s) & ((j - cols[..., None, None]).abs() <= s)  # (B, n, H, W)
    mask = (~inside.any(dim=1, keepdim=True)).to(torch.float32)
    return mask, torch.stack([rows, cols], dim=-1)


def at_centres(t: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """The vectors of t (B, D, H, W) at centres (B, n, 2): (B, n, D)."""
    b = torch.arange(t.shape[0], device=t.device)[:, None]
    return t.permute(0, 2, 3, 1)[b, centres[..., 0], centres[..., 1]]


class HAMEncoder(nn.Module):
    """Input (B, in_channels, H, W) -> a 3x3 convolution to `hidden`, `layers` full pre-activation
    residual blocks, `down` 4x4 stride-2 convolutions (the downsampling at the end, appendix
    A.1.1; two where a level quarters the resolution, A.2.1), then the VQ bottleneck of `codes`
    entries (sec. 2). Returns the straight-through code vectors (B, code_dim, H/2^down, W/2^down),
    the codes (B, H/2^down, W/2^down) and the commitment loss per image (B,)."""

    def __init__(self, in_channels: int, hidden: int, residual: int, layers: int, codes: int, code_dim: int,
                 down: int = 1, decay: float = 0.99):
        super().__init__()
        self.inp = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.res = ResidualStack(hidden, residual, layers)
        steps = [nn.Conv2d(hidden, hidden, 4, stride=2, padding=1) for _ in range(down - 1)]
        self.down = nn.ModuleList([*steps, nn.Conv2d(hidden, code_dim, 4, stride=2, padding=1)])
        self.vq = VectorQuantizer(codes, code_dim, decay)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.res(self.inp(x))
        for step in self.down[:-1]:
            h = F.relu(step(h))
        return self.vq(self.down[-1](h))


class AuxiliaryDecoder(nn.Module):
    """Code vectors (B, code_dim, h, w) -> (B, out_channels, 2^up h, 2^up w): a residual network
    that upsamples at its beginning by subpixel convolutions (appendix A.1.1), then a 1x1
    convolution to `out_channels`: 3 pixel values in [-1, 1] for the feed-forward decoder (MSE,
    sec. 4.1), or C k logits for a categorical output (the codes of the level below, sec. 4.1; the
    MSP student's predictions, sec. 4.2).

    Its body is hiercodec's embedding network (hiercodec.nn.embedding: ELU blocks of two 3x3
    convolutions) rather than appendix A's ReLU / 3x3 / ReLU / 1x1 blocks, for two reasons: the
    feed-forward decoder's reconstruction is a decoding of lossy files, so it needs the exact
    integer twin the embedding has (hiercodec.exact.embedding); and the modulator of the
    autoregressive decoder is the same network over the same codes, so it starts from the trained
    auxiliary decoder (the hand-over of hiercodec.train.ham)."""

    def __init__(self, code_dim: int, hidden: int, layers: int, out_channels: int, up: int = 1):
        super().__init__()
        self.body = Embedding(code_dim, hidden, layers, (), tuple(range(up)))
        self.out = nn.Conv2d(hidden, out_channels, 1)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(q))


class MSPTeacher(nn.Module):
    """The masked self-prediction teacher (sec. 4.2): a residual network over the masked one-hot
    input (B, C k, H, W) giving C k logits per position, the distribution of each channel's value
    at the centre of a masked square. It never sees a masked value: `forward` multiplies its input
    by the mask itself."""

    def __init__(self, channels: int, k: int, hidden: int, residual: int, layers: int):
        super().__init__()
        self.channels, self.k = channels, k
        self.inp = nn.Conv2d(channels * k, hidden, 3, padding=1)
        self.res = ResidualStack(hidden, residual, layers)
        self.out = nn.Conv2d(hidden, channels * k, 1)

    def forward(self, onehot: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.res(self.inp(onehot * mask)))


def centre_logits(logits: torch.Tensor, centres: torch.Tensor, channels: int, k: int) -> torch.Tensor:
    """Logits (B, C k, H, W) at the centres (B, n, 2) as (B, n, C, k)."""
    b, n = centres.shape[:2]
    return at_centres(logits, centres).reshape(b, n, channels, k)


def msp_losses(teacher: MSPTeacher, student_logits: torch.Tensor, values: torch.Tensor, size: int,
               count: int | None = None, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(teacher loss, distillation loss) in nats per centre and channel for integer values
    (B, H, W, C) in 0 ... k-1, with the student's logits (B, C k, H, W) from the unmasked input.
    The teacher learns log p(x_ij | x . m) at the centres (eq. 3); the student learns the teacher's
    predictive distribution there (the cross-entropy to it; no gradient reaches the teacher)."""
    b, h, w, c = values.shape
    k = teacher.k
    mask, centres = msp_mask(b, h, w, size, count, generator)
    mask, centres = mask.to(student_logits.device), centres.to(student_logits.device)
    teacher_logits = centre_logits(teacher(one_hot(values, k), mask), centres, c, k)
    target = at_centres(values.permute(0, 3, 1, 2), centres)  # (B, n, C)
    teacher_loss = F.cross_entropy(teacher_logits.reshape(-1, k), target.reshape(-1).long())
    soft = F.softmax(teacher_logits.detach(), dim=-1)
    student = F.log_softmax(centre_logits(student_logits, centres, c, k), dim=-1)
    return teacher_loss, -(soft * student).sum(dim=-1).mean()
