"""Training checkpoints: tensors in safetensors, everything else in JSON. Never pickle.

A checkpoint holds the model, its Polyak/EMA average, Adam's moments, the step and the RNG states,
so that an interrupted run resumes exactly where it stopped. The JSON is stored inside the
safetensors file's metadata, so a single atomic rename commits a whole checkpoint; checkpoint.json
is a copy for people and plots, written after it and never read back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

FILE = "checkpoint.safetensors"


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(str(path / FILE), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()["meta"])


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
    save_file(tensors, str(path / (FILE + ".tmp")), metadata={"meta": json.dumps(meta)})
    os.replace(path / (FILE + ".tmp"), path / FILE)
    (path / "checkpoint.json.tmp").write_text(json.dumps(meta, indent=1))
    os.replace(path / "checkpoint.json.tmp", path / "checkpoint.json")


def load(path: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
         rng: np.random.Generator | None) -> tuple[dict, dict[str, torch.Tensor]]:
    """Restore in place; returns (meta, ema)."""
    tensors, meta = _read(path)
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
    tensors, meta = _read(path)
    prefix = {"ema": "ema.", "model": "model."}[which]
    return meta, {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
