"""Features of a level's tiles from the level above, by an exact embedding (Kolesnikov & Lampert
2017 sec. 3.3: "compute an embedding of [the auxiliary variable] using a convolutional network").

Each tile's features come from one pass of the embedding over the region of the level above that
the tile covers plus `halo` positions on every side (zero outside the level, as the zero padding
of training), cropped to the tile. So they depend only on the tile's position, never on which
other tiles share a batch: the encoder (batches of TILE_BATCH tiles) and the decoder (all tiles of
a lockstep batch, in chunks of TILE_BATCH) compute the same integers.
"""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.exact.embedding import ExactEmbedding
from hiercodec.exact.quant import DTYPE
from hiercodec.tiling import TileLayout

TILE_BATCH = 8  # tiles per whole-tile pass (bounds the memory of the encoder's and the embedding's passes)


class TileFeatures:
    """source: (Cin, Ha, Wa) float64 network inputs of the level above; the level coded has
    `ratio` (a power of two) times its size and is cut by `layout` (tile sides multiples of ratio)."""

    def __init__(self, embedding: ExactEmbedding, source: torch.Tensor, layout: TileLayout, ratio: int, halo: int):
        self.embedding, self.layout, self.ratio, self.halo = embedding, layout, ratio, halo
        self.th, self.tw = layout.tile_h // ratio, layout.tile_w // ratio  # tile size in the source
        cin, ha, wa = source.shape
        hp, wp = layout.rows * self.th + 2 * halo, layout.cols * self.tw + 2 * halo
        self.padded = torch.zeros(cin, max(hp, ha + halo), max(wp, wa + halo), dtype=DTYPE)
        self.padded[:, halo : halo + ha, halo : halo + wa] = source

    def __call__(self, tiles: slice) -> torch.Tensor:
        """(T, E, tile_h, tile_w) int16 features of the tiles (activations are 12-bit integers)."""
        index = np.arange(self.layout.count)[tiles]
        th, tw, m, r = self.th, self.tw, self.halo, self.ratio
        out = []
        for s in range(0, len(index), TILE_BATCH):
            crops = torch.stack([self.padded[:, y : y + th + 2 * m, x : x + tw + 2 * m]
                                 for y, x in ((t // self.layout.cols * th, t % self.layout.cols * tw)
                                              for t in index[s : s + TILE_BATCH])])
            f = self.embedding.forward(crops)
            out.append(f[:, :, r * m : r * m + self.layout.tile_h, r * m : r * m + self.layout.tile_w].to(torch.int16))
        return torch.cat(out)
