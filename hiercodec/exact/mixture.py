"""Exact discretized logistic mixture: integer parameters -> integer frequency tables.

Integer parameters per position (see hiercodec.nn.mixture for the float model they quantize):
  pi     mixture logits in 1/16 nat                       [-2047, 2047]
  mu16   means in 1/16 pixel level                         [-1024, 5120]
  ls32   log scales (pixel units) in 1/32                  [-64, 192]
  coeff  channel coupling in 2^-10                         [-2048, 2048]

Table of a channel: for each component k and inner bin edge e = v - 1/2 (v = 1..255), the sigmoid
table index is floor(256 (e - mu) / s) = floor((16 e - mu16) * M * 2^Q), where 16/s = M * 2^Q with
an 11-bit mantissa M (INV_M[ls32]) and exponent Q (INV_Q[ls32]). |16 e - mu16| < 2^13, so the
product is an integer below 2^24 and, like the power-of-two scaling and the floor, exact in float32:
the wide part of the computation runs in float32 without losing exactness. SIGMOID_CDF (1/256
resolution over [-16, 16]) gives CDF_k(e) in units of 2^-16, with CDF(-inf) = 0 and CDF(+inf) = 2^16,
so each component's bin masses sum to exactly 2^16. Mixture weights w_k start as EXP[pi_k - max pi]
(2^16 exp) and after each coded channel become w_k * mass_k(symbol) (the joint mixture of PixelCNN++
coded channel by channel); each time they are renormalised in int64 to sum to exactly 2^16:
w_k = floor(w_k 2^16 / sum w), the remainder (< K) added to the first largest. The mixture CDF
sum_k w_k CDF_k is one float64 batched product (partial sums < 2^32, exact) whose total is exactly
2^32; its differences are the bin masses m_v, and f_v = floor(m_v (2^16 - 1) / 2^24) + 1, exact in
float64 (m_v (2^16 - 1) < 2^48), so the row sums to at most 2^24 - 256 + 256; the remainder that
makes it exactly 2^24 goes to the first largest entry (coding.tables.fill_to_total).
"""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.coding.tables import fill_to_total
from hiercodec.exact.layers import gather
from hiercodec.exact.quant import DTYPE

PI_MIN, PI_MAX = -2047, 2047
MU_MIN, MU_MAX = -1024, 5120
LS_MIN, LS_MAX = -64, 192
COEFF_MIN, COEFF_MAX = -2048, 2048
INV_M_BITS = 11
CDF_BITS = 16
T_RANGE = 4096  # the sigmoid table covers [-16, 16] at 1/256
WEIGHT_TOTAL = 1 << 16
EDGES16 = torch.arange(1, 256, dtype=torch.float32) * 16 - 8


def build_luts() -> dict[str, np.ndarray]:
    """The mixture's lookup tables (stored with each model, so decoding never calls exp)."""
    d = np.arange(PI_MIN - PI_MAX, 1, dtype=np.float64)  # pi - max pi
    exp = np.rint(np.exp(d / 16.0) * (1 << CDF_BITS))
    ls = np.arange(LS_MIN, LS_MAX + 1, dtype=np.float64)
    inv16 = 16.0 * np.exp(-ls / 32.0)  # 16 / s: index units per 1/16 pixel
    q = np.floor(np.log2(inv16)).astype(np.int64) - (INV_M_BITS - 1)
    m = np.rint(inv16 * np.exp2(-q))
    q = np.where(m >= 1 << INV_M_BITS, q + 1, q)  # rounding up to 2^11 renormalises
    m = np.rint(inv16 * np.exp2(-q))
    t = np.arange(-T_RANGE, T_RANGE + 1, dtype=np.float64) / 256.0
    cdf = np.rint((1 << CDF_BITS) / (1 + np.exp(-t)))
    cdf[0], cdf[-1] = 0, 1 << CDF_BITS
    return {"exp": exp.astype(np.int64), "inv_m": m.astype(np.int64), "inv_q": q,
            "sigmoid_cdf": cdf.astype(np.int64)}


