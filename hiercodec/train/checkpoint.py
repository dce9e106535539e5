"""Training checkpoints: tensors in safetensors, everything else in JSON. Never pickle.

A checkpoint holds the model, its Polyak/EMA average, the optimizer state (any torch optimizer:
its tensors by parameter index, its hyperparameters in JSON), the step and the RNG states, so that
an interrupted run resumes exactly where it stopped. The JSON is stored inside the safetensors
file's metadata, so a single atomic rename commits a whole checkpoint; checkpoint.json is a copy
for people and plots, written after it and never read back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from hiercodec.errors import HiercodecError

FILE = "checkpoint.safetensors"


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The checkpoint file of a run folder, or the file itself."""
    path = Path(path)
    return path / FILE if path.is_dir() else path


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) of a run folder's checkpoint or of a checkpoint file."""
    file = checkpoint_file(path)
    try:
        with safe_open(str(file), framework="pt") as f:
            meta = (f.metadata() or {}).get("meta")
            if meta is None:
                raise HiercodecError(f"{file} is not a hiercodec training checkpoint (no metadata)")
            return {k: f.get_tensor(k) for k in f.keys()}, json.loads(meta)
    except (OSError, ValueError, json.JSONDecodeError) as err:
        if isinstance(err, HiercodecError):
            raise
        raise HiercodecError(f"cannot read checkpoint {file}: {err}") from None


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, state in sd["state"].items():
        for k, v in state.items():
            if torch.is_tensor(v):
                tensors[f"opt.{index}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            index, name = key[4:].split(".", 1)
            state.setdefault(int(index), {})[name] = v
    for key, v in meta["optimizer"]["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = v
    return {"state": state, "param_groups": meta["optimizer"]["param_groups"]}


def save(path: Path, *, model: torch.nn.Module, ema: dict[str, torch.Tensor],
         optimizer: torch.optim.Optimizer, meta: dict, rng_states: list[dict]) -> None:
    """Write the checkpoint of run folder `path` atomically. `rng_states`: the numpy generator
    state of every process (one per rank)."""
    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.items()})
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    meta = dict(meta, optimizer=opt_meta, rng_numpy=rng_states)
    tmp = path / (FILE + ".tmp")
    save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta)})
    os.replace(tmp, path / FILE)
    (path / "checkpoint.json.tmp").write_text(json.dumps(meta, indent=1, default=str))
    os.replace(path / "checkpoint.json.tmp", path / "checkpoint.json")


def load(path: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
         rng: np.random.Generator | None, rank: int = 0) -> tuple[dict, dict[str, torch.Tensor]]:
    """Restore in place (model, optimizer, RNG states of process `rank`); returns (meta, ema)."""
    tensors, meta = read(path)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
    if optimizer is not None:
        optimizer.load_state_dict(_optimizer_state(tensors, meta))
    if rng is not None:
        states = meta["rng_numpy"]
        rng.bit_generator.state = states[min(rank, len(states) - 1)]
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return meta, ema


def load_weights(path: Path, which: str = "ema") -> tuple[dict, dict[str, torch.Tensor]]:
    """(meta, state dict) of a checkpoint for export: its Polyak/EMA average ("ema") or the
    latest weights ("model")."""
    tensors, meta = read(path)
    prefix = {"ema": "ema.", "model": "model."}[which]
    return meta, {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
