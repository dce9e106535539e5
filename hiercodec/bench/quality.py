"""Image quality for the lossy benchmark: PSNR and MS-SSIM of uint8 images, in float64 numpy.

Written here rather than taken from a library so that the definition is fixed and visible:
the numbers in `hiercodec bench --lossy` must not move with a dependency's version.

MS-SSIM follows Wang, Simoncelli & Bovik, "Multi-scale structural similarity for image quality
assessment" (2003), as in their reference implementation:

- 5 scales with weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333 (finest first);
- at every scale the SSIM terms over an 11 x 11 Gaussian window (sigma 1.5), computed only where
  the window lies inside the image ("valid" filtering, no padding), K1 = 0.01, K2 = 0.03,
  L = 255;
- contrast-structure cs = (2 sxy + C2) / (sx^2 + sy^2 + C2) at every scale; at the coarsest the
  full SSIM map l x cs (luminance included), each averaged over the image;
- 2 x 2 average downsampling between scales (an odd last row or column is dropped);
- MS-SSIM = prod_j mean(cs_j) ^ w_j over the finer scales x mean(ssim_M) ^ w_M.
"""

from __future__ import annotations

import math

import numpy as np

from hiercodec.errors import ImageError

__all__ = ["psnr", "ms_ssim", "MS_SSIM_WEIGHTS", "WINDOW", "SIGMA"]

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW, SIGMA = 11, 1.5
K1, K2, L = 0.01, 0.03, 255.0


def _pair(ref: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 (H, W, C); a clear error for anything that cannot be compared."""
    ref, test = np.asarray(ref), np.asarray(test)
    for what, a in (("reference", ref), ("test", test)):
        if a.dtype != np.uint8:
            raise ImageError(f"quality metrics take uint8 images; the {what} image is {a.dtype}")
        if a.ndim not in (2, 3) or 0 in a.shape:
            raise ImageError(f"quality metrics take (H, W) or (H, W, C) images; the {what} image has shape {a.shape}")
    if ref.shape != test.shape:
        raise ImageError(f"cannot compare images of shapes {ref.shape} and {test.shape}")
    if ref.ndim == 2:
        ref, test = ref[..., None], test[..., None]
    return ref.astype(np.float64), test.astype(np.float64)


def psnr(ref: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(255^2 / MSE), the MSE taken over every sample
    (all channels together); inf for identical images."""
    a, b = _pair(ref, test)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(L * L / mse)


def _gaussian() -> np.ndarray:
    x = np.arange(WINDOW, dtype=np.float64) - (WINDOW - 1) / 2
    g = np.exp(-(x * x) / (2 * SIGMA * SIGMA))
    return g / g.sum()


def _filter(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Valid 2-D filtering of (H, W, C) with the separable window g x g (per channel)."""
    from numpy.lib.stride_tricks import sliding_window_view

    x = sliding_window_view(x, len(g), axis=0) @ g  # (H - 10, W, C)
    return sliding_window_view(x, len(g), axis=1) @ g  # (H - 10, W - 10, C)


def _ssim_terms(a: np.ndarray, b: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel: the mean of the SSIM map and the mean of the contrast-structure map."""
    c1, c2 = (K1 * L) ** 2, (K2 * L) ** 2
    mu_a, mu_b = _filter(a, g), _filter(b, g)
    var_a = _filter(a * a, g) - mu_a * mu_a
    var_b = _filter(b * b, g) - mu_b * mu_b
    cov = _filter(a * b, g) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1)
    return (lum * cs).mean(axis=(0, 1)), cs.mean(axis=(0, 1))


def _halve(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w]
    return (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]) / 4


def ms_scales(height: int, width: int) -> int:
    """How many of the 5 scales fit: every scale needs at least 11 x 11 pixels (0: none fit)."""
    side, scales = min(height, width), 0
    while scales < len(MS_SSIM_WEIGHTS) and side >= WINDOW:
        scales, side = scales + 1, side // 2
    return scales


def ms_ssim(ref: np.ndarray, test: np.ndarray) -> float:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003; see the module docstring), 1.0 for
    identical images.

    Computed per channel (R, G, B, or the one gray channel) and averaged over the channels.
    Images too small for 5 scales (a side under 176 pixels) use as many scales as fit (each
    at least 11 x 11), with the weights of those scales renormalised to sum to 1; an image with
    a side under 11 pixels raises ImageError. A negative mean (anti-correlated images) counts as
    0, so that the fractional powers stay real.
    """
    a, b = _pair(ref, test)
    scales = ms_scales(a.shape[0], a.shape[1])
    if scales == 0:
        raise ImageError(f"MS-SSIM needs images of at least {WINDOW}x{WINDOW} pixels, not {a.shape[1]}x{a.shape[0]}")
    weights = np.array(MS_SSIM_WEIGHTS[:scales])
    weights /= weights.sum()
    g = _gaussian()
    value = np.ones(a.shape[2])
    for j, w in enumerate(weights):
        ssim_mean, cs_mean = _ssim_terms(a, b, g)
        term = ssim_mean if j == scales - 1 else cs_mean
        value *= np.maximum(term, 0.0) ** w
        if j < scales - 1:
            a, b = _halve(a), _halve(b)
    return float(value.mean())
