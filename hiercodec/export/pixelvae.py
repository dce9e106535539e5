"""Export of the `pixelvae` family: the encoder of q(z|x), the upsampler (if any) and the
conditional PixelCNN quantized into their exact forms (hiercodec.exact.convnet, hiercodec.exact.
pixelcnn), calibrated on the model's own view of the calibration images, and the tables of the
discretized Gaussian latents (hiercodec.exact.gaussian) stored with them."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hiercodec.exact import gaussian as xg
from hiercodec.exact.quant import ACT_MAX, ACT_MIN, GATE_FRAC, frac_bits_for
from hiercodec.export.hierarchy import float_model
from hiercodec.export.quantize import MARGIN, Exporter, exact_config, export_embedding, export_gated, gaussian_affine
from hiercodec.families.inputs import PIXELS
from hiercodec.families.pixelvae_config import PixelVAEConfig, network_input
from hiercodec.nn.pixelvae import ConvSteps, broadcast


def as_conv(layer: nn.Module) -> nn.Conv2d:
    """The Conv2d that computes what `layer` does, for Exporter.conv: a Linear as a 1x1
    convolution, a stride-2 transposed convolution as the convolution (kernel transposed and
    flipped) of its input spread onto even positions (hiercodec.exact.convnet)."""
    if isinstance(layer, nn.Conv2d):
        return layer
    if isinstance(layer, nn.Linear):
        conv = nn.Conv2d(layer.in_features, layer.out_features, 1)
        w = layer.weight[:, :, None, None]
    else:
        conv = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size)
        w = layer.weight.transpose(0, 1).flip(2, 3)
    with torch.no_grad():
        conv.weight.copy_(w)
        conv.bias.copy_(layer.bias)
    return conv


def _frac(t: torch.Tensor) -> int:
    return min(GATE_FRAC, frac_bits_for(MARGIN * float(t.abs().max())))


def _relu_conv(ex: Exporter, name: str, layer: nn.Module, in_frac: int, out_frac: int, in_max: float) -> None:
    c = as_conv(layer)
    ex.conv(name, c, in_frac, out_frac, in_max=in_max, lo=np.zeros(c.out_channels), hi=np.full(c.out_channels, ACT_MAX))


def export_steps(ex: Exporter, prefix: str, steps: ConvSteps, x: torch.Tensor, in_frac: int, in_max: float) -> int:
    """Quantize a ConvSteps list calibrated on its input x (exactly integers x 2^-in_frac); returns
    the fractional bits of its output."""
    trace: list[torch.Tensor] = []
    with torch.no_grad():
        steps(x, trace)
    frac = in_frac
    for k, (layer, pre) in enumerate(zip(steps.layers, trace)):
        out = _frac(pre)
        _relu_conv(ex, f"{prefix}{k}", layer, frac, out, in_max if k == 0 else -ACT_MIN)
        frac = out
    return frac


def export_encoder(ex: Exporter, enc: nn.Module, xin: torch.Tensor, in_frac: int, in_max: float,
                   latents: int) -> tuple[int, torch.Tensor]:
    """Quantize the encoder of q(z|x): its body, then `encoder.out` with mu at 2^-MU_FRAC and log
    sigma in 1/LS_SCALE nat, clamped to the ranges of hiercodec.exact.gaussian. Returns the body's
    fractional bits and the float means on xin (the calibration's latents)."""
    body_frac = export_steps(ex, "encoder.body.", enc.body, xin, in_frac, in_max)
    gain, offset, lo, hi = gaussian_affine(latents)
    ex.conv("encoder.out", enc.out, body_frac, 0, gain=gain, offset=offset, lo=lo, hi=hi)
    with torch.no_grad():
        mu, _ = enc(xin)
    return body_frac, mu


def export_pixelvae(state_dict: dict[str, torch.Tensor], config: PixelVAEConfig,
                    calibration: np.ndarray) -> tuple[dict[str, np.ndarray], dict]:
    """(tensors, exact config) of a PixelVAE; calibration: uint8 images (N, 28, 28, C) (binary
    models: 0s and 255s). A model without latents is its PixelCNN (and the latent tables, unused)."""
    if config.levels == 2:
        return export_hierarchy(state_dict, config, calibration)
    return export_one_level(state_dict, config, calibration, "pixelvae")


def export_agave(state_dict: dict[str, torch.Tensor], config, calibration: np.ndarray) -> tuple[dict[str, np.ndarray], dict]:
    """(tensors, exact config) of an AGAVE model (hiercodec.families.agave_config): PixelVAE's
    parts, with f(z) (the `aux` layer over the upsampler's features) and the unmasked convolution
    stack over it (`embed`) between the upsampler and the PixelCNN."""
    return export_one_level(state_dict, config, calibration, "agave")


def _latent_grid(mu: torch.Tensor) -> torch.Tensor:
    """Calibration latents as the codec gives them to the networks: posterior means on the
    2^-Z_FRAC grid, clamped to the 12-bit range (+-8)."""
    return torch.round(mu.clamp(-8, 8) * 2**xg.Z_FRAC) * 2.0**-xg.Z_FRAC


def _store_luts(ex: Exporter, bits: int) -> dict[str, np.ndarray]:
    luts = xg.build_luts(bits)
    for name, values in luts.items():  # int64: Phi reaches 2^32
        ex.tensors[f"lut.gauss.{name}"] = values.astype(np.int64)
    return luts


def export_hierarchy(state_dict: dict[str, torch.Tensor], config: PixelVAEConfig,
                     calibration: np.ndarray) -> tuple[dict[str, np.ndarray], dict]:
    """(tensors, exact config) of the two-level PixelVAE (sec. 3.1, appendix E.2); calibration:
    uint8 tiles (N, T, T, 3). The encoders and decoders are exact embeddings (hiercodec.exact.
    embedding), `q1`/`q2` 1x1 layers giving integer Gaussian parameters, the priors gated PixelCNNs
    with the Gaussian head reading latents at 2^-Z_FRAC, the pixels' PixelCNN the mixture head."""
    model = float_model(config, state_dict)
    ex = Exporter()
    _store_luts(ex, config.latent_bits)
    xin = network_input(config, torch.from_numpy(calibration))
    z_max = float(ACT_MAX)
    parts: dict = {"latent_bits": config.latent_bits}
    with torch.no_grad():
        h1 = model["enc1"](xin)
        h2 = model["enc2"](h1)
        z1 = _latent_grid(model["q1"](h1).chunk(2, dim=1)[0])
        z2 = _latent_grid(model["q2"](h2).chunk(2, dim=1)[0])
        f2, f1 = model["dec2"](z2), model["dec1"](z1)
    parts["enc1"] = export_embedding(ex, "enc1.", model["enc1"], xin, PIXELS.frac, float(PIXELS.max))
    parts["enc2"] = export_embedding(ex, "enc2.", model["enc2"], h1, parts["enc1"]["frac"], -ACT_MIN)
    for name, enc, c in (("q1", "enc1", config.c1), ("q2", "enc2", config.c2)):
        gain, offset, lo, hi = gaussian_affine(c)
        ex.conv(name, model[name], parts[enc]["frac"], 0, gain=gain, offset=offset, lo=lo, hi=hi)
    parts["prior2"] = export_gated(ex, "prior2.", model["prior2"], z2, xg.Z_FRAC, z_max, "gaussian", config.c2)
    parts["dec2"] = export_embedding(ex, "dec2.", model["dec2"], z2, xg.Z_FRAC, z_max)
    parts["prior1"] = export_gated(ex, "prior1.", model["prior1"], z1, xg.Z_FRAC, z_max, "gaussian", config.c1,
                                   f2, parts["dec2"]["frac"])
    parts["dec1"] = export_embedding(ex, "dec1.", model["dec1"], z1, xg.Z_FRAC, z_max)
    parts["pixels"] = export_gated(ex, "pixels.", model["pixels"], xin, PIXELS.frac, float(PIXELS.max), "mixture",
                                   config.mixtures, f1, parts["dec1"]["frac"])
    return ex.tensors, exact_config("pixelvae", config, ex, **parts)


def export_one_level(state_dict: dict[str, torch.Tensor], config, calibration: np.ndarray,
                     family: str) -> tuple[dict[str, np.ndarray], dict]:
    model = float_model(config, state_dict)
    ex = Exporter()
    xin = network_input(config, torch.from_numpy(calibration))
    in_frac, in_max = (0, 1.0) if config.binary else (PIXELS.frac, float(PIXELS.max))
    parts: dict = {"latent_bits": config.latent_bits}
    luts = _store_luts(ex, config.latent_bits)
    features, f_features = None, 0
    if config.latents:
        body_frac, mu = export_encoder(ex, model["encoder"], xin, in_frac, in_max, config.latents)
        parts["encoder"] = {"body_frac": body_frac}
        # the PixelCNN is calibrated on what the codec gives it: z as a bin centre (2^-Z_FRAC grid)
        z = _latent_grid(mu.clamp(-4, 4))
        features, f_features = broadcast(z), xg.Z_FRAC
    if config.upsample:
        up = model["upsampler"]
        with torch.no_grad():
            h = up.inp(z).reshape(-1, up.base, 4, 4)
        f_inp = _frac(h)
        _relu_conv(ex, "upsampler.inp", up.inp, xg.Z_FRAC, f_inp, float(np.abs(luts["centres"]).max()))
        with torch.no_grad():
            features = up(z)
        f_features = export_steps(ex, "upsampler.body.", up.body, torch.relu(h), f_inp, -ACT_MIN)
        parts["upsampler"] = {"inp_frac": f_inp, "frac": f_features}
    if "aux" in model:  # AGAVE: f(z), then the unmasked convolutions over it
        with torch.no_grad():
            f = model["aux"](features)
        f_aux = _frac(f)
        ex.conv("aux", model["aux"], f_features, f_aux)
        f_q = torch.clamp(torch.floor(f * 2.0**f_aux + 0.5), ACT_MIN, ACT_MAX) * 2.0**-f_aux  # as the exact layer gives it
        parts["embed"] = export_embedding(ex, "embed.", model["embed"], f_q, f_aux, -ACT_MIN)
        parts["aux"] = {"frac": f_aux}
        with torch.no_grad():
            features = model["embed"](f_q)
        f_features = parts["embed"]["frac"]
    head, k = ("categorical", 2) if config.binary else ("mixture", config.mixtures)
    parts["pixels"] = export_gated(ex, "pixels.", model["pixels"], xin, in_frac, in_max, head, k,
                                   features, f_features)
    parts["pixels"]["features_frac"] = f_features
    return ex.tensors, exact_config(family, config, ex, **parts)
