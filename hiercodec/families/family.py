"""The Family contract: what every model family gives the codec, training and export.

A family is built from a model file's config and integer tensors. For an image's geometry it
gives its levels, top first (`levels`), and from the decoded levels, all or a prefix of them, it
makes the image (`reconstruct`). What differs between families is typed here, never probed:
`lossy_levels` (how many levels the family's lossy mode keeps, None when it has none) and
`sample_temperature` (whether its lossy files decode by sampling, and at which temperature),
`exact_encoder` (whether the encoder side is exact too, so that a file re-encodes byte for byte on
any machine). Colour and alpha are split here once: a family declares the levels of the colour
(or gray) part, and every family codes an alpha channel as the same last level
(hiercodec.families.alpha).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch

from hiercodec.coding.groups import Progress
from hiercodec.coding.sampling import Sampling, sample_schedule
from hiercodec.errors import HiercodecError
from hiercodec.families.alpha import alpha_levels, with_alpha
from hiercodec.families.base import Level, ScheduledLevel
from hiercodec.families.hierarchy import Hierarchy
from hiercodec.geometry import Geometry
from hiercodec.tiling import TileLayout


class Family(ABC):
    """A loaded model of one family (see the module docstring); `name` is set by the registry."""

    name: ClassVar[str] = ""
    lossy_levels: ClassVar[int | None] = None
    # the temperature at which the family's lossy files decode by sampling their missing levels
    # (hiercodec.coding.sampling), None: they decode by the family's reconstruction
    sample_temperature: ClassVar[float | None] = None
    exact_encoder: ClassVar[bool] = True
    tile: int  # the side of the tiles of the level the file's header describes

    def __init__(self, config: dict, tensors: dict[str, torch.Tensor]):
        self.config = config

    def layout(self, geometry: Geometry) -> TileLayout:
        """The tiles of the full-size level (the tile size in the file's header)."""
        return TileLayout.for_image(geometry.height, geometry.width, self.tile)

    def levels(self, geometry: Geometry, layout: TileLayout | None = None) -> list[Level]:
        """The levels of an image of this geometry, top first: the colour levels, then alpha."""
        layout = layout or self.layout(geometry)
        return [*self.color_levels(geometry, layout), *alpha_levels(geometry)]

    @staticmethod
    def hierarchy(network) -> Hierarchy:
        """The family's hierarchy for a network config (hiercodec.families.hierarchy): the trained
        networks of its levels, read by the codec, training and export. A family whose tables
        come from no trained network (a fixed model) declares none."""
        return Hierarchy((), lambda images, model=None: {})

    @abstractmethod
    def color_levels(self, geometry: Geometry, layout: TileLayout) -> list[Level]:
        """The levels of the colour (or gray) part, geometry.color channels, top first."""

    def sample_missing(self, decoded: dict[str, np.ndarray], geometry: Geometry, sampling: Sampling,
                       progress: Progress | None = None) -> dict[str, np.ndarray]:
        """The decoded levels and, for every level a cut file does not hold, values drawn from the
        model given the levels above (hiercodec.coding.sampling: exact, seeded, at a temperature),
        so that the image is made of every level. A level that cannot be drawn (bits-back) is a
        HiercodecError."""
        out = dict(decoded)
        for index, level in enumerate(self.levels(geometry)):
            if level.name in out:
                continue
            if not isinstance(level, ScheduledLevel):
                raise HiercodecError(f"level {index} ({level.name}) of a {self.name} model cannot be sampled")
            level.temper(sampling.milli)
            out[level.name] = sample_schedule(level.decode_groups(out), sampling.seed, index, progress)
        return out

    def reconstruct(self, decoded: dict[str, np.ndarray], geometry: Geometry, full_size: bool = False) -> np.ndarray:
        """The image (H, W, C) from the decoded levels, all or a prefix: a file cut before the
        alpha level decodes to the colour image without it."""
        return with_alpha(self.reconstruct_color(decoded, geometry, full_size), decoded)

    def reconstruct_color(self, decoded: dict[str, np.ndarray], geometry: Geometry, full_size: bool) -> np.ndarray:
        """The colour (or gray) image from the decoded colour levels (default: the `pixels` level)."""
        return decoded["pixels"]
