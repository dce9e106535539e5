"""The compiled twin of QConv.conv (hiercodec.exact.layers): the whole-tile convolutions of the
embeddings, conditioning stacks, VQ decoders and encoders. A layer runs here when its accumulator
bound, for inputs up to its `in_max`, is below 2^31 (the kernel sums in int32) and its inputs fit
int16; otherwise the reference runs it (`compiled` returns None)."""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.engine import conv_kernels as K
from hiercodec.engine.gated import _clamps, _ints, _shift, fits_int32, weights
from hiercodec.exact.quant import DTYPE

INT16_MAX = (1 << 15) - 1


class _Layer:
    """A QConv's integers in the kernel's layout."""

    def __init__(self, conv):
        self.ok = conv.in_max <= INT16_MAX and fits_int32(conv)
        self.w, self.b, self.s = weights(conv, columns_first=False), _ints(conv.bias), _shift(conv)
        self.lo, self.hi = _clamps(conv, len(self.b))
        self.kernel, self.in_max = conv.kernel, conv.in_max


def compiled(conv, x: torch.Tensor, clamp: bool) -> torch.Tensor | None:
    """conv.conv(x, clamp) on the engine: (B, Cin, H, W) float64 integers -> (B, O, H', W') float64,
    or None if the layer or its inputs are outside what the kernel covers."""
    layer = conv.__dict__.get("_compiled")  # the layer's kernel form, made on first use and kept with it
    if layer is None:
        layer = conv.__dict__["_compiled"] = _Layer(conv)
    if not layer.ok:
        return None
    a = x.numpy()
    if a.size and np.abs(a).max() > layer.in_max:
        return None  # the reference checks nothing here either: let it compute what it computes
    xs = np.ascontiguousarray(a.transpose(0, 2, 3, 1)).astype(np.int16)
    kh, kw = layer.kernel
    b, h, w, _ = xs.shape
    out = np.empty((b, h - kh + 1, w - kw + 1, len(layer.b)), np.int64)
    K.conv(xs, layer.w, layer.b, layer.s, layer.lo, layer.hi, clamp, kh, kw, out)
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(DTYPE)
