"""Groups and the two drivers that code them: the one place where a schedule meets the coder.

A group is the symbols of some positions of a level, int32 (n,), with their exact integer
frequency tables, int64 (n, K), every entry >= 1 (`tables.check`). A level's schedule is an
ordered sequence of groups whose tables depend only on what was coded before them.

- `push_groups` pushes groups *last first* (ANS is a stack: the decoder pops in schedule order).
  A run of consecutive groups may come concatenated in schedule order: on a stack that is the
  same stream in fewer coder calls.
- `pop_groups` drives a decoder: a generator that yields the table of the next group, is sent
  the symbols popped for it, and returns the level's value when the schedule ends.

Ordinary levels, bits-back levels (`families.latent`) and the bits-back primitive
(`coding.bitsback`) all code through these two functions, so every stream is framed and checked
the same way (`StackCoder.check_not_exhausted` before every pop).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass

import numpy as np

from hiercodec.coding.ans import StackCoder
from hiercodec.coding.tables import bits

Group = tuple[np.ndarray, np.ndarray]
# What a decoder generator yields (a table), is sent (the symbols popped) and returns (the value).
GroupDecoder = Generator[np.ndarray, np.ndarray, object]
Progress = Callable[[int], None]  # told how many symbols were just coded


@dataclass
class Coded:
    """What pushing or popping some groups cost: the exact model's bits and the symbol count."""

    bits: float = 0.0
    symbols: int = 0


def push_groups(coder: StackCoder, groups_last_first: Iterable[Group], progress: Progress | None = None) -> Coded:
    """Push groups given last first (see the module docstring); their exact cost in bits."""
    out = Coded()
    for symbols, freqs in groups_last_first:
        out.bits += coder.push(symbols, freqs)
        out.symbols += len(symbols)
        if progress:
            progress(len(symbols))
    return out


def push_in_order(coder: StackCoder, groups: Iterable[Group], progress: Progress | None = None) -> Coded:
    """Push groups given in schedule order, so that `pop_groups` returns them in that order."""
    return push_groups(coder, reversed(list(groups)), progress)


def pop_groups(coder: StackCoder, decoder: GroupDecoder, progress: Progress | None = None,
               what: str = "level", measure: bool = False) -> tuple[object, Coded]:
    """Pop groups in schedule order from `decoder` (see the module docstring): (its value, what
    it cost; the bits only with `measure`, which the decode loop does not need). Before every pop the stream must hold more than its sentinel (FormatError otherwise: a
    damaged or forged chunk stops at once instead of popping zeros)."""
    out = Coded()
    try:
        freqs = next(decoder)
        while True:
            coder.check_not_exhausted(what)
            symbols = coder.pop(freqs)
            if measure:
                out.bits += bits(symbols, freqs)
            out.symbols += len(symbols)
            if progress:
                progress(len(symbols))
            freqs = decoder.send(symbols)
    except StopIteration as stop:
        return stop.value, out


def table_decoder(freqs: np.ndarray) -> GroupDecoder:
    """The decoder of a schedule of one group (value: its symbols)."""
    return (yield freqs)
