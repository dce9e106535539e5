"""Exact gated PixelCNN: the integer twin of hiercodec.nn.gated.GatedPixelCNN.

`forward` is the encoder's one pass over whole tiles. `Decoder` is the decoder's incremental form
(Ramachandran et al. 2017's caching, made safe by exact arithmetic): at the start of row i it computes
the vertical stack of row i for every layer (it depends only on rows above), then for each position
only the horizontal stack of that position, from the cached current row of each layer. The two agree
bit for bit because both compute the same integer sums (tests/test_exact.py checks it).

Stored tensors (layer names as in hiercodec.nn.gated.GatedPixelCNN): `<layer>.w` (Cout, Cin*kh*kw) int16,
`<layer>.b` int64 (bias at accumulator scale plus rounding offset), `<layer>.shift` int32; `out2.lo`,
`out2.hi` per-channel clamps; `lut.gate.<stack><l>.tanh|sig`, `lut.elu`, and the mixture's luts.
A network with attention (Razavi et al. 2019 sec. 3.2) also has `attn.<l>.*` after gated layer l
(hiercodec.exact.attention), which reads the head's `lut.exp`; the decoder keeps each attention
layer's keys and values of every earlier position of the tiles.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from hiercodec import engine
from hiercodec.exact.attention import AttentionCache, ExactAttention, attention_layers
from hiercodec.exact.layers import Gate, QConv, lookup, qconv, subset
from hiercodec.exact.quant import ACT_MAX, ACT_MIN, DTYPE, GATE_FRAC, threads
from hiercodec.nn.gated import H_IN, H_K, V_IN, V_K, causal_pad


class ExactPixelCNN:
    """in_channels input planes of integers |x| <= in_max (pixel - 128 for pixels, 2 psi - 15 for the
    4-bit gray level); with `cond.l` layers in the tensors it is conditional: `features` (B, E, H, W)
    integers (an exact embedding's output) are projected per layer l = 0 (input layer) ... L to 4C
    biases, the first 2C added to the vertical stack's pre-activation, the last 2C to the
    horizontal one's (hiercodec.nn.gated). With `attn.<l>.*` in the tensors, attention follows
    gated layer l; `heads` (and `key_channels`, else inferred) must then be given: the tensors
    hold only their product."""

    def __init__(self, tensors: dict[str, torch.Tensor], channels: int, layers: int, h_frac: int,
                 in_channels: int = 3, in_max: float = 128, heads: int | None = None,
                 key_channels: int | None = None):
        self.channels, self.layers, self.in_channels, self.in_max = channels, layers, in_channels, in_max
        self.attn = self._attention(tensors, layers, heads, key_channels)

        def conv(name: str, kernel: tuple[int, int], in_max: float = -ACT_MIN) -> QConv:
            return qconv(tensors, name, kernel, in_max)

        def gate(name: str) -> Gate:
            return Gate(tensors[f"lut.gate.{name}.tanh"], tensors[f"lut.gate.{name}.sig"], channels)

        self.v_in = conv("v_in", V_IN, in_max=in_max)
        self.h_in = conv("h_in", H_IN, in_max=in_max)
        self.link_in = conv("link_in", (1, 1))
        self.v = [conv(f"v.{i}", V_K) for i in range(layers)]
        self.h = [conv(f"h.{i}", H_K) for i in range(layers)]
        self.link = [conv(f"link.{i}", (1, 1)) for i in range(layers)]
        self.res = [conv(f"res.{i}", (1, 1)) for i in range(layers)]
        self.out1 = conv("out1", (1, 1))
        self.out2 = conv("out2", (1, 1))
        self.cond = [conv(f"cond.{i}", (1, 1)) for i in range(layers + 1)] if "cond.0.w" in tensors else None
        self.gate_v = [gate(f"v{i}") for i in range(layers)]  # the last vertical output is never used
        self.gate_h = [gate(f"h{i}") for i in range(layers + 1)]
        self.elu = tensors["lut.elu"].to(DTYPE)
        # the input layer's gated output (GATE_FRAC bits) joins the residual stream at h_frac bits
        self.h0_scale = 2.0 ** -(GATE_FRAC - h_frac)
        self.h0_offset = float(1 << (GATE_FRAC - h_frac - 1)) if GATE_FRAC > h_frac else 0.0

    @staticmethod
    def _attention(tensors: dict[str, torch.Tensor], layers: int, heads: int | None,
                   key_channels: int | None) -> dict[int, ExactAttention]:
        found = attention_layers(tensors)
        if not found:
            return {}
        if found[-1] >= layers:
            raise ValueError(f"attention after layer {found[-1]} of a network of {layers} layers")
        if heads is None:
            raise ValueError("the network has attention layers: give the number of heads")
        if key_channels is None:
            key_channels = tensors[f"attn.{found[0]}.q.w"].shape[0] // heads
        return {l: ExactAttention(subset(tensors, f"attn.{l}."), heads, key_channels, tensors["lut.exp"])
                for l in found}

    def biases(self, features: torch.Tensor | None) -> list[tuple]:
        """Per layer 0 ... L the (vertical, horizontal) biases from features (B, E, H, W), each
        (B, 2C, H, W) unclamped integers; (0, 0) for an unconditional network."""
        if self.cond is None:
            if features is not None:
                raise ValueError("features given to an unconditional network")
            return [(0.0, 0.0)] * (self.layers + 1)
        if features is None:
            raise ValueError("a conditional network needs features")
        c2 = 2 * self.channels
        return [(b[:, :c2], b[:, c2:]) for b in (c.conv(features, clamp=False) for c in self.cond)]

    def _h0(self, g: torch.Tensor) -> torch.Tensor:
        return torch.floor((g + self.h0_offset) * self.h0_scale)

    def _head(self, h: torch.Tensor, dense: bool) -> torch.Tensor:
        if dense:
            return self.out2.dense(lookup(self.elu, self.out1.dense(h)))
        return self.out2.conv(lookup(self.elu, self.out1.conv(h)))

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, in_channels, H, W) integers (float64), features as in `biases` -> parameters
        (B, out, H, W) integers."""
        bias = self.biases(features)
        vp = self.v_in.conv(causal_pad(x, "v_in"), clamp=False).add_(bias[0][0]).clamp_(ACT_MIN, ACT_MAX)
        hp = (self.h_in.conv(causal_pad(x, "h_in"), clamp=False) + self.link_in.conv(vp, clamp=False)
              + bias[0][1]).clamp_(ACT_MIN, ACT_MAX)
        # the input layer's vertical stack feeds the first gated layer only (none: no v gate)
        v, h = self.gate_v[0](vp) if self.layers else None, self._h0(self.gate_h[0](hp))
        for i in range(self.layers):
            cv, ch = bias[i + 1]
            vp = self.v[i].conv(causal_pad(v, "v"), clamp=False).add_(cv).clamp_(ACT_MIN, ACT_MAX)
            hp = (self.h[i].conv(causal_pad(h, "h"), clamp=False) + self.link[i].conv(vp, clamp=False)
                  + ch).clamp_(ACT_MIN, ACT_MAX)
            if i + 1 < self.layers:
                v = self.gate_v[i + 1](vp)
            h = (h + self.res[i].conv(self.gate_h[i + 1](hp), clamp=False)).clamp_(ACT_MIN, ACT_MAX)
            if i in self.attn:
                h = self.attn[i].forward(h)
        return self._head(h, dense=False)

    def decoder(self, batch: int, width: int, features: torch.Tensor | None = None) -> "Decoder":
        return Decoder(self, batch, width, features)


def channels_last(conv: QConv) -> QConv:
    """The same layer with weight columns in (dy, dx, cin) order, for inputs gathered as views of
    channels-last caches (same integers, same sums: only the order of the terms changes)."""
    kh, kw = conv.kernel
    w = conv.weight.reshape(conv.weight.shape[0], -1, kh, kw).permute(0, 2, 3, 1).reshape(conv.weight.shape[0], -1)
    return replace(conv, weight=w.contiguous())


class Decoder:
    """Incremental decoding state of `batch` tiles `width` wide, filled in raster order: row(i) once
    per row, then step(j) and set_pixel(j) for each column of that row.

    Caches hold only the rows still needed, so memory does not grow with the tile height. Those the
    step reads are channels last, so that the inputs of one position are a strided view (no copy):
    image rows i-3..i at xcl[:, 0..3], x[i, j] at xcl[:, 3, j + 3, :]; the current row of each h_l
    at hrow[l][:, j + 1, :]. The vertical stack (read only by the row pass) stays channels first:
    v_l rows i-1, i at vcache[l][:, :, 0..1, 1:-1]. Attention layers keep the keys and values of
    every position stepped so far (`attn`, one AttentionCache per layer, growing with the rows)."""

    def __init__(self, net: ExactPixelCNN, batch: int, width: int, features: torch.Tensor | None = None,
                 row_threads: int | None = None):
        self.net, self.b, self.features, self.width = net, batch, features, width
        self.i = 0
        self.attn: dict[int, AttentionCache] = {l: a.cache(batch, 4 * width) for l, a in net.attn.items()}
        self.row_threads = row_threads or engine.thread_count()
        c = net.channels
        self.h_in = channels_last(net.h_in)
        self.h = [channels_last(conv) for conv in net.h]
        self.xcl = torch.zeros(batch, 4, width + 6, net.in_channels, dtype=DTYPE)
        self.vcache = [torch.zeros(batch, c, 2, width + 2, dtype=DTYPE) for _ in range(net.layers)]
        self.link: list[torch.Tensor] = [None] * (net.layers + 1)  # (width, batch, 2C), set by row()
        self.hrow = [torch.zeros(batch, width + 1, c, dtype=DTYPE) for _ in range(net.layers + 1)]

    def row(self, i: int) -> None:
        """Vertical stack of row i (needs rows < i of the image) and its links into the h stack.
        Its products are large, so it runs on `row_threads` torch threads; the steps, which are
        small and overhead-bound, on one. Exact mode makes the thread count change speed only."""
        with threads(self.row_threads):
            self._row(i)

    def _row(self, i: int) -> None:
        n = self.net
        self.i = i
        if i > 0:  # roll the caches down one row
            self.xcl[:, :3] = self.xcl[:, 1:].clone()
            self.xcl[:, 3] = 0
            for v in self.vcache:
                v[:, :, 0] = v[:, :, 1]
        # the conditioning biases of row i: features are int16 between rows (memory), exact as float64
        bias = n.biases(None if self.features is None else self.features[:, :, i : i + 1].to(DTYPE))
        vp = n.v_in.conv(self.xcl[:, :3].permute(0, 3, 1, 2), clamp=False).add_(bias[0][0]).clamp_(ACT_MIN, ACT_MAX)
        self.link[0] = (n.link_in.conv(vp, clamp=False) + bias[0][1])[:, :, 0].permute(2, 0, 1).contiguous()
        if n.layers:
            self.vcache[0][:, :, 1, 1:-1] = n.gate_v[0](vp)[:, :, 0]
        for l in range(n.layers):
            cv, ch = bias[l + 1]
            vp = n.v[l].conv(self.vcache[l], clamp=False).add_(cv).clamp_(ACT_MIN, ACT_MAX)
            self.link[l + 1] = (n.link[l].conv(vp, clamp=False) + ch)[:, :, 0].permute(2, 0, 1).contiguous()
            if l + 1 < n.layers:
                self.vcache[l + 1][:, :, 1, 1:-1] = n.gate_v[l + 1](vp)[:, :, 0]
        for h in self.hrow:
            h.zero_()

    def step(self, j: int) -> torch.Tensor:
        """Parameters (batch, 10K) of column j of the current row; every earlier pixel must be set."""
        n = self.net
        cols = self.xcl[:, 3, j : j + 3].reshape(self.b, -1)
        hp = self.h_in.dense(cols, clamp=False).add_(self.link[0][j]).clamp_(ACT_MIN, ACT_MAX)
        h = n._h0(n.gate_h[0](hp))
        self.hrow[0][:, j + 1] = h
        for l in range(n.layers):
            cols = self.hrow[l][:, j : j + 2].reshape(self.b, -1)
            hp = self.h[l].dense(cols, clamp=False).add_(self.link[l + 1][j]).clamp_(ACT_MIN, ACT_MAX)
            h = n.res[l].dense(n.gate_h[l + 1](hp), clamp=False).add_(h).clamp_(ACT_MIN, ACT_MAX)
            if l in n.attn:
                h = n.attn[l].step(h, self.attn[l], self.i * self.width + j)
            self.hrow[l + 1][:, j + 1] = h
        return n._head(h, dense=True)

    def set_pixel(self, j: int, inputs: torch.Tensor) -> None:
        """inputs: (batch, in_channels) network inputs (integers, e.g. pixel - 128) of column j of
        the current row."""
        self.xcl[:, 3, j + 3] = inputs.to(DTYPE)
