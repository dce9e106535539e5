"""Exact discretized Gaussians: the latents of bits-back levels (PixelVAE, AGAVE) as integer tables.

A continuous latent z is coded as the index k of a bin. The bins are those of HiLLoC's dynamic
discretization (Townsend et al. 2020, after BB-ANS, Townsend et al. 2019): 2^P bins of equal mass
under the prior p(z) = N(mu_p, sigma_p^2), so that the prior table is uniform (exactly P bits a
latent under a standard normal prior) and the posterior q(z|x) = N(mu_q, sigma_q^2) is the mass
it gives each of the same bins. The decoder's networks read z as the bin's centre (the prior's
quantile at (k + 1/2) / 2^P), an integer at 2^-Z_FRAC.

Everything that shapes a table is integer arithmetic (numpy int64) over lookup tables computed
once with libm (`build_luts`, stored with each model as the mixture's are), so encoder and decoder
compute bit-identical tables on every machine:

  parameters   mu      integers at 2^-MU_FRAC, clamped to [-MU_MAX, MU_MAX]
               ls      log sigma in 1/LS_SCALE nat, clamped to [LS_MIN, LS_MAX]
  edges        EDGES[k] = Phi^-1(k / 2^P) at 2^-T_FRAC (k = 1 .. 2^P - 1; k = 0 and 2^P are -inf, +inf)
  prior edge   x_k = mu_p 2^(T_FRAC - MU_FRAC) + floor(EDGES[k] * SIG_M[ls_p] 2^-SIG_Q[ls_p])
  posterior    t_k = floor((x_k - mu_q 2^(T_FRAC - MU_FRAC)) * INV_M[ls_q] 2^-INV_Q[ls_q])   (t at 2^-T_FRAC)
  CDF          Phi(t_k) at 2^-CDF_BITS by linear interpolation of PHI (Phi at steps of 2^-PHI_STEP
               over [-T_MAX, T_MAX]): PHI[i] + floor((PHI[i+1] - PHI[i]) f 2^-(T_FRAC - PHI_STEP)),
               i = t >> (T_FRAC - PHI_STEP), f = t mod 2^(T_FRAC - PHI_STEP); 0 below, 2^CDF_BITS above
  table        masses Phi(t_{k+1}) - Phi(t_k) (they sum to exactly 2^CDF_BITS), coding.tables.normalize

Magnitudes: |x_k - mu_q| < 2^21 at 2^-16 and the mantissas have 16 bits, so every product is below
2^37; the interpolation product is below 2^40: int64 throughout. Interpolation (rather than a table
lookup alone) matters: the bins near the mode of a wide posterior are narrower than any affordable
table step, and a step function would give most of them zero mass (a latent the model does not use,
q = p, would then cost bits instead of nothing).
"""

from __future__ import annotations

from math import erf, sqrt
from statistics import NormalDist

import numpy as np

from hiercodec.coding.tables import TOTAL, normalize

MU_FRAC = 10  # means at 2^-10
MU_MAX = 8 << MU_FRAC  # |mu| <= 8
LS_SCALE = 64  # log sigma in 1/64 nat: sigma steps of 1.6%
LS_MIN, LS_MAX = -9 * LS_SCALE, 2 * LS_SCALE  # sigma in [1.2e-4, 7.4]
T_FRAC = 16  # edges and standardized edges at 2^-16
PHI_STEP = 8  # Phi tabulated at steps of 2^-8 ...
T_MAX = 8  # ... over [-8, 8]
CDF_BITS = 32  # Phi in units of 2^-32
Z_FRAC = 8  # bin centres (the decoder's z) at 2^-8: 12-bit activations, as every network input
MANTISSA_BITS = 16
MAX_BITS = 16  # at most 2^16 bins a latent


