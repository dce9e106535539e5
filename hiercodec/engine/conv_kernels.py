"""numba kernel of an exact convolution (hiercodec.exact.layers.QConv.conv): the same integer sums
as the reference's unfold and matrix product, one output position at a time, int16 operands and
int32 sums (the layer's accumulator bound is checked below 2^31 before it runs here)."""

from __future__ import annotations

import numba as nb
import numpy as np

from hiercodec.engine.gated_kernels import _clamp, _dot, _rq


@nb.njit(parallel=True, boundscheck=False, cache=True)
def conv(x, w, b, s, lo, hi, clamp, kh, kw, out):
    """Valid convolution of x (B, H, W, Cin) int16 (already padded) by w (O, kh kw Cin), columns in
    (dy, dx, cin) order -> out (B, H - kh + 1, W - kw + 1, O): floor((w . patch + b) 2^-s), clamped
    to [lo, hi] per channel if `clamp`. Rows of the output go to the threads."""
    batch, height, width, cin = x.shape
    ho, wo, outs = out.shape[1], out.shape[2], w.shape[0]
    run = kw * cin  # one kernel row's inputs: contiguous in x
    n = kh * run
    for q in nb.prange(batch * ho):
        t, i = q // ho, q % ho
        patch = np.empty(n, np.int16)
        for j in range(wo):
            for dy in range(kh):
                row = x[t, i + dy].reshape(-1)
                patch[dy * run : (dy + 1) * run] = row[j * cin : j * cin + run]
            for o in range(outs):
                y = _rq(_dot(w, o, 0, patch, 0, n) + b[o], s[o])
                out[t, i, j, o] = _clamp(y, lo[o], hi[o]) if clamp else y
