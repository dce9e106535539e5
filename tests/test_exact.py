"""The exactness contract (DESIGN.md) for the `pixelcnn` family's parts and its shipped default
model: probability tables are bit-identical between the encoder's whole-tile pass and the
decoder's incremental steps, across batch sizes, thread counts and tile positions; the integer
arithmetic under them is exact; the quantized mixture head is a valid coder table that
approximates the float head it was exported from.

The same properties of every family's tiny model, through the codec, are tests/test_contract.py's
(it uses this module's helpers: assert_encoder_matches_decoder, fixed_threads).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as load_numpy

from hiercodec.coding.ans import StackCoder
from hiercodec.coding.tables import TOTAL
from hiercodec.exact import mixture as xm
from hiercodec.exact.layers import QConv
from hiercodec.exact.quant import ACT_MAX, ACT_MIN, DTYPE, EXACT_LIMIT, WEIGHT_MAX, accumulator_bound
from hiercodec.families.base import ScheduledLevel
from hiercodec.geometry import Geometry
from hiercodec.nn import mixture as fm
from hiercodec.zoo import resolve

# -- helpers -----------------------------------------------------------------------------------


def natural(rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
    """A uint8 image (h, w, c) that looks a little like a photo: gradients, a blob, noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((h, w, c), np.uint8)
    cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, 8)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    for k in range(c):
        base = rng.uniform(50, 200) + rng.uniform(-6, 6) * yy + rng.uniform(-6, 6) * xx
        out[..., k] = np.clip(base + rng.uniform(-80, 80) * blob + rng.normal(0, 5, (h, w)), 0, 255)
    return out


def levels_of(model, image: np.ndarray):
    geometry = Geometry(*image.shape)
    return model.family.levels(geometry, model.family.layout(geometry))


def assert_encoder_matches_decoder(model, image: np.ndarray) -> int:
    """Every level of the image, each given the true values of the levels above. A ScheduledLevel:
    drive its decode_groups with the true symbols; each table it yields must equal the encoder's
    table of the same group, bit for bit, and it must return the level's values. A level that is
    not one schedule (bits-back, hiercodec.families.latent): coded alone on a fresh coder, it must
    pop back its values and leave exactly the sentinel. Returns the number of groups (levels for
    the latter) checked."""
    above: dict[str, np.ndarray] = {}
    checked = 0
    for level in levels_of(model, image):
        values = level.analyze(image, above)
        if isinstance(level, ScheduledLevel):
            checked += assert_schedule_tables_match(level, values, above, f"image {image.shape}")
        else:
            checked += assert_level_round_trip(level, values, above)
        above[level.name] = values
    return checked


def assert_schedule_tables_match(level: ScheduledLevel, values: np.ndarray, above: dict, what: str = "") -> int:
    """The decoder's tables of one ScheduledLevel, fed the true symbols, equal the encoder's."""
    groups = list(level.encode_groups(values, above))
    gen = level.decode_groups(above)
    table = next(gen)
    result = None
    for g, (symbols, expected) in enumerate(groups):
        assert table.dtype == np.int64 and expected.dtype == np.int64
        if not np.array_equal(table, expected):
            diff = np.argwhere(table != expected) if table.shape == expected.shape else None
            raise AssertionError(
                f"level {level.name}, {what}: group {g} of {len(groups)}: decoder table "
                f"{table.shape} differs from encoder table {expected.shape}"
                + (f" at {len(diff)} entries, first {diff[:3].tolist()}" if diff is not None else ""))
        try:
            table = gen.send(symbols)
        except StopIteration as stop:
            assert g == len(groups) - 1, f"decoder stopped after group {g} of {len(groups)}"
            result = stop.value
    assert result is not None, "decoder yielded more groups than the encoder"
    np.testing.assert_array_equal(result, values)
    assert result.dtype == values.dtype, (level.name, result.dtype, values.dtype)
    return len(groups)


