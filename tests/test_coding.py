"""hiercodec.coding.tables and hiercodec.coding.ans: exact tables, stack order, overhead, damage."""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hiercodec.coding import ans
from hiercodec.coding.ans import CODER_ID, CODER_VERSION, StackCoder
from hiercodec.coding.tables import MAX_INPUT, PRECISION_BITS, TOTAL, bits, check, normalize
from hiercodec.errors import FormatError

# -- helpers -----------------------------------------------------------------------------------


def uniform(n: int, k: int) -> np.ndarray:
    """The uniform coder table: exactly 2**24 / K each when K is a power of two."""
    return normalize(np.ones((n, k), dtype=np.int64))


def random_table(rng: np.random.Generator, n: int, k: int, kind: str) -> np.ndarray:
    """A valid table (rows summing to exactly 2**24) of one of several shapes, extreme ones
    included."""
    if kind == "ones":
        return uniform(n, k)
    if kind == "peaked":  # one symbol with nearly all of the 2**24 mass, the rest at 1
        f = np.ones((n, k), dtype=np.int64)
        f[np.arange(n), rng.integers(0, k, size=n)] = TOTAL - (k - 1)
        return f
    if kind == "small":  # small raw frequencies, normalized
        return normalize(rng.integers(1, 4, size=(n, k)).astype(np.int64))
    if kind == "raw":  # arbitrary non-negative integers, zeros and huge values, then normalize
        f = rng.integers(0, 2**20, size=(n, k)) * (rng.random((n, k)) < 0.5)
        f[:, 0] *= rng.integers(1, 2**17)
        return normalize(f)
    raise AssertionError(kind)


def sample(rng: np.random.Generator, f: np.ndarray) -> np.ndarray:
    """Symbols drawn from the table's own distribution (integer CDF, no float rounding)."""
    cum = np.cumsum(f, axis=1)
    u = rng.integers(0, cum[:, -1:], size=(f.shape[0], 1))
    return (u >= cum).sum(axis=1).astype(np.int32)


def peaked_logistic(rng: np.random.Generator, n: int, k: int, scale: float) -> np.ndarray:
    """Discretized logistic tables, like a PixelCNN++ output, normalized with integers."""
    mu = rng.uniform(0, k - 1, size=(n, 1))
    edges = np.arange(k + 1)[None, :] - 0.5
    cdf = 1.0 / (1.0 + np.exp(np.clip(-(edges - mu) / scale, -700, 700)))
    p = np.diff(cdf, axis=1)
    return normalize(np.round(p * 2.0**30).astype(np.int64))


def roundtrip(groups: list[tuple[np.ndarray, np.ndarray]]) -> tuple[bytes, float]:
    """Push the groups (decode order) reversed, pop them back from the bytes, check, return."""
    enc = StackCoder()
    total = 0.0
    for symbols, freqs in reversed(groups):
        total += enc.push(symbols, freqs)
    data = enc.to_bytes()
    assert len(data) == enc.num_bits() // 8
    dec = StackCoder(data)
    for symbols, freqs in groups:
        out = dec.pop(freqs)
        assert out.dtype == np.int32 and out.shape == symbols.shape
        np.testing.assert_array_equal(out, symbols)
    dec.assert_consumed()
    assert dec.is_empty()
    return data, total


# -- constants -----------------------------------------------------------------------------------


def test_identity():
    assert CODER_ID == "constriction-ans"
    import importlib.metadata

    assert importlib.metadata.version("constriction").startswith(CODER_VERSION + ".")


def test_precision_is_24_bits():
    """A symbol of frequency 1 in a row summing to 2**24 costs exactly PRECISION_BITS bits, and
    one of frequency 2**23 exactly 1 bit, once the ANS state is past its start-up."""
    assert PRECISION_BITS == 24 and TOTAL == 2**24
    rng = np.random.default_rng(0)
    base = StackCoder()
    u = uniform(64, 256)
    assert (u == 2**16).all()
    base.push(rng.integers(0, 256, size=64).astype(np.int32), u)
    f = np.array([[1, 2**23, 2**23 - 1]], dtype=np.int64)
    for symbol, table, cost in [(0, f, 24), (1, f, 1), (7, u[:1], 8)]:
        c = base.clone()
        c.push(np.array([symbol]), table)
        assert c.num_valid_bits() - base.num_valid_bits() == cost


