"""The compiled twin of an exact gated PixelCNN (hiercodec.exact.pixelcnn.ExactPixelCNN): the same
integers, taken from the reference's layers, laid out for hiercodec.engine.gated_kernels."""

from __future__ import annotations

from collections import namedtuple

import numba
import numpy as np
import torch

from hiercodec.engine import gated_kernels as K
from hiercodec.exact.layers import QConv
from hiercodec.exact.quant import ACT_MIN, DTYPE, GATE_FRAC, accumulator_bound

INT32_LIMIT = 1 << 31

Net = namedtuple("Net", "channels in_channels h0_shift h0_offset vin_w vin_b vin_s hin_w hin_b hin_s lin_w lin_b lin_s "
                        "v_w v_b v_s h_w h_b h_s link_w link_b link_s res_w res_b res_s out1_w out1_b out1_s "
                        "out1_lo out1_hi out2_w out2_b out2_s out2_lo out2_hi cond_w cond_b cond_s gate_v gate_h elu")


def _ints(t: torch.Tensor | float, dtype=np.int64) -> np.ndarray:
    """Integers as `dtype`; floats (the reference carries integers in float64) must be integral."""
    a = np.asarray(t.numpy() if isinstance(t, torch.Tensor) else t)
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(dtype, copy=False)
    if not np.array_equal(a, np.rint(a)):
        raise ValueError("a layer of the exact network holds a non-integer")
    return a.astype(dtype)


def weights(conv: QConv, columns_first: bool = True) -> np.ndarray:
    """(O, kh kw cin) int16 from unfold order (cin, dy, dx): columns in (dx, dy, cin) order (the
    gated kernels' caches interleave the rows of a column), or (dy, dx, cin) (channels-last rows)."""
    kh, kw = conv.kernel
    o = conv.weight.shape[0]
    w = conv.weight.reshape(o, -1, kh, kw).permute(0, 3, 2, 1) if columns_first else \
        conv.weight.reshape(o, -1, kh, kw).permute(0, 2, 3, 1)
    return np.ascontiguousarray(_ints(w, np.int16).reshape(o, -1))


def fits_int32(conv: QConv) -> bool:
    """Whether every partial sum of the layer, for inputs up to its in_max, stays below 2^31 (the
    kernels sum in int32); the bound export proves below 2^53, recomputed here."""
    return accumulator_bound(_ints(conv.weight), _ints(conv.bias), conv.in_max) < INT32_LIMIT


def _shift(conv: QConv) -> np.ndarray:
    """shift with scale = 2^-shift (exact powers of two, so frexp recovers it)."""
    mantissa, exponent = np.frexp(conv.scale.numpy())
    if not np.all(mantissa == 0.5):
        raise ValueError("a layer's scale is not a power of two")
    return (1 - exponent).astype(np.int64)


