"""Training and export of the `pixelcnn` family: a gated PixelCNN with a discretized logistic
mixture head (PixelCNN++, Kolesnikov & Lampert 2017 sec. 3), trained on 8-bit RGB or gray crops.

    hiercodec train pixelcnn --config pixelcnn-codec --out runs/default
"""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.errors import HiercodecError
from hiercodec.exact.export import dequantize_pixelcnn, export_pixelcnn, float_bits
from hiercodec.families.pixelcnn import PixelCNNFamily
from hiercodec.families.pixelcnn_config import PixelCNNConfig, to_input
from hiercodec.nn.mixture import nll_bits
from hiercodec.train.config import RunConfig


class PixelCNNTask:
    """What the training loop and export need to know about the `pixelcnn` family."""

    family = "pixelcnn"

    def __init__(self, config: RunConfig):
        fields = PixelCNNConfig.__dataclass_fields__
        for key, value in config.network.items():
            if key not in fields or type(value) is not int or value < 1:
                raise HiercodecError(f"config {config.name}: [network] {key} = {value!r}; expected positive "
                                     f"integers for {', '.join(fields)}")
        self.net = PixelCNNConfig(**config.network)
        self.dropout = config.train.dropout

    def build(self) -> torch.nn.Module:
        return self.net.build(dropout=self.dropout)

    def bits(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Bits per image of uint8 crops (B, H, W, C), C = 3 or 1 (gray: the codec replicates
        gray to three channels and codes only the first, and so does training)."""
        channels = x.shape[-1]
        xt = x.permute(0, 3, 1, 2)
        if channels == 1:
            xt = xt.expand(-1, 3, -1, -1)
        params = model(to_input(xt)).float()  # the mixture in float32 also under autocast
        return nll_bits(params, xt, self.net.mixtures, channels=channels)

    def warm_start(self, model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
        """Start `model` from the weights of a network with the same channels and as many or fewer
        layers: the layers present are copied, the extra ones appended with their residual output
        set to zero, so the model computes exactly what the smaller one did and grows from there."""
        own = model.state_dict()
        missing = [k for k in weights if k not in own or own[k].shape != weights[k].shape]
        if missing:
            raise HiercodecError(f"cannot start from those weights: {missing[0]} does not fit this network "
                                 f"({self.net.layers} layers x {self.net.channels} channels)")
        with torch.no_grad():
            for k, v in own.items():
                if k in weights:
                    v.copy_(weights[k])
                elif k.startswith("res."):  # an appended layer adds nothing until it has learned
                    v.zero_()

    def dequantize(self, tensors: dict, exact_config: dict) -> dict[str, torch.Tensor]:
        """Float weights of an installed exact pixelcnn model (for `--init-from MODEL`)."""
        return dequantize_pixelcnn(tensors, exact_config)

    def export(self, weights: dict[str, torch.Tensor], calibration: np.ndarray) -> tuple[dict, dict, PixelCNNFamily]:
        """Exact form of float `weights`, calibrated on uint8 RGB crops (N, H, W, 3):
        (tensors, exact config, the family ready to code)."""
        x = torch.from_numpy(_rgb(calibration)).permute(0, 3, 1, 2).contiguous()
        tensors, exact_config = export_pixelcnn(weights, self.net, x)
        family = PixelCNNFamily(exact_config, {k: torch.from_numpy(v) for k, v in tensors.items()})
        return tensors, exact_config, family

    def float_bits(self, weights: dict[str, torch.Tensor], images: np.ndarray) -> float:
        """Bits of uint8 images (N, H, W, C) under the float model."""
        x = torch.from_numpy(images)
        if images.shape[-1] == 3:
            return float_bits(weights, self.net, x.permute(0, 3, 1, 2).contiguous())
        model = self.build()
        model.load_state_dict(weights)
        model.eval()
        with torch.no_grad():
            return float(self.bits(model, x).sum())

    def describe(self, steps: int) -> str:
        n = self.net
        return f"gated PixelCNN, {n.layers} layers x {n.channels}, {n.mixtures} logistics, {steps} steps"


def _rgb(images: np.ndarray) -> np.ndarray:
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
