"""What coding an image cost, level by level: the exact model's bound next to the bytes written
(kept free of torch so that the API can import it cheaply)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from hiercodec.geometry import Geometry


@dataclass
class LevelReport:
    name: str
    bound_bits: float  # the exact model's -log2 p of the level's symbols
    written_bytes: int  # the chunk's length
    symbols: int
    # what consistency-constrained coding saved: the level's cost with tables not restricted to the
    # values consistent with the levels above (the paper's bound) minus bound_bits; 0 when decoding
    saved_bits: float = 0.0

    @property
    def paper_bound_bits(self) -> float:
        return self.bound_bits + self.saved_bits

    @property
    def written_bits(self) -> int:
        return 8 * self.written_bytes

    @property
    def overhead_percent(self) -> float:
        return 100.0 * (self.written_bits / self.bound_bits - 1) if self.bound_bits > 0 else 0.0


@dataclass
class Report:
    model_id: str
    geometry: Geometry
    file_bytes: int
    levels: list[LevelReport] = field(default_factory=list)

    @property
    def height(self) -> int:
        return self.geometry.height

    @property
    def width(self) -> int:
        return self.geometry.width

    @property
    def channels(self) -> int:
        return self.geometry.channels

    @property
    def dims(self) -> int:
        return self.geometry.dims

    @property
    def bound_bits(self) -> float:
        return sum(level.bound_bits for level in self.levels)

    @property
    def written_bits(self) -> int:
        """Bits of the coded chunks (the file without its header)."""
        return sum(level.written_bits for level in self.levels)

    @property
    def file_bits(self) -> int:
        return 8 * self.file_bytes

    @property
    def header_bits(self) -> int:
        return self.file_bits - self.written_bits

    @property
    def overhead_percent(self) -> float:
        """Coded chunks vs the bound (the coder's overhead)."""
        b = self.bound_bits
        return 100.0 * (self.written_bits / b - 1) if b > 0 else 0.0

    @property
    def file_overhead_percent(self) -> float:
        """The whole file, header included, vs the bound."""
        b = self.bound_bits
        return 100.0 * (self.file_bits / b - 1) if b > 0 else 0.0

    @property
    def bits_per_dim(self) -> float:
        """Of the whole file."""
        return self.file_bits / self.dims

    @property
    def bound_bits_per_dim(self) -> float:
        return self.bound_bits / self.dims

    @property
    def paper_bound_bits(self) -> float:
        """The bound with every table unrestricted (the paper's bound, -log2 p(x, z) of the model
        as trained); exactly bound_bits for families without consistency-constrained coding."""
        return self.bound_bits + sum(lv.saved_bits for lv in self.levels)

    @property
    def constrained(self) -> bool:
        """Whether consistency-constrained coding made any level cheaper."""
        return any(lv.saved_bits for lv in self.levels)
