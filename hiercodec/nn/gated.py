"""Float gated PixelCNN (van den Oord et al. 2016, as used by every paper in ../shared/papers):
a vertical stack that sees the rows above and a horizontal stack that sees the pixels to the left,
with gated activations tanh(a) * sigmoid(b) and a vertical-to-horizontal link.

Every convolution is causal by construction (padding and kernel shape, no masks), and the shapes are
chosen so that the exact integer version (hiercodec.exact.pixelcnn) can decode incrementally:
- the vertical stack of row i depends only on image rows < i, so it is computed once per row;
- the horizontal stack at (i, j) depends on row i only through columns < j of the image.

Conditioning (`features`, a tensor (B, E, H, W) computed once from the levels above, e.g. by
hiercodec.nn.embedding.Embedding): every layer l has its own 1x1 projection `cond.l` of the features
to 4C channels, whose first 2C bias the vertical stack's pre-activations and last 2C the horizontal
stack's. That is Kolesnikov & Lampert 2017 sec. 3.3 ("bias the convolutions of every residual block
by adding the computed embedding"), and the modulator of De Fauw et al. 2019. The features do not
depend on the level being coded, so a position may read them anywhere.

Attention (`attention_every` = n > 0): after every n-th gated layer (layer l, 0-based, with
(l + 1) % n == 0) the residual stream gets h = h + attn.l(h), causal multi-head self-attention over
raster positions (hiercodec.nn.attention; Razavi et al. 2019 sec. 3.2 puts it every five layers of
the top prior). It keeps the network causal: h at p depends on inputs strictly before p, and the
attention at p reads h at positions <= p only. With n = 0 the network, its state dict and its
outputs are exactly those of a network built without these arguments.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hiercodec.nn.attention import CausalSelfAttention

# Kernel geometry shared with the exact implementation. (rows, cols) and the padding that makes
# each convolution causal: (left, right, top, bottom) for F.pad; negative bottom/right crops.
V_IN = (3, 7)  # input layer, vertical: rows i-3..i-1, cols j-3..j+3
H_IN = (1, 3)  # input layer, horizontal: row i, cols j-3..j-1
V_K = (2, 3)  # gated layers, vertical: rows i-1..i of the previous vertical stack, cols j-1..j+1
H_K = (1, 2)  # gated layers, horizontal: row i, cols j-1..j of the previous horizontal stack


def causal_pad(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Pad so that a valid convolution of the matching kernel is causal (see kernel table)."""
    if kind == "v_in":
        return F.pad(x, (3, 3, 3, 0))[:, :, :-1]
    if kind == "h_in":
        return F.pad(x, (3, 0, 0, 0))[:, :, :, :-1]
    if kind == "v":
        return F.pad(x, (1, 1, 1, 0))
    if kind == "h":
        return F.pad(x, (1, 0, 0, 0))
    raise ValueError(kind)


def gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedPixelCNN(nn.Module):
    """Input (B, Cin, H, W) scaled to about [-1, 1]; output (B, Cout, H, W) per-pixel parameters that
    depend on input pixels strictly before each pixel in raster order (all channels of it excluded)."""

    def __init__(self, in_channels: int, out_channels: int, channels: int = 64, layers: int = 6,
                 head: int = 128, dropout: float = 0.0, features: int = 0, attention_every: int = 0,
                 heads: int = 4, key_channels: int = 16):
        super().__init__()
        c2 = 2 * channels
        self.channels, self.layers, self.dropout = channels, layers, dropout
        self.v_in = nn.Conv2d(in_channels, c2, V_IN)
        self.h_in = nn.Conv2d(in_channels, c2, H_IN)
        self.link_in = nn.Conv2d(c2, c2, 1, bias=False)
        self.v = nn.ModuleList(nn.Conv2d(channels, c2, V_K) for _ in range(layers))
        self.h = nn.ModuleList(nn.Conv2d(channels, c2, H_K) for _ in range(layers))
        self.link = nn.ModuleList(nn.Conv2d(c2, c2, 1, bias=False) for _ in range(layers))
        self.res = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(layers))
        self.out1 = nn.Conv2d(channels, head, 1)
        self.out2 = nn.Conv2d(head, out_channels, 1)
        self.cond = nn.ModuleList(nn.Conv2d(features, 2 * c2, 1) for _ in range(layers + 1)) if features else None
        # registered last and only when asked for: without attention the state dict is unchanged
        self.attention_every = attention_every
        self.attn = nn.ModuleDict({
            str(l): CausalSelfAttention(channels, heads, key_channels, dropout)
            for l in range(layers) if (l + 1) % attention_every == 0
        }) if attention_every > 0 else None

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None,
                trace: dict[str, list[torch.Tensor]] | None = None) -> torch.Tensor:
        """`trace`, when given, collects the tensors whose ranges export calibrates: pre-activations
        of each layer's stacks ("vp", "hp", conditioning included), the residual stream ("h", also
        after each attention), the attention layers' tensors ("attn.<l>.q" etc., see
        hiercodec.nn.attention) and the head ("o1"). `features` is required exactly when the
        network was built with them."""
        if (features is None) != (self.cond is None):
            raise ValueError("features must be given exactly to a network built with features > 0")
        cv = ch = [0] * (self.layers + 1)
        if self.cond is not None:
            cv, ch = zip(*(c(features).chunk(2, dim=1) for c in self.cond))
        vp = self.v_in(causal_pad(x, "v_in")) + cv[0]
        hp = self.h_in(causal_pad(x, "h_in")) + self.link_in(vp) + ch[0]
        v, h = gate(vp), gate(hp)
        _record(trace, vp=vp, hp=hp, h=h)
        for i in range(self.layers):
            vp = self.v[i](causal_pad(v, "v")) + cv[i + 1]
            hp = self.h[i](causal_pad(h, "h")) + self.link[i](vp) + ch[i + 1]
            v = gate(vp)
            # dropout inside the residual branch, before its second convolution, as PixelCNN++
            # does (Kolesnikov & Lampert 2017, sec. 3); identity in eval mode, so export ignores it
            h = h + self.res[i](F.dropout(gate(hp), self.dropout, self.training))
            _record(trace, vp=vp, hp=hp, h=h)
            if self.attn is not None and str(i) in self.attn:
                h = h + self.attn[str(i)](h, trace, f"attn.{i}.")
                _record(trace, h=h)
        o1 = self.out1(h)
        _record(trace, o1=o1)
        # the head in float32 also under bfloat16 autocast: its outputs are the mixture's means and
        # scales (or logits), where 8 bits of mantissa cost bits (docs/RESULTS.md section 7)
        with torch.autocast(x.device.type, enabled=False):
            return self.out2(F.elu(o1.to(self.out2.weight.dtype)))


def _record(trace: dict | None, **tensors: torch.Tensor) -> None:
    if trace is not None:
        for k, t in tensors.items():
            trace.setdefault(k, []).append(t.detach())
