"""Export of a trained `vqvae2` model (hiercodec.families.vqvae2_config) to its exact form.

The priors and the pixel level go through the PixelCNN and embedding exporters of
hiercodec.exact.export; this module adds what is particular to VQ-VAE-2: the code embeddings the
priors read (integer tables), the exact decoder (hiercodec.exact.vqdecoder) and the float encoder
(`vq.*`, float16: it runs at encode time only and does not feed a table).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hiercodec.exact.export import (
    INPUT_FRAC, MARGIN, Exporter, _exact_config, export_embedding, export_gated, pixels_tensor,
)
from hiercodec.exact.quant import ACT_MAX, frac_bits_for
from hiercodec.families.vqvae2 import DECODER_ONLY, TRAINING_ONLY, encoder_input
from hiercodec.families.vqvae2_config import VQVAE2Config
from hiercodec.nn.vqvae import VQVAE2, Upsample, reconstruction_pixels, transposed_as_conv

PIXEL_GAIN = 128.0  # the decoder's output y is the pixel (y * 128 + 128), rounded and clamped


def _frac(*tensors: torch.Tensor) -> int:
    return frac_bits_for(MARGIN * max(float(t.abs().max()) for t in tensors))


def code_table(ex: Exporter, name: str, weight: torch.Tensor, frac: int | None = None) -> tuple[torch.Tensor, int]:
    """Store a code embedding (K, E) as integers with `frac` fractional bits (from its range when
    None); returns the float table the exact model sees (integers x 2^-frac) and frac."""
    w = weight.detach().double()
    frac = frac_bits_for(float(w.abs().max()), ACT_MAX) if frac is None else frac
    table = torch.clamp(torch.round(w * 2.0 ** frac), -ACT_MAX, ACT_MAX)
    ex.lut(name, table.numpy().astype(np.int64))
    return (table * 2.0 ** -frac).float(), frac


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
    """(tensors, exact config) of a VQ-VAE-2 model; calibration: uint8 RGB crops (N, H, W, 3)."""
    model = config.build()
    model.load_state_dict(state_dict)
    model.eval()
    vq = model["vq"]
    x = encoder_input(calibration)
    ex = Exporter()
    parts = {"dec": export_vqdecoder(ex, "dec.", vq, x)}
    with torch.no_grad():
        _, _, codes_t, codes_b, _ = vq.encode(x)
        recon = reconstruction_pixels(vq.decode_codes(codes_t, codes_b))
    top_in, f = code_table(ex, "top_in", model["top_in"].weight)
    planes = lambda table, codes: table[codes].permute(0, 3, 1, 2)  # noqa: E731
    parts["top"] = export_gated(ex, "top.", model["top"], planes(top_in, codes_t), f,
                                float(top_in.abs().max()) * 2.0 ** f, "categorical", config.codes)
    cond_in, fc = code_table(ex, "cond_in", model["cond_in"].weight)
    cond_x = planes(cond_in, codes_t)
    parts["cond"] = export_embedding(ex, "cond.", model["cond"], cond_x, fc, float(cond_in.abs().max()) * 2.0 ** fc)
    with torch.no_grad():
        features = model["cond"](cond_x)
    bottom_in, fb = code_table(ex, "bottom_in", model["bottom_in"].weight)
    parts["bottom"] = export_gated(ex, "bottom.", model["bottom"], planes(bottom_in, codes_b), fb,
                                   float(bottom_in.abs().max()) * 2.0 ** fb, "categorical", config.codes,
                                   features, parts["cond"]["frac"])
    r = pixels_tensor(recon)
    parts["embed"] = export_embedding(ex, "embed.", model["embed"], r, INPUT_FRAC, 128)
    with torch.no_grad():
        features = model["embed"](r)
    h, w = calibration.shape[1:3]
    parts["pixels"] = export_gated(ex, "pixels.", model["pixels"], pixels_tensor(calibration), INPUT_FRAC, 128,
                                   "mixture", config.mixtures, features[..., :h, :w], parts["embed"]["frac"])
    tensors = ex.tensors
    # the encoder in float16: it only chooses codes (any codes make a valid file), so its precision
    # costs a little quality at most, and it halves the largest part of the model file
    encoder = {f"vq.{k}": v.detach().half().numpy() for k, v in vq.state_dict().items()
               if not k.startswith(DECODER_ONLY) and not k.endswith(TRAINING_ONLY)}
    tensors.update(encoder)
    return tensors, _exact_config("vqvae2", config, ex, **parts)