def assert_level_round_trip(level, values: np.ndarray, above: dict) -> int:
    """A level coded alone on a fresh coder (over the sentinel, as a chunk) pops back its values
    and ends exactly at the sentinel."""
    coder = StackCoder()
    coder.push_sentinel()
    level.encode(values, dict(above), coder)
    decoder = StackCoder(coder.to_bytes())
    result = level.decode(dict(above), decoder)
    decoder.pop_sentinel(level.name)  # the sentinel, and then nothing: every bit accounted for
    np.testing.assert_array_equal(result, values, err_msg=f"level {level.name} alone")
    assert result.dtype == values.dtype and result.shape == values.shape, level.name
    return 1


def fixed_threads(monkeypatch) -> None:
    """Make the torch thread count the test sets the one every product runs on: the codec raises
    it for its large products (hiercodec.exact.quant.threads), so each module's `threads` is
    replaced by a no-op for the test."""
    from hiercodec.exact import quant

    for name, module in list(sys.modules.items()):
        if name.startswith("hiercodec") and getattr(module, "threads", None) is quant.threads:
            monkeypatch.setattr(module, "threads", lambda n: contextlib.nullcontext())


def decoder_params(net, x: torch.Tensor) -> torch.Tensor:
    """Parameters of every position from the incremental decoder, fed the true pixels.
    x: (B, 3, h, w) float64 pixel - 128 -> (B, 10K, h, w)."""
    b, _, h, w = x.shape
    dec = net.decoder(b, w)
    out = None
    for i in range(h):
        dec.row(i)
        for j in range(w):
            p = dec.step(j)
            if out is None:
                out = torch.empty(b, p.shape[1], h, w, dtype=p.dtype)
            out[:, :, i, j] = p
            dec.set_pixel(j, x[:, :, i, j])
    return out


def mixture_tables(mix, params: torch.Tensor, symbols: torch.Tensor, channels: int = 3) -> list[np.ndarray]:
    """Tables of channels 0..channels-1 of each row of params (P, 10K) given the true symbols (P, 3)."""
    state = mix.begin(params.to(DTYPE))
    out = []
    for c in range(channels):
        out.append(mix.table(state, c, symbols[:, :c].to(DTYPE)))
        if c + 1 < channels:
            mix.update(state, symbols[:, c])
    return out


