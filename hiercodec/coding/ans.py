"""The stack coder: exact integer tables in, constriction ANS words out.

One ``StackCoder`` is one chunk of a .hc file (bitstreams/FORMAT.md, "The coder stream inside a
chunk"): a ``constriction.stream.stack.AnsCoder`` whose ``uint32`` words are written as 4
little-endian bytes each.

Order semantics (a stack at group granularity, order kept within a group):

- ``push(symbols, freqs)`` puts one group on top of the stack;
- ``pop(freqs)`` takes the group on top of the stack off and returns its symbols in the order
  they were given to ``push``: ``pop(f)`` right after ``push(s, f)`` returns ``s`` exactly.
- So the encoder pushes the groups of a schedule in reverse, and the decoder pops them in
  schedule order (``families.base.Level.encode`` / ``decode``).

Internally a group is one constriction call: ``encode_reverse`` pushes ``symbols[n-1]`` first
and ``symbols[0]`` last, so that ``decode`` returns ``symbols[0], ..., symbols[n-1]``.
"""

from __future__ import annotations

import importlib.metadata

import numpy as np

import constriction

from hiercodec.coding.tables import bits, check, check_symbols
from hiercodec.errors import FormatError

CODER_ID = "constriction-ans"
CODER_VERSION = "0.5"

_installed = importlib.metadata.version("constriction")
if not _installed.startswith(CODER_VERSION + "."):
    # A different leading version may read and write different streams: refuse to run rather
    # than write files no other hiercodec can decode (or misread files written by one).
    raise ImportError(
        f"hiercodec needs constriction {CODER_VERSION}.x, found {_installed}: "
        f"run  pip install 'constriction>={CODER_VERSION},<0.6'")

_AnsCoder = constriction.stream.stack.AnsCoder
# perfect=False always, explicitly (the default would be the slow exact quantization, and the
# stream depends on it). Without probabilities the family is lazy: tables come per call.
_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)

_PASS_THROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError)


def _damaged(what: str, exc: BaseException | None = None) -> FormatError:
    detail = f" ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})" if exc else ""
    return FormatError(f"damaged coded data: {what}{detail}; the file is corrupt or truncated")