def _mantissa(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive values v -> (m, q): v ~= m 2^-q with a MANTISSA_BITS-bit integer m."""
    q = MANTISSA_BITS - 1 - np.floor(np.log2(values)).astype(np.int64)
    m = np.rint(np.ldexp(values, q)).astype(np.int64)
    over = m >= 1 << MANTISSA_BITS  # rounding up to 2^16 renormalises
    q = np.where(over, q - 1, q)
    return np.rint(np.ldexp(values, q)).astype(np.int64), q


def build_luts(bits: int) -> dict[str, np.ndarray]:
    """The lookup tables of P = `bits` bins per latent (computed once, stored with a model)."""
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"latent precision must be 1 to {MAX_BITS} bits, not {bits}")
    normal = NormalDist()
    n = 1 << bits
    edges = np.array([normal.inv_cdf(k / n) for k in range(1, n)], dtype=np.float64)
    centres = np.array([normal.inv_cdf((k + 0.5) / n) for k in range(n)], dtype=np.float64)
    t = np.arange(-T_MAX << PHI_STEP, (T_MAX << PHI_STEP) + 1, dtype=np.float64) / (1 << PHI_STEP)
    phi = np.array([0.5 * (1.0 + erf(v / sqrt(2.0))) for v in t]) * 2.0 ** CDF_BITS
    phi = np.rint(phi).astype(np.int64)
    phi[0], phi[-1] = 0, 1 << CDF_BITS
    ls = np.arange(LS_MIN, LS_MAX + 1, dtype=np.float64) / LS_SCALE
    sig_m, sig_q = _mantissa(np.exp(ls))
    inv_m, inv_q = _mantissa(np.exp(-ls))
    return {"edges": np.rint(np.ldexp(edges, T_FRAC)).astype(np.int64),
            "centres": np.rint(np.ldexp(centres, Z_FRAC)).astype(np.int64),
            "phi": phi, "sig_m": sig_m, "sig_q": sig_q, "inv_m": inv_m, "inv_q": inv_q}


class ExactGaussian:
    """Tables of discretized Gaussians over 2^P bins of equal prior mass (module docstring)."""

    LUT_NAMES = ("edges", "centres", "phi", "sig_m", "sig_q", "inv_m", "inv_q")

    def __init__(self, luts: dict[str, np.ndarray]):
        self.luts = {k: np.asarray(luts[k], dtype=np.int64) for k in self.LUT_NAMES}
        self.bins = len(self.luts["centres"])
        if self.bins < 2 or self.bins & (self.bins - 1) or len(self.luts["edges"]) != self.bins - 1:
            raise ValueError("gaussian lookup tables of inconsistent sizes")
        if len(self.luts["phi"]) != (2 * T_MAX << PHI_STEP) + 1 or len(self.luts["sig_m"]) != LS_MAX - LS_MIN + 1:
            raise ValueError("gaussian lookup tables of the wrong size")
        if np.any(np.diff(self.luts["edges"]) < 0) or np.any(np.diff(self.luts["phi"]) < 0):
            raise ValueError("gaussian lookup tables are not monotonic")
        self.bits = self.bins.bit_length() - 1

    @classmethod
    def stored(cls, tensors: dict, prefix: str = "lut.gauss.") -> "ExactGaussian":
        """The tables stored in a model's tensors under `prefix<name>`."""
        return cls({k: np.asarray(tensors[prefix + k]) for k in cls.LUT_NAMES})

    # -- parameters -----------------------------------------------------------------------------

    @staticmethod
    def clamp(mu: np.ndarray, ls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer parameters clamped to their ranges (int64)."""
        return (np.clip(np.asarray(mu, dtype=np.int64), -MU_MAX, MU_MAX),
                np.clip(np.asarray(ls, dtype=np.int64), LS_MIN, LS_MAX))

    def _prior_points(self, points: np.ndarray, frac: int, mu_p, ls_p) -> np.ndarray:
        """mu_p + sigma_p * points (points (K,) at 2^-frac) for each latent -> (n, K) at 2^-frac."""
        mu_p, ls_p = self.clamp(mu_p, ls_p)
        m = self.luts["sig_m"][ls_p - LS_MIN][:, None]
        q = self.luts["sig_q"][ls_p - LS_MIN][:, None]
        scaled = (points[None, :] * m) >> q  # arithmetic shift: floor
        return scaled + (mu_p[:, None] << (frac - MU_FRAC) if frac >= MU_FRAC else mu_p[:, None] >> (MU_FRAC - frac))

    def cdf(self, t: np.ndarray) -> np.ndarray:
        """Phi(t) at 2^-CDF_BITS of standardized points t at 2^-T_FRAC (int64, any shape)."""
        lo, hi = -T_MAX << T_FRAC, T_MAX << T_FRAC
        tc = np.clip(t, lo, hi - 1) - lo
        i, f = tc >> (T_FRAC - PHI_STEP), tc & ((1 << (T_FRAC - PHI_STEP)) - 1)
        phi = self.luts["phi"]
        v = phi[i] + (((phi[i + 1] - phi[i]) * f) >> (T_FRAC - PHI_STEP))
        return np.where(t < lo, 0, np.where(t >= hi, 1 << CDF_BITS, v))

    # -- tables ---------------------------------------------------------------------------------

    def prior_table(self, n: int) -> np.ndarray:
        """The prior's table of n latents: uniform over the bins, exactly P bits each."""
        return np.full((n, self.bins), TOTAL // self.bins, dtype=np.int64)

    def masses(self, mu_q: np.ndarray, ls_q: np.ndarray, mu_p=None, ls_p=None) -> np.ndarray:
        """q's mass in each bin of each latent (n, 2^P) at 2^-CDF_BITS: rows sum to 2^CDF_BITS.
        mu_p, ls_p (default 0: the standard normal) place the bins."""
        mu_q, ls_q = self.clamp(mu_q, ls_q)
        n = mu_q.shape[0]
        mu_p = np.zeros(n, np.int64) if mu_p is None else mu_p
        ls_p = np.zeros(n, np.int64) if ls_p is None else ls_p
        x = self._prior_points(self.luts["edges"], T_FRAC, mu_p, ls_p)  # (n, 2^P - 1)
        d = x - (mu_q[:, None] << (T_FRAC - MU_FRAC))
        t = (d * self.luts["inv_m"][ls_q - LS_MIN][:, None]) >> self.luts["inv_q"][ls_q - LS_MIN][:, None]
        c = self.cdf(t)
        c = np.concatenate([np.zeros((n, 1), np.int64), c, np.full((n, 1), 1 << CDF_BITS, np.int64)], axis=1)
        return np.diff(c, axis=1)

    def posterior_table(self, mu_q: np.ndarray, ls_q: np.ndarray, mu_p=None, ls_p=None) -> np.ndarray:
        """The coder table (n, 2^P) of q(z|x) = N(mu_q, sigma_q^2) over the prior's bins."""
        return normalize(self.masses(mu_q, ls_q, mu_p, ls_p))

    def values(self, bins: np.ndarray, mu_p=None, ls_p=None) -> np.ndarray:
        """The latents' values (bin centres under the prior) at 2^-Z_FRAC, int64 (n,)."""
        k = np.asarray(bins, dtype=np.int64)
        if mu_p is None:
            return self.luts["centres"][k]
        points = self._prior_points(self.luts["centres"], Z_FRAC, mu_p, ls_p)
        return points[np.arange(len(k)), k]


def quantize_params(mu: np.ndarray, log_sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float (mu, log sigma) -> the integer parameters (rounded, clamped); for tests and
    calibration only: a codec gets its integers from an exact network."""
    return ExactGaussian.clamp(np.rint(np.asarray(mu, np.float64) * (1 << MU_FRAC)),
                               np.rint(np.asarray(log_sigma, np.float64) * LS_SCALE))