# -- round trips -------------------------------------------------------------------------------


KINDS = ["ones", "peaked", "small", "raw"]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shapes=st.lists(st.tuples(st.integers(1, 300), st.integers(2, 512), st.sampled_from(KINDS)),
                    min_size=1, max_size=4),
    from_table=st.booleans(),
)
def test_roundtrip_random_groups(seed, shapes, from_table):
    rng = np.random.default_rng(seed)
    groups = []
    for n, k, kind in shapes:
        f = random_table(rng, n, k, kind)
        # uniform symbols code the rare ones of peaked tables (24 bits each) too
        s = sample(rng, f) if from_table else rng.integers(0, k, size=n).astype(np.int32)
        groups.append((s, f))
    data, total = roundtrip(groups)
    assert total == pytest.approx(sum(bits(s, f) for s, f in groups))
    assert len(data) * 8 <= total * 1.005 + 64


def test_roundtrip_edge_groups():
    rng = np.random.default_rng(1)
    groups = [
        (np.zeros(0, np.int32), np.ones((0, 5), np.int64)),          # empty group
        (np.zeros(7, np.int32), np.full((7, 1), TOTAL, np.int64)),   # one-symbol alphabet: free
        (np.array([1, 0, 1], np.int64), uniform(3, 2)),              # int64 symbols accepted
        (np.array([0, 1], np.int32), np.array([[1, TOTAL - 1]] * 2, np.int64)),  # 24 bits + ~0
    ]
    s = rng.integers(0, 256, size=300).astype(np.int32)
    groups.append((s, uniform(300, 256)))
    roundtrip(groups)
    c = StackCoder()
    assert c.push(np.zeros(7, np.int32), np.full((7, 1), TOTAL, np.int64)) == 0.0
    assert c.is_empty() and c.to_bytes() == b""
    assert StackCoder(b"").is_empty()


def test_stack_order_many_groups():
    """Groups pop in reverse push order; symbols keep their order within a group; a pop right
    after a push returns that push's group even in the middle of a stream."""
    rng = np.random.default_rng(2)
    groups = []
    for _ in range(300):
        n, k = int(rng.integers(1, 40)), int(rng.integers(2, 70))
        f = random_table(rng, n, k, KINDS[int(rng.integers(0, len(KINDS)))])
        groups.append((sample(rng, f), f))
    enc = StackCoder()
    for i, (s, f) in enumerate(groups):
        enc.push(s, f)
        if i % 7 == 3:  # interleaved push/pop: LIFO at group granularity
            np.testing.assert_array_equal(enc.pop(f), s)
            enc.push(s, f)
    dec = StackCoder(enc.to_bytes())
    for s, f in reversed(groups):
        np.testing.assert_array_equal(dec.pop(f), s)
    dec.assert_consumed()


def test_order_within_group_distinguishes_positions():
    """Each position has its own table: symbol i is coded with row i (a permuted table would
    make symbols impossible here)."""
    k = 8
    s = np.arange(k, dtype=np.int32)
    f = np.ones((k, k), dtype=np.int64)
    f[np.arange(k), s] = TOTAL - 2 * k  # row i puts nearly all mass on symbol i
    f = normalize(f)
    data, total = roundtrip([(s, f)])
    assert total < 0.01 and len(data) <= 8


# -- overhead ----------------------------------------------------------------------------------

# Measured (20 seeds x 6 table shapes, ~20000 symbols each): bytes written - exact model bits is
# 10.8 .. 51.8 bits and num_valid_bits - model bits 8.8 .. 22.1 bits, a constant (ANS start-up
# and the final 64-bit state written as two whole words) that does not grow with the stream:
# over 1e6 symbols (7e6 bits) it drifts by < 1 bit (|slope| < 5e-6 bits per model bit on the
# smallest stream, < 4e-7 on the others). RELATIVE_SLACK bounds that drift with a 10x margin.
RELATIVE_SLACK = 1e-5


@pytest.mark.parametrize("k,scale,group", [(256, 3.0, 200), (256, 0.5, 200), (256, 0.1, 100),
                                           (16, 0.05, 250), (16, 1.0, 250), (512, 20.0, 100)])
