"""A level coded in raster order by an exact PixelCNN, its tiles decoded in lockstep: the schedule
every autoregressive level of hiercodec shares (the `pixelcnn` family's pixels, the Grayscale
PixelCNN's 4-bit gray image and colour, each level of the Pyramid PixelCNN).

Schedule (bitstreams/FORMAT.md): tiles in row-major grid order are taken in batches of at most
MAX_TILES; for each batch, for each row i and column j of the tile, for each coded channel c, one
group holding position (i, j) of every tile of the batch that covers a position of the level there.
Batches bound the memory of both sides whatever the image size.

One schedule (`_rows`) serves both directions; only the source of the network's output differs:
`_WholeTile` (the encoder: one pass over whole tiles, every symbol known, columns taken in blocks)
and `_Incremental` (the decoder: one step per position from cached rows, hiercodec.exact.pixelcnn).

A level is built from its declaration (hiercodec.families.hierarchy.LevelSpec): its input (values
-> the network's integer inputs, hiercodec.families.inputs), a head turning the network's output
into tables (ExactMixture or ExactCategorical) and, for a conditional level, the features of its
tiles from an exact embedding of the condition's source. A family may add `bounds`: the interval
of values each position may still take given the levels above and the values decoded so far
(consistency-constrained coding: each table is restricted to it and renormalised,
coding.tables.restrict).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from hiercodec import engine
from hiercodec.coding.groups import Group
from hiercodec.coding.tables import bits, restrict
from hiercodec.exact.categorical import ExactCategorical
from hiercodec.exact.embedding import ExactEmbedding
from hiercodec.exact.layers import subset
from hiercodec.exact.mixture import ExactMixture
from hiercodec.exact.pixelcnn import ExactPixelCNN
from hiercodec.exact.temperature import Tempered
from hiercodec.exact.quant import DTYPE, threads
from hiercodec.families.base import LevelStats, Schedule, ScheduledLevel
from hiercodec.families.conditioning import TILE_BATCH, TileFeatures
from hiercodec.families.hierarchy import MIXTURE, LevelSpec
from hiercodec.tiling import TileLayout

POSITIONS_PER_BLOCK = 8192  # positions whose tables the encoder computes at once
MAX_TILES = 256  # tiles coded in lockstep (a 1024 x 1024 image is one batch of 64 x 64 tiles)


class Head(Protocol):
    def begin(self, params: torch.Tensor): ...
    def table(self, state, c: int, prev: torch.Tensor) -> np.ndarray: ...
    def update(self, state, symbols: torch.Tensor) -> None: ...


class Bounds(Protocol):
    """Consistency-constrained coding: the values each position may still take given the levels
    above and the values decoded so far (each table is restricted to them, coding.tables.restrict)."""

    def __call__(self, tiles: slice, values: np.ndarray, i: int, j0: int, j1: int, c: int) -> tuple[np.ndarray, np.ndarray]:
        """Interval (lo, hi), each int64 (j1 - j0, T), of channel c at positions (i, j0 ... j1-1)
        of the tiles. values (T, C, th, tw) are the tiles' values; only those decoded before
        (i, j, c) may be read (the decoder's hold the fill value elsewhere)."""


@dataclass
class Context:
    """What the levels above give a level: `features` of its tiles (an exact embedding of the
    condition's source, biasing the conditional network; None without a condition) and `bounds`."""

    features: TileFeatures | None = None
    bounds: Bounds | None = None


class RasterLevel(ScheduledLevel):
    """A level of shape (H, W, channels) declared by `spec` (hiercodec.families.hierarchy), coded
    by its exact PixelCNN `net` and `head` (whose tables give the alphabet); a conditional level
    also gets the exact `embedding` of its condition and the `halo` its tiles see around them."""

    fill: int = 128  # value of padded positions (never coded)
    dtype: np.dtype = np.dtype(np.uint8)  # of the level's values (little-endian codes for larger alphabets)

    def __init__(self, spec: LevelSpec, net: ExactPixelCNN, head: Head, layout: TileLayout, channels: int,
                 embedding: ExactEmbedding | None = None, halo: int = 0):
        self.spec, self.name, self.net, self.head = spec, spec.name, net, head
        self.layout, self.channels, self.embedding, self.halo = layout, channels, embedding, halo

    def to_input(self, values: torch.Tensor) -> torch.Tensor:
        """Values (T, channels, ...) as float64 -> network inputs (T, in_channels, ...)."""
        return self.spec.input.exact(values)

    def source(self, above: dict[str, np.ndarray]) -> torch.Tensor:
        """The integer inputs (Cin, h, w) of the condition's embedding, from the levels above."""
        c = self.spec.condition
        return c.input.planes(above[c.source])

    def bounds(self, above: dict[str, np.ndarray]) -> Bounds | None:
        """The level's consistency restriction given the levels above, or None (no restriction)."""
        return None

    def context(self, above: dict[str, np.ndarray]) -> Context | None:
        c, bounds = self.spec.condition, self.bounds(above)
        if c is None and bounds is None:
            return None
        features = None if c is None else TileFeatures(self.embedding, self.source(above), self.layout, c.ratio, self.halo)
        return Context(features, bounds)

    def temper(self, milli: int) -> None:
        self.head = Tempered(self.head, milli)

    def batches(self) -> list[slice]:
        n = self.layout.count
        return [slice(k, min(k + MAX_TILES, n)) for k in range(0, n, MAX_TILES)]

    # -- the schedule -----------------------------------------------------------------------------

    def schedule(self, above, values=None, stats=None) -> Schedule:
        lay, ctx = self.layout, self.context(above)
        if values is None:  # decoding: pages of `out` are touched batch by batch
            out = np.empty((lay.count, self.channels, lay.tile_h, lay.tile_w), self.dtype)
            for b in self.batches():
                out[b] = self.fill
                yield from self._rows(_Incremental(self, out[b], b, ctx), range(lay.tile_h), stats)
            return lay.from_tiles(out)
        tiles = lay.to_tiles(values, self.fill)
        for b in self.batches():
            yield from self._rows(_WholeTile(self, tiles[b], b, ctx), range(lay.tile_h), stats)
        return values

    def push_order(self, values, above, stats) -> Iterator[Group]:
        """One push per tile row of a batch (its groups concatenated in decode order), last first:
        the whole-tile pass of a batch serves its rows in any order, and memory holds one row."""
        tiles, ctx = self.layout.to_tiles(values, self.fill), self.context(above)
        for b in reversed(self.batches()):
            source = _WholeTile(self, tiles[b], b, ctx)
            for i in reversed(range(self.layout.tile_h)):
                groups = list(self._rows(source, (i,), stats))
                yield np.concatenate([g[0] for g in groups]), np.concatenate([g[1] for g in groups])

    def _rows(self, source: "_WholeTile | _Incremental", rows: Iterable[int], stats: LevelStats | None) -> Schedule:
        """The groups of tile rows `rows` of one batch in decode order: for each position (i, j),
        each coded channel c, one group of the batch's tiles that cover a position of the level
        there. A known source yields (symbols, table) block by block of columns; an unknown one
        (blocks of one column) yields (None, table) and is sent each group's symbols."""
        ctx, out, b = source.ctx, source.values, source.b
        t, cc = out.shape[:2]
        valid = self.layout.valid(b)
        for i in rows:
            full = valid[:, i].all(axis=0)  # per column: every tile of the batch covers it
            source.row(i)
            for j0, j1 in source.blocks():
                n = j1 - j0
                state = self.head.begin(source.params(i, j0, j1))  # rows in (j, tile) order
                vals = torch.from_numpy(out[:, :, i, j0:j1].transpose(2, 0, 1).reshape(n * t, cc).astype(np.float64))
                v = valid[:, i, j0:j1].T  # (j, tile)
                tables = []
                for c in range(cc):
                    tab = self.head.table(state, c, vals[:, :c]).reshape(n, t, -1)
                    box = ctx.bounds(b, out, i, j0, j1, c) if ctx and ctx.bounds else None
                    if box is not None:
                        wide = tab
                        tab = engine.restrict(tab.reshape(n * t, -1), box[0].reshape(-1), box[1].reshape(-1),
                                              restrict).reshape(wide.shape)
                        if source.known and stats is not None:
                            s = out[:, c, i, j0:j1].T.astype(np.int32)
                            stats.saved_bits += bits(s[v], wide[v]) - bits(s[v], tab[v])
                    if source.known:
                        tables.append(tab)
                    else:  # one column: pop this channel now, the next one's table depends on it
                        every = full[j0]  # every tile covers this column: no copies of the table
                        symbols = yield None, (tab[0] if every else tab[0, v[0]])
                        out[v[0], c, i, j0] = symbols
                        vals[:, c] = torch.from_numpy(out[:, c, i, j0])
                    if c + 1 < cc:
                        self.head.update(state, vals[:, c])
                if source.known:
                    symbols = out[:, :, i, j0:j1].transpose(2, 0, 1).astype(np.int32)  # (j, tile, c)
                    for j in range(n):
                        for c in range(cc):
                            yield symbols[j, v[j], c], tables[c][j, v[j]]
                source.done(j0, vals)


def exact_network(spec: LevelSpec, tensors: dict[str, torch.Tensor], exact: dict, channels: int, layers: int,
                  in_channels: int | None = None, in_max: float | None = None, **attention) -> tuple[ExactPixelCNN, Head]:
    """The exact PixelCNN and head of a declared level, from a model file's tensors (under the
    spec's prefix) and its exact config (the network's fractional bits under the spec's net name)."""
    t = subset(tensors, spec.prefix) if spec.prefix else tensors
    fracs = exact[spec.net] if spec.net else exact
    net = ExactPixelCNN(t, channels, layers, fracs["h_frac"], spec.input.channels if in_channels is None else in_channels,
                        spec.input.max if in_max is None else in_max, **attention)
    head = ExactMixture.stored(spec.size, t) if spec.head == MIXTURE else ExactCategorical(t["lut.exp"])
    return engine.network(net), engine.head(head)


class _WholeTile:
    """The encoder's source: one whole-tile pass over the batch's tiles (all symbols known). The
    pass is large products, so it uses every core (exact mode: the thread count changes speed only)."""

    known = True

    def __init__(self, level: RasterLevel, tiles: np.ndarray, b: slice, ctx: Context | None):
        self.level, self.values, self.b, self.ctx = level, tiles, b, ctx
        out = []
        with threads(engine.thread_count()):
            for s in range(0, len(tiles), TILE_BATCH):
                e = min(len(tiles), s + TILE_BATCH)
                f = ctx.features(slice(b.start + s, b.start + e)) if ctx and ctx.features else None
                x = level.to_input(torch.from_numpy(tiles[s:e].astype(np.int64)).to(DTYPE))
                out.append(level.net.forward(x, None if f is None else f.to(DTYPE)).to(torch.int16))
        self.out = torch.cat(out)  # (T, out, h, w) integer parameters: all fit int16

    def row(self, i: int) -> None:
        pass

    def blocks(self) -> list[tuple[int, int]]:
        """Columns in blocks of about POSITIONS_PER_BLOCK positions (memory on large images)."""
        w, step = self.level.layout.tile_w, max(1, POSITIONS_PER_BLOCK // len(self.values))
        return [(j0, min(w, j0 + step)) for j0 in range(0, w, step)]

    def params(self, i: int, j0: int, j1: int) -> torch.Tensor:
        return self.out[:, :, i, j0:j1].permute(2, 0, 1).reshape((j1 - j0) * len(self.values), -1).to(DTYPE)

    def done(self, j0: int, vals: torch.Tensor) -> None:
        pass


class _Incremental:
    """The decoder's source: the network's incremental steps (the vertical stack of a row once,
    then one position at a time from cached rows); `values` is filled in as symbols are popped."""

    known = False

    def __init__(self, level: RasterLevel, out: np.ndarray, b: slice, ctx: Context | None):
        self.level, self.values, self.b, self.ctx = level, out, b, ctx
        with threads(engine.thread_count()):
            features = ctx.features(b) if ctx and ctx.features else None
        self.dec = level.net.decoder(out.shape[0], out.shape[3], features)

    def row(self, i: int) -> None:
        self.dec.row(i)

    def blocks(self) -> list[tuple[int, int]]:
        return [(j, j + 1) for j in range(self.values.shape[3])]

    def params(self, i: int, j0: int, j1: int) -> torch.Tensor:
        return self.dec.step(j0)

    def done(self, j0: int, vals: torch.Tensor) -> None:
        self.dec.set_pixel(j0, self.level.to_input(vals))
