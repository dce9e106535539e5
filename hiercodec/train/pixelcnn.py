"""Training and export of the `pixelcnn` family: a gated PixelCNN with a discretized logistic
mixture head (PixelCNN++, Kolesnikov & Lampert 2017 sec. 3), trained on 8-bit RGB or gray crops.

    hiercodec train pixelcnn --config pixelcnn-codec --out runs/default
"""

from __future__ import annotations

import torch

from hiercodec.errors import HiercodecError
from hiercodec.export.quantize import dequantize_pixelcnn
from hiercodec.families.pixelcnn_config import PixelCNNConfig
from hiercodec.train.config import RunConfig
from hiercodec.train.hierarchy import HierarchyTask


class PixelCNNTask(HierarchyTask):
    """What the training loop and export need to know about the `pixelcnn` family."""

    family = "pixelcnn"
    dequantizes = True

    def network(self, config: RunConfig) -> PixelCNNConfig:
        fields = PixelCNNConfig.__dataclass_fields__
        for key, value in config.network.items():
            if key not in fields or type(value) is not int or value < 1:
                raise HiercodecError(f"config {config.name}: [network] {key} = {value!r}; expected positive "
                                     f"integers for {', '.join(fields)}")
        return PixelCNNConfig(**config.network)

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

    def describe(self, steps: int) -> str:
        n = self.net
        return f"gated PixelCNN, {n.layers} layers x {n.channels}, {n.mixtures} logistics, {steps} steps"
