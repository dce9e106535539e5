"""The hierarchy abstraction of DESIGN.md: a family is an ordered list of levels, top first.

A level is one discrete variable, coded as a (push, pop) pair on a stack coder (craystack's view
of a codec): `encode` pushes its values so that `decode` pops them back, given the values of the
levels above. Most levels are `ScheduledLevel`s: one `schedule`, an ordered sequence of groups
whose tables depend only on the levels above and on earlier groups, drives both directions (the
encoder knows every symbol, the decoder is sent each group's symbols as it pops them), and the
drivers of hiercodec.coding.groups do the coding. Levels that are not plain schedules (bits-back
latents, hiercodec.families.latent) implement `encode`/`decode` themselves, from other levels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

import numpy as np

from hiercodec.coding.ans import StackCoder
from hiercodec.coding.groups import Group, GroupDecoder, Progress, pop_groups, push_groups

# A schedule in decode order: yields (symbols, table) where the symbols are known (encoding) or
# (None, table) where the decoder pops them, and is then sent them; returns the level's values.
Schedule = Generator[tuple[np.ndarray | None, np.ndarray], np.ndarray | None, np.ndarray]


def decoder(schedule: Schedule) -> GroupDecoder:
    """A schedule run without symbols as a group decoder (hiercodec.coding.groups.pop_groups)."""
    try:
        _, table = next(schedule)
        while True:
            _, table = schedule.send((yield table))
    except StopIteration as stop:
        return stop.value


@dataclass
class LevelStats:
    """What coding one level cost: the exact model's bound, the number of coded symbols, what
    consistency-constrained coding saved (the paper's bound is bound_bits + saved_bits) and the
    initial bits a bits-back level had to push (the stream held too little to pop from)."""

    name: str
    bound_bits: float = 0.0
    symbols: int = 0
    saved_bits: float = 0.0
    initial_bits: float = 0.0
    extra: dict = field(default_factory=dict)


class Level(ABC):
    """One level of a hierarchy: how its values come from the image, and its (push, pop) pair."""

    name: str = "level"
    # True: this level and the next are coded on one stream (one chunk of the file), the next
    # pushed first, so that this level may pop from its bits (bits-back, hiercodec.families.latent)
    joins_next: bool = False

    @abstractmethod
    def analyze(self, image: np.ndarray, above: dict[str, np.ndarray]) -> np.ndarray:
        """The level's values for `image` (uint8, H x W x C), given the values of levels above."""

    @abstractmethod
    def encode(self, values: np.ndarray, above: dict[str, np.ndarray], coder: StackCoder,
               progress: Progress | None = None) -> LevelStats:
        """Push `values` so that `decode` pops them back (the encoder's half)."""

    @abstractmethod
    def decode(self, above: dict[str, np.ndarray], coder: StackCoder,
               progress: Progress | None = None) -> np.ndarray:
        """Pop the level's values (the decoder's half)."""


class ScheduledLevel(Level):
    """A level coded by one schedule of groups, in both directions."""

    @abstractmethod
    def schedule(self, above: dict[str, np.ndarray], values: np.ndarray | None = None,
                 stats: LevelStats | None = None) -> Schedule:
        """The groups in decode order (see `Schedule`): with `values`, every symbol is known (and
        what restricting tables saves is added to stats.saved_bits); without, the caller pops
        each group and sends its symbols."""

    def push_order(self, values: np.ndarray, above: dict[str, np.ndarray], stats: LevelStats) -> Iterator[Group]:
        """The schedule's groups last first, for pushing. A level may yield runs of consecutive
        groups concatenated (in decode order), and override this to run its schedule piece by
        piece so as not to hold every table at once; it may add to stats (saved_bits)."""
        return reversed(list(self.encode_groups(values, above, stats)))

    def encode_groups(self, values: np.ndarray, above: dict[str, np.ndarray],
                      stats: LevelStats | None = None) -> Iterator[Group]:
        """Every group of the schedule in decode order, with its symbols and tables."""
        yield from self.schedule(above, values, stats)

    def decode_groups(self, above: dict[str, np.ndarray]) -> GroupDecoder:
        """Generator: yields the table of each group, is sent its symbols, returns the values."""
        return decoder(self.schedule(above))

    def encode(self, values, above, coder, progress=None) -> LevelStats:
        stats = LevelStats(self.name)
        coded = push_groups(coder, self.push_order(values, above, stats), progress)
        stats.bound_bits, stats.symbols = coded.bits, coded.symbols
        return stats

    def decode(self, above, coder, progress=None) -> np.ndarray:
        return pop_groups(coder, self.decode_groups(above), progress, f"{self.name} level")[0]

    def temper(self, milli: int) -> None:
        """Sample this level at temperature milli / 1000 from now on (a level whose tables come
        from no model, such as alpha's fixed tables, keeps them)."""
