"""The training loss of any declared hierarchy (hiercodec.families.hierarchy): the bits of every
level given the levels above, each from its float network, per image. The levels' parameters do
not interact, so one optimizer trains all of them at once (Kolesnikov & Lampert 2017 sec. 3; the
sum is the joint bound of De Fauw et al. 2019 eq. 4)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from hiercodec.families.family import Family
from hiercodec.families.hierarchy import MIXTURE, Hierarchy, LevelSpec, network
from hiercodec.families.registry import build_family, registration
from hiercodec.nn.mixture import nll_bits
from hiercodec.train.config import RunConfig


def level_bits(hierarchy: Hierarchy, model: torch.nn.Module, values: dict, device,
               only: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
    """Bits per image (N,) of each level of `hierarchy` (or of the levels named in `only`), given
    every level's values (and derived sources) for a batch: (N, H, W, C) uint8 samples, code maps
    (N, h, w) as arrays or tensors."""
    out = {}
    for spec in hierarchy.levels:
        if only is not None and spec.name not in only:
            continue
        v = values[spec.name]
        x = spec.input.float(v, model).to(device)
        features = None
        if spec.condition is not None:
            c = spec.condition
            f = network(model, c.embed)(c.input.float(values[c.source], model).to(device))
            features = f[..., : x.shape[2], : x.shape[3]]
        params = network(model, spec.net)(x, features).float()  # the heads in float32, also under autocast
        out[spec.name] = head_bits(spec, params, v, device)
    return out


def head_bits(spec: LevelSpec, params: torch.Tensor, values, device) -> torch.Tensor:
    """Bits per image of `values` under the level's head with parameters `params` (N, P, h, w)."""
    if spec.head == MIXTURE:  # gray samples are coded as channel 0 of a network that sees R = G = B
        x = torch.as_tensor(np.ascontiguousarray(values)).to(device).permute(0, 3, 1, 2)
        x3 = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return nll_bits(params, x3, spec.size, channels=x.shape[1])
    target = torch.as_tensor(np.asarray(values, dtype=np.int64) if isinstance(values, np.ndarray) else values)
    target = (target[..., 0] if target.dim() == 4 else target).to(device).long()
    return F.cross_entropy(params, target, reduction="none").sum(dim=(1, 2)) / math.log(2.0)


class HierarchyTask:
    """What the training loop and export need of a family whose loss is its hierarchy's bits.
    Capabilities are typed attributes, never probed: `own_loss` (the task defines `loss`, e.g. an
    autoencoder stage), `unused_parameters` (some networks sit out some steps: DistributedDataParallel
    must know), `dequantizes` (a run may start from an installed model of the family), `exports_live`."""

    family: str = ""
    own_loss: bool = False
    unused_parameters: bool = False
    dequantizes: bool = False
    exports_live: bool = False  # export mixes in the live weights (export_weights), not only the average

    def __init__(self, config: RunConfig):
        entry = registration(self.family)
        self.net = self.network(config)
        self.dropout = config.train.dropout
        self.hierarchy = entry.family.hierarchy(self.net)
        self._exporter = entry.load_exporter()

    def network(self, config: RunConfig):
        """The network config of a run config's [network] table (a one-line error if invalid)."""
        return registration(self.family).network.from_dict(config.network, where=f"config {config.name}: [network]")

    def build(self) -> torch.nn.Module:
        return self.net.build(dropout=self.dropout)

    def bits(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Bits per image (N,) of uint8 crops (N, H, W, C), C = 3 or 1: the sum over the levels."""
        values = self.hierarchy.values(x.cpu().numpy(), model)
        return sum(level_bits(self.hierarchy, model, values, x.device).values())

    def loss(self, model: torch.nn.Module, x: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        """The loss of a step and what to log besides it (tasks with `own_loss`)."""
        raise NotImplementedError

    def lr_scale(self, step: int) -> float:
        """A factor on the learning rate schedule at `step` (1: none)."""
        return 1.0

    def dequantize(self, tensors: dict, exact_config: dict) -> dict[str, torch.Tensor]:
        """Float weights of an installed exact model of the family (tasks with `dequantizes`)."""
        raise NotImplementedError

    def export_weights(self, averaged: dict[str, torch.Tensor], live: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weights to export from a run's averaged and live weights (tasks with `exports_live`)."""
        return averaged

    def export(self, weights: dict[str, torch.Tensor], calibration: np.ndarray) -> tuple[dict, dict, Family]:
        """(tensors, exact config, the family ready to code) of float `weights`, calibrated on
        uint8 crops (N, H, W, C) by the family's exporter (the registry names it)."""
        rgb = np.repeat(calibration, 3, axis=-1) if calibration.shape[-1] == 1 else calibration
        tensors, exact_config = self._exporter(weights, self.net, rgb)
        return tensors, exact_config, build_family(exact_config, {k: torch.from_numpy(v) for k, v in tensors.items()})

    def float_bits(self, weights: dict[str, torch.Tensor], images: np.ndarray) -> float:
        """Bits of uint8 images (N, H, W, C) under the float model."""
        model = self.build()
        model.load_state_dict(weights)
        model.eval()
        with torch.no_grad():
            return float(self.bits(model, torch.from_numpy(images)).sum())
