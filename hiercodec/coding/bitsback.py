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
decoder agree on any machine. Every group goes through the drivers of ``coding.groups``, the
ones every level codes with, so a sample is framed and checked like any group of a chunk (a
decoder's pop of a stream that has run out is a FormatError). In a chunk, the sentinel's bits
count as bits on the stack: ``MARGIN_BITS`` (more than the sentinel's 23) always stay under z.

Levels built from these (``hiercodec.families.latent``) share a chunk with the levels coded
under them, so that z is drawn from their bits and no seed is needed. This module imports no
torch and no family.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

import numpy as np

from hiercodec.coding.ans import StackCoder
from hiercodec.coding.groups import Group, GroupDecoder, pop_groups, push_in_order, table_decoder
from hiercodec.coding.tables import TOTAL, check
from hiercodec.errors import FormatError

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


def _seed_group(n: int) -> Group:
    return seed_bytes(n), np.broadcast_to(_UNIFORM_BYTE, (n, 256))


def _decoder(source: GroupDecoder | np.ndarray) -> GroupDecoder:
    """A table is the decoder of a schedule of one group."""
    return table_decoder(source) if isinstance(source, np.ndarray) else source


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
    needed = bits_needed(q)
    injected = coder.num_valid_bits() < needed
    if injected:
        n = _seed_len(q)
        push_in_order(coder, [_seed_group(n)])
        stats.initial_bits = 8.0 * n
        stats.injections = 1
    if needed:
        # the stack holds at least `needed` bits here, so the decoder's checks before each pop
        # (StackCoder.check_not_exhausted) hold too: MARGIN_BITS stay under z
        z, coded = pop_groups(coder, table_decoder(q), what="bits-back latent", measure=True)
        stats.posterior_bits = coded.bits
    else:  # z has one value (or none): nothing to draw
        z = np.zeros(q.shape[0], dtype=np.int32)
    stats.likelihood_bits = push_in_order(coder, likelihood(z)).bits
    prior_groups = [(z, prior)] if isinstance(prior, np.ndarray) else prior(z)
    stats.prior_bits = push_in_order(coder, prior_groups).bits
    stats.flag_bits = push_in_order(coder, [(np.array([int(injected)], dtype=np.int32), FLAG_TABLE)]).bits
    return z, stats


def bits_back_pop(
    coder: StackCoder,
    prior: np.ndarray | Callable[[], GroupDecoder],
    likelihood: Callable[[np.ndarray], GroupDecoder | np.ndarray],
    posterior: Callable[[np.ndarray], np.ndarray],
    what: str = "bits-back sample",
) -> tuple[np.ndarray, np.ndarray, BitsBackStats]:
    """Decode the sample on top of the stack (the last one ``bits_back_push`` coded).

    ``prior``: the table p(z), or ``prior()``: a group decoder for z (see ``groups.pop_groups``).
    ``likelihood(z)``: x's group decoder, or x's table if x is one group.
    ``posterior(x)``: the table q(z|x), recomputed from the decoded x; it must equal the
    encoder's table exactly (exact integer inference), else the stack below is not restored.
    Returns (z, x, stats) with the stats the encoder got (sums of the same bits, possibly added
    in another order). Every pop is checked as in any chunk (FormatError when the stream runs
    out); FormatError too if the seed under the sample (if any) is not the expected one.
    """
    stats = BitsBackStats(samples=1)
    flag, coded = pop_groups(coder, table_decoder(FLAG_TABLE), what=what, measure=True)
    stats.flag_bits = coded.bits
    z, coded = pop_groups(coder, _decoder(prior if isinstance(prior, np.ndarray) else prior()),
                          what=what, measure=True)
    stats.prior_bits = coded.bits
    z = np.asarray(z, dtype=np.int32).reshape(-1)
    x, coded = pop_groups(coder, _decoder(likelihood(z)), what=what, measure=True)
    stats.likelihood_bits = coded.bits
    q = check(posterior(x))
    stats.posterior_bits = push_in_order(coder, [(z, q)]).bits
    if flag[0]:
        n = _seed_len(q)
        seed, _ = pop_groups(coder, table_decoder(_seed_group(n)[1]), what=what)
        if not np.array_equal(seed, seed_bytes(n)):
            raise FormatError("damaged coded data: the initial bits of a bits-back level are not "
                              "the expected seed; the file is corrupt or truncated")
        stats.initial_bits = 8.0 * n
        stats.injections = 1
    return z, x, stats
