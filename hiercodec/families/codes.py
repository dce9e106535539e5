"""Levels of discrete codes chosen by a float encoder (VQ-VAE-2's top and bottom codes, HAM's code
levels), coded in raster order by an exact PixelCNN with a categorical head.

Codes enter every exact network through code embeddings: rows of an integer table, one row per
code (hiercodec.families.inputs.CodeInput; the tables are stored in the model file under the
embedding's name). The encoder runs in float at encode time only (DESIGN.md allows it: any codes
make a valid file, and the decoder never runs it).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from hiercodec.exact.embedding import ExactEmbedding
from hiercodec.families.hierarchy import Condition, LevelSpec
from hiercodec.families.raster import RasterLevel
from hiercodec.tiling import TileLayout

CODES = np.dtype("<u2")  # code values, little-endian whatever the machine (their CRC is of these bytes)


def padded_rgb(images: np.ndarray, multiple: int) -> np.ndarray:
    """uint8 (B, H, W, C), C = 1 or 3 -> (B, H', W', 3), H' and W' the next multiples of `multiple`
    by edge repetition, gray replicated to R, G, B: what an encoder sees (training sees the same)."""
    rgb = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
    h, w = rgb.shape[1:3]
    return np.pad(rgb, [(0, 0), (0, -h % multiple), (0, -w % multiple), (0, 0)], mode="edge")


class Codes:
    """The float encoder's code maps of one image (`encode(image)` -> a tuple of (h, w) maps, one
    per code level, top first), computed once for all code levels."""

    def __init__(self, encode: Callable[[np.ndarray], tuple[np.ndarray, ...]]):
        self.encode, self.image, self.codes = encode, None, None

    def of(self, image: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.image is not image:
            self.image, self.codes = image, self.encode(image)
        return self.codes


def code_rows(tables: dict[str, torch.Tensor], condition: Condition, above: dict[str, np.ndarray]) -> torch.Tensor:
    """The integer inputs (E, h, w) of a condition's embedding whose source is a code map: the rows
    of the condition's code table (`condition.input.table`) for the codes decoded above."""
    codes = torch.from_numpy(above[condition.source][..., 0].astype(np.int64))
    return tables[condition.input.table][codes].permute(2, 0, 1)


class CodeLevel(RasterLevel):
    """A code map (h, w, 1) of `spec.size` symbols: its table row `inputs[code]` is what the
    PixelCNN reads (the exported code embedding), and an exact softmax gives the tables. `family`
    gives `exact[spec.name]` (network, head), `tables` (code embeddings by name) and `net.halo`."""

    fill = 0  # padded positions read the embedding of code 0 (never coded)
    dtype = CODES

    def __init__(self, spec: LevelSpec, index: int, family, layout: TileLayout, codes: Codes,
                 embedding: ExactEmbedding | None = None):
        net, head = family.exact[spec.name]
        super().__init__(spec, net, head, layout, 1, embedding, family.net.halo)
        self.index, self.inputs, self.codes, self.tables = index, family.tables[spec.input.table], codes, family.tables

    def analyze(self, image: np.ndarray, above: dict[str, np.ndarray]) -> np.ndarray:
        """Map `index` of the encoder's code maps, as (h, w, 1)."""
        return self.codes.of(image)[self.index][..., None].astype(CODES)

    def to_input(self, values: torch.Tensor) -> torch.Tensor:
        """(T, 1, ...) code values -> (T, E, ...) embedding rows."""
        return self.inputs[values[:, 0].long()].movedim(-1, 1)

    def source(self, above: dict[str, np.ndarray]) -> torch.Tensor:
        return code_rows(self.tables, self.spec.condition, above)
