"""Cutting a level into tiles that are coded in lockstep (DESIGN.md, "Images of any size").

The grid has ceil(H / T) x ceil(W / T) tiles of equal size th x tw with th = ceil(H / rows), so
padding is less than one row (column) per tile row (column); levels whose 2 x 2 blocks must stay
within a tile round th and tw up to even sizes. Padded positions hold a constant
the decoder knows (`fill`) and are never coded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TileLayout:
    height: int
    width: int
    tile_h: int
    tile_w: int

    @classmethod
    def for_image(cls, height: int, width: int, tile: int, multiple: int = 1) -> "TileLayout":
        """The layout of an image with tiles of at most `tile` (rounded up to a multiple of
        `multiple`, for levels whose 2 x 2 blocks must not straddle tiles)."""
        th = math.ceil(height / math.ceil(height / tile))
        tw = math.ceil(width / math.ceil(width / tile))
        return cls(height, width, -(-th // multiple) * multiple, -(-tw // multiple) * multiple)

    @property
    def rows(self) -> int:
        return math.ceil(self.height / self.tile_h)

    @property
    def cols(self) -> int:
        return math.ceil(self.width / self.tile_w)

    @property
    def count(self) -> int:
        return self.rows * self.cols

    def to_tiles(self, image: np.ndarray, fill: int) -> np.ndarray:
        """(H, W, C) -> (tiles, C, th, tw), tiles in row-major grid order, padding = fill."""
        c = image.shape[2]
        padded = np.full((self.rows * self.tile_h, self.cols * self.tile_w, c), fill, image.dtype)
        padded[: self.height, : self.width] = image
        t = padded.reshape(self.rows, self.tile_h, self.cols, self.tile_w, c)
        return np.ascontiguousarray(t.transpose(0, 2, 4, 1, 3).reshape(self.count, c, self.tile_h, self.tile_w))

    def from_tiles(self, tiles: np.ndarray) -> np.ndarray:
        c = tiles.shape[1]
        t = tiles.reshape(self.rows, self.cols, c, self.tile_h, self.tile_w).transpose(0, 3, 1, 4, 2)
        return np.ascontiguousarray(t.reshape(self.rows * self.tile_h, self.cols * self.tile_w, c)[: self.height, : self.width])

    def valid(self, tiles: slice = slice(None)) -> np.ndarray:
        """(tiles, th, tw) bool: which positions of the given tiles lie inside the image."""
        index = np.arange(self.count)[tiles]
        ys = (index // self.cols)[:, None, None] * self.tile_h + np.arange(self.tile_h)[None, :, None]
        xs = (index % self.cols)[:, None, None] * self.tile_w + np.arange(self.tile_w)[None, None, :]
        return (ys < self.height) & (xs < self.width)