def tile_batch(rng: np.random.Generator, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n natural-ish tiles: (uint8 as int64 (n, 3, s, s), network input float64 pixel - 128)."""
    tiles = np.stack([natural(rng, size, size, 3).transpose(2, 0, 1) for _ in range(n)])
    t = torch.from_numpy(tiles.astype(np.int64))
    return t, t.to(DTYPE) - 128


@pytest.fixture(params=["tiny", "default"])
def model(request):
    return request.getfixturevalue("tiny_model" if request.param == "tiny" else "default_model")


# -- encoder's whole-tile pass == decoder's incremental steps -----------------------------------

DEFAULT_SIZES = [(1, 1), (1, 9), (7, 1), (6, 5), (1, 70)]


@pytest.mark.parametrize("kind", ["noise", "extremes"])
@pytest.mark.parametrize("size", [(1, 13), (9, 10)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_encoder_decoder_tables_identical_hard_content_default(default_model, size, kind):
    """Content that drives activations to their clamps: uniform noise, only 0s and 255s (the tiny
    models of every family: tests/test_contract.py)."""
    rng = np.random.default_rng(size[1] + len(kind))
    if kind == "noise":
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    else:
        image = rng.choice(np.array([0, 255], np.uint8), (*size, 3))
    assert assert_encoder_matches_decoder(default_model, image[:4, :7]) > 0


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", DEFAULT_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_encoder_decoder_tables_identical_default(default_model, size, channels):
    rng = np.random.default_rng(size[0] * 1000 + size[1] + channels)
    image = natural(rng, *size, channels)
    assert assert_encoder_matches_decoder(default_model, image) > 0


def test_decoder_params_equal_whole_tile_pass(model):
    """The same property at the network level, before the mixture: every parameter."""
    _, x = tile_batch(np.random.default_rng(5), 3, 6)
    torch.testing.assert_close(decoder_params(model.family.net, x), model.family.net.forward(x), rtol=0, atol=0)


# -- batch sizes -------------------------------------------------------------------------------


def test_tables_identical_across_batch_sizes_default(default_model):
    """The shipped model's network and mixture head among 1 ... 4096 rows (the tiny models of every
    family, through the codec's batch sizes: tests/test_contract.py)."""
    net, mix = default_model.family.net, default_model.family.mixture
    sym, x = tile_batch(np.random.default_rng(7), 64, 8)
    # whole-tile pass: tile 0 alone, in 7, in 64; tile 5 in 7 and in 64 and alone
    full = net.forward(x)
    for b in (1, 7):
        torch.testing.assert_close(net.forward(x[:b]), full[:b], rtol=0, atol=0)
    torch.testing.assert_close(net.forward(x[5:6]), full[5:6], rtol=0, atol=0)
    # incremental decoder with 1, 7 and 64 tiles in lockstep
    dec64 = decoder_params(net, x)
    torch.testing.assert_close(dec64, full, rtol=0, atol=0)
    for b in (1, 7):
        torch.testing.assert_close(decoder_params(net, x[:b]), dec64[:b], rtol=0, atol=0)
    # mixture tables of the same rows computed among 1, 7, 64 and 4096 rows
    rows = full.permute(0, 2, 3, 1).reshape(-1, full.shape[1])
    rsym = sym.permute(0, 2, 3, 1).reshape(-1, 3)
    all_tables = mixture_tables(mix, rows, rsym)
    for n in (1, 7, 64):
        for c, t in enumerate(mixture_tables(mix, rows[:n], rsym[:n])):
            np.testing.assert_array_equal(t, all_tables[c][:n], err_msg=f"channel {c}, batch {n}")
    # rows taken from the middle of the batch, alone
    for c, t in enumerate(mixture_tables(mix, rows[1000:1007], rsym[1000:1007])):
        np.testing.assert_array_equal(t, all_tables[c][1000:1007])


# -- thread counts -----------------------------------------------------------------------------


def test_tables_identical_across_thread_counts_default(default_model, monkeypatch):
    """The shipped model on 1 and 2 threads (the tiny models of every family, through the codec:
    tests/test_contract.py)."""
    model = default_model
    net, mix = model.family.net, model.family.mixture
    # products large enough (1024 columns) to be split between the threads
    sym, x = tile_batch(np.random.default_rng(11), 16, 8)
    image = natural(np.random.default_rng(12), 6, 5, 3)
    fixed_threads(monkeypatch)  # the count set here is the one the codec's passes run on
    previous = torch.get_num_threads()
    results = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            assert torch.get_num_threads() == threads
            params = net.forward(x)
            rows = params.permute(0, 2, 3, 1).reshape(-1, params.shape[1])
            tables = mixture_tables(mix, rows, sym.permute(0, 2, 3, 1).reshape(-1, 3))
            steps = decoder_params(net, x[:, :, :3])  # 3 rows of 16 tiles
            groups = [t for _, t in levels_of(model, image)[0].encode_groups(image, {})]
            results[threads] = (params, tables, steps, groups)
    finally:
        torch.set_num_threads(previous)
    (p1, t1, s1, g1), (p2, t2, s2, g2) = results[1], results[2]
    torch.testing.assert_close(p1, p2, rtol=0, atol=0)
    torch.testing.assert_close(s1, s2, rtol=0, atol=0)
    for a, b in zip(t1, t2):
        np.testing.assert_array_equal(a, b)
    assert len(g1) == len(g2)
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)


# -- tile positions ----------------------------------------------------------------------------


def tables_by_tile(model, image: np.ndarray) -> list[np.ndarray]:
    """Encoder tables of the pixel level, grouped per tile: (groups, tiles, 256) (every position
    valid: the image is a whole number of tiles)."""
    groups = list(levels_of(model, image)[0].encode_groups(image, {}))
    return np.stack([t for _, t in groups])


