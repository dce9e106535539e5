"""The `pixelcnn` family: one level of pixels coded by a gated PixelCNN with a discretized logistic
mixture head, the baseline of every paper in ../shared/papers (e.g. Kolesnikov & Lampert 2017,
Table 1). Autoregression runs over positions in raster order and, within a pixel, over R, G, B
(the mixture's channel coupling). Tiles are decoded in lockstep: one step serves every tile.

Schedule of the pixel level (bitstreams/FORMAT.md): tiles in row-major grid order are taken in
batches of at most MAX_TILES; for each batch, for each row i and column j of the tile, for each
coded channel c, one group holding position (i, j) of every tile of the batch that covers an image
pixel there. Batches bound the memory of both sides whatever the image size. Gray images code
channel 0 of a network that sees the gray value replicated to R, G and B.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch

from hiercodec.exact.mixture import ExactMixture
from hiercodec.exact.pixelcnn import ExactPixelCNN
from hiercodec.exact.quant import DTYPE, threads
from hiercodec.families.base import Geometry, Group, GroupDecoder, Level
from hiercodec.tiling import TileLayout

FILL = 128  # value of padded positions: network input 0, as the zero padding of training
TILE_BATCH = 8  # tiles per whole-tile pass of the encoder (bounds its memory)
POSITIONS_PER_BLOCK = 8192  # positions whose tables the encoder computes at once
MAX_TILES = 256  # tiles coded in lockstep (a 1024 x 1024 image is one batch of 64 x 64 tiles)


def network_input(tiles: np.ndarray) -> torch.Tensor:
    """(T, C, h, w) uint8, C = 1 or 3 -> (T, 3, h, w) float64 integers pixel - 128."""
    x = torch.from_numpy(tiles.astype(np.int64)).to(DTYPE) - 128
    return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x


class PixelLevel(Level):
    name = "pixels"

    def __init__(self, net: ExactPixelCNN, mixture: ExactMixture, layout: TileLayout, channels: int):
        self.net, self.mixture, self.layout, self.channels = net, mixture, layout, channels

    def analyze(self, image: np.ndarray, above: dict[str, np.ndarray]) -> np.ndarray:
        return image[..., : self.channels]

    def params(self, tiles: np.ndarray) -> torch.Tensor:
        """Whole-tile pass: (T, 10K, h, w) integer parameters, stored as int16 (all fit). Large
        products, so it uses every core (exact mode: the thread count changes speed only)."""
        with threads(os.cpu_count() or 1):
            out = [self.net.forward(network_input(tiles[s : s + TILE_BATCH])).to(torch.int16)
                   for s in range(0, len(tiles), TILE_BATCH)]
        return torch.cat(out)

    def row_groups(self, params: torch.Tensor, tiles: np.ndarray, valid: np.ndarray, i: int) -> list[Group]:
        """Groups of tile row i in decode order (column, then channel), tables from the whole-tile
        pass and the true symbols (for the channel coupling); columns in blocks of about
        POSITIONS_PER_BLOCK positions to bound memory on large images."""
        t, w = len(tiles), self.layout.tile_w
        step = max(1, POSITIONS_PER_BLOCK // t)
        groups: list[Group] = []
        for j0 in range(0, w, step):
            j1 = min(w, j0 + step)
            p = params[:, :, i, j0:j1].permute(2, 0, 1).reshape((j1 - j0) * t, -1).to(DTYPE)  # (j, tile)
            sym = torch.from_numpy(tiles[:, :, i, j0:j1].transpose(2, 0, 1).reshape((j1 - j0) * t, -1).astype(np.int64))
            state = self.mixture.begin(p)
            tables = []
            for c in range(self.channels):
                tables.append(self.mixture.table(state, c, sym[:, :c].to(DTYPE)).reshape(j1 - j0, t, -1))
                if c + 1 < self.channels:
                    self.mixture.update(state, sym[:, c])
            symbols = sym.numpy().reshape(j1 - j0, t, -1).astype(np.int32)
            for j in range(j0, j1):
                v = valid[:, i, j]
                groups += [(symbols[j - j0, v, c], tables[c][j - j0, v]) for c in range(self.channels)]
        return groups

    def batches(self) -> list[slice]:
        n = self.layout.count
        return [slice(k, min(k + MAX_TILES, n)) for k in range(0, n, MAX_TILES)]

    def encode_groups(self, values: np.ndarray, above: dict[str, np.ndarray]) -> Iterator[Group]:
        tiles = self.layout.to_tiles(values, FILL)
        for b in self.batches():
            params, valid = self.params(tiles[b]), self.layout.valid(b)
            for i in range(self.layout.tile_h):
                yield from self.row_groups(params, tiles[b], valid, i)

    def reversed_groups(self, values: np.ndarray, above: dict[str, np.ndarray]) -> Iterator[Group]:
        """One push per tile row of a batch (its groups concatenated in decode order), last first."""
        tiles = self.layout.to_tiles(values, FILL)
        for b in reversed(self.batches()):
            params, valid = self.params(tiles[b]), self.layout.valid(b)
            for i in reversed(range(self.layout.tile_h)):
                groups = self.row_groups(params, tiles[b], valid, i)
                yield np.concatenate([g[0] for g in groups]), np.concatenate([g[1] for g in groups])

    def decode_groups(self, above: dict[str, np.ndarray]) -> GroupDecoder:
        lay, cc = self.layout, self.channels
        out = np.empty((lay.count, cc, lay.tile_h, lay.tile_w), np.uint8)  # pages touched per batch
        for b in self.batches():
            yield from self._decode_batch(lay.valid(b), out[b])
        return lay.from_tiles(out)

    def _decode_batch(self, valid: np.ndarray, out: np.ndarray) -> GroupDecoder:
        """Decode one batch of tiles in lockstep into out (tiles, C', h, w)."""
        t, cc, height, width = out.shape
        out[:] = FILL
        dec = self.net.decoder(t, width)
        for i in range(height):
            dec.row(i)
            for j in range(width):
                state = self.mixture.begin(dec.step(j))
                v = valid[:, i, j]
                vt = torch.from_numpy(v)
                vals = torch.full((t, 3), float(FILL), dtype=DTYPE)
                for c in range(cc):
                    tab = self.mixture.table(state, c, vals[:, :c])
                    vals[vt, c] = torch.from_numpy((yield tab[v]).astype(np.float64))
                    if c + 1 < cc:
                        self.mixture.update(state, vals[:, c])
                if cc == 1:
                    vals[:, 1:] = vals[:, :1]
                dec.set_pixel(j, vals)
                out[:, :, i, j] = vals[:, :cc].numpy().astype(np.uint8)


class PixelCNNFamily:
    """Builds the levels of an image for a loaded `pixelcnn` model."""

    family = "pixelcnn"

    def __init__(self, config: dict, tensors: dict[str, torch.Tensor]):
        net = config["network"]
        self.tile = int(net["tile"])
        self.net = ExactPixelCNN(tensors, net["channels"], net["layers"], config["exact"]["h_frac"])
        self.mixture = ExactMixture(net["mixtures"], {k: tensors[f"lut.{k}"] for k in ("exp", "inv_m", "inv_q", "sigmoid_cdf")})

    def layout(self, geometry: Geometry) -> TileLayout:
        return TileLayout.for_image(geometry.height, geometry.width, self.tile)

    def levels(self, geometry: Geometry, layout: TileLayout) -> list[Level]:
        from hiercodec.families.alpha import AlphaLevel

        color = 3 if geometry.channels >= 3 else 1
        levels: list[Level] = [PixelLevel(self.net, self.mixture, layout, color)]
        if geometry.channels in (2, 4):
            levels.append(AlphaLevel(geometry.channels - 1, geometry.height, geometry.width))
        return levels

    def reconstruct(self, decoded: dict[str, np.ndarray], geometry: Geometry) -> np.ndarray:
        """The image (H, W, C) from the decoded levels (pixels, then alpha if present): a file cut
        after the pixels decodes to the colour image without its alpha."""
        image = decoded["pixels"]
        if "alpha" in decoded:
            image = np.concatenate([image, decoded["alpha"][..., None]], axis=2)
        return image
