"""Exact causal multi-head self-attention: the integer twin of hiercodec.nn.attention (Razavi et al.
2019 sec. 3.2: causal multi-headed attention interspersed with the gated layers of the top prior).

Every value is an integer (module docstring of hiercodec.exact.quant). With h the residual stream
(h_frac fractional bits), per head and position p, keys and values of positions j <= p:

    q, k, v = Q(attn.l.q, h), Q(attn.l.k, h), Q(attn.l.v, h)     1x1, 12 bits, own fractional bits;
                                                                   q's weights hold 1/sqrt(key_channels)
    s_j  = sum_d q_d k_dj                                          |s| <= key_channels 2^22
    z_j  = clamp(floor((s_j + r) 2^-logit_shift), LOGIT_MIN, LOGIT_MAX)     1/16 nat, r rounds half up
    w_j  = EXP[z_j - max_{j<=p} z_j + 4094]                        EXP = round(2^16 exp(d / 16)), lut.exp
    o_d  = floor((2 sum_j w_j v_dj + sum_j w_j) / (2 sum_j w_j))  the weighted mean, rounded half up,
                                                                   at v's fractional bits (|o| <= 2^11)
    h    = clamp(h + Q(attn.l.out, o), ACT_MIN, ACT_MAX)           out: unclamped, at h_frac

The softmax's normalisation is the exact division; its exp is the table of the categorical and
mixture heads (hiercodec.exact.categorical), so no libm function and no float softmax runs. Products
are float64 matrix products of integers whose partial sums stay below 2^53 (bounded at load and for
at most MAX_POSITIONS positions), so the encoder's whole-tile `forward` (a causal mask over all
positions) and the decoder's `step` (one new position against a cache of earlier keys and values)
compute the same integers whatever the order of summation, batch size or thread count.

Stored tensors (under `attn.<l>.` of a gated network): `q`, `k`, `v`, `out` as QConv layers
(`.w`, `.b`, `.shift`), and `logit_shift` (one int32).
"""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.exact.categorical import LOGIT_MAX, LOGIT_MIN
from hiercodec.exact.layers import gather, qconv
from hiercodec.exact.quant import ACT_MAX, ACT_MIN, DTYPE, EXACT_LIMIT

EXP_MAX = 1 << 16  # largest entry of the exp table (d = 0)
MAX_POSITIONS = 1 << 16  # attention spans at most this many positions (a 256 x 256 tile)
CHUNK = 1 << 21  # score entries the whole-tile pass holds at once per temporary (16 MiB of float64)


def floor_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """floor(num / den), exactly, for float64 tensors of integers with den > 0 and |num| + den < 2^53.
    A correctly rounded quotient can round up onto the next integer only when |num| >= 2^53 (a
    non-integer quotient lies at least 1/den from an integer, more than half its ulp below that), so
    the float floor is already right here; the exact remainder num - q den (|q den| < |num| + den,
    an integer below 2^53) checks and corrects it rather than relying on that argument."""
    q = torch.floor(num / den)
    r = num - q * den
    return q - (r < 0).to(q.dtype) + (r >= den).to(q.dtype)


def round_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den rounded half up, exactly: floor((2 num + den) / (2 den))."""
    return floor_div(2 * num + den, 2 * den)


class AttentionCache:
    """Keys and values of the positions decoded so far, for `rows` = batch x heads rows: keys
    transposed (rows, key_channels, capacity), values (rows, capacity, key_channels). Capacity
    doubles as positions arrive (the decoder does not know the tile height)."""

    def __init__(self, rows: int, key_channels: int, capacity: int):
        self.kt = torch.zeros(rows, key_channels, capacity, dtype=DTYPE)
        self.v = torch.zeros(rows, capacity, key_channels, dtype=DTYPE)
        self.count = 0

    def put(self, p: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Key and value (rows, key_channels) of position p; positions arrive in raster order."""
        if p > self.count:
            raise ValueError(f"attention position {p} stepped before position {self.count}")
        if p >= MAX_POSITIONS:
            raise ValueError(f"attention over more than {MAX_POSITIONS} positions is not exact")
        cap = self.v.shape[1]
        if p >= cap:
            new = min(MAX_POSITIONS, max(2 * cap, p + 1))
            grown_k = torch.zeros(self.kt.shape[0], self.kt.shape[1], new, dtype=DTYPE)
            grown_v = torch.zeros(self.v.shape[0], new, self.v.shape[2], dtype=DTYPE)
            grown_k[:, :, :cap], grown_v[:, :cap] = self.kt, self.v
            self.kt, self.v = grown_k, grown_v
        self.kt[:, :, p] = k
        self.v[:, p] = v
        self.count = p + 1


