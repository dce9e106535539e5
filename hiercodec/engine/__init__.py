"""The compiled exact engine: numba kernels that compute the same integers as the torch reference
(hiercodec.exact), so a file written by either decodes with the other (DESIGN.md, "Decode speed").

Every exact network and head a family builds goes through `network` / `head`, which return an
object with the reference's interface that runs the compiled kernels when the engine is in use
and the reference otherwise:
- `HIERCODEC_ENGINE=torch` (or `using("torch")`) runs the reference; `numba` (the default when
  numba imports) the engine. If numba cannot load, the reference runs and `status()` says why.
- A network the engine does not cover yet (attention layers) runs on the reference.
- `set_threads(n)` / `threads(n)`: threads across tiles (the integers do not depend on it).

The kernels compile on first use and are cached on disk (numba's cache, in hiercodec's cache
folder: $HIERCODEC_CACHE/numba or ~/.cache/hiercodec/numba), so only the first run on a machine
pays for compilation.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property

from hiercodec.cache import cache_dir

# Compiled kernels are cached in hiercodec's cache folder, not beside the installed sources: files
# written there after installation outlive `pip uninstall` and the folder left behind shadows a
# later installation (seen here). NUMBA_CACHE_DIR, when set, wins; so does a numba imported earlier.
if "numba" not in sys.modules:
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir() / "numba"))

ENV = "HIERCODEC_ENGINE"
KINDS = ("numba", "torch")
_kind = os.environ.get(ENV, "numba").strip().lower()
if _kind not in KINDS:
    warnings.warn(f"hiercodec: {ENV}={_kind!r} is not one of {', '.join(KINDS)}: using numba", RuntimeWarning,
                  stacklevel=2)
    _kind = "numba"
_why_not: str | None = None


def _load() -> bool:
    """Import the kernels once; False (and the reason in status()) if numba cannot load."""
    global _why_not
    if _why_not is not None:
        return False
    try:
        import numba  # noqa: F401
    except Exception as err:  # an absent or broken numba: the reference still decodes every file
        _why_not = f"numba could not be imported ({type(err).__name__}: {err}); using the torch reference"
        warnings.warn(f"hiercodec: the compiled engine is unavailable: {_why_not} (the same files, "
                      "decoded more slowly)", RuntimeWarning, stacklevel=3)
        return False
    return True


def active() -> bool:
    """Whether the compiled engine runs (else the torch reference)."""
    return _kind == "numba" and _load()


def status() -> str:
    """One line for bench and its JSON: which implementation computes the tables, and why."""
    if _kind == "torch":
        return f"torch reference ({ENV}=torch)"
    if not _load():
        return _why_not or "torch reference"
    import numba

    return f"compiled (numba {numba.__version__}, {numba.get_num_threads()} threads)"


@contextmanager
def using(kind: str) -> Iterator[None]:
    """Run a block on one implementation ("numba" or "torch"): for tests and comparisons."""
    global _kind
    if kind not in KINDS:
        raise ValueError(f"engine must be one of {KINDS}, got {kind!r}")
    before, _kind = _kind, kind
    try:
        yield
    finally:
        _kind = before


_threads: int | None = None  # None: every core


def thread_count() -> int:
    """Threads the codec may use: across tiles in the engine, for large products in the reference."""
    return _threads or os.cpu_count() or 1


@contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run a block on n threads, then restore the count; None leaves the process's count (every
    core unless `set_threads` said otherwise). The integers, hence the files, do not depend on it:
    only the speed does."""
    if n is None:
        yield
        return
    before = _threads
    set_threads(n)
    try:
        yield
    finally:
        set_threads(before)


def set_threads(n: int | None) -> None:
    """Set the thread count for the rest of the process (None: every core)."""
    global _threads
    if n is not None and n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    _threads = n
    _numba_threads(thread_count())


def _numba_threads(n: int) -> None:
    """Set numba's thread count (at most the pool it started with), if numba is there."""
    if _load():
        import numba

        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


class _Network:
    """An exact gated PixelCNN (hiercodec.exact.pixelcnn.ExactPixelCNN) with its compiled twin."""

    def __init__(self, reference):
        self.reference = reference

    @cached_property
    def compiled(self):
        from hiercodec.engine.gated import CompiledPixelCNN

        return CompiledPixelCNN(self.reference) if CompiledPixelCNN.covers(self.reference) else None

    def _impl(self):
        return self.compiled if active() and self.compiled is not None else self.reference

    def forward(self, x, features=None):
        return self._impl().forward(x, features)

    def decoder(self, batch: int, width: int, features=None):
        return self._impl().decoder(batch, width, features)

    def __getattr__(self, name: str):
        return getattr(self.reference, name)


class _State:
    def __init__(self, impl, inner):
        self.impl, self.inner = impl, inner


class _Head:
    """An exact head (ExactMixture or ExactCategorical) with its compiled twin; a state remembers
    which implementation began it."""

    def __init__(self, reference):
        self.reference = reference

    @cached_property
    def compiled(self):
        from hiercodec.engine.heads import compiled_head

        return compiled_head(self.reference)

    def begin(self, params):
        impl = self.compiled if active() else self.reference
        return _State(impl, impl.begin(params))

    def table(self, state: _State, c: int = 0, prev=None):
        return state.impl.table(state.inner, c, prev)

    def update(self, state: _State, symbols) -> None:
        state.impl.update(state.inner, symbols)

    def __getattr__(self, name: str):
        return getattr(self.reference, name)


def network(reference):
    """The exact network `reference`, run by the engine when it is active and covers it."""
    return _Network(reference)


def head(reference):
    """The exact head `reference`, run by the engine when it is active."""
    return _Head(reference)


def restrict(freqs, lo, hi, reference):
    """A head's table restricted to lo .. hi per row (consistency-constrained coding): compiled
    when the engine is active, else `reference` (coding.tables.restrict, the same integers)."""
    if not active():
        return reference(freqs, lo, hi)
    from hiercodec.engine.heads import restrict as compiled

    return compiled(freqs, lo, hi)
