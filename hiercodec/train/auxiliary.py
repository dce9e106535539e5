"""Training and export of the two families with auxiliary variables (Kolesnikov & Lampert 2017):
`grayscale` and `pyramid`. The auxiliary variables are deterministic functions of the image
(psi(x), the downsampled levels), computed by the codec's own integer code, so training sees
exactly what the codec codes. The loss is the paper's bound (its eq. 4): the bits of every level
given the levels above, summed per image; the parameters of the levels do not interact, so one
optimizer trains all of them at once (sec. 3).

    hiercodec train grayscale --config grayscale-codec --out runs/grayscale
    hiercodec train pyramid --config pyramid-codec --out runs/pyramid
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from hiercodec.errors import HiercodecError
from hiercodec.exact.export import export_grayscale, export_pyramid, pixels_tensor, psi_tensor
from hiercodec.families import build_family
from hiercodec.families.auxiliary_config import GrayscaleConfig, PyramidConfig
from hiercodec.families.grayscale import psi
from hiercodec.families.pyramid import downsample
from hiercodec.nn.gated import GatedPixelCNN
from hiercodec.nn.mixture import nll_bits
from hiercodec.train.config import RunConfig


def _rgb(images: np.ndarray) -> np.ndarray:
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def mixture_bits(net: torch.nn.Module, values: np.ndarray, k: int, device, features=None) -> torch.Tensor:
    """Bits per image of uint8 values (B, H, W, C), C = 1 or 3, under a mixture PixelCNN (gray
    replicated to three channels, its first channel coded, as the codec does)."""
    x = torch.from_numpy(np.ascontiguousarray(values)).to(device).permute(0, 3, 1, 2)
    x3 = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    params = net(pixels_tensor(values).to(device), features).float()  # float32 also under autocast
    return nll_bits(params, x3, k, channels=x.shape[1])


class _AuxiliaryTask:
    config_class: type
    export_fn = None

    def __init__(self, config: RunConfig):
        self.net = self.config_class.from_dict(config.network, where=f"config {config.name}: [network]")
        self.dropout = config.train.dropout

    def build(self) -> torch.nn.Module:
        return self.net.build(dropout=self.dropout)

    def warm_start(self, model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
        """Start every PixelCNN of the model that has the shape of a trained `pixelcnn` network
        from its weights, with the conditioning projections zeroed: each such level then codes
        exactly as that network does and learns from there to use the level above (whose
        embedding starts fresh). Networks of other shapes (the 16-way gray prior) start fresh."""
        started = []
        with torch.no_grad():
            for name, net in model.items():
                if not isinstance(net, GatedPixelCNN):
                    continue
                own = net.state_dict()  # shares storage with the parameters
                shared = [k for k in own if not k.startswith("cond.")]
                if set(shared) == set(weights) and all(weights[k].shape == own[k].shape for k in shared):
                    for k in shared:
                        own[k].copy_(weights[k])
                    for p in net.cond.parameters() if net.cond is not None else ():
                        p.zero_()
                    started.append(name)
        if not started:
            raise HiercodecError(f"cannot start from those weights: no PixelCNN of this {self.net.family} "
                                 "model has their shape (layers, channels, head, mixtures)")

    def export(self, weights: dict[str, torch.Tensor], calibration: np.ndarray):
        """(tensors, exact config, the family ready to code), calibrated on uint8 crops (N, H, W, C)."""
        tensors, exact_config = type(self).export_fn(weights, self.net, _rgb(calibration))
        family = build_family(exact_config, {k: torch.from_numpy(v) for k, v in tensors.items()})
        return tensors, exact_config, family

    def float_bits(self, weights: dict[str, torch.Tensor], images: np.ndarray) -> float:
        model = self.build()
        model.load_state_dict(weights)
        model.eval()
        with torch.no_grad():
            return float(self.bits(model, torch.from_numpy(images)).sum())


class GrayscaleTask(_AuxiliaryTask):
    """-log2 p(psi(x)) - log2 p(x | psi(x)) per image (Grayscale PixelCNN, sec. 3.1)."""

    family = "grayscale"
    config_class = GrayscaleConfig
    export_fn = staticmethod(export_grayscale)

    def bits(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        device = x.device
        values = x.cpu().numpy()
        p = psi(values)
        p_in = psi_tensor(p).to(device)
        logits = model["prior"](p_in).float()
        target = torch.from_numpy(p[..., 0].astype(np.int64)).to(device)
        prior = F.cross_entropy(logits, target, reduction="none").sum(dim=(1, 2)) / math.log(2.0)
        features = model["embed"](p_in)[..., : values.shape[1], : values.shape[2]]
        return prior + mixture_bits(model["cond"], values, self.net.mixtures, device, features)

    def describe(self, steps: int) -> str:
        n = self.net
        return (f"Grayscale PixelCNN: 4-bit gray prior {n.prior_layers}x{n.prior_channels}, colour "
                f"{n.layers}x{n.channels} given an embedding of {n.embed_blocks} blocks x {n.embed_channels}, "
                f"{steps} steps")


class PyramidTask(_AuxiliaryTask):
    """The bits of every level given the one below it, plus the coarsest level's (sec. 3.2)."""

    family = "pyramid"
    config_class = PyramidConfig
    export_fn = staticmethod(export_pyramid)

    def bits(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        device = x.device
        levels = [x.cpu().numpy()]
        for _ in range(self.net.levels - 1):
            levels.append(downsample(levels[-1]))
        total = mixture_bits(model["bottom"], levels[-1], self.net.mixtures, device)
        for k in range(self.net.levels - 1):
            h, w = levels[k].shape[1:3]
            features = model[f"embed{k}"](pixels_tensor(levels[k + 1]).to(device))[..., :h, :w]
            total = total + mixture_bits(model[f"cond{k}"], levels[k], self.net.mixtures, device, features)
        return total

    def describe(self, steps: int) -> str:
        n = self.net
        return (f"Pyramid PixelCNN, {n.levels} levels: coarsest {n.bottom_layers}x{n.bottom_channels}, "
                f"each finer {n.layers}x{n.channels} given an embedding of {n.embed_blocks} blocks x "
                f"{n.embed_channels}, {steps} steps")