def test_overhead_budget(k, scale, group):
    """DESIGN.md budget: bits written <= exact-model bits + 0.5% + 64 bits per chunk, on ~20000
    symbols drawn from peaked tables. In fact the coder uses exactly the probabilities f / 2**24
    (see test_coder_cdf_is_exactly_the_table), so the bytes cost the exact model's bits plus a
    constant: 0 <= written - model <= 64 bits (+ RELATIVE_SLACK for ANS's own inefficiency)."""
    rng = np.random.default_rng(3)
    n = 20000
    f = peaked_logistic(rng, n, k, scale)
    s = sample(rng, f)
    groups = [(s[i:i + group], f[i:i + group]) for i in range(0, n, group)]
    data, total = roundtrip(groups)
    written = len(data) * 8
    enc = StackCoder()
    for symbols, freqs in reversed(groups):
        enc.push(symbols, freqs)
    valid = enc.num_valid_bits()
    print(f"\nK={k} scale={scale}: model {total:.1f} bits ({total / n:.4f} bits/symbol), "
          f"written {written} bits, overhead {written - total:.1f} bits "
          f"({(written - total) / total:.3%}), valid bits - model {valid - total:.1f}")
    assert written <= total * 1.005 + 64
    assert 0 <= written - total <= 64 + RELATIVE_SLACK * total
    assert 0 <= valid - total <= 32 + RELATIVE_SLACK * total


def _pop_at_quantile(quantile: int, freqs: np.ndarray) -> int:
    """Decode one symbol from a coder whose state has ``quantile`` in its low 24 bits: ANS
    decodes the symbol s with cdf(s) <= quantile < cdf(s + 1) of the coder's own model."""
    words = np.array([quantile, 0x12345678], dtype="<u4")  # state = 0x12345678 << 32 | quantile
    return int(StackCoder(words.tobytes()).pop(freqs)[0])


@pytest.mark.parametrize("kind,k", [("peaked", 256), ("raw", 256), ("small", 16), ("raw", 3),
                                    ("logistic", 256), ("logistic", 16), ("ones", 10),
                                    ("raw", 1000)])
def test_coder_cdf_is_exactly_the_table(kind, k):
    """The coder's quantized model is exactly f / 2**24: for every symbol i, the quantiles
    C(i) and C(i + 1) - 1 (C the cumulative sum of f) decode to i, and C(i) - 1 does not. So
    the probabilities that code are the ones ``tables.bits`` reports (with constriction's lazy
    Categorical, cdf(i) = floor(C'(i) * (2**24 - K) / S) + i for the f - 1 given to it, which
    is C(i) exactly when S = 2**24 - K, i.e. when rows sum to exactly 2**24)."""
    rng = np.random.default_rng(k)
    if kind == "logistic":
        f = peaked_logistic(rng, 1, k, 0.3)
    else:
        f = random_table(rng, 1, k, kind)
    cum = np.concatenate([[0], np.cumsum(f[0])])
    assert cum[-1] == TOTAL
    for i in range(k):
        assert _pop_at_quantile(int(cum[i]), f) == i
        assert _pop_at_quantile(int(cum[i + 1]) - 1, f) == i


# -- tables ------------------------------------------------------------------------------------