def test_tables_identical_at_any_tile_position_default(default_model):
    """The shipped model's 64-pixel tiles (the first level of every family's tiny model, encoder
    and decoder: tests/test_contract.py)."""
    rng = np.random.default_rng(31)
    content = natural(rng, 2, 64, 3)
    alone = tables_by_tile(default_model, content)
    for c in range(3):
        big = natural(rng, 2, 192, 3)
        big[:, 64 * c : 64 * c + 64] = content
        tables = tables_by_tile(default_model, big)
        assert tables.shape[1] == 3
        np.testing.assert_array_equal(tables[:, c], alone[:, 0], err_msg=f"tile {c}")


# -- exact arithmetic --------------------------------------------------------------------------


def reference_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, shift: np.ndarray, lo, hi) -> np.ndarray:
    """Valid convolution with explicit int64 arithmetic: floor((sum w x + b) / 2^shift), clamped.
    x (B, Cin, H, W) int64, w (Cout, Cin, kh, kw) int64."""
    bsz, _, h, wd = x.shape
    cout, _, kh, kw = w.shape
    ho, wo = h - kh + 1, wd - kw + 1
    acc = np.zeros((bsz, cout, ho, wo), dtype=np.int64)
    for dy in range(kh):
        for dx in range(kw):
            patch = x[:, :, dy : dy + ho, dx : dx + wo]  # (B, Cin, ho, wo)
            acc += np.einsum("oc,bchw->bohw", w[:, :, dy, dx], patch)  # integer einsum: exact
    acc += b[None, :, None, None]
    s = shift[None, :, None, None]
    out = np.where(s >= 0, acc >> np.maximum(s, 0), acc << np.maximum(-s, 0))  # >> is floor on int64
    return np.clip(out, lo, hi)


@pytest.mark.parametrize("kernel,cin,bias_bits", [((1, 1), 128, 20), ((2, 3), 64, 40), ((3, 7), 3, 30),
                                                  ((1, 2), 128, 52), ((2, 3), 128, 52)])
