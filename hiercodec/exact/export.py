"""Export a trained float PixelCNN to its exact integer form (post-training quantization).

Calibration runs the float model on sample patches and records the range of every tensor that is
requantized; each gets the largest power-of-two scale that holds 1.25x its range in 12-bit
activations. Weights get 10 bits with a power-of-two scale per output channel. The last layer folds
the mixture's affine transforms (hiercodec.nn.mixture) into its weights and clamps each parameter
to the exact head's range (hiercodec.exact.mixture). `quantization_loss` measures what this costs.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hiercodec.exact import mixture as xm
from hiercodec.exact.quant import (
    ACT_MIN, GATE_FRAC, accumulator_bound, elu_lut, frac_bits_for, gate_luts, quantize_bias,
    quantize_weights, rounding_offset,
)
from hiercodec.families.pixelcnn_config import PixelCNNConfig, to_input
from hiercodec.nn import mixture as fm

INPUT_FRAC = 7  # network input (x - 128) / 128
MARGIN = 1.25


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


def export_pixelcnn(state_dict: dict[str, torch.Tensor], config: PixelCNNConfig,
                    calibration: torch.Tensor) -> tuple[dict[str, np.ndarray], dict]:
    """(tensors, exact config) of the exact model; calibration: uint8 (N, 3, H, W) patches."""
    model = config.build()
    model.load_state_dict(state_dict)
    model.eval()
    trace: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        model(to_input(calibration), trace=trace)

    def rng(ts: list[torch.Tensor]) -> float:
        return MARGIN * max(float(t.abs().max()) for t in ts)

    f_vp = [frac_bits_for(rng([t])) for t in trace["vp"]]
    f_hp = [frac_bits_for(rng([t])) for t in trace["hp"]]
    f_h = min(GATE_FRAC, frac_bits_for(rng(trace["h"])))
    f_o1 = min(GATE_FRAC, frac_bits_for(rng(trace["o1"])))
    tensors: dict[str, np.ndarray] = {}
    bounds: dict[str, float] = {}

    def quant(name: str, conv: torch.nn.Conv2d, in_frac: int, out_frac, in_max: float = -ACT_MIN,
              gain=None, offset=None, lo=None, hi=None) -> None:
        w = conv.weight.detach().double().numpy().reshape(conv.out_channels, -1)
        b = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(conv.out_channels)
        if gain is not None:
            w, b = w * gain[:, None], b * gain + offset
        w_int, fw = quantize_weights(w)
        acc_frac = fw + in_frac
        shift = acc_frac - np.asarray(out_frac)
        b_int = quantize_bias(b, acc_frac) + rounding_offset(shift).astype(np.int64)
        tensors[f"{name}.w"] = w_int.astype(np.int16)
        tensors[f"{name}.b"] = b_int
        tensors[f"{name}.shift"] = shift.astype(np.int32)
        if lo is not None:
            tensors[f"{name}.lo"], tensors[f"{name}.hi"] = lo.astype(np.int32), hi.astype(np.int32)
        bounds[name] = math.log2(max(1.0, accumulator_bound(w_int, b_int, in_max)))

    quant("v_in", model.v_in, INPUT_FRAC, f_vp[0], in_max=128)
    quant("h_in", model.h_in, INPUT_FRAC, f_hp[0], in_max=128)
    quant("link_in", model.link_in, f_vp[0], f_hp[0])
    for l in range(config.layers):
        quant(f"v.{l}", model.v[l], GATE_FRAC, f_vp[l + 1])
        quant(f"h.{l}", model.h[l], f_h, f_hp[l + 1])
        quant(f"link.{l}", model.link[l], f_vp[l + 1], f_hp[l + 1])
        quant(f"res.{l}", model.res[l], GATE_FRAC, f_h)
    quant("out1", model.out1, f_h, f_o1)
    gain, offset, lo, hi = _out2_affine(config.mixtures)
    quant("out2", model.out2, f_o1, 0, gain=gain, offset=offset, lo=lo, hi=hi)
    for l in range(config.layers + 1):
        if l < config.layers:  # the last vertical stack output feeds nothing
            tensors[f"lut.gate.v{l}.tanh"], tensors[f"lut.gate.v{l}.sig"] = gate_luts(f_vp[l])
        tensors[f"lut.gate.h{l}.tanh"], tensors[f"lut.gate.h{l}.sig"] = gate_luts(f_hp[l])
    tensors["lut.elu"] = elu_lut(f_o1, f_o1)
    tensors.update({f"lut.{k}": v for k, v in xm.build_luts().items()})
    exact = {"act_bits": 12, "weight_bits": 10, "h_frac": f_h, "vp_frac": f_vp, "hp_frac": f_hp,
             "o1_frac": f_o1, "accumulator_log2_bound": {k: round(v, 2) for k, v in bounds.items()}}
    return tensors, {"family": "pixelcnn", "network": config.to_dict(), "exact": exact}


def float_bits(state_dict: dict[str, torch.Tensor], config: PixelCNNConfig, images: torch.Tensor) -> float:
    """Bits of uint8 images (N, 3, H, W) under the float model (its own zero padding at borders)."""
    model = config.build()
    model.load_state_dict(state_dict)
    model.eval()
    with torch.no_grad():
        return float(fm.nll_bits(model(to_input(images)), images, config.mixtures).sum())
