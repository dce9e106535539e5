"""A level coded in raster order by an exact PixelCNN, its tiles decoded in lockstep: the schedule
every autoregressive level of hiercodec shares (the `pixelcnn` family's pixels, the Grayscale
PixelCNN's 4-bit gray image and colour, each level of the Pyramid PixelCNN).

Schedule (bitstreams/FORMAT.md): tiles in row-major grid order are taken in batches of at most
MAX_TILES; for each batch, for each row i and column j of the tile, for each coded channel c, one
group holding position (i, j) of every tile of the batch that covers a position of the level there.
Batches bound the memory of both sides whatever the image size.

What a level adds to the schedule:
- `to_input`: its values as the network's integer inputs (pixel - 128, or 2 psi - 15);
- a head turning the network's output into tables (ExactMixture or ExactCategorical);
- `context(above)`: what the levels above give it, or None: `features` of its tiles (an exact
  embedding, biasing the conditional network) and `bounds`, the interval of values each position
  may still take given the levels above and the values decoded so far (consistency-constrained
  coding: each table is restricted to it and renormalised, coding.tables.restrict).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np
import torch

from hiercodec.coding.ans import StackCoder
from hiercodec.coding.tables import bits, restrict
from hiercodec.exact.pixelcnn import ExactPixelCNN
from hiercodec.exact.quant import DTYPE, threads
from hiercodec.families.base import Group, GroupDecoder, Level, LevelStats
from hiercodec.tiling import TileLayout

TILE_BATCH = 8  # tiles per whole-tile pass of the encoder (bounds its memory)
POSITIONS_PER_BLOCK = 8192  # positions whose tables the encoder computes at once
MAX_TILES = 256  # tiles coded in lockstep (a 1024 x 1024 image is one batch of 64 x 64 tiles)


class Head(Protocol):
    def begin(self, params: torch.Tensor): ...
    def table(self, state, c: int, prev: torch.Tensor) -> np.ndarray: ...
    def update(self, state, symbols: torch.Tensor) -> None: ...


class Context(Protocol):
    """What the levels above give a level (see the module docstring)."""

    def features(self, tiles: slice) -> torch.Tensor | None:
        """(T, E, th, tw) int16 features of the tiles, or None."""

    def bounds(self, tiles: slice, values: np.ndarray, i: int, j0: int, j1: int, c: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Interval (lo, hi), each int64 (j1 - j0, T), of channel c at positions (i, j0 ... j1-1)
        of the tiles, or None. values (T, C, th, tw) are the tiles' values; only those decoded
        before (i, j, c) may be read (the decoder's hold the fill value elsewhere)."""


