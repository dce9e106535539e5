"""The embedding f_w of Kolesnikov & Lampert 2017 (sec. 3.3): a non-autoregressive residual network
over the level above, computed once per level, whose output biases every layer of a conditional
PixelCNN (hiercodec.nn.gated.GatedPixelCNN, `features`).

"Almost identical to the architecture of PixelCNN++ ... only one flow of residual blocks and [the
convolutions are] not shifted" (sec. 3.3): an input 3x3 convolution, then `blocks` residual blocks
h <- h + conv(elu(conv(elu(h)))) with 3x3 convolutions, with optional x2 downsampling (a 2x2
convolution of stride 2) after the blocks listed in `down_after` and x2 upsampling (a 1x1
convolution to 4C channels and a pixel shuffle) after those in `up_after` (0: after the input
convolution, before the first block, where De Fauw et al. 2019 upsample, appendix A), as the Pyramid
PixelCNN's embedding does (sec. 4.2: 15 blocks, down after block 3, up after 9 and 12). The output
is the residual stream h itself. Every operation has an exact integer twin
(hiercodec.exact.embedding): 3x3 convolutions with zero padding, strided convolutions of
non-overlapping 2x2 blocks, pixel shuffles and ELU by lookup table.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_even(x: torch.Tensor) -> torch.Tensor:
    """Zero-pad height and width to even sizes (bottom, right) before a x2 downsampling."""
    return F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))


class Embedding(nn.Module):
    def __init__(self, in_channels: int, channels: int, blocks: int, down_after: tuple[int, ...] = (),
                 up_after: tuple[int, ...] = (), dropout: float = 0.0):
        super().__init__()
        self.blocks, self.dropout = blocks, dropout
        self.down_after, self.up_after = tuple(down_after), tuple(up_after)
        self.inp = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.conv1 = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(blocks))
        self.conv2 = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(blocks))
        self.down = nn.ModuleDict({str(b): nn.Conv2d(channels, channels, 2, stride=2) for b in self.down_after})
        self.up = nn.ModuleDict({str(b): nn.Conv2d(channels, 4 * channels, 1) for b in self.up_after})

    @property
    def scale(self) -> int:
        """Output size / input size (a power of two, or its inverse as a negative exponent)."""
        return len(self.up_after) - len(self.down_after)

    def forward(self, x: torch.Tensor, trace: dict[str, list[torch.Tensor]] | None = None) -> torch.Tensor:
        """x (B, Cin, H, W) scaled to about [-1, 1] -> features (B, C, H', W'). `trace` collects the
        residual stream after every block ("e_h") and the inner activations ("e_r") for export."""
        h = self.inp(x)
        if "0" in self.up:
            h = F.pixel_shuffle(self.up["0"](h), 2)
        _record(trace, "e_h", h)
        for b in range(self.blocks):
            r = self.conv1[b](F.elu(h))
            _record(trace, "e_r", r)
            # dropout inside the residual branch, where PixelCNN++ puts it (sec. 3.3 of the paper)
            h = h + self.conv2[b](F.dropout(F.elu(r), self.dropout, self.training))
            if str(b + 1) in self.down:
                h = self.down[str(b + 1)](pad_even(h))
            if str(b + 1) in self.up:
                h = F.pixel_shuffle(self.up[str(b + 1)](h), 2)
            _record(trace, "e_h", h)
        return h


def _record(trace: dict | None, key: str, t: torch.Tensor) -> None:
    if trace is not None:
        trace.setdefault(key, []).append(t.detach())
