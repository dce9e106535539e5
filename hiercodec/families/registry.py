"""The registry of model families: one name, one entry, one place that maps the name to the
family's codec class, its network config, its training configs, its training task and its
exporter. Nothing else chooses a family by comparing its name.

    @register("pixelcnn", network=PixelCNNConfig, configs=("pixelcnn", "pixelcnn-small", ...),
              task="hiercodec.train.pixelcnn:PixelCNNTask")
    class PixelCNNFamily(Family): ...

The training task and the exporter are named by their import paths, so that decoding never
imports training or export code; a family's exporter is the generic one of its declared hierarchy
(hiercodec.export.hierarchy) unless it names its own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from hiercodec.errors import HiercodecError
from hiercodec.families.family import Family


@dataclass(frozen=True)
class Registration:
    name: str
    family: type[Family]
    network: type  # the dataclass of the config's [network] table (`from_dict`, `to_dict`, `build`)
    configs: tuple[str, ...]  # its training configs in hiercodec/train/configs: paper, -small, -codec, ...
    task: str | None  # "module:Class" of its training task (hiercodec.train.tasks), None: not trainable
    exporter: str  # "module:function" (state_dict, network config, calibration crops) -> (tensors, exact config)

    def load_exporter(self) -> Callable:
        return _load(self.exporter)

    def load_task(self) -> type:
        if self.task is None:
            raise HiercodecError(f"family {self.name!r} cannot be trained; trainable: {', '.join(trainable())}")
        return _load(self.task)


def _load(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


REGISTRY: dict[str, Registration] = {}


GENERIC_EXPORTER = "hiercodec.export.hierarchy:export_hierarchy"


def register(name: str, *, network: type, configs: tuple[str, ...] = (), task: str | None = None,
             exporter: str = GENERIC_EXPORTER) -> Callable[[type[Family]], type[Family]]:
    """Class decorator: enter a Family subclass in the registry under `name`."""

    def enter(cls: type[Family]) -> type[Family]:
        if name in REGISTRY:
            raise ValueError(f"family {name!r} is registered twice")
        cls.name = name
        REGISTRY[name] = Registration(name, cls, network, tuple(configs), task, exporter)
        return cls

    return enter


def registration(name: str | None) -> Registration:
    """The entry of family `name`, or a HiercodecError naming the families this version knows."""
    _load_all()
    if name not in REGISTRY:
        raise HiercodecError(f"model family {name!r} is not known to this version of hiercodec "
                             f"(it knows {', '.join(sorted(REGISTRY))}); upgrade hiercodec")
    return REGISTRY[name]


def family_names() -> tuple[str, ...]:
    _load_all()
    return tuple(REGISTRY)


def trainable() -> tuple[str, ...]:
    """The families with a training task."""
    _load_all()
    return tuple(name for name, entry in REGISTRY.items() if entry.task)


def build_family(config: dict, tensors: dict[str, torch.Tensor]) -> Family:
    """The family object of a loaded model (its config.json and integer tensors)."""
    return registration(config.get("family")).family(config, tensors)


def _load_all() -> None:
    import hiercodec.families  # noqa: F401  (its modules register themselves on import)