def _clamps(conv: QConv, n: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = (np.broadcast_to(_ints(v), (n,)).copy() for v in (conv.lo, conv.hi))
    return lo, hi


def _stack(convs: list[QConv], kind: str, shape: tuple) -> np.ndarray:
    if not convs:
        return np.zeros(shape, np.int16 if kind == "w" else np.int64)
    if kind == "w":
        return np.ascontiguousarray(np.stack([weights(c) for c in convs]))
    if kind == "b":
        return np.stack([_ints(c.bias) for c in convs])
    return np.stack([_shift(c) for c in convs])


def compile_network(net) -> Net:
    """The kernels' description of an ExactPixelCNN without attention."""
    c, layers, cin = net.channels, net.layers, net.in_channels
    c2 = 2 * c
    shift = int(round(-np.log2(net.h0_scale)))  # GATE_FRAC - h_frac, from the reference's own scale
    lut = lambda gate: np.stack([_ints(gate.lut[: K.LUT]), _ints(gate.lut[K.LUT :])])  # noqa: E731
    one = lambda conv: (weights(conv), _ints(conv.bias), _shift(conv))  # noqa: E731
    vin, hin, lin, out1, out2 = (one(conv) for conv in (net.v_in, net.h_in, net.link_in, net.out1, net.out2))
    cond = net.cond or []
    return Net(
        channels=c, in_channels=cin, h0_shift=shift, h0_offset=(1 << (shift - 1)) if shift > 0 else 0,
        vin_w=vin[0], vin_b=vin[1], vin_s=vin[2], hin_w=hin[0], hin_b=hin[1], hin_s=hin[2],
        lin_w=lin[0], lin_b=lin[1], lin_s=lin[2],
        v_w=_stack(net.v, "w", (0, c2, 6 * c)), v_b=_stack(net.v, "b", (0, c2)), v_s=_stack(net.v, "s", (0, c2)),
        h_w=_stack(net.h, "w", (0, c2, 2 * c)), h_b=_stack(net.h, "b", (0, c2)), h_s=_stack(net.h, "s", (0, c2)),
        link_w=_stack(net.link, "w", (0, c2, c2)), link_b=_stack(net.link, "b", (0, c2)),
        link_s=_stack(net.link, "s", (0, c2)),
        res_w=_stack(net.res, "w", (0, c, c)), res_b=_stack(net.res, "b", (0, c)),
        res_s=_stack(net.res, "s", (0, c)),
        out1_w=out1[0], out1_b=out1[1], out1_s=out1[2], out1_lo=_clamps(net.out1, len(out1[1]))[0],
        out1_hi=_clamps(net.out1, len(out1[1]))[1],
        out2_w=out2[0], out2_b=out2[1], out2_s=out2[2], out2_lo=_clamps(net.out2, len(out2[1]))[0],
        out2_hi=_clamps(net.out2, len(out2[1]))[1],
        cond_w=_stack(cond, "w", (layers + 1, 0, 0)), cond_b=_stack(cond, "b", (layers + 1, 0)),
        cond_s=_stack(cond, "s", (layers + 1, 0)),
        gate_v=np.stack([lut(g) for g in net.gate_v]) if layers else np.zeros((0, 2, K.LUT), np.int64),
        gate_h=np.stack([lut(g) for g in net.gate_h]), elu=_ints(net.elu))


def features_last(features: torch.Tensor | None, batch: int) -> np.ndarray:
    """(B, E, H, W) conditioning features -> (B, H, W, E) int16, or an empty stand-in. Features are
    activations (12-bit integers): the conditioning layers' bounds were checked for that."""
    if features is None:
        return np.zeros((batch, 1, 1, 0), np.int16)
    return np.ascontiguousarray(_inputs(features, -ACT_MIN).transpose(0, 2, 3, 1))


def _inputs(x: torch.Tensor, in_max: float) -> np.ndarray:
    """Integer inputs as int16, refused beyond the bound the accumulators were checked for."""
    a = _ints(x, np.int64)
    if a.size and np.abs(a).max() > in_max:
        raise ValueError(f"network inputs beyond their bound {in_max}")
    return a.astype(np.int16)


class CompiledPixelCNN:
    """forward (the encoder's whole tiles) and decoder (incremental steps) of `net`, compiled."""

    def __init__(self, net):
        if not self.covers(net):
            raise ValueError("the compiled engine does not cover this network (attention, or a bound above 2^31)")
        self.net = compile_network(net)
        self.reference, self.in_max = net, net.in_max
        self.out = len(self.net.out2_b)

    @staticmethod
    def covers(net) -> bool:
        """No attention layers (not compiled yet), and every layer's sums below 2^31 (`fits_int32`)."""
        if net.attn or not -3 <= round(-np.log2(net.h0_scale)) <= GATE_FRAC:
            return False  # the first horizontal output must fit int16 (h_frac <= 14)
        convs = [net.v_in, net.h_in, net.link_in, net.out1, net.out2] + net.v + net.h + net.link + net.res
        return all(fits_int32(conv) for conv in convs + (net.cond or []))

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        xs = np.ascontiguousarray(_inputs(x, self.in_max).transpose(0, 2, 3, 1))
        out = np.empty(xs.shape[:3] + (self.out,), np.int64)
        K.encode_tiles(self.net, xs, features_last(features, len(xs)), out)
        return torch.from_numpy(out).permute(0, 3, 1, 2).to(DTYPE)

    def decoder(self, batch: int, width: int, features: torch.Tensor | None = None) -> "CompiledDecoder":
        return CompiledDecoder(self, batch, width, features)


class CompiledDecoder:
    """hiercodec.exact.pixelcnn.Decoder's interface (row, step, set_pixel), on the kernels' caches."""

    def __init__(self, net: CompiledPixelCNN, batch: int, width: int, features: torch.Tensor | None = None):
        n = net.net
        layers, c, cin = len(n.v_w), n.channels, n.in_channels
        self.net, self.feat = net, features_last(features, batch)
        self.xc = np.zeros((batch, 2, 3 * (width + 6) * cin), np.int16)
        self.vc = np.zeros((layers, batch, 2 * (width + 2) * c), np.int16)
        self.link = np.zeros((layers + 1, batch, width, 2 * c), np.int64)
        self.hrow = np.zeros((layers + 1, batch, (width + 1) * c), np.int16)
        self.params = np.empty((batch, net.out), np.int64)

    def row(self, i: int) -> None:
        K.decode_row(self.net.net, self.xc, self.vc, self.link, self.hrow, self.feat, i)

    def step(self, j: int) -> torch.Tensor:
        blocks = min(len(self.xc), numba.get_num_threads())
        K.decode_step(self.net.net, self.xc, self.link, self.hrow, j, self.params, blocks)
        return torch.from_numpy(self.params.astype(np.float64))  # the reference's dtype

    def set_pixel(self, j: int, inputs: torch.Tensor) -> None:
        K.set_inputs(self.xc, j, _inputs(inputs, self.net.in_max))
