"""What coding one level cost (kept free of torch so that the API can import it cheaply)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LevelReport:
    name: str
    bound_bits: float  # the exact model's -log2 p of the level's symbols
    written_bytes: int  # the chunk's length
    symbols: int

    @property
    def written_bits(self) -> int:
        return 8 * self.written_bytes

    @property
    def overhead_percent(self) -> float:
        return 100.0 * (self.written_bits / self.bound_bits - 1) if self.bound_bits > 0 else 0.0