def _expected_normalize(row: np.ndarray) -> np.ndarray:
    """normalize() of one row, in exact rational arithmetic (Python ints)."""
    row = [int(v) for v in row] if sum(int(v) for v in row) else [1] * len(row)
    k, total = len(row), sum(row)
    out = [int(Fraction(v * (TOTAL - k), total)) + 1 for v in row]  # floor(f * (2**24-K) / S) + 1
    remainder = TOTAL - sum(out)
    assert 0 <= remainder < k
    out[row.index(max(row))] += remainder  # to the first largest entry of the input
    return np.array(out, dtype=np.int64)


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 20),
    k=st.integers(1, 600),
    top=st.sampled_from([1, 2, 255, 2**16, 2**24, 2**30, MAX_INPUT - 1]),
    zeros=st.floats(0.0, 1.0),
)
def test_normalize(seed, n, k, top, zeros):
    rng = np.random.default_rng(seed)
    f = rng.integers(0, top, size=(n, k), endpoint=True) * (rng.random((n, k)) >= zeros)
    f = np.minimum(f, MAX_INPUT - 1)
    out = normalize(f)
    assert out.dtype == np.int64 and out.shape == f.shape
    assert check(out) is out
    assert out.min() >= 1 and (out.sum(axis=1) == TOTAL).all()
    for i in range(n):
        row, o = f[i], out[i]
        # every entry is exactly floor(f * (2**24 - K) / rowsum) + 1, in exact rational
        # arithmetic, except the first largest entry of the input, which also gets the
        # remainder (in [0, K)) that brings the row sum to exactly 2**24
        np.testing.assert_array_equal(o, _expected_normalize(row))
        if row.sum() == 0:  # an all-zero row is uniform (the remainder < K to symbol 0)
            assert (o[1:] == o[-1]).all() and 0 <= o[0] - o[-1] < k
            continue
        scale = Fraction(TOTAL - k, int(row.sum()))
        # monotone: a smaller input never gets a larger output (every output of a smaller input
        # value <= every output of a larger one); equal inputs get equal outputs, except in the
        # largest group, whose first entry took the remainder (< K)
        values, group = np.unique(row, return_inverse=True)
        gmin = np.full(len(values), TOTAL + 1, np.int64)
        gmax = np.zeros(len(values), np.int64)
        np.minimum.at(gmin, group, o)
        np.maximum.at(gmax, group, o)
        assert (np.maximum.accumulate(gmax)[:-1] <= gmin[1:]).all()
        assert (gmax[:-1] == gmin[:-1]).all() and 0 <= gmax[-1] - gmin[-1] < k
        j = int(np.argmax(row))  # the first largest input entry: the largest output
        assert o[j] == o.max() and (o[row == row[j]][1:] == o[j] - (gmax[-1] - gmin[-1])).all()
        # order of magnitude kept: large entries are proportional to the input within 1 unit,
        # once the remainder (< K) is taken off the entry that got it
        floored = o.copy()
        floored[j] -= TOTAL - (row * (TOTAL - k) // row.sum() + 1).sum()
        big = row * (TOTAL - k) >= 1000 * row.sum()
        if big.any():
            ratio = floored[big] / (row[big] * float(scale))
            assert np.all(np.abs(ratio - 1) < 2e-3)


def test_normalize_remainder_goes_to_the_first_argmax():
    # rows sum to exactly 2**24, entries >= 1, the remainder (< K) to the first largest input
    cases = [
        ([5, 5, 5], 0),                       # ties: the first one
        ([1, 7, 7, 2], 1),
        ([0, 3, 9, 9, 0, 9], 2),
        ([2**36, 2**36 + 1, 5], 1),           # these two floor to the same value: the larger
        ([2**36 + 1, 2**36, 5], 0),           # input keeps the larger output
        ([0, 0, 0], 0),                       # all zero: uniform, remainder to symbol 0
        ([MAX_INPUT - 1] * 7, 0),
    ]
    for row, j in cases:
        o = normalize(np.array([row], dtype=np.int64))[0]
        k = len(row)
        assert o.sum() == TOTAL and o.min() >= 1
        rowa = np.array(row if any(row) else [1] * k, dtype=np.int64)
        floor = rowa * (TOTAL - k) // rowa.sum() + 1
        remainder = TOTAL - floor.sum()
        assert 0 <= remainder < k
        expected = floor.copy()
        expected[j] += remainder
        np.testing.assert_array_equal(o, expected)
        # the order of the input is kept (a larger input never gets a smaller output)
        for a in range(k):
            for b in range(k):
                if rowa[a] < rowa[b]:
                    assert o[a] <= o[b]
    # the remainder is really there (and < K) in these rows
    assert TOTAL - (np.array([[5, 5, 5]]) * (TOTAL - 3) // 15 + 1).sum() == 1
    # powers of two: exact uniform, no remainder
    for k in (1, 2, 4, 16, 256, 1024):
        np.testing.assert_array_equal(normalize(np.ones((3, k), np.int64)),
                                      np.full((3, k), TOTAL // k))


def test_normalize_rejects_and_is_integer_only():
    normalize(np.array([[MAX_INPUT - 1, 0, 3]]))
    with pytest.raises(ValueError):
        normalize(np.array([[MAX_INPUT, 1]]))
    with pytest.raises(ValueError):
        normalize(np.array([[1, -1]]))
    with pytest.raises(ValueError):
        normalize(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError):
        normalize(np.array([1, 2, 3]))
    np.testing.assert_array_equal(normalize(np.zeros((2, 4), dtype=np.int64)),
                                  np.full((2, 4), TOTAL // 4))
    # uint8 / int32 inputs work, empty tables too
    assert normalize(np.array([[3, 1]], dtype=np.uint8)).sum() == TOTAL
    assert normalize(np.zeros((0, 3), dtype=np.int32)).shape == (0, 3)


@pytest.mark.parametrize("bad", [
    np.ones(4, np.int64),                                   # 1-D
    np.ones((2, 3, 4), np.int64),                           # 3-D
    np.full((2, 4), TOTAL // 4, np.int32),                  # not int64 (sums fine)
    np.full((2, 4), TOTAL // 4, np.float64),                # float (sums fine)
    np.array([[1, 0, TOTAL - 1]], np.int64),                # zero frequency (sum fine)
    np.array([[2, -1, TOTAL - 1]], np.int64),               # negative (sum fine)
    np.array([[TOTAL, 1]], np.int64),                       # row sum > 2**24
    np.array([[1, TOTAL - 2]], np.int64),                   # row sum 2**24 - 1
    np.array([[2, TOTAL - 1]], np.int64),                   # row sum 2**24 + 1
    np.array([[1, TOTAL - 1], [1, TOTAL - 2]], np.int64),   # one bad row among good ones
    np.array([[TOTAL // 2] * 2, [TOTAL // 2 + 1, TOTAL // 2]], np.int64),
    np.ones((2, 3), np.int64),                              # raw frequencies, not normalized
    np.ones((2, 1), np.int64),                              # one symbol, but not 2**24
    np.array([[2**62, 2**62]], np.int64),                   # overflowing sums
    np.array([[2**62] * 4 + [2**23, 2**23]], np.int64),      # sum wraps to 2**24
    np.ones((2, 0), np.int64),                              # no alphabet
])
def test_check_rejects(bad):
    with pytest.raises(ValueError):
        check(bad)
    with pytest.raises(ValueError):
        StackCoder().push(np.zeros(bad.shape[0] if bad.ndim else 1, np.int32), bad)
    with pytest.raises(ValueError):
        StackCoder().pop(bad)


def test_check_accepts_exactly_two_to_the_24():
    """check() accepts rows summing to exactly 2**24 and rejects 2**24 - 1 and 2**24 + 1, in any
    row of a table."""
    good = [[1, TOTAL - 1], [TOTAL // 2, TOTAL // 2], [2**23, 2**22, 2**22 - 1, 1]]
    for row in good:
        f = np.array([row, row], np.int64)
        assert check(f) is f
    for row in good:
        for delta in (-1, +1):
            for last in (False, True):
                bad = np.array([row, row], np.int64)
                bad[int(last), int(np.argmax(row))] += delta  # all entries stay >= 1
                assert bad[int(last)].sum() == TOTAL + delta
                with pytest.raises(ValueError, match=r"exactly 2\*\*24"):
                    check(bad)
    for delta in (-1, +1):  # one-symbol alphabets too
        with pytest.raises(ValueError, match=r"exactly 2\*\*24"):
            check(np.array([[TOTAL + delta]], np.int64))


def test_push_rejects_bad_symbols():
    f = uniform(3, 4)
    for s in [np.array([0, 1, 4]), np.array([0, -1, 1]), np.array([0, 1]),
              np.array([[0, 1, 2]]), np.array([0.0, 1.0, 2.0])]:
        with pytest.raises(ValueError):
            StackCoder().push(s, f)


def test_bits_is_exact_model_cost():
    f = np.array([[1, 1, 2], [3, 1, 4]], np.int64)
    assert bits(np.array([2, 0]), f) == pytest.approx(1.0 + np.log2(8 / 3))
    assert bits(np.zeros(0, np.int32), np.ones((0, 3), np.int64)) == 0.0


# -- damaged data ------------------------------------------------------------------------------


def _reference_stream():
    rng = np.random.default_rng(4)
    groups = []
    for _ in range(20):
        f = peaked_logistic(rng, 50, 64, 2.0)
        groups.append((sample(rng, f), f))
    data, _ = roundtrip(groups)
    return groups, data


def _decode(groups, data):
    dec = StackCoder(data)
    out = [dec.pop(f) for _, f in groups]
    dec.assert_consumed()
    return out


def test_damaged_data_gives_format_error_or_wrong_symbols():
    """Bit flips, truncations, extensions: the decoder either raises FormatError or returns
    other symbols (which the container's CRC of the pixels catches). It never raises anything
    else, never hangs, and never returns the original symbols from other bytes (ANS decoding is
    a bijection)."""
    groups, data = _reference_stream()
    rng = np.random.default_rng(5)
    variants = [data[:-4], data[4:], data[:-8], data + b"\x01\x00\x00\x00",
                b"\x07\x00\x00\x00" + data, data[:-1], data + b"\x00", data[:3], b"\x00" * 4]
    for _ in range(300):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, len(b)))
            b[i] ^= 1 << int(rng.integers(0, 8))
        variants.append(bytes(b))
    for _ in range(50):
        variants.append(rng.integers(0, 256, size=int(rng.integers(0, 40)) * 4,
                                     dtype=np.uint8).tobytes())
    errors = 0
    t0 = time.perf_counter()
    for v in variants:
        if v == data:
            continue
        try:
            out = _decode(groups, v)
        except FormatError as e:
            assert "damaged coded data" in str(e)
            errors += 1
            continue
        assert any(not np.array_equal(o, s) for o, (s, _) in zip(out, groups))
    assert time.perf_counter() - t0 < 10
    # The leftover-bits check alone catches most damage (about 80% here: ANS resynchronizes
    # after a flipped bit, so a few wrong symbols may still end in an empty stack; the pixel
    # CRC of the container catches those).
    assert errors >= 0.6 * len(variants)


def test_bad_lengths_and_zero_tail():
    with pytest.raises(FormatError, match="damaged coded data"):
        StackCoder(b"\x01\x02\x03")
    with pytest.raises(FormatError, match="damaged coded data"):
        StackCoder(b"\x01\x00\x00\x00\x00\x00\x00\x00")  # constriction never ends in a zero word
    c = StackCoder(b"\x05\x00\x00\x00")
    with pytest.raises(FormatError):
        c.assert_consumed()


def test_popping_past_the_end_never_hangs():
    """An exhausted stack still pops (0s, as constriction does) and stays empty."""
    c = StackCoder()
    out = c.pop(uniform(1000, 300))
    assert (out == 0).all() and c.is_empty()
    c.assert_consumed()


class _FakePanic(BaseException):
    """Stands for pyo3's PanicException, which derives from BaseException only."""


class _Raising:
    def __init__(self, exc):
        self.exc = exc

    def decode(self, *args):
        raise self.exc

    encode_reverse = decode


@pytest.mark.parametrize("exc", [_FakePanic("boom"), ValueError("x"), KeyError("y"),
                                 RuntimeError("z")])
def test_constriction_failures_while_decoding_are_format_errors(exc):
    c = StackCoder()
    c._coder = _Raising(exc)
    with pytest.raises(FormatError, match="damaged coded data"):
        c.pop(uniform(2, 3))


def test_interrupts_pass_through():
    c = StackCoder()
    c._coder = _Raising(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        c.pop(uniform(2, 3))
    c._coder = _Raising(_FakePanic("boom"))
    with pytest.raises(ValueError):  # while encoding, a coder failure is a programmer error
        c.push(np.zeros(2, np.int32), uniform(2, 3))


def test_only_coding_imports_constriction():
    """DESIGN.md: hiercodec/coding is the only importer of constriction."""
    import re
    from pathlib import Path

    root = Path(ans.__file__).resolve().parents[2]
    offenders = []
    for folder in ("hiercodec", "cli"):
        for path in (root / folder).rglob("*.py"):
            if "coding" in path.relative_to(root).parts:
                continue
            if re.search(r"^\s*(import|from)\s+constriction\b", path.read_text(), re.M):
                offenders.append(str(path.relative_to(root)))
    assert not offenders
