"""Exact discretized logistic mixture: integer parameters -> integer frequency tables.

Integer parameters per position (see hiercodec.nn.mixture for the float model they quantize):
  pi     mixture logits in 1/16 nat                       [-2047, 2047]
  mu16   means in 1/16 pixel level                         [-1024, 5120]
  ls32   log scales (pixel units) in 1/32                  [-64, 192]
  coeff  channel coupling in 2^-10                         [-2048, 2048]

Table of a channel: for each component k and inner bin edge e = v - 1/2 (v = 1..255),
t = (16 e - mu16) * INV_S[ls32] (INV_S = 2^16 / s, so t has 20 fractional bits), looked up in
SIGMOID_CDF at 1/256 resolution over [-16, 16]: CDF_k(e) in units of 2^-16, with CDF(-inf) = 0 and
CDF(+inf) = 2^16, so each component's bin masses sum to exactly 2^16. Mixture weights w_k start as
EXP[pi_k - max pi] (2^16 exp) and after each coded channel become w_k * mass_k(symbol), rescaled to
a maximum of 2^16 (the joint mixture of PixelCNN++ coded channel by channel). Frequencies:
f = floor(sum_k w_k mass_k * (2^24 - 256) / total) + 1, total = 2^16 sum_k w_k, and the remainder
that makes the row sum exactly 2^24 added to the first largest entry (coding.tables.fill_to_total).

Bounds: |t| < 2^13 * 2^19; sum_k w_k mass_k <= 5 * 2^32 (float64 exact);
the normalisation runs in int64: 2^35.4 * 2^24 < 2^63.
"""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.coding.tables import fill_to_total
from hiercodec.exact.quant import DTYPE

PI_MIN, PI_MAX = -2047, 2047
MU_MIN, MU_MAX = -1024, 5120
LS_MIN, LS_MAX = -64, 192
COEFF_MIN, COEFF_MAX = -2048, 2048
INV_S_FRAC = 16
CDF_BITS = 16
T_SHIFT = 12  # t has 4 + 16 = 20 fractional bits; the sigmoid table has 8
T_RANGE = 4096  # table covers t in [-16, 16] at 1/256
TABLE_TOTAL = (1 << 24) - 256
EDGES16 = torch.arange(1, 256, dtype=DTYPE) * 16 - 8


def build_luts() -> dict[str, np.ndarray]:
    """The mixture's lookup tables (stored with each model, so decoding never calls exp)."""
    d = np.arange(PI_MIN - PI_MAX, 1, dtype=np.float64)  # pi - max pi
    exp = np.rint(np.exp(d / 16.0) * (1 << CDF_BITS))
    ls = np.arange(LS_MIN, LS_MAX + 1, dtype=np.float64)
    inv_s = np.rint(np.exp(-ls / 32.0) * (1 << INV_S_FRAC))
    t = np.arange(-T_RANGE, T_RANGE + 1, dtype=np.float64) / 256.0
    cdf = np.rint((1 << CDF_BITS) / (1 + np.exp(-t)))
    cdf[0], cdf[-1] = 0, 1 << CDF_BITS
    return {"exp": exp.astype(np.int64), "inv_s": inv_s.astype(np.int64), "sigmoid_cdf": cdf.astype(np.int64)}


class ExactMixture:
    """Tables of one channel at a time for a batch of positions; see the module docstring."""

    def __init__(self, k: int, luts: dict[str, torch.Tensor]):
        self.k = k
        self.exp = luts["exp"].to(DTYPE)
        self.inv_s = luts["inv_s"].to(DTYPE)
        self.cdf = luts["sigmoid_cdf"].to(DTYPE)

    def begin(self, params: torch.Tensor) -> dict:
        """params (P, 10K) integers -> per-position state for coding channels in order."""
        k, p = self.k, params.shape[0]
        pi = params[:, :k]
        rest = params[:, k:].reshape(p, 3, 3, k)
        w = self.exp[(pi - pi.max(dim=1, keepdim=True).values - (PI_MIN - PI_MAX)).long()]
        inv = self.inv_s[(rest[:, 1] - LS_MIN).long()]
        return {"w": w, "mu": rest[:, 0], "inv": inv, "coeff": rest[:, 2]}

    def table(self, state: dict, c: int, prev: torch.Tensor | None) -> tuple[np.ndarray, torch.Tensor]:
        """Frequencies (P, 256) int64 (numpy, a coder table) of channel c given prev (P, c) decoded values of channels < c;
        also the per-component masses (P, K, 256) that `update` needs."""
        mu = state["mu"][:, c]
        if c > 0:
            co = state["coeff"]
            shift = co[:, 0] * (prev[:, 0:1] - 128) if c == 1 else \
                co[:, 1] * (prev[:, 0:1] - 128) + co[:, 2] * (prev[:, 1:2] - 128)
            mu = torch.clamp(mu + torch.floor((shift + 32) * 2.0 ** -6), MU_MIN, MU_MAX)
        t = (EDGES16 - mu[:, :, None]) * state["inv"][:, c, :, None]
        idx = torch.floor(t * 2.0 ** -T_SHIFT).clamp_(-T_RANGE, T_RANGE) + T_RANGE
        cdf = self.cdf[idx.long()]
        cdf = torch.nn.functional.pad(cdf, (1, 0), value=0.0)
        cdf = torch.nn.functional.pad(cdf, (0, 1), value=float(1 << CDF_BITS))
        mass = cdf[:, :, 1:] - cdf[:, :, :-1]
        w = state["w"]
        mix = torch.bmm(w[:, None, :], mass)[:, 0].to(torch.int64)
        total = (w.sum(dim=1, keepdim=True) * (1 << CDF_BITS)).to(torch.int64)
        return fill_to_total((mix * TABLE_TOTAL // total + 1).numpy()), mass

    @staticmethod
    def update(state: dict, mass: torch.Tensor, symbols: torch.Tensor) -> None:
        """Condition the component weights on the coded channel's symbols (P,)."""
        at = mass.gather(2, symbols.long()[:, None, None].expand(-1, mass.shape[1], 1))[:, :, 0]
        w = (state["w"] * at).to(torch.int64)
        m = w.max(dim=1, keepdim=True).values
        rescaled = w * (1 << CDF_BITS) // m.clamp_min(1)
        state["w"] = torch.where(m > 0, rescaled, state["w"].to(torch.int64)).to(DTYPE)