class ExactMixture:
    """Tables of one channel at a time for a batch of positions; see the module docstring."""

    def __init__(self, k: int, luts: dict[str, torch.Tensor]):
        self.k, self.luts = k, luts
        self.exp = luts["exp"].to(DTYPE)
        # M 2^Q, exact in float32 (an 11-bit mantissa times a power of two)
        self.inv_a = torch.from_numpy(np.ldexp(luts["inv_m"].numpy().astype(np.float64), luts["inv_q"].numpy())).to(torch.float32)
        self.cdf = luts["sigmoid_cdf"].to(DTYPE)

    @classmethod
    def stored(cls, k: int, tensors: dict[str, torch.Tensor]) -> "ExactMixture":
        """The head of a network whose tensors hold the tables `lut.<name>` of build_luts."""
        return cls(k, {name: tensors[f"lut.{name}"] for name in ("exp", "inv_m", "inv_q", "sigmoid_cdf")})

    def begin(self, params: torch.Tensor) -> dict:
        """params (P, 10K) integers -> per-position state for coding channels in order."""
        k, p = self.k, params.shape[0]
        pi = params[:, :k]
        rest = params[:, k:].reshape(p, 3, 3, k)
        w = _normalised(gather(self.exp, pi - pi.max(dim=1, keepdim=True).values - (PI_MIN - PI_MAX)).to(torch.int64))
        ls = rest[:, 1] - LS_MIN
        return {"w": w, "mu": rest[:, 0], "a": gather(self.inv_a, ls), "coeff": rest[:, 2]}

    def _cdf(self, edges: torch.Tensor, mu: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """CDF (units of 2^-16) at edges (in 1/16 pixel, float32, broadcast against mu[..., None]).
        a = M 2^Q: edges * a and mu * a are exact in float32 (integers below 2^13 times an 11-bit
        mantissa), and so is their difference (e - mu) M 2^Q, an integer below 2^24 times 2^Q."""
        a = a[..., None]
        t = torch.addcmul(-(mu[..., None] * a), edges, a)
        return gather(self.cdf, t.floor_().clamp_(-T_RANGE, T_RANGE).add_(T_RANGE))

    def table(self, state: dict, c: int, prev: torch.Tensor | None) -> np.ndarray:
        """Frequencies (P, 256) int64 (numpy, a coder table) of channel c given prev (P, c) decoded
        values of channels < c."""
        mu = state["mu"][:, c]
        if c > 0:
            co = state["coeff"]
            shift = co[:, 0] * (prev[:, 0:1] - 128) if c == 1 else \
                co[:, 1] * (prev[:, 0:1] - 128) + co[:, 2] * (prev[:, 1:2] - 128)
            mu = torch.clamp(mu + torch.floor((shift + 32) * 2.0 ** -6), MU_MIN, MU_MAX)
        mu = mu.to(torch.float32)
        state["cur"] = (mu, state["a"][:, c])
        cmix = torch.bmm(state["w"][:, None, :], self._cdf(EDGES16, *state["cur"]))[:, 0]
        p = cmix.shape[0]
        mix = torch.diff(cmix, dim=1, prepend=_ZERO.expand(p, 1), append=_TOTAL.expand(p, 1))
        freqs = mix.mul_((1 << 16) - 1).mul_(2.0 ** -24).floor_().add_(1)
        return fill_to_total(freqs.to(torch.int64).numpy())

    def update(self, state: dict, symbols: torch.Tensor) -> None:
        """Condition the component weights on the symbols (P,) of the channel just tabled."""
        s = symbols.to(torch.float32)[:, None, None]
        edges = torch.cat([s * 16 - 8, s * 16 + 8], dim=2)  # the symbol's bin, as in the table
        cdf = self._cdf(edges, *state["cur"])
        lo = torch.where(s[..., 0] == 0, 0.0, cdf[..., 0])
        hi = torch.where(s[..., 0] == 255, float(1 << CDF_BITS), cdf[..., 1])
        w = (state["w"] * (hi - lo)).to(torch.int64)
        none = w.sum(dim=1, keepdim=True) == 0  # cannot happen for a symbol the table coded, but be total
        state["w"] = _normalised(torch.where(none, state["w"].to(torch.int64), w))


_ZERO = torch.zeros(1, 1, dtype=DTYPE)
_TOTAL = torch.full((1, 1), float(WEIGHT_TOTAL << CDF_BITS), dtype=DTYPE)


def _normalised(w: torch.Tensor) -> torch.Tensor:
    """Integer weights (P, K) int64 (< 2^36, rows not all zero) -> float64 weights summing to
    exactly 2^16 per row: floor(w 2^16 / sum), the remainder to the first largest."""
    floored = (w * WEIGHT_TOTAL // w.sum(dim=1, keepdim=True)).numpy()
    return torch.from_numpy(fill_to_total(floored, total=WEIGHT_TOTAL)).to(DTYPE)