def test_qconv_is_exact_integer_arithmetic(kernel, cin, bias_bits):
    rng = np.random.default_rng(sum(kernel) * cin + bias_bits)
    kh, kw = kernel
    cout = 24
    # weights and activations at their bounds (half of them at the extremes), biases up to the
    # accumulator limit: the sum of w x reaches its bound and adds to a bias near 2^52
    w = rng.integers(-WEIGHT_MAX, WEIGHT_MAX + 1, (cout, cin, kh, kw))
    w[: cout // 2] = rng.choice([-WEIGHT_MAX, WEIGHT_MAX], (cout // 2, cin, kh, kw))
    x = rng.integers(ACT_MIN, ACT_MAX + 1, (3, cin, kh + 4, kw + 5))
    x[0] = rng.choice([ACT_MIN, ACT_MAX], x[0].shape)
    x[1] = np.where(w[0, :, :1, :1] > 0, ACT_MIN, ACT_MAX)  # |sum| as large as it gets for channel 0
    sum_bound = int(np.abs(w).reshape(cout, -1).sum(axis=1).max()) * -ACT_MIN
    b_max = min((1 << bias_bits), EXACT_LIMIT - 1 - sum_bound)
    b = rng.integers(-b_max, b_max + 1, cout)
    b[:2] = [b_max, -b_max]
    shift = rng.integers(0, 20 + bias_bits // 2, cout)
    shift[:3] = [0, 1, 40]
    lo, hi = ACT_MIN, ACT_MAX
    conv = QConv.from_ints(w, b, shift, kernel)
    assert accumulator_bound(w, b) < EXACT_LIMIT
    expect = reference_conv(x, w, b, shift, lo, hi)
    got = conv.conv(torch.from_numpy(x).to(DTYPE))
    assert torch.equal(got, torch.from_numpy(expect).to(DTYPE))
    # unclamped sums too (used where two convolutions add before the clamp)
    expect_raw = reference_conv(x, w, b, shift, np.iinfo(np.int64).min, np.iinfo(np.int64).max)
    got_raw = conv.conv(torch.from_numpy(x).to(DTYPE), clamp=False)
    assert np.array_equal(got_raw.numpy().astype(np.int64), expect_raw)
    assert np.array_equal(got_raw.numpy(), expect_raw.astype(np.float64))  # every value representable
    # the decoder's one-position form: columns in unfold order (cin, dy, dx)
    cols = torch.from_numpy(x[:, :, :kh, :kw].reshape(3, -1)).to(DTYPE)
    assert torch.equal(conv.dense(cols), torch.from_numpy(expect[:, :, 0, 0]).to(DTYPE))
    # per-channel clamps
    lo_c, hi_c = rng.integers(-3000, 0, cout), rng.integers(0, 3000, cout)
    conv_c = QConv.from_ints(w, b, shift, kernel, lo_c, hi_c)
    expect_c = np.clip(expect_raw, lo_c[None, :, None, None], hi_c[None, :, None, None])
    assert np.array_equal(conv_c.conv(torch.from_numpy(x).to(DTYPE)).numpy(), expect_c.astype(np.float64))


def test_qconv_refuses_accumulators_that_reach_2_53():
    w = np.full((2, 4), WEIGHT_MAX, dtype=np.int64)
    b = np.array([0, EXACT_LIMIT - 4 * WEIGHT_MAX * -ACT_MIN], dtype=np.int64)
    with pytest.raises(ValueError, match="2\\^53"):
        QConv.from_ints(w, b, np.zeros(2, np.int64), (1, 1))


def test_shipped_model_accumulators_below_2_53():
    info = resolve("default")
    config = json.loads((info.path / "config.json").read_text())
    tensors = load_numpy(str(info.path / "weights.safetensors"))
    stated = config["exact"]["accumulator_log2_bound"]
    layers = sorted(k[:-2] for k in tensors if k.endswith(".w"))
    assert sorted(stated) == layers, "config must state the bound of every layer"
    for name in layers:
        assert stated[name] < 53, f"{name}: stated bound 2^{stated[name]}"
        w, b = tensors[f"{name}.w"].astype(np.int64), tensors[f"{name}.b"].astype(np.int64)
        assert np.abs(w).max() <= WEIGHT_MAX, name
        in_max = 128 if name in ("v_in", "h_in") else -ACT_MIN  # pixel - 128, or activations
        bound = accumulator_bound(w, b, in_max)
        assert bound < EXACT_LIMIT, f"{name}: bound {bound:.4g} >= 2^53"
        assert abs(math.log2(max(1.0, bound)) - stated[name]) <= 0.01, \
            f"{name}: recomputed 2^{math.log2(bound):.2f}, config says 2^{stated[name]}"


# -- mixture tables ----------------------------------------------------------------------------


def random_mixture(rng: np.random.Generator, p: int, k: int, extreme: bool = False):
    """Integer parameters (P, 10K) of the exact head and the float head's raw parameters (the
    same values, before hiercodec.nn.mixture's transforms)."""
    if extreme:
        pick = lambda lo, hi, shape: rng.choice([lo, hi], shape)  # noqa: E731
        pi = pick(xm.PI_MIN, xm.PI_MAX, (p, k))
        mu16 = pick(xm.MU_MIN, xm.MU_MAX, (p, 3, k))
        ls32 = pick(xm.LS_MIN, xm.LS_MAX, (p, 3, k))
        coeff = pick(xm.COEFF_MIN, xm.COEFF_MAX, (p, 3, k))
    else:
        pi = rng.integers(-48, 49, (p, k))  # logits within +-3 nats
        mu16 = rng.integers(-16 * 8, 16 * 263, (p, 3, k))
        ls32 = rng.integers(xm.LS_MIN, 32 * 5, (p, 3, k))  # s in [e^-2, e^5]
        coeff = rng.integers(-1024, 1025, (p, 3, k))
    params = np.concatenate([pi, mu16.reshape(p, -1), ls32.reshape(p, -1), coeff.reshape(p, -1)], axis=1)
    raw = np.concatenate([pi / 16.0, ((mu16 / 16.0 - fm.MU_OFFSET) / fm.MU_SCALE).reshape(p, -1),
                          (ls32 / 32.0 - fm.LOG_S_OFFSET).reshape(p, -1), (coeff / 1024.0).reshape(p, -1)], axis=1)
    return params, raw, (pi, mu16, ls32, coeff)


def sample_mixture(rng: np.random.Generator, parts) -> np.ndarray:
    """Symbols (P, 3) drawn from the float mixture (component, then channels with coupled means)."""
    pi, mu16, ls32, coeff = parts
    p, k = pi.shape
    w = np.exp(pi / 16.0 - (pi / 16.0).max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    comp = (rng.random((p, 1)) > np.cumsum(w, axis=1)).sum(axis=1).clip(0, k - 1)
    r = np.arange(p)
    x = np.zeros((p, 3))
    for c in range(3):
        m = mu16[r, c, comp] / 16.0
        if c == 1:
            m = m + coeff[r, 0, comp] / 1024.0 * (x[:, 0] - 128)
        if c == 2:
            m = m + coeff[r, 1, comp] / 1024.0 * (x[:, 0] - 128) + coeff[r, 2, comp] / 1024.0 * (x[:, 1] - 128)
        u = rng.uniform(1e-6, 1 - 1e-6, p)
        x[:, c] = np.clip(np.rint(m + np.exp(ls32[r, c, comp] / 32.0) * np.log(u / (1 - u))), 0, 255)
    return x.astype(np.int64)


def check_table(t: np.ndarray) -> None:
    assert t.dtype == np.int64 and t.shape[1] == 256
    assert t.min() >= 1, "every symbol must keep frequency >= 1"
    assert (t.sum(axis=1) == TOTAL).all(), "rows must sum to exactly 2**24"


@pytest.mark.parametrize("extreme", [False, True])
def test_mixture_tables_are_valid(tiny_model, extreme):
    mix = tiny_model.family.mixture
    rng = np.random.default_rng(51 + extreme)
    params, _, parts = random_mixture(rng, 2000, mix.k, extreme)
    symbols = rng.integers(0, 256, (2000, 3))
    symbols[:20] = rng.choice([0, 255], (20, 3))
    for t in mixture_tables(mix, torch.from_numpy(params), torch.from_numpy(symbols)):
        check_table(t)


@pytest.mark.parametrize("channels", [3, 1])
def test_mixture_tables_approximate_the_float_head(tiny_model, channels):
    """-log2 of the exact table at the true symbol vs the float mixture's NLL (hiercodec.nn.mixture)
    for the same parameters: the quantized head must approximate the float one."""
    mix = tiny_model.family.mixture
    rng = np.random.default_rng(61 + channels)
    p = 3000
    params, raw, parts = random_mixture(rng, p, mix.k)
    symbols = sample_mixture(rng, parts)
    if channels == 1:
        symbols[:, 1:] = symbols[:, :1]
    float_bits = fm.nll_bits(torch.from_numpy(raw)[:, :, None, None],
                             torch.from_numpy(symbols)[:, :, None, None], mix.k, channels=channels).numpy()
    exact_bits = np.zeros(p)
    for c, t in enumerate(mixture_tables(mix, torch.from_numpy(params), torch.from_numpy(symbols), channels)):
        check_table(t)
        exact_bits += math.log2(TOTAL) - np.log2(t[np.arange(p), symbols[:, c]])
    total_f, total_e = float_bits.sum(), exact_bits.sum()
    rel = total_e / total_f - 1
    diff = exact_bits - float_bits
    msg = (f"float {total_f:.1f} bits, exact {total_e:.1f} bits ({100 * rel:+.3f}%); per position "
           f"worst {diff.min():+.3f} / {diff.max():+.3f} bits")
    assert abs(rel) < 0.01, msg
    # per position: within 3% or 0.25 bits for 98% of positions, within 10% + 1 bit for all
    close = np.abs(diff) <= np.maximum(0.03 * float_bits, 0.25)
    assert close.mean() >= 0.98, msg + f"; {100 * close.mean():.1f}% within 3% or 0.25 bits"
    assert (np.abs(diff) <= 0.10 * float_bits + 1.0).all(), msg
