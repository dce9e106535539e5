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

from hiercodec.coding.groups import Group
from hiercodec.coding.tables import normalize
from hiercodec.families.base import Level, Schedule, ScheduledLevel


_A = np.arange(256)[:, None]  # the value above (row of a table)
_V = np.arange(256)[None, :]  # the symbol
_D = np.abs(_V - _A)
_EXTREME = (_V == 0) | (_V == 255)
# (256, 256) coder tables, row a for the value above: raw integer weights, then normalize()
CONFIDENT = normalize(np.where(_D == 0, 1 << 30, 1 << np.maximum(0, 12 - _D)) + (_EXTREME << 14))
SPREAD = normalize(((1 << 20) >> np.minimum(_D // 2, 20)) + (1 << 12) + (_EXTREME << 19))


class AlphaLevel(ScheduledLevel):
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

    def schedule(self, above, values=None, stats=None, rows: range | None = None) -> Schedule:
        """One group per row (of `rows`, all by default; with known values any row stands alone)."""
        out = np.empty((self.height, self.width), np.uint8) if values is None else values
        for i in range(self.height) if rows is None else rows:
            prev = out[i - 1] if i > 0 else np.full(self.width, 255, np.uint8)
            table = self._row_tables(prev)
            if values is None:
                out[i] = yield None, table
            else:
                yield values[i].astype(np.int32), table
        return out

    def push_order(self, values, above, stats) -> Iterator[Group]:
        """Rows last to first, each table made when it is pushed (memory of one row)."""
        for i in reversed(range(self.height)):
            yield from self.schedule(above, values, stats, range(i, i + 1))


def alpha_levels(geometry) -> list[Level]:
    """The alpha level every family appends for images with 2 or 4 channels (none otherwise)."""
    c = geometry.channels
    return [AlphaLevel(c - 1, geometry.height, geometry.width)] if c in (2, 4) else []


def with_alpha(image: np.ndarray, decoded: dict[str, np.ndarray]) -> np.ndarray:
    """The colour (or gray) image with the decoded alpha appended, when the file held it."""
    if "alpha" not in decoded:
        return image
    return np.concatenate([image, decoded["alpha"][..., None]], axis=2)
