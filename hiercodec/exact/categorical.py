"""Exact softmax head: integer logits -> integer frequency tables, for small alphabets such as the
16 gray levels of the Grayscale PixelCNN (Kolesnikov & Lampert 2017 sec. 3.3: "a vector of 16
probabilities for every possible grayscale value, followed by the standard cross-entropy loss").

Logits are integers in 1/16 nat, clamped to [-2047, 2047] by the last layer. The table of a
position is normalize(EXP[l - max l + 4094]) (hiercodec.coding.tables.normalize), EXP being the
mixture head's table round(2^16 exp(d / 16)) for d = -4094 ... 0 (hiercodec.exact.mixture): integer
arithmetic only, so every machine gets the same table. It has the interface of ExactMixture
(begin / table / update) with one channel and nothing to update.
"""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.coding.tables import normalize
from hiercodec.exact.layers import gather
from hiercodec.exact.mixture import PI_MAX, PI_MIN
from hiercodec.exact.quant import DTYPE

LOGIT_MIN, LOGIT_MAX = PI_MIN, PI_MAX
LOGIT_SCALE = 16.0  # integer logit = 16 x logit in nats


class ExactCategorical:
    def __init__(self, exp_lut: torch.Tensor):
        self.exp = exp_lut.to(DTYPE)

    def begin(self, params: torch.Tensor) -> torch.Tensor:
        """params (P, K) integer logits -> their unnormalised weights EXP[l - max l]."""
        d = params - params.max(dim=1, keepdim=True).values - (LOGIT_MIN - LOGIT_MAX)
        return gather(self.exp, d)

    def table(self, state: torch.Tensor, c: int = 0, prev: torch.Tensor | None = None) -> np.ndarray:
        """Frequencies (P, K) int64, rows summing to 2^24, every entry >= 1."""
        return normalize(state.to(torch.int64).numpy())

    def update(self, state: torch.Tensor, symbols: torch.Tensor) -> None:
        """One channel: nothing to condition."""
