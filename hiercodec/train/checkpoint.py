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
# A compact checkpoint (the relay's, committed to the repository) stores the Polyak average as its
# float16 difference from the float32 weights, and the optimizer's moment tensors in bfloat16: about
# 10 bytes a parameter instead of 16. The weights themselves stay float32 (Adam's steps are far
# below a 16-bit weight's resolution). `save(compact=True)` returns the rounded states, and the run
# continues from those, so resuming from the file is exactly continuing.
EMA_DELTA, OPT16 = "ema-delta16.", "opt16."


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The checkpoint file of a run folder, or the file itself."""
    path = Path(path)
    return path / FILE if path.is_dir() else path


def compact(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The 16-bit form of a checkpoint's tensors (see EMA_DELTA); `expand` reads it back."""
    out = {}
    for k, v in tensors.items():
        weights = tensors.get("model." + k[4:]) if k.startswith("ema.") else None
        if weights is not None and v.is_floating_point():
            out[EMA_DELTA + k[4:]] = (v - weights).half()
        elif k.startswith("opt.") and v.is_floating_point() and v.ndim > 0:  # Adam's step counts stay exact
            out[OPT16 + k[4:]] = v.bfloat16()
        else:
            out[k] = v
    return out


def expand(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Full-precision tensors of a compact checkpoint (a full one is returned as it is)."""
    out = {}
    for k, v in tensors.items():
        if k.startswith(EMA_DELTA):
            name = k[len(EMA_DELTA):]
            out["ema." + name] = tensors["model." + name] + v.float()
        elif k.startswith(OPT16):
            out["opt." + k[len(OPT16):]] = v.float()
        else:
            out[k] = v
    return out


def read_meta(path: Path) -> dict:
    """The JSON part of a checkpoint (step, config, origin, ...) without loading its tensors."""
    file = checkpoint_file(path)
    try:
        with safe_open(str(file), framework="pt") as f:
            meta = (f.metadata() or {}).get("meta")
    except (OSError, ValueError) as err:
        raise HiercodecError(f"cannot read checkpoint {file}: {err}") from None
    if meta is None:
        raise HiercodecError(f"{file} is not a hiercodec training checkpoint (no metadata)")
    return json.loads(meta)


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) of a run folder's checkpoint or of a checkpoint file, compact or not."""
    file = checkpoint_file(path)
    try:
        with safe_open(str(file), framework="pt") as f:
            meta = (f.metadata() or {}).get("meta")
            if meta is None:
                raise HiercodecError(f"{file} is not a hiercodec training checkpoint (no metadata)")
            return expand({k: f.get_tensor(k) for k in f.keys()}), json.loads(meta)
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


def _pack(model: torch.nn.Module, ema: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
          compact16: bool) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, optimizer meta) of the training state; with `compact16` the compact tensors, and
    `ema` and the optimizer set in place to what they expand to."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.items()})
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    tensors.update(opt_tensors)
    if compact16:
        tensors = compact(tensors)
        rounded = expand(tensors)
        with torch.no_grad():
            for k, v in ema.items():
                v.copy_(rounded["ema." + k])
        optimizer.load_state_dict(_optimizer_state(rounded, {"optimizer": opt_meta}))
    return tensors, opt_meta


def round16(model: torch.nn.Module, ema: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
    """What a compact `save` does to the live state, for the processes that do not write it
    (every process then continues from the same rounded state)."""
    _pack(model, ema, optimizer, True)


def save(path: Path, *, model: torch.nn.Module, ema: dict[str, torch.Tensor],
         optimizer: torch.optim.Optimizer, meta: dict, rng_states: list[dict], compact16: bool = False) -> None:
    """Write the checkpoint of run folder `path` atomically. `rng_states`: the numpy generator
    state of every process (one per rank). With `compact16` the file is compact (see EMA_DELTA)
    and `ema` and the optimizer are set in place to the rounded states the file holds."""
    path.mkdir(parents=True, exist_ok=True)
    tensors, opt_meta = _pack(model, ema, optimizer, compact16)
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