class StackCoder:
    """A stack of coded groups (see module docstring for the order semantics).

    ``StackCoder()`` is an empty encoder. ``StackCoder(data)`` holds a chunk to decode; its
    length must be a multiple of 4 and it must not end in a zero word (constriction never
    writes one), else FormatError.
    """

    def __init__(self, data: bytes | None = None):
        if data is None:
            self._coder = _AnsCoder()
            return
        data = bytes(data)
        if len(data) % 4:
            raise _damaged(f"a coded chunk of {len(data)} bytes is not a whole number of "
                           "32-bit words")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        try:
            self._coder = _AnsCoder(words)
        except _PASS_THROUGH:
            raise
        except BaseException as exc:  # constriction's PanicException derives from BaseException
            raise _damaged("the chunk cannot start an ANS stream", exc) from exc

    # -- coding -------------------------------------------------------------------------------

    def push(self, symbols: np.ndarray, freqs: np.ndarray) -> float:
        """Push one group: ``symbols`` (n,) integers in [0, K) with ``freqs`` (n, K) a checked
        table (``tables.check``). Returns the exact model's cost of the group in bits
        (``tables.bits``). ValueError on bad input (a programmer error)."""
        f = check(freqs)
        s = check_symbols(symbols, f)
        if f.shape[0] == 0 or f.shape[1] == 1:
            return 0.0  # nothing to code: an empty group, or a one-symbol alphabet (cost 0)
        try:
            self._coder.encode_reverse(s, _CATEGORICAL, (f - 1).astype(np.float64))
        except _PASS_THROUGH:
            raise
        except BaseException as exc:
            raise ValueError(f"constriction refused a checked table: {exc}") from exc
        return bits(s, f)

    def pop(self, freqs: np.ndarray) -> np.ndarray:
        """Pop the group on top of the stack with its table ``freqs`` (n, K); returns its
        symbols, int32 shape (n,), in the order they were pushed. Popping from an exhausted
        stack yields symbols (0s) rather than an error: a chunk's decoder calls
        ``check_not_exhausted`` before each group and ``pop_sentinel`` at the end. Any failure
        inside constriction is a FormatError."""
        f = check(freqs)
        if f.shape[0] == 0 or f.shape[1] == 1:
            return np.zeros(f.shape[0], dtype=np.int32)
        try:
            out = self._coder.decode(_CATEGORICAL, (f - 1).astype(np.float64))
        except _PASS_THROUGH:
            raise
        except BaseException as exc:  # incl. pyo3's PanicException (not an Exception)
            raise _damaged("constriction could not decode a group", exc) from exc
        out = np.asarray(out, dtype=np.int32)
        if out.shape != (f.shape[0],) or (out.size and (out.min() < 0 or out.max() >= f.shape[1])):
            raise _damaged("decoded symbols out of range")
        return out

    # -- state --------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The chunk: constriction's ``uint32`` words, 4 little-endian bytes each (b"" when empty)."""
        return self._coder.get_compressed().astype("<u4").tobytes()

    def is_empty(self) -> bool:
        """True when the stack holds nothing (a fresh encoder, or a chunk fully decoded)."""
        return bool(self._coder.is_empty())

    def num_bits(self) -> int:
        """Size of ``to_bytes()`` in bits (a multiple of 32)."""
        return int(self._coder.num_bits())

    def num_valid_bits(self) -> int:
        """Information on the stack in bits, not rounded up to whole words (<= num_bits())."""
        return int(self._coder.num_valid_bits())

    def clone(self) -> "StackCoder":
        new = StackCoder.__new__(StackCoder)
        new._coder = self._coder.clone()
        return new

    # -- chunk framing ------------------------------------------------------------------------

    def push_sentinel(self) -> None:
        """Bottom of every chunk: symbol 1 of the table (2^23, 2^23), one bit. An empty ANS coder
        pops zeros forever, so without it a stream that ends early (a truncated or forged chunk)
        would keep decoding; with it, a sound stream is never empty until its last pop, and
        `check_not_exhausted` can stop a damaged one at once."""
        self.push(_SENTINEL_SYMBOL, _SENTINEL_TABLE)

    def pop_sentinel(self, what: str = "level") -> None:
        """Last pop of a chunk: the sentinel must come back and leave the stack empty."""
        self.check_not_exhausted(what)
        if self.pop(_SENTINEL_TABLE)[0] != 1 or not self._coder.is_empty():
            raise _damaged(f"{what} does not end where its coded data ends")

    def check_not_exhausted(self, what: str = "level") -> None:
        """Before each group of a chunk: FormatError if the stream holds less than the sentinel
        alone. The sentinel leaves the ANS state at 2^23, and every push after it keeps the state
        at or above that (a push maps a state x to at least x), so between two pops of a sound
        chunk the coder holds at least SENTINEL_BITS valid bits; a forged or truncated one that
        has run out falls below them and is stopped at once, instead of popping zeros forever."""
        if self._coder.num_valid_bits() < SENTINEL_BITS:
            raise _damaged(f"its coded data ends before the end of the {what}")

    def assert_consumed(self, what: str = "level") -> None:
        """After the last pop of a chunk: FormatError if the chunk still holds data. A chunk
        decoded with the tables it was encoded with ends exactly empty (ANS pops are the exact
        inverse of pushes); damaged data almost never does."""
        if not self._coder.is_empty():
            raise _damaged(f"{self.num_valid_bits()} bits left over after decoding the {what}")

    def __repr__(self) -> str:
        return f"StackCoder({self.num_valid_bits()} bits)"


_SENTINEL_TABLE = np.array([[1 << 23, 1 << 23]], dtype=np.int64)
_SENTINEL_SYMBOL = np.array([1], dtype=np.int32)


def _sentinel_bits() -> int:
    coder = StackCoder()
    coder.push_sentinel()
    return coder.num_valid_bits()


SENTINEL_BITS = _sentinel_bits()  # what a chunk holding only its sentinel holds: 23
