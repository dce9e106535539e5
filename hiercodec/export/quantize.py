"""Quantization of trained float networks into their exact integer form (post-training).

Calibration runs the float model on sample patches and records the range of every tensor that is
requantized; each gets the largest power-of-two scale that holds 1.25x its range in 12-bit
activations. Weights get 10 bits with a power-of-two scale per output channel. The last layer folds
the mixture's affine transforms (hiercodec.nn.mixture) into its weights and clamps each parameter
to the exact head's range (hiercodec.exact.mixture). Attention layers (hiercodec.exact.attention)
fold 1/sqrt(key_channels) into q and give q, k and v their own scales. `quantization_loss` measures
what this costs.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hiercodec.exact import gaussian as xg
from hiercodec.exact import mixture as xm
from hiercodec.exact.categorical import LOGIT_MAX, LOGIT_MIN, LOGIT_SCALE
from hiercodec.exact.quant import (
    ACT_MAX, ACT_MIN, GATE_FRAC, accumulator_bound, elu_lut, frac_bits_for, gate_luts, quantize_bias,
    quantize_weights, rounding_offset,
)
from hiercodec.families.inputs import PIXELS
from hiercodec.families.pixelcnn_config import PixelCNNConfig
from hiercodec.nn import mixture as fm
from hiercodec.nn.embedding import Embedding
from hiercodec.nn.attention import CausalSelfAttention
from hiercodec.nn.gated import GatedPixelCNN

MARGIN = 1.25
GATE_INPUT_FRAC = 8  # 12-bit activations with 8 fractional bits span +-8
ATTN_FRAC_MAX = 16  # q, k, v of attention: at most 16 fractional bits, however small their range
LOGIT_FRAC = round(math.log2(LOGIT_SCALE))  # integer logits are in 2^-4 nat


def _out2_affine(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per output channel of the last layer: gain, offset, lo, hi of its integer parameter."""
    blocks = [  # (count, gain, offset, lo, hi)
        (k, 16.0, 0.0, xm.PI_MIN, xm.PI_MAX),
        (3 * k, 16.0 * fm.MU_SCALE, 16.0 * fm.MU_OFFSET, xm.MU_MIN, xm.MU_MAX),
        (3 * k, 32.0, 32.0 * fm.LOG_S_OFFSET, xm.LS_MIN, xm.LS_MAX),
        (3 * k, 1024.0, 0.0, xm.COEFF_MIN, xm.COEFF_MAX),
    ]
    cols = [np.repeat(np.array([b[i] for b in blocks], dtype=np.float64), [b[0] for b in blocks]) for i in range(1, 5)]
    return cols[0], cols[1], cols[2], cols[3]


