"""Bits-back coding of one latent-variable sample on a ``StackCoder`` (PixelVAE, AGAVE).

A latent-variable level codes an observed variable x (e.g. pixels) with a discrete latent z
(e.g. a discretized continuous latent) under

- a posterior ``q(z|x)``: one group, a table (n_z, K_z) (factorized, as in a VAE encoder);
- a likelihood ``p(x|z)``: any number of groups (autoregressive or not);
- a prior ``p(z)``: one table, or any number of groups (e.g. a PixelCNN prior).

Encoding one sample (``bits_back_push``), top of the stack last:

1. if the stack holds fewer than ``bits_needed(q)`` bits, push a *seed* (see below);
2. pop z with q(z|x): this draws z ~ q from the bits already on the stack ("gets bits back");
3. push x's groups given z (reversed, so that they pop in decode order);
4. push z with the prior (its groups reversed likewise);
5. push a one-bit *flag* (1 if step 1 pushed a seed) with the table [2**24 - 1, 1].

Decoding it (``bits_back_pop``) undoes this exactly, in reverse: pop the flag, pop z with the
prior, pop x given z, recompute q(z|x) from the decoded x and push z back with it (this restores
the stack the encoder popped z from), then, if the flag says so, pop the seed and check it.
Samples coded one after the other on one stack are decoded in the reverse order (a stack).

On average a sample adds ``likelihood_bits + prior_bits - posterior_bits`` (its negative ELBO,
estimated with the z drawn) plus ``flag_bits`` (about 9e-8 bits) to the stack.

Initial bits. Step 2 needs bits on the stack: constriction pops from an empty (or nearly
empty) AnsCoder without complaint, but the z it returns is then not a sample of q (an empty
coder yields 0s and stays empty) and the bits got back are not there. So when the stack is
short, step 1 pushes ``8 * ceil(bits_needed(q) / 8)`` bits of a fixed pseudo-random seed (bytes
of SHA-256 in counter mode, coded as uniform 8-bit symbols: exactly 8 bits each). Most of the
seed stays on the stack forever: it is the "initial bits" cost, reported in
``BitsBackStats.initial_bits`` (and counted in ``injections``), never folded into the net bits.
The flag tells the decoder that a seed lies under the sample, so injection may happen anywhere
in a stream (not only at its bottom), and the decoder checks the seed byte for byte: a
mismatch is a FormatError (damaged data). To avoid paying initial bits, a family pushes other
content first (HiLLoC: code a first part of the image without bits-back); the stack is then long
enough and no seed is pushed.

Every table here is an exact integer table (``tables.check``); every decision that shapes the
stream (the seed length, the flag) is computed with integer arithmetic only, so encoder and
decoder agree on any machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, fields

import numpy as np

from hiercodec.coding.ans import StackCoder
from hiercodec.coding.tables import TOTAL, bits, check
from hiercodec.errors import FormatError

Group = tuple[np.ndarray, np.ndarray]
GroupDecoder = Generator[np.ndarray, np.ndarray, "np.ndarray | None"]

# Flag "no seed under this sample" / "a seed under this sample".
FLAG_TABLE = np.array([[TOTAL - 1, 1]], dtype=np.int64)
# Bits the stack must hold on top of the information content bound of z before popping z.
MARGIN_BITS = 32
_SEED_DOMAIN = b"hiercodec bits-back seed v1"
# Uniform 8-bit symbols: 2**16 each, a row summing to exactly 2**24 (exactly 8 bits a symbol).
_UNIFORM_BYTE = np.full((1, 256), TOTAL // 256, dtype=np.int64)


@dataclass
class BitsBackStats:
    """Costs of one or more bits-back samples, from the exact integer tables (float64 bits).

    ``posterior_bits`` are the bits got back (-log2 q(z|x) of the z drawn). ``initial_bits`` are
    the seed bits pushed because the stack was too short (0 almost always; see module doc).
    """

    likelihood_bits: float = 0.0
    prior_bits: float = 0.0
    posterior_bits: float = 0.0
    flag_bits: float = 0.0
    initial_bits: float = 0.0
    samples: int = 0
    injections: int = 0

    @property
    def elbo_bits(self) -> float:
        """One-sample estimate of the negative ELBO: -log p(x|z) - log p(z) + log q(z|x)."""
        return self.likelihood_bits + self.prior_bits - self.posterior_bits

    @property
    def net_bits(self) -> float:
        """What the samples add to the stack on average, initial bits excluded."""
        return self.elbo_bits + self.flag_bits

    def __add__(self, other: "BitsBackStats") -> "BitsBackStats":
        return BitsBackStats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


# -- groups ------------------------------------------------------------------------------------


def push_groups(coder: StackCoder, groups: Iterable[Group]) -> float:
    """Push groups given in decode order (so: reversed) and return their exact cost in bits
    (summed in decode order, like ``pop_groups``, so both give the same float)."""
    groups = list(groups)
    costs = [coder.push(symbols, freqs) for symbols, freqs in reversed(groups)]
    return float(sum(reversed(costs)))


def pop_groups(coder: StackCoder, decoder: GroupDecoder | np.ndarray) -> tuple[np.ndarray, float]:
    """Pop groups in decode order. ``decoder`` is either one table (n, K), and the value is the
    symbols popped with it, or a generator that yields each group's table, is sent its symbols
    and returns the value (if it returns None, the value is all symbols popped, concatenated).
    Returns (value, exact cost in bits)."""
    if isinstance(decoder, np.ndarray):
        symbols = coder.pop(decoder)
        return symbols, bits(symbols, decoder)
    total = 0.0
    popped: list[np.ndarray] = []
    try:
        freqs = next(decoder)
        while True:
            symbols = coder.pop(freqs)
            total += bits(symbols, freqs)
            popped.append(symbols)
            freqs = decoder.send(symbols)
    except StopIteration as stop:
        value = stop.value
    if value is None:
        value = np.concatenate(popped) if popped else np.zeros(0, dtype=np.int32)
    return value, total


# -- initial bits ------------------------------------------------------------------------------


def bits_needed(posterior: np.ndarray) -> int:
    """Bits the stack must hold before popping z with ``posterior``: an integer upper bound on
    the information content of z, sum over rows of bit_length(rowsum // rowmin), plus
    MARGIN_BITS. Integer arithmetic only (it decides how many seed bytes are coded)."""
    q = check(posterior)
    if q.shape[0] == 0 or q.shape[1] == 1:
        return 0
    ratio = q.sum(axis=1) // q.min(axis=1)  # in [1, 2**24]: exact in float64
    # frexp of an exactly representable positive integer gives its bit length, exactly
    return int(np.frexp(ratio.astype(np.float64))[1].astype(np.int64).sum()) + MARGIN_BITS


def seed_bytes(n: int) -> np.ndarray:
    """The first ``n`` bytes of the fixed seed (SHA-256 in counter mode), as int32 symbols."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(_SEED_DOMAIN + counter.to_bytes(8, "little")).digest()
        counter += 1
    return np.frombuffer(bytes(out[:n]), dtype=np.uint8).astype(np.int32)


def _seed_len(posterior: np.ndarray) -> int:
    return (bits_needed(posterior) + 7) // 8


# -- one sample --------------------------------------------------------------------------------


def bits_back_push(
    coder: StackCoder,
    posterior: np.ndarray,
    likelihood: Callable[[np.ndarray], Iterable[Group]],
    prior: np.ndarray | Callable[[np.ndarray], Iterable[Group]],
) -> tuple[np.ndarray, BitsBackStats]:
    """Encode one sample x by bits-back.

    ``posterior``: the table q(z|x) (n_z, K_z), one group. ``likelihood(z)``: x's groups
    ``[(symbols, freqs), ...]`` in decode order, given z. ``prior``: the table p(z) (n_z, K_z)
    (z is its one group), or ``prior(z)``: z's groups in decode order.
    Returns (z, stats): z int32 (n_z,) is the latent drawn from the stack.
    """
    q = check(posterior)
    stats = BitsBackStats(samples=1)
    injected = coder.num_valid_bits() < bits_needed(q)
    if injected:
        n = _seed_len(q)
        coder.push(seed_bytes(n), np.broadcast_to(_UNIFORM_BYTE, (n, 256)))
        stats.initial_bits = 8.0 * n
        stats.injections = 1
    z = coder.pop(q)
    stats.posterior_bits = bits(z, q)
    stats.likelihood_bits = push_groups(coder, likelihood(z))
    if isinstance(prior, np.ndarray):
        stats.prior_bits = coder.push(z, prior)
    else:
        stats.prior_bits = push_groups(coder, prior(z))
    stats.flag_bits = coder.push(np.array([int(injected)], dtype=np.int32), FLAG_TABLE)
    return z, stats


def bits_back_pop(
    coder: StackCoder,
    prior: np.ndarray | Callable[[], GroupDecoder],
    likelihood: Callable[[np.ndarray], GroupDecoder | np.ndarray],
    posterior: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, BitsBackStats]:
    """Decode the sample on top of the stack (the last one ``bits_back_push`` coded).

    ``prior``: the table p(z), or ``prior()``: a group decoder for z (see ``pop_groups``).
    ``likelihood(z)``: x's group decoder, or x's table if x is one group.
    ``posterior(x)``: the table q(z|x), recomputed from the decoded x; it must equal the
    encoder's table exactly (exact integer inference), else the stack below is not restored.
    Returns (z, x, stats) with the same stats the encoder got. FormatError if the seed under the
    sample (if any) is not the expected one.
    """
    stats = BitsBackStats(samples=1)
    flag = coder.pop(FLAG_TABLE)
    stats.flag_bits = bits(flag, FLAG_TABLE)
    z, stats.prior_bits = pop_groups(coder, prior if isinstance(prior, np.ndarray) else prior())
    z = np.asarray(z, dtype=np.int32).reshape(-1)
    x, stats.likelihood_bits = pop_groups(coder, likelihood(z))
    q = check(posterior(x))
    stats.posterior_bits = coder.push(z, q)
    if flag[0]:
        n = _seed_len(q)
        seed = coder.pop(np.broadcast_to(_UNIFORM_BYTE, (n, 256)))
        if not np.array_equal(seed, seed_bytes(n)):
            raise FormatError("damaged coded data: the initial bits of a bits-back level are not "
                              "the expected seed; the file is corrupt or truncated")
        stats.initial_bits = 8.0 * n
        stats.injections = 1
    return z, x, stats
