"""A family's hierarchy, declared once and read by the codec, training and export.

A declaration is the family's levels, top first (`LevelSpec`): each level's name in the file,
the PixelCNN that codes it (its name is both the float model's module and the exact model's tensor
prefix), how its values enter that network (hiercodec.families.inputs), its head (a discretized
logistic mixture over 8-bit samples, or a categorical over an alphabet) and, for a conditional
level, the embedding of a level above (or of a map derived from the levels above) that biases
every layer of its PixelCNN (`Condition`: Kolesnikov & Lampert 2017 sec. 3.3; Razavi et al. 2019
sec. 3.2). With it goes `values`: every level's values for a batch of images (the analysis; a
family with a learned encoder also reads the float model).

- the codec builds its exact levels from the specs (hiercodec.families.raster.RasterLevel);
- training sums the levels' float negative log-likelihoods (hiercodec.train.hierarchy);
- export quantizes exactly the networks the specs name, calibrated on the same inputs
  (hiercodec.export.hierarchy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import nn

from hiercodec.families.inputs import CodeInput, Input

MIXTURE, CATEGORICAL = "mixture", "categorical"


@dataclass(frozen=True)
class Condition:
    embed: str  # the embedding network (module name, tensor prefix)
    source: str  # the level above it reads, or a map the family derives from the levels above
    input: Input | CodeInput  # how the source enters the embedding
    ratio: int  # this level's size over the source's (a power of two: 1, 2 or 4)


@dataclass(frozen=True)
class LevelSpec:
    name: str  # the level's name in files and reports
    net: str  # its PixelCNN: module name and tensor prefix ("" for a model that is one PixelCNN)
    input: Input | CodeInput
    head: str  # MIXTURE (`size` logistics, 8-bit samples) or CATEGORICAL (`size` symbols)
    size: int
    condition: Condition | None = None

    @property
    def prefix(self) -> str:
        """The prefix of the network's tensors in a model file."""
        return f"{self.net}." if self.net else ""


@dataclass(frozen=True)
class Hierarchy:
    levels: tuple[LevelSpec, ...]
    # values(images (N, H, W, C) uint8, float model) -> every level's values and every derived
    # source, batched: (N, h, w, c) arrays (code maps (N, h, w))
    values: Callable[[np.ndarray, nn.Module], dict[str, np.ndarray]]


def network(model: nn.Module, name: str) -> nn.Module:
    """The network `name` of a float model (a ModuleDict, or one PixelCNN for name "")."""
    return model[name] if name else model
