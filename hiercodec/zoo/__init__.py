"""Shipped and user models: a folder per model with `config.json` and `weights.safetensors`.

Shipped models live beside this file; user models (from `export`) in $HIERCODEC_MODELS or
~/.local/share/hiercodec/models. A file records a model's concrete id and the SHA-256 of its
weights, so a model is never changed in place: a better one gets a new id and the alias `default`
moves to it, while the old one stays installed for the files written with it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from safetensors.numpy import save_file
from safetensors.torch import load_file

from hiercodec.errors import HiercodecError, ModelNotFoundError

ZOO_DIR = Path(__file__).parent
ALIASES_FILE = ZOO_DIR / "aliases.json"  # moved by relay/ship.py when a better default ships
ALIASES: dict[str, str] = json.loads(ALIASES_FILE.read_text())
MODEL_ID = re.compile(r"^[a-z0-9._-]{1,64}$")
CONFIG, WEIGHTS = "config.json", "weights.safetensors"


def user_model_dir() -> Path:
    return Path(os.environ.get("HIERCODEC_MODELS") or Path.home() / ".local/share/hiercodec/models")


@dataclass(frozen=True)
class ModelInfo:
    id: str
    family: str
    description: str
    path: Path
    shipped: bool
    aliases: tuple[str, ...]


def _folders() -> list[tuple[Path, bool]]:
    found = [(p, True) for p in sorted(ZOO_DIR.iterdir()) if (p / CONFIG).is_file()]
    user = user_model_dir()
    if user.is_dir():
        found += [(p, False) for p in sorted(user.iterdir()) if (p / CONFIG).is_file()]
    return found


def list_models() -> list[ModelInfo]:
    """Every installed model (shipped first); a user model never shadows a shipped id."""
    out, seen = [], set()
    for path, shipped in _folders():
        if path.name in seen:
            continue
        seen.add(path.name)
        try:
            cfg = json.loads((path / CONFIG).read_text())
        except (OSError, ValueError):
            continue
        aliases = tuple(a for a, target in ALIASES.items() if target == path.name)
        out.append(ModelInfo(path.name, cfg.get("family", "?"), cfg.get("description", ""), path, shipped, aliases))
    return out


def resolve(name: str) -> ModelInfo:
    model_id = ALIASES.get(name, name)
    for info in list_models():
        if info.id == model_id:
            return info
    known = ", ".join(sorted({m.id for m in list_models()} | set(ALIASES))) or "none"
    raise ModelNotFoundError(f"model '{name}' is not installed (installed: {known})")


@dataclass
class Model:
    """A loaded exact model: its id, the SHA-256 of its weights file, config and family object."""

    id: str
    hash: bytes
    config: dict
    family: object


HASHED_CONFIG = ("family", "network", "exact")  # the config entries that shape the tables


def model_hash(weights: bytes, config: dict) -> bytes:
    """What a .hc file records of its model (bitstreams/FORMAT.md): SHA-256 of the weights file
    followed by the canonical JSON of the config entries that shape the tables."""
    shaping = {k: config.get(k) for k in HASHED_CONFIG}
    canonical = json.dumps(shaping, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(weights + canonical.encode("ascii")).digest()


def load(name: str) -> Model:
    """Load an installed model by id or alias (cached by id, so an alias shares the copy)."""
    return _load(resolve(name))


def read_model(name: str) -> tuple[ModelInfo, dict, dict]:
    """(info, tensors, config) of an installed model, without building its family."""
    info = resolve(name)
    try:
        return info, load_file(str(info.path / WEIGHTS)), json.loads((info.path / CONFIG).read_text())
    except Exception as err:  # a damaged or foreign model folder: safetensors, JSON
        raise _unloadable(info, err) from None


def _unloadable(info: ModelInfo, err: Exception) -> HiercodecError:
    return HiercodecError(f"model '{info.id}' in {info.path} cannot be loaded ({type(err).__name__}: "
                          f"{err}); reinstall or re-export it")


@functools.lru_cache(maxsize=8)
def _load(info: ModelInfo) -> Model:
    from hiercodec.families import build_family

    try:
        weights = (info.path / WEIGHTS).read_bytes()
        config = json.loads((info.path / CONFIG).read_text())
        tensors = load_file(str(info.path / WEIGHTS))
        family = build_family(config, tensors)
    except HiercodecError:
        raise
    except Exception as err:  # a damaged or foreign model folder: safetensors, JSON, shapes, keys
        raise _unloadable(info, err) from None
    return Model(info.id, model_hash(weights, config), config, family)


def save_model(folder: Path, model_id: str, tensors: dict, config: dict, description: str) -> Path:
    """Write a model folder (weights first, config last, so a half-written folder is not listed)."""
    if not MODEL_ID.match(model_id):
        raise HiercodecError(f"model id '{model_id}' must be 1-64 characters of a-z 0-9 . _ -")
    target = folder / model_id
    target.mkdir(parents=True, exist_ok=True)
    save_file({k: v for k, v in tensors.items()}, str(target / WEIGHTS))
    os.chmod(target / WEIGHTS, 0o644)  # safetensors writes 0600; models are read by every user
    config = dict(config, id=model_id, description=description)
    (target / (CONFIG + ".tmp")).write_text(json.dumps(config, indent=1) + "\n")
    os.replace(target / (CONFIG + ".tmp"), target / CONFIG)
    _load.cache_clear()
    return target

