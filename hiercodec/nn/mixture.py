"""Discretized logistic mixture likelihood over 8-bit RGB (PixelCNN++, Salimans et al. 2017, the
output of every PixelCNN in Kolesnikov & Lampert 2017 sec. 3): a K-component mixture of 3-D
logistics with means of later channels linear in earlier channels' values.

Parameters per pixel, in this order (10K channels; 1 + 3 + 3 + 3 blocks of K):
  pi (K) | mu_R mu_G mu_B (3K) | log_s_R log_s_G log_s_B (3K) | alpha beta gamma (3K)
The transforms below are shared with the exact head (hiercodec.exact.mixture), which folds the
affine parts into the last layer and reproduces the clamps in integers.
Means and scales are in pixel units (bins of width 1 centred on 0..255).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MU_OFFSET, MU_SCALE = 128.0, 64.0  # mu = 128 + 64 * raw
MU_MIN, MU_MAX = -64.0, 320.0
LOG_S_OFFSET = 2.0  # log s = raw + 2 (s about 7 pixel levels at initialisation)
LOG_S_MIN, LOG_S_MAX = -2.0, 6.0
COEFF_MAX = 2.0  # |alpha|, |beta|, |gamma| <= 2
CENTER = 128.0  # channel coupling uses x - 128


def params_per_pixel(k: int) -> int:
    return 10 * k


def split(params: torch.Tensor, k: int):
    """(B, 10K, H, W) -> logit_pi (B,K,H,W), mu, log_s, coeffs (each (B,3,K,H,W)) after transforms."""
    b, _, h, w = params.shape
    logit_pi = params[:, :k]
    rest = params[:, k:].reshape(b, 3, 3, k, h, w)  # block, channel, component
    mu = (MU_OFFSET + MU_SCALE * rest[:, 0]).clamp(MU_MIN, MU_MAX)
    log_s = (rest[:, 1] + LOG_S_OFFSET).clamp(LOG_S_MIN, LOG_S_MAX)
    coeffs = rest[:, 2].clamp(-COEFF_MAX, COEFF_MAX)
    return logit_pi, mu, log_s, coeffs


def coupled_means(mu: torch.Tensor, coeffs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """mu_G += alpha (x_R - 128); mu_B += beta (x_R - 128) + gamma (x_G - 128). x: (B,3,H,W) floats."""
    xr, xg = x[:, 0:1] - CENTER, x[:, 1:2] - CENTER  # (B,1,H,W): broadcast over components
    m_r = mu[:, 0]
    m_g = mu[:, 1] + coeffs[:, 0] * xr
    m_b = mu[:, 2] + coeffs[:, 1] * xr + coeffs[:, 2] * xg
    return torch.stack([m_r, m_g, m_b], dim=1)


def log_prob_bins(x: torch.Tensor, mu: torch.Tensor, log_s: torch.Tensor) -> torch.Tensor:
    """log P(x) of the discretized logistic: x (B,C,1,H,W) integers 0..255 as floats."""
    inv_s = torch.exp(-log_s)
    centered = x - mu
    plus = (centered + 0.5) * inv_s
    minus = (centered - 0.5) * inv_s
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus), used for x = 0
    log_one_minus_cdf_min = -F.softplus(minus)  # used for x = 255
    delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = centered * inv_s
    log_pdf_mid = mid - log_s - 2.0 * F.softplus(mid)  # tail fallback when delta underflows
    inner = torch.where(delta > 1e-5, torch.log(delta.clamp_min(1e-12)), log_pdf_mid)
    return torch.where(x < 0.5, log_cdf_plus, torch.where(x > 254.5, log_one_minus_cdf_min, inner))


def nll_bits(params: torch.Tensor, x: torch.Tensor, k: int, channels: int = 3) -> torch.Tensor:
    """Negative log-likelihood in bits of uint8-valued x (B, C, H, W) under the mixture, per image.
    channels=1 codes only the first channel's distribution (gray images)."""
    logit_pi, mu, log_s, coeffs = split(params, k)
    xf = x.float()
    if channels == 3:
        mu = coupled_means(mu, coeffs, xf)
    lp = log_prob_bins(xf[:, :channels].unsqueeze(2), mu[:, :channels], log_s[:, :channels])
    joint = lp.sum(1) + F.log_softmax(logit_pi, dim=1)  # (B,K,H,W)
    return -torch.logsumexp(joint, dim=1).sum(dim=(1, 2)) / math.log(2.0)