class ExactAttention:
    """One attention layer of an exact gated PixelCNN (see the module docstring): `forward` over
    whole tiles for the encoder, `step` over one position for the decoder."""

    def __init__(self, tensors: dict[str, torch.Tensor], heads: int, key_channels: int, exp_lut: torch.Tensor):
        """tensors: the layer's own (names without the `attn.<l>.` prefix)."""
        self.heads, self.key_channels = heads, key_channels
        inner = heads * key_channels
        for name in ("q", "k", "v"):
            if tensors[f"{name}.w"].shape[0] != inner:
                raise ValueError(f"attention {name} has {tensors[f'{name}.w'].shape[0]} outputs, "
                                 f"not heads x key_channels = {inner}")
        # q, k and v in one product: the same integers as three (one row per output channel)
        fused = {f"qkv.{part}": torch.cat([tensors[f"{n}.{part}"] for n in ("q", "k", "v")])
                 for part in ("w", "b", "shift")}
        self.qkv = qconv(fused, "qkv", (1, 1))
        self.out = qconv(tensors, "out", (1, 1))
        shift = int(tensors["logit_shift"].reshape(-1)[0])
        self.logit_offset = float(1 << (shift - 1)) if shift > 0 else 0.0
        self.logit_scale = float(np.ldexp(1.0, -shift))  # an exact power of two
        # partial sums: |s| <= key_channels 2^22 (plus the rounding offset); sum_j w_j (2 v_j + 1)
        # <= MAX_POSITIONS 2^16 (2^12 + 1)
        act = float(-ACT_MIN)
        if key_channels * act * act + self.logit_offset >= EXACT_LIMIT:
            raise ValueError("attention scores reach 2^53: not exact")
        if MAX_POSITIONS * EXP_MAX * (2 * act + 1) >= EXACT_LIMIT:
            raise ValueError("attention sums reach 2^53: not exact")
        self.exp = exp_lut.to(DTYPE)
        if self.exp.numel() != LOGIT_MAX - LOGIT_MIN + 1 or float(self.exp.max()) > EXP_MAX:
            raise ValueError("attention needs the exp table of hiercodec.exact.mixture.build_luts")

    def _attend(self, q: torch.Tensor, kt: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """q (N, Pq, dk), kt (N, dk, Pk), v (N, Pk, dk) integers; mask (Pq, Pk) bool (True: may read)
        or None for all keys -> (N, Pq, dk) weighted means of v, rounded half up."""
        z = torch.matmul(q, kt).add_(self.logit_offset).mul_(self.logit_scale).floor_().clamp_(LOGIT_MIN, LOGIT_MAX)
        if mask is not None:
            z.masked_fill_(~mask, LOGIT_MIN)  # never above a readable logit: the max stays theirs
        z.sub_(z.max(dim=-1, keepdim=True).values).add_(LOGIT_MAX - LOGIT_MIN)
        w = gather(self.exp, z)
        if mask is not None:
            w.masked_fill_(~mask, 0.0)
        return round_div(torch.matmul(w, v), w.sum(dim=-1, keepdim=True))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """The encoder's pass: h (B, C, H, W) residual stream -> h with this layer's update, every
        position p = i W + j attending to positions <= p of its own tile. Scores are computed a
        few (tile, head) pairs at a time, so memory stays bounded for 32 x 32 tiles in batches."""
        b, _, height, width = h.shape
        p, nh, dk = height * width, self.heads, self.key_channels
        if p > MAX_POSITIONS:
            raise ValueError(f"attention over more than {MAX_POSITIONS} positions is not exact")
        qkv = self.qkv.conv(h).reshape(b, 3, nh, dk, p)
        q = qkv[:, 0].reshape(b * nh, dk, p).transpose(1, 2)
        kt = qkv[:, 1].reshape(b * nh, dk, p)
        v = qkv[:, 2].reshape(b * nh, dk, p).transpose(1, 2)
        mask = torch.ones(p, p, dtype=torch.bool).tril_()
        step = max(1, CHUNK // (p * p))
        o = torch.cat([self._attend(q[s : s + step], kt[s : s + step], v[s : s + step], mask)
                       for s in range(0, b * nh, step)])
        o = o.transpose(1, 2).reshape(b, nh * dk, height, width)
        return self.out.conv(o, clamp=False).add_(h).clamp_(ACT_MIN, ACT_MAX)

    def cache(self, batch: int, capacity: int) -> AttentionCache:
        return AttentionCache(batch * self.heads, self.key_channels, capacity)

    def step(self, h: torch.Tensor, cache: AttentionCache, p: int) -> torch.Tensor:
        """The decoder's form: h (B, C) of position p (raster index in the tile) -> h with this
        layer's update; adds p's key and value to `cache`, which holds those of positions < p."""
        b = h.shape[0]
        nh, dk = self.heads, self.key_channels
        q, k, v = self.qkv.dense(h).reshape(b, 3, nh * dk).unbind(1)
        cache.put(p, k.reshape(b * nh, dk), v.reshape(b * nh, dk))
        o = self._attend(q.reshape(b * nh, 1, dk), cache.kt[:, :, : p + 1], cache.v[:, : p + 1], None)
        return self.out.dense(o.reshape(b, nh * dk), clamp=False).add_(h).clamp_(ACT_MIN, ACT_MAX)


def attention_layers(tensors: dict[str, torch.Tensor]) -> list[int]:
    """Indices l of the gated layers followed by attention, from the stored `attn.<l>.q.w`."""
    return sorted(int(k.split(".")[1]) for k in tensors if k.startswith("attn.") and k.endswith(".q.w"))
