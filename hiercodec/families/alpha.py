"""Alpha as a level of its own (DESIGN.md, "Images of any size"), shared by every family.

Alpha planes are mostly flat (opaque) with thin anti-aliased edges, so a fixed exact model does
well: one group per row; each pixel's table depends on the three pixels above it (above-left,
above, above-right; edges replicated; the row above the image counts as opaque 255). When the three
agree the table is confident in their value, otherwise it spreads mass around the pixel above.
Both keep extra mass on 0 and 255, the values of most alpha planes, so that a hard edge (opaque
to transparent) costs a few bits rather than the 24 of a least likely symbol.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from hiercodec.coding.tables import normalize
from hiercodec.families.base import Group, GroupDecoder, Level


_A = np.arange(256)[:, None]  # the value above (row of a table)
_V = np.arange(256)[None, :]  # the symbol
_D = np.abs(_V - _A)
_EXTREME = (_V == 0) | (_V == 255)
# (256, 256) coder tables, row a for the value above: raw integer weights, then normalize()
CONFIDENT = normalize(np.where(_D == 0, 1 << 30, 1 << np.maximum(0, 12 - _D)) + (_EXTREME << 14))
SPREAD = normalize(((1 << 20) >> np.minimum(_D // 2, 20)) + (1 << 12) + (_EXTREME << 19))


class AlphaLevel(Level):
    name = "alpha"

    def __init__(self, channel: int, height: int, width: int):
        self.channel, self.height, self.width = channel, height, width

    def analyze(self, image: np.ndarray, above: dict[str, np.ndarray]) -> np.ndarray:
        return image[..., self.channel]

    @staticmethod
    def _row_tables(prev: np.ndarray) -> np.ndarray:
        p = np.pad(prev.astype(np.int64), 1, mode="edge")
        left, mid, right = p[:-2], p[1:-1], p[2:]
        agree = (left == mid) & (mid == right)
        return np.where(agree[:, None], CONFIDENT[mid], SPREAD[mid])

    def encode_groups(self, values: np.ndarray, above: dict[str, np.ndarray]) -> Iterator[Group]:
        for i in range(values.shape[0]):
            yield self._group(values, i)

    def _group(self, values: np.ndarray, i: int) -> Group:
        prev = values[i - 1] if i > 0 else np.full(values.shape[1], 255, np.uint8)
        return values[i].astype(np.int32), self._row_tables(prev)

    def reversed_groups(self, values: np.ndarray, above: dict[str, np.ndarray]) -> Iterator[Group]:
        """Rows last to first, each table made when it is pushed (memory of one row)."""
        for i in reversed(range(values.shape[0])):
            yield self._group(values, i)

    def decode_groups(self, above: dict[str, np.ndarray]) -> GroupDecoder:
        h, w = self.height, self.width
        out = np.empty((h, w), np.uint8)
        prev = np.full(w, 255, np.uint8)
        for i in range(h):
            out[i] = yield self._row_tables(prev)
            prev = out[i]
        return out


def alpha_levels(geometry) -> list[Level]:
    """The alpha level every family appends for images with 2 or 4 channels (none otherwise)."""
    c = geometry.channels
    return [AlphaLevel(c - 1, geometry.height, geometry.width)] if c in (2, 4) else []


def with_alpha(image: np.ndarray, decoded: dict[str, np.ndarray]) -> np.ndarray:
    """The colour (or gray) image with the decoded alpha appended, when the file held it."""
    if "alpha" not in decoded:
        return image
    return np.concatenate([image, decoded["alpha"][..., None]], axis=2)