def gaussian_affine(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """gain, offset, lo, hi of a last layer giving k Gaussians' integer parameters (hiercodec.exact.
    gaussian): k means in 2^-MU_FRAC, then k log scales in 1/LS_SCALE nat, each clamped to its range."""
    gain = np.concatenate([np.full(k, float(1 << xg.MU_FRAC)), np.full(k, float(xg.LS_SCALE))])
    lo = np.concatenate([np.full(k, -xg.MU_MAX), np.full(k, xg.LS_MIN)])
    hi = np.concatenate([np.full(k, xg.MU_MAX), np.full(k, xg.LS_MAX)])
    return gain, np.zeros(2 * k), lo, hi


class Exporter:
    """Collects the integer tensors of one model file (`tensors`) and the log2 accumulator bound of
    every layer (`bounds`) as layers are quantized; sub-networks go under a name prefix."""

    def __init__(self) -> None:
        self.tensors: dict[str, np.ndarray] = {}
        self.bounds: dict[str, float] = {}

    def conv(self, name: str, conv: torch.nn.Conv2d, in_frac: int, out_frac, in_max: float = -ACT_MIN,
             gain=None, offset=None, lo=None, hi=None) -> None:
        """Quantize `conv` (weights 10 bits per output channel) for inputs with in_frac fractional
        bits to outputs with out_frac (one int or one per output channel); gain/offset fold an
        affine map of the outputs into the layer; lo/hi are per-channel clamps."""
        w = conv.weight.detach().double().numpy().reshape(conv.out_channels, -1)
        b = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(conv.out_channels)
        if gain is not None:
            w, b = w * gain[:, None], b * gain + offset
        w_int, fw = quantize_weights(w)
        acc_frac = fw + in_frac
        shift = acc_frac - np.asarray(out_frac)
        b_int = quantize_bias(b, acc_frac) + rounding_offset(shift).astype(np.int64)
        self.tensors[f"{name}.w"] = w_int.astype(np.int16)
        self.tensors[f"{name}.b"] = b_int
        self.tensors[f"{name}.shift"] = shift.astype(np.int32)
        if lo is not None:
            self.tensors[f"{name}.lo"], self.tensors[f"{name}.hi"] = lo.astype(np.int32), hi.astype(np.int32)
        self.bounds[name] = math.log2(max(1.0, accumulator_bound(w_int, b_int, in_max)))

    def lut(self, name: str, values: np.ndarray) -> None:
        """Store a lookup table as int32: every table's entries (gates, ELU, exp, the logistic CDF)
        are far inside its range, and int64 would double the model file for nothing."""
        if values.min() < -(1 << 31) or values.max() >= 1 << 31:
            raise ValueError(f"lookup table {name} does not fit int32")
        self.tensors[name] = values.astype(np.int32)

    def bound_report(self) -> dict[str, float]:
        return {k: round(v, 2) for k, v in self.bounds.items()}


def _range(ts: list[torch.Tensor]) -> float:
    return MARGIN * max(float(t.abs().max()) for t in ts)


def gated_layer_fracs(fracs: dict, layers: int, in_frac: int) -> list[tuple[str, int, int, bool]]:
    """The requantized layers of a gated PixelCNN up to out1, in the order export writes them:
    (name, input fractional bits, output fractional bits, whether it reads the network input).
    Export and its inverse (`dequantize_gated`) both follow this table."""
    f_h, f_vp, f_hp, f_o1 = fracs["h_frac"], fracs["vp_frac"], fracs["hp_frac"], fracs["o1_frac"]
    table = [("v_in", in_frac, f_vp[0], True), ("h_in", in_frac, f_hp[0], True), ("link_in", f_vp[0], f_hp[0], False)]
    for l in range(layers):
        table += [(f"v.{l}", GATE_FRAC, f_vp[l + 1], False), (f"h.{l}", f_h, f_hp[l + 1], False),
                  (f"link.{l}", f_vp[l + 1], f_hp[l + 1], False), (f"res.{l}", GATE_FRAC, f_h, False)]
    return table + [("out1", f_h, f_o1, False)]


def export_gated(ex: Exporter, prefix: str, model: GatedPixelCNN, x: torch.Tensor, in_frac: int, in_max: float,
                 head: str, k: int, features: torch.Tensor | None = None, features_frac: int = 0) -> dict:
    """Quantize a float gated PixelCNN into `ex` under `prefix`, calibrated on its input x (float,
    exactly x_int 2^-in_frac) and features (exactly f_int 2^-features_frac). head "mixture": 10k
    discretized-logistic parameters (hiercodec.exact.mixture); "categorical": k logits in 1/16 nat
    (hiercodec.exact.categorical); "gaussian": k means and k log scales (hiercodec.exact.gaussian). Returns the fractional bits chosen (the exact config); a network
    with attention adds "attention": its heads, key_channels, every, and per layer the fractional
    bits of q, k, v and the logit shift (hiercodec.exact.attention)."""
    model.eval()
    trace: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        model(x, features, trace=trace)
    f_vp = [frac_bits_for(_range([t])) for t in trace["vp"]]
    # hp feeds only the gate, whose tanh and sigmoid are saturated (within 3.4e-4) beyond +-8: no
    # coarser than that, rare larger values clamp at no cost (halves s2's quantization loss)
    f_hp = [max(GATE_INPUT_FRAC, frac_bits_for(_range([t]))) for t in trace["hp"]]
    f_h = min(GATE_FRAC, frac_bits_for(_range(trace["h"])))
    f_o1 = min(GATE_FRAC, frac_bits_for(_range(trace["o1"])))
    n = lambda name: f"{prefix}{name}"  # noqa: E731
    layers, c2 = model.layers, 2 * model.channels
    fracs = {"h_frac": f_h, "vp_frac": f_vp, "hp_frac": f_hp, "o1_frac": f_o1}
    for name, lf_in, lf_out, reads_input in gated_layer_fracs(fracs, layers, in_frac):
        ex.conv(n(name), model.get_submodule(name), lf_in, lf_out, in_max=in_max if reads_input else -ACT_MIN)
    if model.cond is not None:  # one projection per layer: 2C vertical biases, then 2C horizontal
        for l in range(layers + 1):
            ex.conv(n(f"cond.{l}"), model.cond[l], features_frac, np.repeat([f_vp[l], f_hp[l]], c2))
    if head == "mixture":
        gain, offset, lo, hi = _out2_affine(k)
        for name, values in xm.build_luts().items():
            ex.lut(n(f"lut.{name}"), values)
    elif head == "gaussian":  # k latent channels' priors (hiercodec.exact.gaussian), no table of its own
        gain, offset, lo, hi = gaussian_affine(k)
    elif head == "categorical":
        gain, offset = np.full(k, LOGIT_SCALE), np.zeros(k)
        lo, hi = np.full(k, LOGIT_MIN), np.full(k, LOGIT_MAX)
        ex.lut(n("lut.exp"), xm.build_luts()["exp"])
    else:
        raise ValueError(f"unknown head {head!r}")
    ex.conv(n("out2"), model.out2, f_o1, 0, gain=gain, offset=offset, lo=lo, hi=hi)
    for l in range(layers + 1):
        if l < layers:  # the last vertical stack output feeds nothing
            for kind, values in zip(("tanh", "sig"), gate_luts(f_vp[l])):
                ex.lut(n(f"lut.gate.v{l}.{kind}"), values)
        for kind, values in zip(("tanh", "sig"), gate_luts(f_hp[l])):
            ex.lut(n(f"lut.gate.h{l}.{kind}"), values)
    ex.lut(n("lut.elu"), elu_lut(f_o1, f_o1))
    if model.attn is not None and len(model.attn):
        layers_attn = {key: _export_attention(ex, n(f"attn.{key}."), att, trace, f"attn.{key}.", f_h)
                       for key, att in model.attn.items()}
        first = next(iter(model.attn.values()))
        fracs["attention"] = {"every": model.attention_every, "heads": first.heads,
                              "key_channels": first.key_channels, "layers": layers_attn}
    return fracs


def _export_attention(ex: Exporter, prefix: str, att: CausalSelfAttention, trace: dict[str, list[torch.Tensor]],
                      name: str, f_h: int) -> dict:
    """Quantize one attention layer reading and updating the residual stream (f_h fractional
    bits). q, k, v: 12-bit outputs at fractional bits from their calibrated ranges, 1/sqrt(dk)
    folded into q (its trace holds q scaled); scores, with f_q + f_k bits, become logits in 1/16
    nat by the right shift f_q + f_k - 4; the heads' outputs keep v's bits into the output layer.
    The exp table is the heads' `lut.exp` (both heads store it)."""
    f = {t: min(ATTN_FRAC_MAX, frac_bits_for(_range(trace[name + t]))) for t in ("q", "k", "v")}
    inner = att.heads * att.key_channels
    ex.conv(prefix + "q", att.q, f_h, f["q"], gain=np.full(inner, att.scale), offset=np.zeros(inner))
    ex.conv(prefix + "k", att.k, f_h, f["k"])
    ex.conv(prefix + "v", att.v, f_h, f["v"])
    ex.conv(prefix + "out", att.out, f["v"], f_h)
    shift = f["q"] + f["k"] - LOGIT_FRAC
    ex.tensors[prefix + "logit_shift"] = np.array([shift], dtype=np.int32)
    return {"q_frac": f["q"], "k_frac": f["k"], "v_frac": f["v"], "logit_shift": shift}


def export_embedding(ex: Exporter, prefix: str, model: Embedding, x: torch.Tensor, in_frac: int,
                     in_max: float) -> dict:
    """Quantize a float embedding into `ex` under `prefix`, calibrated on its input x (exactly
    x_int 2^-in_frac). Returns the exact config; its "frac" is that of the output features."""
    model.eval()
    trace: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        model(x, trace=trace)
    f_h = min(GATE_FRAC, frac_bits_for(_range(trace["e_h"])))
    f_r = [min(GATE_FRAC, frac_bits_for(_range([t]))) for t in trace["e_r"]]
    n = lambda name: f"{prefix}{name}"  # noqa: E731
    ex.conv(n("inp"), model.inp, in_frac, f_h, in_max=in_max)
    for b in range(model.blocks):
        ex.conv(n(f"conv1.{b}"), model.conv1[b], f_h, f_r[b])
        ex.conv(n(f"conv2.{b}"), model.conv2[b], f_r[b], f_h)
        ex.lut(n(f"lut.elu.{b}"), elu_lut(f_r[b], f_r[b]))
    for b, conv in model.down.items():
        ex.conv(n(f"down.{b}"), conv, f_h, f_h)
    for b, conv in model.up.items():
        ex.conv(n(f"up.{b}"), conv, f_h, f_h)
    ex.lut(n("lut.elu"), elu_lut(f_h, f_h))
    return {"frac": f_h, "r_frac": f_r}


def _dequantize_conv(tensors: dict, name: str, in_frac: int, out_frac: int, shape: torch.Size,
                     gain: np.ndarray | None = None, offset: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Float (weight, bias) of one exported layer: the inverse of Exporter.conv."""
    shift = np.asarray(tensors[f"{name}.shift"], dtype=np.float64)
    acc_frac = shift + out_frac
    w = np.asarray(tensors[f"{name}.w"], dtype=np.float64) * np.exp2(-(acc_frac - in_frac))[:, None]
    b = (np.asarray(tensors[f"{name}.b"], dtype=np.float64) - rounding_offset(shift)) * np.exp2(-acc_frac)
    if gain is not None:
        w, b = w / gain[:, None], (b - offset) / gain
    return torch.from_numpy(w).float().reshape(shape), torch.from_numpy(b).float()


def code_table(ex: Exporter, name: str, weight: torch.Tensor, frac: int | None = None) -> tuple[torch.Tensor, int]:
    """Store a code embedding (K, E) as integers with `frac` fractional bits (from its range when
    None); returns the float table the exact model sees (integers x 2^-frac) and frac."""
    w = weight.detach().double()
    frac = frac_bits_for(float(w.abs().max()), ACT_MAX) if frac is None else frac
    table = torch.clamp(torch.round(w * 2.0 ** frac), -ACT_MAX, ACT_MAX)
    ex.lut(name, table.numpy().astype(np.int64))
    return (table * 2.0 ** -frac).float(), frac


def dequantize_pixelcnn(tensors: dict, exact_config: dict) -> dict[str, torch.Tensor]:
    """Float weights of an exact `pixelcnn` model (its weights file and config.json): the inverse of
    its export (export.hierarchy) up to the rounding of weights to 10 bits and biases to the
    accumulator's grid. A run whose float checkpoint is lost starts again from a shipped model."""
    config = PixelCNNConfig(**exact_config["network"])
    fracs = exact_config["exact"]
    state = config.build().state_dict()
    table = [(name, f_in, f_out, None, None) for name, f_in, f_out, _ in
             gated_layer_fracs(fracs, config.layers, PIXELS.frac)]
    gain, offset, _, _ = _out2_affine(config.mixtures)
    table.append(("out2", fracs["o1_frac"], 0, gain, offset))
    for name, f_in, f_out, g, o in table:
        w, b = _dequantize_conv(tensors, name, f_in, f_out, state[f"{name}.weight"].shape, g, o)
        state[f"{name}.weight"] = w
        if f"{name}.bias" in state:
            state[f"{name}.bias"] = b
    return state


def exact_config(family: str, network, ex: Exporter, **parts: dict) -> dict:
    exact = {"act_bits": 12, "weight_bits": 10, **parts, "accumulator_log2_bound": ex.bound_report()}
    return {"family": family, "network": network.to_dict(), "exact": exact}
