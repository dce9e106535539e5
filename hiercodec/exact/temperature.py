"""Sampling at a temperature, exactly: the integer parameters of a head, changed by integers only.

De Fauw et al. 2019 sample their models at a temperature (sec. 6: 0.99); a file that decodes by
sampling must give the same image on every machine, so the temperature T is an integer number of
thousandths (`milli`, T = milli / 1000) and acts on the heads' integer parameters:

- logits (the categorical head's, and the mixture's component weights), in 1/16 nat:
  floor(l x 1000 / milli), clamped to the head's range: the distribution p^(1/T), renormalised;
- the mixture's log scales, in 1/32 (hiercodec.exact.mixture): + round(32 ln T), computed once
  with `decimal` at 50 digits (no float decides it), clamped to the head's range: every logistic
  T times as wide.
T = 1 (milli = 1000) changes nothing. The wrapped head has the interface of the head it wraps, so
any level's schedule can sample through it.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

import numpy as np
import torch

from hiercodec.exact.categorical import ExactCategorical
from hiercodec.exact.mixture import LS_MAX, LS_MIN, PI_MAX, PI_MIN, ExactMixture

MILLI_MIN, MILLI_MAX = 1, 65535  # temperatures 0.001 ... 65.535 (a u16 in a file)


def log_scale_shift(milli: int) -> int:
    """round(32 ln(milli / 1000)), exactly (decimal arithmetic, ties away from zero)."""
    with localcontext() as ctx:
        ctx.prec = 50
        x = Decimal(32) * (Decimal(milli) / Decimal(1000)).ln()
        return int(x.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def scaled_logits(logits: torch.Tensor, milli: int) -> torch.Tensor:
    """floor(l x 1000 / milli) of integer logits (float64 holding integers), clamped to the
    logit range: integer arithmetic in int64."""
    out = torch.div(logits.to(torch.int64) * 1000, milli, rounding_mode="floor")
    return out.clamp(PI_MIN, PI_MAX).to(logits.dtype)


class Tempered:
    """`head` (ExactCategorical or ExactMixture) at temperature milli / 1000."""

    def __init__(self, head: ExactCategorical | ExactMixture, milli: int):
        if not MILLI_MIN <= milli <= MILLI_MAX:
            raise ValueError(f"temperature {milli / 1000} is out of range {MILLI_MIN / 1000}..{MILLI_MAX / 1000}")
        self.head, self.milli = head, milli
        self.shift = log_scale_shift(milli)

    def begin(self, params: torch.Tensor):
        if self.milli == 1000:
            return self.head.begin(params)
        p = params.clone()
        if isinstance(getattr(self.head, "reference", self.head), ExactCategorical):
            return self.head.begin(scaled_logits(p, self.milli))
        k = self.head.k
        p[:, :k] = scaled_logits(p[:, :k], self.milli)
        ls = p[:, 4 * k : 7 * k]  # (mu, log scale, coeff) x 3 channels x k after the k weights
        p[:, 4 * k : 7 * k] = (ls + self.shift).clamp(LS_MIN, LS_MAX)
        return self.head.begin(p)

    def table(self, state, c: int = 0, prev: torch.Tensor | None = None) -> np.ndarray:
        return self.head.table(state, c, prev)

    def update(self, state, symbols: torch.Tensor) -> None:
        self.head.update(state, symbols)
