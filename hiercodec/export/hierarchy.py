"""Export of any declared hierarchy (hiercodec.families.hierarchy): exactly the networks its levels
name are quantized, each calibrated on the inputs the codec will give it (the level's values, the
features of its condition's embedding), computed from calibration crops by the family's own
analysis. A family with parts beyond its levels' networks (vqvae2's decoder and encoder) wraps
this in an exporter of its own (the registry names it)."""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.export.quantize import Exporter, code_table, exact_config, export_embedding, export_gated
from hiercodec.families.hierarchy import Hierarchy, network
from hiercodec.families.inputs import CodeInput, Input
from hiercodec.families.registry import registration


def calibration_input(ex: Exporter, source: Input | CodeInput, values, model: torch.nn.Module) -> tuple[torch.Tensor, int, float]:
    """(float input exactly as the exact network will see it, its fractional bits, its largest
    |integer|) of a level's values. A code embedding is quantized here (stored under its name)."""
    if isinstance(source, CodeInput):
        table, frac = code_table(ex, source.table, model[source.table].weight)
        codes = torch.as_tensor(np.asarray(values, dtype=np.int64) if isinstance(values, np.ndarray) else values)
        x = table[(codes[..., 0] if codes.dim() == 4 else codes).cpu()].permute(0, 3, 1, 2)
        return x, frac, float(table.abs().max()) * 2.0 ** frac
    return source.float(values), source.frac, source.max


def export_levels(ex: Exporter, hierarchy: Hierarchy, model: torch.nn.Module, values: dict) -> dict:
    """Quantize every network the hierarchy's levels name into `ex`; the exact config's parts (a
    model that is one PixelCNN, net "", has its parts at the top)."""
    parts: dict = {}
    for spec in hierarchy.levels:
        features = features_frac = None
        if spec.condition is not None:
            c = spec.condition
            src, frac, in_max = calibration_input(ex, c.input, values[c.source], model)
            embed = network(model, c.embed)
            if c.embed not in parts:
                parts[c.embed] = export_embedding(ex, f"{c.embed}.", embed, src, frac, in_max)
            with torch.no_grad():
                features = embed(src)
            features_frac = parts[c.embed]["frac"]
        x, frac, in_max = calibration_input(ex, spec.input, values[spec.name], model)
        if features is not None:
            features = features[..., : x.shape[2], : x.shape[3]]
        fracs = export_gated(ex, spec.prefix, network(model, spec.net), x, frac, in_max, spec.head, spec.size,
                             features, features_frac)
        parts.update(fracs) if not spec.net else parts.__setitem__(spec.net, fracs)
    return parts


def float_model(config, state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The float networks of a network config, with `state_dict` loaded, in eval mode."""
    model = config.build()
    model.load_state_dict(state_dict)
    return model.eval()


def export_hierarchy(state_dict: dict[str, torch.Tensor], config, calibration: np.ndarray) -> tuple[dict[str, np.ndarray], dict]:
    """(tensors, exact config) of a model of family `config.family` whose float weights are
    `state_dict`; calibration: uint8 RGB crops (N, H, W, 3)."""
    family = registration(config.family).family
    model = float_model(config, state_dict)
    hierarchy = family.hierarchy(config)
    ex = Exporter()
    parts = export_levels(ex, hierarchy, model, hierarchy.values(calibration, model))
    return ex.tensors, exact_config(config.family, config, ex, **parts)
