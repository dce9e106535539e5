"""The hierarchy abstraction of DESIGN.md: a family is an ordered list of levels, top first.

A level is one discrete variable with a schedule: an ordered list of groups of positions whose
probability tables depend only on the levels above and on earlier groups. The encoder knows every
symbol and yields all groups at once (`encode_groups`); the decoder is a generator that yields the
table of the next group and is sent back the symbols popped for it (`decode_groups`). Both must
produce bit-identical tables: that is what the exactness tests check.

Levels that are not plain autoregressive (bits-back latents) override `encode` / `decode`, which
get the level's own stack coder and may pop from it as well as push.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

import numpy as np

from hiercodec.coding.ans import StackCoder

# One group: the symbols of the positions in the group (int32, shape (n,)) and their integer
# frequency tables (int64, shape (n, alphabet), every entry >= 1).
Group = tuple[np.ndarray, np.ndarray]
# What a decoder generator yields (tables), is sent (symbols), and returns (the level's values).
GroupDecoder = Generator[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Geometry:
    """Image geometry as stored in the container: 8-bit samples, channels 1 (gray), 2 (gray +
    alpha), 3 (RGB) or 4 (RGBA)."""

    height: int
    width: int
    channels: int

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.height, self.width, self.channels)

    @property
    def dims(self) -> int:
        """Number of samples, the denominator of bits/dim."""
        return self.height * self.width * self.channels


@dataclass
class LevelStats:
    """What coding one level cost: the exact model's bound and the number of coded symbols."""

    name: str
    bound_bits: float = 0.0
    symbols: int = 0
    extra: dict = field(default_factory=dict)


class Level(ABC):
    """One level of a hierarchy. Subclasses implement the schedule; `encode`/`decode` drive it."""

    name: str = "level"

    @abstractmethod
    def analyze(self, image: np.ndarray, above: dict[str, np.ndarray]) -> np.ndarray:
        """The level's values for `image` (uint8, H x W x C), given the values of levels above."""

    @abstractmethod
    def encode_groups(self, values: np.ndarray, above: dict[str, np.ndarray]) -> Iterator[Group]:
        """Every group of the schedule in decode order, with its symbols and tables."""

    @abstractmethod
    def decode_groups(self, above: dict[str, np.ndarray]) -> GroupDecoder:
        """Generator: yields the table of each group, is sent its symbols, returns the values."""

    def reversed_groups(self, values: np.ndarray, above: dict[str, np.ndarray]) -> Iterator[Group]:
        """The schedule's groups last first, for pushing. A level may yield runs of consecutive
        groups concatenated (in decode order): on a stack that is the same stream, in fewer coder
        calls; and it may override this to avoid holding every table at once."""
        return reversed(list(self.encode_groups(values, above)))

    def encode(self, values: np.ndarray, above: dict[str, np.ndarray], coder: StackCoder,
               progress: Callable[[int], None] | None = None) -> LevelStats:
        """Push all groups so that the decoder pops them in schedule order (ANS is a stack);
        `progress` is told how many symbols each push coded."""
        stats = LevelStats(self.name)
        for symbols, freqs in self.reversed_groups(values, above):
            stats.bound_bits += coder.push(symbols, freqs)
            stats.symbols += len(symbols)
            if progress:
                progress(len(symbols))
        return stats

    def decode(self, above: dict[str, np.ndarray], coder: StackCoder,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Pop the groups in schedule order, feeding each group's symbols back to the schedule;
        `progress` is told how many symbols each group held."""
        gen = self.decode_groups(above)
        try:
            freqs = next(gen)
            while True:
                coder.check_not_exhausted(f"{self.name} level")
                symbols = coder.pop(freqs)
                if progress:
                    progress(len(symbols))
                freqs = gen.send(symbols)
        except StopIteration as stop:
            return stop.value
