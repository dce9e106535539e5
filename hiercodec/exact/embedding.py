"""Exact embedding f_w: the integer twin of hiercodec.nn.embedding.Embedding.

Computed once per level and tile, in one pass, by both the encoder and the decoder; its output
(the residual stream, `frac` fractional bits) feeds the `cond.l` projections of a conditional exact
PixelCNN (hiercodec.exact.pixelcnn). Every value is an integer (module docstring of
hiercodec.exact.quant); with E the ELU table of the residual stream and E_b that of block b:

    h = C(Q(inp, pad1(x)));  with 0 in up_after: h = shuffle2(C(Q(up.0, h)))
    block b:  r = C(Q(conv1.b, pad1(E[h])));  h = C(h + Q(conv2.b, pad1(E_b[r])))
              after the blocks in down_after: h = C(Q(down.b, blocks2x2(pad_even(h))))
              after the blocks in up_after:   h = shuffle2(C(Q(up.b, h)))

pad1 is one row and column of zeros on every side (3x3 convolutions), pad_even a zero row
(column) at the bottom (right) of an odd height (width), blocks2x2 gathers each non-overlapping
2x2 block's channels in (channel, row, column) order, shuffle2 is torch's pixel_shuffle(2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hiercodec.exact.layers import lookup, qconv
from hiercodec.exact.quant import ACT_MAX, ACT_MIN, DTYPE
from hiercodec.nn.embedding import pad_even


def blocks2x2(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W), H and W even -> (B, 4C, H/2, W/2): each 2x2 block's values in the order of a
    flattened Conv2d weight (channel, row, column), so a 1x1 product is the stride-2 convolution."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


class ExactEmbedding:
    def __init__(self, tensors: dict[str, torch.Tensor], blocks: int, down_after, up_after, in_max: float):
        self.blocks = blocks
        self.inp = qconv(tensors, "inp", (3, 3), in_max)
        self.conv1 = [qconv(tensors, f"conv1.{b}", (3, 3)) for b in range(blocks)]
        self.conv2 = [qconv(tensors, f"conv2.{b}", (3, 3)) for b in range(blocks)]
        # a 2x2 stride-2 convolution is a 1x1 product over blocks2x2 of its input (same integers)
        self.down = {b: qconv(tensors, f"down.{b}", (1, 1)) for b in down_after}
        self.up = {b: qconv(tensors, f"up.{b}", (1, 1)) for b in up_after}
        self.elu = tensors["lut.elu"].to(DTYPE)
        self.elu_r = [tensors[f"lut.elu.{b}"].to(DTYPE) for b in range(blocks)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, Cin, H, W) integers (the input scale of the export) -> features (B, C, H', W')."""
        h = self.inp.conv(F.pad(x, (1, 1, 1, 1)))
        if 0 in self.up:
            h = F.pixel_shuffle(self.up[0].conv(h), 2)
        for b in range(self.blocks):
            r = self.conv1[b].conv(F.pad(lookup(self.elu, h), (1, 1, 1, 1)))
            r = self.conv2[b].conv(F.pad(lookup(self.elu_r[b], r), (1, 1, 1, 1)), clamp=False)
            h = r.add_(h).clamp_(ACT_MIN, ACT_MAX)
            if b + 1 in self.down:
                h = self.down[b + 1].conv(blocks2x2(pad_even(h)))
            if b + 1 in self.up:
                h = F.pixel_shuffle(self.up[b + 1].conv(h), 2)
        return h

