"""Training checkpoints: tensors in safetensors, everything else in JSON. Never pickle.

A checkpoint holds the model, its Polyak/EMA average, Adam's moments, the step and the RNG states,
so that an interrupted run resumes exactly where it stopped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file


def _atomic_replace(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)


def save(path: Path, *, model: torch.nn.Module, ema: dict[str, torch.Tensor],
         optimizer: torch.optim.Optimizer, meta: dict, rng: np.random.Generator) -> None:
    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().contiguous() for k, v in ema.items()})
    names = {id(p): n for n, p in model.named_parameters()}
    adam_steps = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            st = optimizer.state.get(p)
            if st:
                n = names[id(p)]
                tensors[f"adam.{n}.exp_avg"] = st["exp_avg"].contiguous()
                tensors[f"adam.{n}.exp_avg_sq"] = st["exp_avg_sq"].contiguous()
                adam_steps[n] = float(st["step"])
    tensors["rng.torch"] = torch.get_rng_state()
    meta = dict(meta, adam_steps=adam_steps, lr=optimizer.param_groups[0]["lr"],
                rng_numpy=rng.bit_generator.state)
    save_file(tensors, str(path / "checkpoint.safetensors.tmp"))
    (path / "checkpoint.json.tmp").write_text(json.dumps(meta, indent=1))
    _atomic_replace(path / "checkpoint.safetensors.tmp", path / "checkpoint.safetensors")
    _atomic_replace(path / "checkpoint.json.tmp", path / "checkpoint.json")


def load(path: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
         rng: np.random.Generator | None) -> tuple[dict, dict[str, torch.Tensor]]:
    """Restore in place; returns (meta, ema)."""
    tensors = load_file(str(path / "checkpoint.safetensors"))
    meta = json.loads((path / "checkpoint.json").read_text())
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
    if optimizer is not None:
        for n, p in model.named_parameters():
            if f"adam.{n}.exp_avg" in tensors:
                optimizer.state[p] = {
                    "step": torch.tensor(meta["adam_steps"][n]),
                    "exp_avg": tensors[f"adam.{n}.exp_avg"],
                    "exp_avg_sq": tensors[f"adam.{n}.exp_avg_sq"],
                }
        for g in optimizer.param_groups:
            g["lr"] = meta["lr"]
    if rng is not None:
        rng.bit_generator.state = meta["rng_numpy"]
    torch.set_rng_state(tensors["rng.torch"])
    return meta, ema


def load_weights(path: Path, which: str = "ema") -> tuple[dict, dict[str, torch.Tensor]]:
    """(meta, state dict) of a checkpoint for export: its Polyak/EMA average ("ema") or the
    latest weights ("model")."""
    tensors = load_file(str(path / "checkpoint.safetensors"))
    meta = json.loads((path / "checkpoint.json").read_text())
    prefix = {"ema": "ema.", "model": "model."}[which]
    return meta, {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
