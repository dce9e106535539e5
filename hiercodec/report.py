"""What coding an image cost, level by level: the exact model's bound next to the bytes written
(kept free of torch so that the API can import it cheaply).

Levels coded on one shared stream (bits-back levels and the levels under them) have one chunk:
its bytes are counted on the stream's first level, and its overhead is measured against the bound
plus the initial bits of all the stream's levels. Initial bits (what a bits-back level pushed
because its stream held too few bits to pop from) are reported apart from the bound, never folded
into it: the file pays them, the model's bound does not.
"""

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
    initial_bits: float = 0.0  # seed bits a bits-back level pushed; paid in the file, not in the bound
    continues: bool = False  # coded on the previous level's stream: its bytes are in that chunk
    # a bits-back level's negative ELBO in two terms (one-sample estimates with the latents drawn,
    # from the exact tables; the encoder's report only): -log2 p(x|z), and log2 q(z|x) - log2 p(z)
    reconstruction_bits: float | None = None
    kl_bits: float | None = None

    @property
    def paper_bound_bits(self) -> float:
        return self.bound_bits + self.saved_bits

    @property
    def written_bits(self) -> int:
        return 8 * self.written_bytes

    @property
    def overhead_percent(self) -> float:
        """This level's chunk vs its bound and initial bits (for a shared stream see
        Report.stream_overhead_percent)."""
        return _overhead(self.written_bits, self.bound_bits + self.initial_bits)


def _overhead(written: float, paid: float) -> float:
    return 100.0 * (written / paid - 1) if paid > 0 else 0.0


@dataclass
class Report:
    model_id: str
    geometry: Geometry
    file_bytes: int
    levels: list[LevelReport] = field(default_factory=list)
    levels_total: int = 0  # the levels the model defines for this image (those reported may be fewer)
    sampled: tuple[int, int] | None = None  # decoding drew the missing levels: (seed, temperature in thousandths)

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
    def initial_bits(self) -> float:
        """Bits the file pays beyond the bound for bits-back levels to pop from (0 for most models)."""
        return sum(level.initial_bits for level in self.levels)

    def streams(self) -> list[list[LevelReport]]:
        """The levels grouped by coded stream (one chunk each), top first."""
        out: list[list[LevelReport]] = []
        for level in self.levels:
            if level.continues and out:
                out[-1].append(level)
            else:
                out.append([level])
        return out

    @property
    def shared(self) -> bool:
        """Whether some levels share one coded stream."""
        return any(level.continues for level in self.levels)

    @staticmethod
    def stream_overhead_percent(stream: list[LevelReport]) -> float:
        """A stream's chunk vs the bound and initial bits of all its levels."""
        return _overhead(sum(lv.written_bits for lv in stream),
                         sum(lv.bound_bits + lv.initial_bits for lv in stream))

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
        """Coded chunks vs the bound plus the initial bits (the coder's overhead)."""
        return _overhead(self.written_bits, self.bound_bits + self.initial_bits)

    @property
    def file_overhead_percent(self) -> float:
        """The whole file, header included, vs the bound plus the initial bits."""
        return _overhead(self.file_bits, self.bound_bits + self.initial_bits)

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
