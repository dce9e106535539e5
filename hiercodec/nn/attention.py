"""Causal multi-head self-attention over raster-order positions, for the gated PixelCNN of a top
prior (Razavi et al. 2019 sec. 3.2: "the residual gated convolution layers of PixelCNN are
interspersed with causal multi-headed attention every five layers", with "dropout on the logits of
each attention matrix"; the attention is Vaswani et al. 2017's, as PixelSNAIL uses it).

The module reads the residual stream h (B, C, H, W) of hiercodec.nn.gated.GatedPixelCNN and returns
a residual update (the caller adds it to h). Position p = i * W + j attends to every position j <= p,
itself included: h at p depends only on inputs strictly before p, so reading h_p keeps the
network causal. q, k and v are 1x1 convolutions of h, the output a 1x1 convolution of the
heads' weighted sums of v; scores are scaled by 1/sqrt(key_channels).

Its exact twin is hiercodec.exact.attention.ExactAttention: there the 1/sqrt(key_channels) is folded
into q's weights, which is why `trace` records q already scaled.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class CausalSelfAttention(nn.Module):
    """Multi-head attention of each raster position over positions j <= p (Razavi et al. 2019
    sec. 3.2). Training-mode dropout drops attention logits (sets them to -inf) with probability
    `dropout`; a position whose every logit was dropped gets a zero update."""

    def __init__(self, channels: int, heads: int, key_channels: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.key_channels, self.dropout = heads, key_channels, dropout
        self.scale = 1.0 / math.sqrt(key_channels)
        inner = heads * key_channels
        self.q = nn.Conv2d(channels, inner, 1)
        self.k = nn.Conv2d(channels, inner, 1)
        self.v = nn.Conv2d(channels, inner, 1)
        self.out = nn.Conv2d(inner, channels, 1)

    def forward(self, h: torch.Tensor, trace: dict[str, list[torch.Tensor]] | None = None,
                name: str = "") -> torch.Tensor:
        """h (B, C, H, W) -> residual update (B, C, H, W). `trace` collects, under `name` + "q",
        "k", "v" and "o", the tensors whose ranges export calibrates: q (scale included), k, v,
        and the heads' outputs o before the output convolution."""
        b, _, height, width = h.shape
        p, nh, dk = height * width, self.heads, self.key_channels
        q = self.q(h) * self.scale
        k, v = self.k(h), self.v(h)
        _record(trace, name, q=q, k=k, v=v)
        q = q.reshape(b, nh, dk, p).transpose(2, 3)  # (B, heads, P, dk)
        v = v.reshape(b, nh, dk, p).transpose(2, 3)
        logits = torch.matmul(q, k.reshape(b, nh, dk, p))  # (B, heads, P query, P key)
        masked = ~causal_mask(p, h.device)
        if self.training and self.dropout > 0:
            masked = masked | (torch.rand_like(logits) < self.dropout)
        attn = torch.softmax(logits.masked_fill(masked, float("-inf")), dim=-1)
        if self.training and self.dropout > 0:
            # rows with every logit dropped are NaN after the softmax: no update there
            attn = torch.where(masked.all(dim=-1, keepdim=True), torch.zeros_like(attn), attn)
        o = torch.matmul(attn, v).transpose(2, 3).reshape(b, nh * dk, height, width)
        _record(trace, name, o=o)
        return self.out(o)


def causal_mask(positions: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(P, P) bool, True where query position p may read key position j (j <= p)."""
    return torch.ones(positions, positions, dtype=torch.bool, device=device).tril_()


def _record(trace: dict | None, name: str, **tensors: torch.Tensor) -> None:
    if trace is not None:
        for key, t in tensors.items():
            trace.setdefault(name + key, []).append(t.detach())