class RasterLevel(Level):
    """A level of shape (H, W, channels) coded by `net` and `head` (whose tables give the alphabet)."""

    fill: int = 128  # value of padded positions (never coded)
    dtype: np.dtype = np.dtype(np.uint8)  # of the level's values (little-endian codes for larger alphabets)

    def __init__(self, name: str, net: ExactPixelCNN, head: Head, layout: TileLayout, channels: int):
        self.name, self.net, self.head, self.layout, self.channels = name, net, head, layout, channels
        self.saved_bits = 0.0  # what restricting tables to their bounds saved, while encoding

    def to_input(self, values: torch.Tensor) -> torch.Tensor:
        """Values (T, channels, ...) as float64 -> network inputs (T, in_channels, ...)."""
        raise NotImplementedError

    def context(self, above: dict[str, np.ndarray]) -> Context | None:
        return None

    # -- encoder --------------------------------------------------------------------------------

    def params(self, tiles: np.ndarray, b: slice, ctx: Context | None) -> torch.Tensor:
        """Whole-tile pass over tiles (T, C, h, w) of batch b: (T, out, h, w) integer parameters,
        stored as int16 (all fit). Large products, so it uses every core (exact mode: the thread
        count changes speed only)."""
        out = []
        with threads(os.cpu_count() or 1):
            for s in range(0, len(tiles), TILE_BATCH):
                e = min(len(tiles), s + TILE_BATCH)
                f = ctx.features(slice(b.start + s, b.start + e)) if ctx else None
                x = self.to_input(torch.from_numpy(tiles[s:e].astype(np.int64)).to(DTYPE))
                out.append(self.net.forward(x, None if f is None else f.to(DTYPE)).to(torch.int16))
        return torch.cat(out)

    def row_groups(self, params: torch.Tensor, tiles: np.ndarray, valid: np.ndarray, i: int,
                   b: slice, ctx: Context | None) -> list[Group]:
        """Groups of tile row i in decode order (column, then channel), tables from the whole-tile
        pass and the true symbols; columns in blocks of about POSITIONS_PER_BLOCK positions to
        bound memory on large images. Adds what the bounds save to saved_bits."""
        t, w = len(tiles), self.layout.tile_w
        step = max(1, POSITIONS_PER_BLOCK // t)
        groups: list[Group] = []
        for j0 in range(0, w, step):
            j1 = min(w, j0 + step)
            p = params[:, :, i, j0:j1].permute(2, 0, 1).reshape((j1 - j0) * t, -1).to(DTYPE)  # (j, tile)
            sym = torch.from_numpy(tiles[:, :, i, j0:j1].transpose(2, 0, 1).reshape((j1 - j0) * t, -1).astype(np.int64))
            state = self.head.begin(p)
            symbols = sym.numpy().reshape(j1 - j0, t, -1).astype(np.int32)
            v = valid[:, i, j0:j1].T  # (j, tile)
            tables = []
            for c in range(self.channels):
                tab = self.head.table(state, c, sym[:, :c].to(DTYPE)).reshape(j1 - j0, t, -1)
                box = ctx.bounds(b, tiles, i, j0, j1, c) if ctx else None
                if box is not None:
                    wide = tab
                    tab = restrict(tab.reshape((j1 - j0) * t, -1), box[0].reshape(-1), box[1].reshape(-1)).reshape(wide.shape)
                    self.saved_bits += bits(symbols[..., c][v], wide[v]) - bits(symbols[..., c][v], tab[v])
                tables.append(tab)
                if c + 1 < self.channels:
                    self.head.update(state, sym[:, c])
            for j in range(j0, j1):
                vj = v[j - j0]
                groups += [(symbols[j - j0, vj, c], tables[c][j - j0, vj]) for c in range(self.channels)]
        return groups

    def batches(self) -> list[slice]:
        n = self.layout.count
        return [slice(k, min(k + MAX_TILES, n)) for k in range(0, n, MAX_TILES)]

    def encode_groups(self, values: np.ndarray, above: dict[str, np.ndarray]) -> Iterator[Group]:
        tiles, ctx = self.layout.to_tiles(values, self.fill), self.context(above)
        for b in self.batches():
            params, valid = self.params(tiles[b], b, ctx), self.layout.valid(b)
            for i in range(self.layout.tile_h):
                yield from self.row_groups(params, tiles[b], valid, i, b, ctx)

    def reversed_groups(self, values: np.ndarray, above: dict[str, np.ndarray]) -> Iterator[Group]:
        """One push per tile row of a batch (its groups concatenated in decode order), last first."""
        tiles, ctx = self.layout.to_tiles(values, self.fill), self.context(above)
        for b in reversed(self.batches()):
            params, valid = self.params(tiles[b], b, ctx), self.layout.valid(b)
            for i in reversed(range(self.layout.tile_h)):
                groups = self.row_groups(params, tiles[b], valid, i, b, ctx)
                yield np.concatenate([g[0] for g in groups]), np.concatenate([g[1] for g in groups])

    def encode(self, values: np.ndarray, above: dict[str, np.ndarray], coder: StackCoder,
               progress: Callable[[int], None] | None = None) -> LevelStats:
        """As Level.encode; also reports what restricting the tables to their bounds saved
        (stats.extra["saved_bits"]: the paper's bound for the level is bound_bits + saved_bits)."""
        self.saved_bits = 0.0
        stats = super().encode(values, above, coder, progress)
        stats.extra["saved_bits"] = self.saved_bits
        return stats

    # -- decoder --------------------------------------------------------------------------------

    def decode_groups(self, above: dict[str, np.ndarray]) -> GroupDecoder:
        lay, ctx = self.layout, self.context(above)
        out = np.empty((lay.count, self.channels, lay.tile_h, lay.tile_w), self.dtype)  # pages touched per batch
        for b in self.batches():
            yield from self._decode_batch(lay.valid(b), out[b], b, ctx)
        return lay.from_tiles(out)

    def _decode_batch(self, valid: np.ndarray, out: np.ndarray, b: slice, ctx: Context | None) -> GroupDecoder:
        """Decode one batch of tiles in lockstep into out (tiles, C, h, w)."""
        t, cc, height, width = out.shape
        out[:] = self.fill
        with threads(os.cpu_count() or 1):
            features = ctx.features(b) if ctx else None
        dec = self.net.decoder(t, width, features)
        for i in range(height):
            dec.row(i)
            for j in range(width):
                state = self.head.begin(dec.step(j))
                v = valid[:, i, j]
                vt = torch.from_numpy(v)
                vals = torch.full((t, cc), float(self.fill), dtype=DTYPE)
                for c in range(cc):
                    tab = self.head.table(state, c, vals[:, :c])
                    box = ctx.bounds(b, out, i, j, j + 1, c) if ctx else None
                    if box is not None:
                        tab = restrict(tab, box[0].reshape(-1), box[1].reshape(-1))
                    vals[vt, c] = torch.from_numpy((yield tab[v]).astype(np.float64))
                    out[:, c, i, j] = vals[:, c].numpy().astype(self.dtype)
                    if c + 1 < cc:
                        self.head.update(state, vals[:, c])
                dec.set_pixel(j, self.to_input(vals))
