"""Exact layers: integer convolutions by unfold + matrix product (never FFT or Winograd, which are
not exact in any arithmetic) and lookup-table nonlinearities. The same weights serve the whole-tile
pass of the encoder (`conv`) and the one-position steps of the decoder (`dense`): both compute the
same integer sums, so their outputs agree bit for bit (DESIGN.md, "Decode speed").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hiercodec import engine
from hiercodec.exact.quant import ACT_MAX, ACT_MIN, DTYPE, EXACT_LIMIT, GATE_FRAC, accumulator_bound


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=DTYPE)


@dataclass
class QConv:
    """A quantized convolution: y = clamp(floor((W a + b) * 2^-shift)) per output channel.

    weight: (Cout, Cin*kh*kw) integers, columns in F.unfold order (cin, dy, dx); bias holds the
    rounding offset; scale = 2^-shift. `clamp=False` leaves the sum unclamped, for terms that are
    added to others before the clamp."""

    weight: torch.Tensor
    bias: torch.Tensor
    scale: torch.Tensor
    kernel: tuple[int, int]
    lo: torch.Tensor | float = ACT_MIN
    hi: torch.Tensor | float = ACT_MAX
    in_max: float = -ACT_MIN  # the largest |input| its accumulator bound was checked for

    @classmethod
    def from_ints(cls, w_int: np.ndarray, bias_int: np.ndarray, shift: np.ndarray,
                  kernel: tuple[int, int], lo=None, hi=None, in_max: float = -ACT_MIN) -> "QConv":
        bound = accumulator_bound(w_int, bias_int, in_max)
        if bound >= EXACT_LIMIT:
            raise ValueError(f"accumulator bound {bound:.3g} reaches 2^53: not exact")
        lo = ACT_MIN if lo is None else _t(lo).reshape(-1)
        hi = ACT_MAX if hi is None else _t(hi).reshape(-1)
        scale = np.ldexp(1.0, -np.asarray(shift, dtype=np.int64))  # exact powers of two, unlike exp2
        return cls(_t(w_int).reshape(w_int.shape[0], -1), _t(bias_int), _t(scale), kernel, lo, hi, in_max)

    def acc_conv(self, x: torch.Tensor) -> torch.Tensor:
        """Accumulators of a valid convolution of padded x (B, Cin, H, W) -> (B, Cout, H', W')."""
        kh, kw = self.kernel
        b, cin, h, w = x.shape
        cols = x.reshape(b, cin, h * w) if (kh, kw) == (1, 1) else F.unfold(x, (kh, kw))
        acc = torch.matmul(self.weight, cols).add_(self.bias[:, None])
        return acc.reshape(b, -1, h - kh + 1, w - kw + 1)

    def conv(self, x: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        if engine.active():  # the compiled twin, when it covers the layer and its inputs
            from hiercodec.engine.conv import compiled

            out = compiled(self, x, clamp)
            if out is not None:
                return out
        acc = self.acc_conv(x).mul_(self.scale[:, None, None]).floor_()
        return _clamp(acc, self.lo, self.hi, (1, -1, 1, 1)) if clamp else acc

    def dense(self, cols: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """One output position per row: cols (N, Cin*kh*kw) in unfold order -> (N, Cout)."""
        acc = torch.addmm(self.bias, cols, self.weight_t).mul_(self.scale).floor_()
        return _clamp(acc, self.lo, self.hi, (1, -1)) if clamp else acc

    def __post_init__(self) -> None:
        self.weight_t = self.weight.T.contiguous()


def qconv(tensors: dict[str, torch.Tensor], name: str, kernel: tuple[int, int], in_max: float = -ACT_MIN) -> QConv:
    """The layer stored under `name` in a model's tensors: `.w`, `.b`, `.shift` and optional
    per-channel clamps `.lo`, `.hi`; in_max bounds the magnitude of its integer inputs."""
    lo, hi = tensors.get(f"{name}.lo"), tensors.get(f"{name}.hi")
    return QConv.from_ints(tensors[f"{name}.w"].numpy(), tensors[f"{name}.b"].numpy(),
                           tensors[f"{name}.shift"].numpy(), kernel,
                           None if lo is None else lo.numpy(), None if hi is None else hi.numpy(), in_max)


def subset(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors of one sub-network of a model file (names `prefix<name>`), without the prefix."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _clamp(x: torch.Tensor, lo, hi, shape) -> torch.Tensor:
    if isinstance(lo, torch.Tensor):
        return torch.maximum(torch.minimum(x, hi.reshape(shape)), lo.reshape(shape))
    return x.clamp_(lo, hi)


class Gate:
    """Gated activation tanh(a) * sigmoid(b) by lookup: a, b are the two halves of the channels
    (dim 1); the result has GATE_FRAC fractional bits, rounded, in [-2^11, 2^11 - 1]. Both tables
    sit in one array so that one lookup serves both halves."""

    def __init__(self, tanh: torch.Tensor, sig: torch.Tensor, channels: int):
        self.lut = torch.cat([tanh, sig]).to(DTYPE)
        size = tanh.numel()
        self.offset = torch.cat([torch.full((channels,), -ACT_MIN, dtype=DTYPE),
                                 torch.full((channels,), size - ACT_MIN, dtype=DTYPE)])
        self.channels = channels

    def __call__(self, pre: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (pre.dim() - 2)
        r = gather(self.lut, pre + self.offset.view(shape))
        t, s = r.split(self.channels, dim=1)
        return (t * s).add_(1 << (GATE_FRAC - 1)).mul_(2.0 ** -GATE_FRAC).floor_().clamp_(ACT_MIN, ACT_MAX)


def gather(lut: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """lut[index] for a float tensor of non-negative integer indices (any shape). int32 indices
    and index_select: about three times faster than int64 and take on the decoder's tensors."""
    return torch.index_select(lut, 0, index.int().reshape(-1)).reshape(index.shape)


def lookup(lut: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """lut[x - ACT_MIN] for activation integers x."""
    return gather(lut, x - ACT_MIN)
