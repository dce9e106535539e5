"""Export of a trained `vqvae2` model (hiercodec.families.vqvae2_config) to its exact form.

The priors, their code embeddings and the pixel level are the hierarchy's levels
(hiercodec.export.hierarchy); this module adds what is particular to VQ-VAE-2: the exact decoder
(hiercodec.exact.vqdecoder) and the float encoder (`vq.*`, float16: it runs at encode time only
and does not feed a table).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hiercodec.export.hierarchy import export_levels, float_model
from hiercodec.export.quantize import MARGIN, Exporter, code_table, exact_config
from hiercodec.exact.quant import ACT_MAX, frac_bits_for
from hiercodec.families.vqvae2 import DECODER_ONLY, TRAINING_ONLY, encoder_input, hierarchy
from hiercodec.families.vqvae2_config import VQVAE2Config
from hiercodec.nn.vqvae import VQVAE2, Upsample, transposed_as_conv

PIXEL_GAIN = 128.0  # the decoder's output y is the pixel (y * 128 + 128), rounded and clamped


def _frac(*tensors: torch.Tensor) -> int:
    return frac_bits_for(MARGIN * max(float(t.abs().max()) for t in tensors))


def _as_conv(up: Upsample) -> nn.Conv2d:
    conv = nn.Conv2d(up.conv.in_channels, 4 * up.conv.out_channels, 3, padding=1)
    w, b = transposed_as_conv(up.conv.weight.detach(), up.conv.bias.detach())
    conv.weight.data.copy_(w)
    conv.bias.data.copy_(b)
    return conv


def export_vqdecoder(ex: Exporter, prefix: str, vq: VQVAE2, x: torch.Tensor) -> dict:
    """Quantize the decoder under `prefix`, calibrated on images x (B, 3, H, W) in [-1, 1] decoded
    from both code maps and from the top codes alone."""
    vq.eval()
    trace: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        q_t, q_b, _, _, _ = vq.encode(x)
        vq.decode(q_t, q_b, trace)
        vq.decode(q_t, None, trace)
    _, f_t = code_table(ex, f"{prefix}codes_t", vq.vq_t.embed)
    f_ub = min(_frac(*trace["u"]), frac_bits_for(float(vq.vq_b.embed.abs().max()), ACT_MAX))
    code_table(ex, f"{prefix}codes_b", vq.vq_b.embed, f_ub)
    f_h = _frac(*trace["h"], *trace["dh"])
    f_r = [_frac(t) for t in trace["dr"][: len(vq.res_d.conv3)]]
    f_y = _frac(*trace["y1"])
    t_max = float(torch.round(vq.vq_t.embed.abs().max().double() * 2.0 ** f_t))
    ex.conv(f"{prefix}up_t", _as_conv(vq.up_t), f_t, f_ub, in_max=t_max)
    ex.conv(f"{prefix}dec_in", vq.dec_in, f_ub, f_h)
    for l, (a, b) in enumerate(zip(vq.res_d.conv3, vq.res_d.conv1)):
        ex.conv(f"{prefix}res.{l}.a", a, f_h, f_r[l])
        ex.conv(f"{prefix}res.{l}.b", b, f_r[l], f_h)
    ex.conv(f"{prefix}up1", _as_conv(vq.up1), f_h, f_y)
    n = 4 * vq.up2.conv.out_channels
    ex.conv(f"{prefix}up2", _as_conv(vq.up2), f_y, 0, gain=np.full(n, PIXEL_GAIN), offset=np.full(n, PIXEL_GAIN),
            lo=np.zeros(n), hi=np.full(n, 255))
    return {"top_frac": f_t, "bottom_frac": f_ub, "h_frac": f_h, "r_frac": f_r, "y_frac": f_y}


def export_vqvae2(state_dict: dict[str, torch.Tensor], config: VQVAE2Config,
                  calibration: np.ndarray) -> tuple[dict[str, np.ndarray], dict]:
    """(tensors, exact config) of a VQ-VAE-2 model; calibration: uint8 RGB crops (N, H, W, 3): the
    exact decoder, then the levels' networks (export_levels), then the float encoder."""
    model = float_model(config, state_dict)
    vq = model["vq"]
    ex = Exporter()
    parts = {"dec": export_vqdecoder(ex, "dec.", vq, encoder_input(calibration))}
    h = hierarchy(config)
    parts.update(export_levels(ex, h, model, h.values(calibration, model)))
    tensors = ex.tensors
    # the encoder in float16: it only chooses codes (any codes make a valid file), so its precision
    # costs a little quality at most, and it halves the largest part of the model file
    encoder = {f"vq.{k}": v.detach().half().numpy() for k, v in vq.state_dict().items()
               if not k.startswith(DECODER_ONLY) and not k.endswith(TRAINING_ONLY)}
    tensors.update(encoder)
    return tensors, exact_config("vqvae2", config, ex, **parts)
