"""The `pyramid` family: Pyramid PixelCNN (Kolesnikov & Lampert 2017, sec. 3.2 and 4.2).

Level k of L (k = 0 is the image) is the image downsampled k times by `downsample`; levels are
coded coarsest first: `pixels/8`, `pixels/4`, `pixels/2`, `pixels` for L = 4 (then `alpha` for
images with alpha). The coarsest level is coded by a small PixelCNN, every finer one by a light
conditional PixelCNN biased by a deep embedding of the level below (sec. 4.2; sizes in
hiercodec.families.auxiliary_config). Level k is cut into tiles of at most `tile` >> k, so a
64-tile pyramid bottoms out at 8 x 8 tiles; tiles of levels with a coarser level are of even size,
so that no 2 x 2 block straddles two tiles.

The exact integer downsampling (bitstreams/FORMAT.md): an odd height (width) is first extended by
repeating the last row (column); then every output sample is floor((a + b + c + d + 2) / 4) of its
2 x 2 block, per channel.

Beyond the paper, consistency-constrained coding (`block_bounds`): a sample's block average is
known from the level below, so given the block's samples decoded before it, only an interval of
values is possible; the table is restricted to it. The last sample of each block has at most 4
(1 + 3 / weight) possible values. A file cut after any level decodes to that level's image
(upsampled by repetition to the full size on request).
"""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.exact.embedding import ExactEmbedding
from hiercodec.exact.layers import subset
from hiercodec.exact.mixture import ExactMixture
from hiercodec.exact.pixelcnn import ExactPixelCNN
from hiercodec.families.auxiliary_config import PyramidConfig
from hiercodec.families.base import Level
from hiercodec.families.family import Family
from hiercodec.families.hierarchy import MIXTURE, Condition, Hierarchy, LevelSpec
from hiercodec.families.inputs import PIXELS
from hiercodec.families.pixelcnn import PixelLevel
from hiercodec.families.raster import exact_network
from hiercodec.families.registry import register
from hiercodec.geometry import Geometry
from hiercodec.tiling import TileLayout

# Within a 2 x 2 block, in raster order, the samples decoded before (KNOWN) and after (REST) the
# one at row parity pi, column parity pj, as offsets (di, dj) from it.
KNOWN = {(0, 0): (), (0, 1): ((0, -1),), (1, 0): ((-1, 0), (-1, 1)), (1, 1): ((-1, -1), (-1, 0), (0, -1))}
REST = {(0, 0): ((0, 1), (1, 0), (1, 1)), (0, 1): ((1, -1), (1, 0)), (1, 0): ((0, 1),), (1, 1): ()}


def downsample(x: np.ndarray) -> np.ndarray:
    """(..., H, W, C) uint8 -> (..., ceil(H/2), ceil(W/2), C): odd sizes extended by edge
    repetition, then floor((sum of the 2 x 2 block + 2) / 4)."""
    h, w = x.shape[-3:-1]
    p = np.pad(x.astype(np.int64), [(0, 0)] * (x.ndim - 3) + [(0, h % 2), (0, w % 2), (0, 0)], mode="edge")
    s = p[..., 0::2, 0::2, :] + p[..., 0::2, 1::2, :] + p[..., 1::2, 0::2, :] + p[..., 1::2, 1::2, :]
    return ((s + 2) >> 2).astype(np.uint8)


def sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """(H_k, W_k) of level k = 0 ... levels-1."""
    out = [(height, width)]
    for _ in range(levels - 1):
        h, w = out[-1]
        out.append(((h + 1) // 2, (w + 1) // 2))
    return out


def block_weights(height: int, width: int) -> np.ndarray:
    """(H, W) int64: how many samples of its (edge-extended) 2 x 2 block each sample stands for:
    2 for the last row of an odd height or the last column of an odd width, 4 for both."""
    wy = np.where((np.arange(height) == height - 1) & (height % 2 == 1), 2, 1)
    wx = np.where((np.arange(width) == width - 1) & (width % 2 == 1), 2, 1)
    return (wy[:, None] * wx[None, :]).astype(np.int64)


def block_bounds(m: np.ndarray, known: np.ndarray, rest: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interval (lo, hi) of a sample of weight w (>= 1) whose block has average m below, given the
    weighted sum `known` of the block's samples decoded before it and the total weight `rest` of
    those after it: the block sum S = known + w x + (0 ... 255 rest) must satisfy
    floor((S + 2) / 4) = m, i.e. 4m - 2 <= S <= 4m + 1. Integer arithmetic only, any shapes."""
    lo = -((255 * rest + known - 4 * m + 2) // w)  # ceil((4m - 2 - known - 255 rest) / w)
    hi = (4 * m + 1 - known) // w
    return np.clip(lo, 0, 255), np.clip(hi, 0, 255)


def level_name(k: int) -> str:
    return "pixels" if k == 0 else f"pixels/{1 << k}"


def hierarchy(net: PyramidConfig) -> Hierarchy:
    """The coarsest level by a PixelCNN (`bottom`), then each finer level k by a PixelCNN (`cond{k}`)
    biased by an embedding (`embed{k}`) of level k + 1 (sec. 3.2, 4.2)."""
    top = net.levels - 1
    levels = [LevelSpec(level_name(top), "bottom", PIXELS, MIXTURE, net.mixtures)]
    levels += [LevelSpec(level_name(k), f"cond{k}", PIXELS, MIXTURE, net.mixtures,
                         Condition(f"embed{k}", level_name(k + 1), PIXELS, 2)) for k in reversed(range(top))]

    def values(images: np.ndarray, model=None) -> dict[str, np.ndarray]:
        out, x = {}, images
        for k in range(net.levels):
            out[level_name(k)] = x
            x = downsample(x)
        return out

    return Hierarchy(tuple(levels), values)


class _BlockBounds:
    """The values of level k's samples consistent with level k + 1 (`below`, the coarser image),
    given the samples of their 2 x 2 block decoded before them (`block_bounds`)."""

    def __init__(self, level: "PyramidLevel", below: np.ndarray):
        lay = level.layout
        up = np.repeat(np.repeat(below, 2, axis=0), 2, axis=1)[: lay.height, : lay.width]
        self.m = lay.to_tiles(up, 0).astype(np.int64)  # (T, C, th, tw): the block's average
        self.w = lay.to_tiles(block_weights(lay.height, lay.width)[..., None], 0)[:, 0]  # 0 = padding

    def __call__(self, tiles: slice, values: np.ndarray, i: int, j0: int, j1: int, c: int):
        wt, x = self.w[tiles], values[:, c]
        known = np.zeros((len(wt), j1 - j0), np.int64)
        rest = np.zeros_like(known)
        for pj in (0, 1):  # columns of each parity: their block neighbours sit at the same offsets
            first = j0 + ((pj - j0) & 1)
            if first >= j1:
                continue
            jj, at = np.arange(first, j1, 2), slice(first - j0, None, 2)
            for di, dj in KNOWN[i & 1, pj]:
                known[:, at] += x[:, i + di, jj + dj].astype(np.int64) * wt[:, i + di, jj + dj]
            for di, dj in REST[i & 1, pj]:
                rest[:, at] += wt[:, i + di, jj + dj]
        w = wt[:, i, j0:j1]
        lo, hi = block_bounds(self.m[tiles][:, c, i, j0:j1], known, rest, np.maximum(w, 1))
        return np.where(w > 0, lo, 0).T, np.where(w > 0, hi, 255).T  # padding: unrestricted


class PyramidLevel(PixelLevel):
    """Level k: the image downsampled k times; conditional on level k + 1 unless it is the coarsest."""

    def __init__(self, spec: LevelSpec, net: ExactPixelCNN, mixture: ExactMixture, layout: TileLayout,
                 channels: int, k: int, embedding: ExactEmbedding | None = None, halo: int = 0):
        super().__init__(spec, net, mixture, layout, channels, embedding, halo)
        self.k = k

    def analyze(self, image: np.ndarray, above: dict[str, np.ndarray]) -> np.ndarray:
        x = image[..., : self.channels]
        for _ in range(self.k):
            x = downsample(x)
        return x

    def bounds(self, above: dict[str, np.ndarray]) -> _BlockBounds | None:
        return None if self.spec.condition is None else _BlockBounds(self, above[self.spec.condition.source])


@register("pyramid", network=PyramidConfig, configs=("pyramid", "pyramid-small", "pyramid-codec"),
          task="hiercodec.train.auxiliary:PyramidTask")
class PyramidFamily(Family):
    hierarchy = staticmethod(hierarchy)
    def __init__(self, config: dict, tensors: dict[str, torch.Tensor]):
        super().__init__(config, tensors)
        net = PyramidConfig.from_dict(config["network"])
        exact = config["exact"]
        self.net, self.tile = net, net.tile
        self.specs = hierarchy(net).levels  # coarsest first
        bottom, *finer = self.specs
        # the exact networks (PixelCNN, head) and embeddings by their declared names
        self.networks = {bottom.net: exact_network(bottom, tensors, exact, net.bottom_channels, net.bottom_layers)}
        self.networks |= {s.net: exact_network(s, tensors, exact, net.channels, net.layers) for s in finer}
        self.embeddings = {s.condition.embed: ExactEmbedding(subset(tensors, f"{s.condition.embed}."), net.embed_blocks,
                                                             net.embed_down, net.embed_up, in_max=PIXELS.max)
                           for s in finer}

    def level_layout(self, geometry: Geometry, k: int) -> TileLayout:
        h, w = sizes(geometry.height, geometry.width, self.net.levels)[k]
        return TileLayout.for_image(h, w, max(1, self.net.tile >> k), 2 if k < self.net.levels - 1 else 1)

    def layout(self, geometry: Geometry) -> TileLayout:
        return self.level_layout(geometry, 0)

    def color_levels(self, geometry: Geometry, layout: TileLayout) -> list[Level]:
        top = self.net.levels - 1
        out: list[Level] = []
        for spec, k in zip(self.specs, range(top, -1, -1)):
            lay = layout if k == 0 else self.level_layout(geometry, k)
            embed = self.embeddings[spec.condition.embed] if spec.condition else None
            out.append(PyramidLevel(spec, *self.networks[spec.net], lay, geometry.color, k, embed, self.net.halo))
        return out

    def reconstruct_color(self, decoded: dict[str, np.ndarray], geometry: Geometry, full_size: bool) -> np.ndarray:
        """The finest decoded level; with full_size, a coarser level is upsampled to the image size
        by repeating each sample over the block it stands for."""
        k = next(k for k in range(self.net.levels) if level_name(k) in decoded)
        image = decoded[level_name(k)]
        if k and full_size:
            f = 1 << k
            image = np.repeat(np.repeat(image, f, axis=0), f, axis=1)[: geometry.height, : geometry.width]
        return image
