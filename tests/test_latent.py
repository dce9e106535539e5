"""Bits-back levels (hiercodec.families.latent) and shared streams, through the `bitsback-toy`
family: tests/test_bitsback.py's latent-variable model made a real family (hiercodec/families/
toy.py, shipped as bitsback-toy-1).

The measurement of the issue: a file costs its exact negative ELBO (computed from the same integer
tables, as tests/test_bitsback.py does) plus the initial bits it reports, within 1%.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import hiercodec
from hiercodec import container
from hiercodec.cli.main import cli
from hiercodec.codec import decode_image, encode_image, level_streams
from hiercodec.coding.ans import StackCoder
from hiercodec.coding.bitsback import bits_needed
from hiercodec.coding.tables import TOTAL, normalize
from hiercodec.errors import FormatError, HiercodecError
from hiercodec.families import build_family, family_names, registration
from hiercodec.families.latent import BitsBackLevel
from hiercodec.families.registry import trainable
from hiercodec.families.toy import ToyConfig, ToyFamily, toy_tensors
from hiercodec.zoo import CONFIG, WEIGHTS, Model, load, model_hash, resolve

TOY_ID = "bitsback-toy-1"


@pytest.fixture(scope="module")
def toy() -> Model:
    return load(TOY_ID)


def variant(**network) -> Model:
    """The shipped toy model with other network settings (another model: its own id and hash)."""
    info = resolve(TOY_ID)
    config = json.loads((info.path / CONFIG).read_text())
    config["network"] = dict(config["network"], **network)
    weights = (info.path / WEIGHTS).read_bytes()
    return Model("bitsback-toy-variant", model_hash(weights, config), config,
                 build_family(config, load_file(str(info.path / WEIGHTS))))


@pytest.fixture(scope="module")
def unshared() -> Model:
    """The latent level on a stream of its own: nothing under it to pop from."""
    return variant(shared=False)


def loader(model: Model):
    return lambda name: model


# -- the exact costs, from the integer tables ------------------------------------------------------


def neg_elbo_bits(f: ToyFamily, hi: np.ndarray) -> float:
    """Exact negative ELBO of the high nibbles, in bits: sum over samples x of
    E_{z ~ q(z|x)} [-log2 p(x|z) - log2 p(z) + log2 q(z|x)], every probability an exact table of
    the model (tests/test_bitsback.py's Model.exact_costs, for samples of any length)."""
    flat = hi.reshape(-1).astype(np.int64)
    d, log_lik, log_pz = f.net.dims, np.log2(f.lik / TOTAL), np.log2(f.prior[0] / TOTAL)
    total = 0.0
    for a in range(0, len(flat), d):
        x = flat[a:a + d]
        q = f.posterior(x)[0] / TOTAL
        ll = log_lik[:, np.arange(len(x)), x].sum(axis=1)
        total += float(np.sum(q * (-ll - log_pz + np.log2(q))))
    return total


def low_bits(f: ToyFamily, lo: np.ndarray) -> float:
    """The low nibbles' exact cost under the fixed table."""
    return float(np.sum(np.log2(TOTAL / f.low[0][lo.reshape(-1)])))


def model_image(f: ToyFamily, rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
    """An image drawn from the model: per sample z ~ p(z), high nibbles ~ p(x|z); low nibbles
    from their table."""
    def draw(table, n):
        return np.searchsorted(np.cumsum(table), rng.integers(0, TOTAL, n), side="right")

    n, d = h * w * c, f.net.dims
    hi = np.concatenate([[draw(f.lik[z, k], 1)[0] for k in range(d)]
                         for z in draw(f.prior[0], -(-n // d))])[:n]
    lo = draw(f.low[0], n)
    return ((hi << 4) | lo).reshape(h, w, c).astype(np.uint8)


def smooth_image(h: int, w: int, c: int, seed: int) -> np.ndarray:
    """A natural-looking image: gradients, a blob and a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = [rng.uniform(60, 190) + rng.uniform(-2, 2) * yy + rng.uniform(-2, 2) * xx
              + 50 * np.exp(-((yy - h / 2) ** 2 + (xx - w / 3) ** 2) / (2 * (h / 4) ** 2))
              + rng.normal(0, 3, (h, w)) for _ in range(c)]
    return np.clip(np.rint(np.stack(planes, -1)), 0, 255).astype(np.uint8)


# -- the measurement ------------------------------------------------------------------------


def test_file_costs_its_exact_negative_elbo_plus_initial_bits(toy):
    f = toy.family
    rng = np.random.default_rng(2024)
    batch = {"model 96x96 RGB": model_image(f, rng, 96, 96, 3),
             "model 48x40 gray": model_image(f, rng, 40, 48, 1),
             "model 33x17 RGB": model_image(f, rng, 17, 33, 3),
             "natural 64x48 RGB": smooth_image(48, 64, 3, 5)}
    totals, latent = np.zeros(3), np.zeros(2)
    for name, image in batch.items():
        data, report = encode_image(toy, image)
        decoded, _ = decode_image(data, loader(toy))
        np.testing.assert_array_equal(decoded, image)
        elbo = neg_elbo_bits(f, image >> 4)
        exact = elbo + low_bits(f, image & 15) + report.initial_bits
        chunks, file_bits = report.written_bits, 8 * len(data)
        print(f"\n{name}: chunks {chunks} bits, file {file_bits} bits; exact -ELBO {elbo:.1f} + low nibbles "
              f"{exact - elbo - report.initial_bits:.0f} + initial bits {report.initial_bits:.0f} = {exact:.1f} "
              f"(chunks {chunks / exact - 1:+.3%}, file {file_bits / exact - 1:+.3%}); the level's "
              f"one-sample estimate {report.levels[0].bound_bits:.1f}")
        assert report.levels[0].initial_bits == report.initial_bits == 0  # the low nibbles paid for the latents
        assert abs(chunks - exact) <= 0.01 * exact, name
        totals += (chunks, file_bits, exact)
        latent += (report.levels[0].bound_bits, elbo)
    # the whole file, header included, once the image is large enough for the header to matter little
    data, report = encode_image(toy, batch["model 96x96 RGB"])
    exact = neg_elbo_bits(f, batch["model 96x96 RGB"] >> 4) + low_bits(f, batch["model 96x96 RGB"] & 15)
    assert abs(8 * len(data) - exact) <= 0.01 * exact
    # and the batch: all the chunks against all the exact costs, and the bits-back levels alone
    assert abs(totals[0] - totals[2]) <= 0.01 * totals[2]
    assert abs(latent[0] - latent[1]) <= 0.01 * latent[1]
    print(f"batch: chunks {totals[0]:.0f} bits, files {totals[1]:.0f}, exact -ELBO + low + initial {totals[2]:.1f} "
          f"({totals[0] / totals[2] - 1:+.3%}); latent levels' one-sample estimates {latent[0]:.1f} vs exact "
          f"-ELBO {latent[1]:.1f} ({latent[0] / latent[1] - 1:+.3%})")


def test_bits_back_gets_bits_back(toy):
    """The latent level's bound is the negative ELBO (estimated with the z drawn), well below
    -log p(x, z) of coding z explicitly: the bits z was drawn from are got back."""
    f = toy.family
    image = model_image(f, np.random.default_rng(3), 32, 32, 3)
    _, report = encode_image(toy, image)
    stats = _latent_stats(toy, image)
    explicit = stats["likelihood_bits"] + stats["prior_bits"]
    latent = report.levels[0]
    assert latent.bound_bits == pytest.approx(explicit - stats["posterior_bits"] + stats["flag_bits"])
    assert stats["posterior_bits"] > 0.1 * stats["prior_bits"] and stats["injections"] == 0
    assert latent.bound_bits == pytest.approx(neg_elbo_bits(f, image >> 4), rel=0.03)


def _latent_stats(model: Model, image: np.ndarray) -> dict:
    from hiercodec.geometry import Geometry

    geometry = Geometry(*image.shape)
    levels = model.family.levels(geometry)
    coder = StackCoder()
    coder.push_sentinel()
    low = levels[1].analyze(image, {})
    levels[1].encode(low, {"latent": image >> 4}, coder)
    return levels[0].encode(levels[0].analyze(image, {}), {}, coder).extra


# -- initial bits -------------------------------------------------------------------------------


def test_initial_bits_when_the_stream_starts_empty(toy, unshared):
    """A latent level sharing nothing pops its first latent from a stream holding only the
    sentinel: it pushes a seed first and reports it; sharing the low nibbles' stream, it does not."""
    image = model_image(toy.family, np.random.default_rng(4), 16, 16, 3)
    alone, alone_report = encode_image(unshared, image)
    shared, shared_report = encode_image(toy, image)
    first = (image >> 4).reshape(-1)[:toy.family.net.dims]
    seed_bits = 8 * ((bits_needed(toy.family.posterior(first)) + 7) // 8)
    assert alone_report.levels[0].initial_bits == alone_report.initial_bits == seed_bits > 0
    exact = neg_elbo_bits(toy.family, image >> 4) + low_bits(toy.family, image & 15)
    assert abs(alone_report.written_bits - (exact + seed_bits)) <= 0.01 * (exact + seed_bits)
    assert shared_report.initial_bits == 0
    box = container.read(alone)
    assert [c.initial_bits for c in box.chunks] == [seed_bits, 0]
    assert [c.continues for c in box.chunks] == [False, False] and box.streams() == [range(0, 1), range(1, 2)]
    # the chunks hold the bound plus the initial bits, to the coder's start-up and flush (each
    # chunk: its sentinel and under 64 bits; the bits-back bound is what the stack holds)
    for report in (alone_report, shared_report):
        paid = report.bound_bits + report.initial_bits
        assert 0 <= report.written_bits - paid <= 96 * len(report.streams())
    for data, model in ((alone, unshared), (shared, toy)):
        np.testing.assert_array_equal(decode_image(data, loader(model))[0], image)


def test_initial_bits_of_a_tiny_image_are_reported(toy):
    """A 1x1 image: the low nibble is 4 bits, too few to pop a latent from; the seed is pushed,
    reported in the report and the file, and checked by the decoder."""
    image = np.array([[[0xA7]]], np.uint8)
    data, report = encode_image(toy, image)
    assert report.initial_bits == report.levels[0].initial_bits > 0
    assert container.read(data).chunks[0].initial_bits == report.initial_bits
    assert hiercodec.info(data)["initial_bits"] == report.initial_bits
    decoded, back = decode_image(data, loader(toy))
    np.testing.assert_array_equal(decoded, image)
    assert back.initial_bits == report.initial_bits
    # honest accounting: the chunk pays the bound and the initial bits, to the coder's flush
    assert report.bound_bits + report.initial_bits <= report.written_bits + 2


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 9, 1), (7, 6, 2), (9, 8, 3), (5, 7, 4), (1, 1, 1), (1, 13, 3), (11, 1, 2),
                                   (3, 5, 3), (23, 17, 4)],
                         ids=lambda s: "x".join(map(str, s)))
def test_round_trip(toy, shape):
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    data, report = encode_image(toy, image)
    again, _ = encode_image(toy, image)
    assert again == data  # the encoder is exact: the same bytes every time
    decoded, back = decode_image(data, loader(toy))
    np.testing.assert_array_equal(decoded, image)
    names = ["latent", "low"] + (["alpha"] if shape[2] in (2, 4) else [])
    assert [lv.name for lv in report.levels] == [lv.name for lv in back.levels] == names
    assert [lv.continues for lv in report.levels] == [False, True] + [False] * (len(names) - 2)
    assert report.levels[1].written_bytes == 0 and report.written_bits == 8 * sum(
        len(c.data) for c in container.read(data).chunks)
    box = container.read(data)
    assert box.version == 2 and box.chunks[1].data == b"" and box.chunks[1].continues


def test_model_images_round_trip_in_every_colour_kind(toy):
    rng = np.random.default_rng(6)
    for c in (1, 2, 3, 4):
        image = model_image(toy.family, rng, 10, 12, c)
        if c in (2, 4):
            image[..., -1] = rng.integers(0, 256, (10, 12))
        data, _ = encode_image(toy, image)
        np.testing.assert_array_equal(decode_image(data, loader(toy))[0], image)


def test_level_streams():
    class L:
        def __init__(self, joins):
            self.joins_next, self.name = joins, "x"

    assert level_streams([L(True), L(False), L(False)]) == [range(0, 2), range(2, 3)]
    assert level_streams([L(True), L(True), L(False)]) == [range(0, 3)]
    assert level_streams([]) == []
    with pytest.raises(ValueError, match="last"):
        level_streams([L(False), L(True)])


# -- progressive decoding and cuts -----------------------------------------------------------------


def test_a_cut_inside_a_shared_stream_is_refused(toy):
    image = np.random.default_rng(7).integers(0, 256, (6, 5, 4), dtype=np.uint8)
    data, _ = encode_image(toy, image)
    with pytest.raises(HiercodecError, match=r"levels 0 and 1 share one coded stream \(keep 2, 3\)"):
        container.cut(data, 1)
    with pytest.raises(HiercodecError, match=r"levels 0 \(latent\) and 1 \(low\) share one coded stream \(choose 2, 3\)"):
        encode_image(toy, image, levels=1)
    with pytest.raises(HiercodecError, match="share one coded stream"):
        hiercodec.cut(data, 1)
    # at the stream boundary: the colour image without alpha, written or cut alike
    kept, _ = encode_image(toy, image, levels=2)
    assert kept == container.cut(data, 2)
    np.testing.assert_array_equal(decode_image(kept, loader(toy))[0], image[..., :3])


def test_decoding_the_first_level_decodes_its_whole_stream(toy):
    image = np.random.default_rng(8).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    data, _ = encode_image(toy, image)
    decoded, report = decode_image(data, loader(toy), levels=1)
    np.testing.assert_array_equal(decoded, (image >> 4 << 4) | 8)
    assert [lv.name for lv in report.levels] == ["latent"]


# -- damage --------------------------------------------------------------------------------------


def _attempt(data: bytes, model: Model):
    try:
        return "image", decode_image(data, loader(model))[0]
    except HiercodecError as err:
        assert "\n" not in str(err)
        return "error", err


def _rewrite(file: bytes, index: int, **changes) -> bytes:
    box = container.read(file)
    chunks = list(box.chunks)
    chunks[index] = replace(chunks[index], **changes)
    return container.write(replace(box, chunks=tuple(chunks)))


@pytest.mark.parametrize("shape", [(6, 7, 3), (1, 1, 1)], ids=["shared-bits", "seeded"])
def test_a_damaged_shared_chunk_never_decodes_to_a_wrong_image(toy, shape):
    image = np.random.default_rng(9).integers(0, 256, shape, dtype=np.uint8)
    data, _ = encode_image(toy, image)
    # as stored: every bit flip is caught by the container (CRC32s, ranges)
    for bit in range(8 * len(data)):
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        kind, result = _attempt(bytes(damaged), toy)
        assert kind == "error" and isinstance(result, FormatError), bit
    # behind valid CRC32s: the decoder itself (sentinel, exhausted stream, seed, values CRC32)
    payload = container.read(data).chunks[0].data
    outcomes = {"error": 0, "image": 0}
    candidates = [bytes(b ^ (1 << k) if i == j else b for i, b in enumerate(payload))
                  for j in range(len(payload)) for k in (0, 3, 7)]
    candidates += [payload[:-4], payload[4:], payload + b"\x01\0\0\0", b"", b"\xff" * len(payload)]
    for new in candidates:
        kind, result = _attempt(_rewrite(data, 0, data=new), toy)
        outcomes[kind] += 1
        if kind == "image":
            np.testing.assert_array_equal(result, image)
        else:
            assert isinstance(result, FormatError)
    assert outcomes["error"] > outcomes["image"], outcomes


def test_stream_layout_must_match_the_model(toy):
    image = np.random.default_rng(10).integers(0, 256, (5, 5, 4), dtype=np.uint8)
    data, _ = encode_image(toy, image)
    with pytest.raises(FormatError, match="level 1 .low. is not coded on the previous level's stream in the file"):
        decode_image(_rewrite(data, 1, continues=False), loader(toy))
    alpha = container.read(data).chunks[2]
    moved = _rewrite(_rewrite(data, 2, data=b"", continues=True), 0,
                     data=container.read(data).chunks[0].data + alpha.data)
    with pytest.raises(FormatError, match="level 2 .alpha. is coded on the previous level's stream"):
        decode_image(moved, loader(toy))
    box = container.read(data)
    forged = container.write(replace(box, header=replace(box.header, lossy=True), chunks=box.chunks[:1]))
    with pytest.raises(FormatError, match="ends inside the coded stream of levels 0 and 1"):
        decode_image(forged, loader(toy))


# -- the combinator with schedules -------------------------------------------------------------------


def test_bits_back_level_with_autoregressive_prior_and_likelihood():
    """Parts given as schedules (several groups, tables depending on earlier groups), as a PixelCNN
    prior or likelihood would be; the level pops from a plain level pushed under it."""
    K, ZK = 12, 5

    def lik_row(z, i, prev):
        return normalize(((np.arange(K) + 3 * prev + 5 * int(z.sum()) + i) % K + 1)[None, :] ** 3)

    def likelihood(i, z, above, x=None):
        a = yield (None if x is None else x[:1]), lik_row(z, i, 0)
        b = yield (None if x is None else x[1:]), lik_row(z, i, int(a[0]) if x is None else int(x[0]))
        return np.concatenate([a, b]) if x is None else x

    def prior(i, above, z=None):
        a = yield (None if z is None else z[:1]), normalize(((np.arange(ZK) + i) % ZK + 1)[None, :])
        first = int(a[0]) if z is None else int(z[0])
        b = yield (None if z is None else z[1:]), normalize(((np.arange(ZK) * (first + 1)) % ZK + 1)[None, :])
        return np.concatenate([a, b]) if z is None else z

    def posterior(i, x, above):
        return normalize(np.stack([(np.arange(ZK) * (int(x[0]) + 1)) % ZK + 1, (np.arange(ZK) + int(x[1])) % ZK + 1]))

    level = BitsBackLevel("latent", (5, 6), 2, posterior, likelihood, prior,
                          observe=lambda image, above: image, joins_next=True)
    rng = np.random.default_rng(11)
    values = level.analyze(rng.integers(0, K, (5, 6)), {})
    plain = rng.integers(0, 256, 64).astype(np.int32)
    table = normalize(np.ones((64, 256), np.int64))
    coder = StackCoder()
    coder.push_sentinel()
    coder.push(plain, table)  # the level under it: 512 bits to draw latents from
    counted = []
    stats = level.encode(values, {}, coder, counted.append)
    assert stats.initial_bits == 0 and stats.symbols == 30 and sum(counted) == 30
    assert stats.extra["samples"] == 15 and stats.extra["posterior_bits"] > 0
    dec = StackCoder(coder.to_bytes())
    out = level.decode({}, dec)
    np.testing.assert_array_equal(out, values)
    np.testing.assert_array_equal(dec.pop(table), plain)
    dec.pop_sentinel()


def test_format_md_names_the_seed():
    """FORMAT.md gives the first bytes of the seed, so that another decoder can check its own."""
    from pathlib import Path

    from hiercodec.coding.bitsback import seed_bytes

    text = " ".join((Path(__file__).resolve().parent.parent / "bitstreams" / "FORMAT.md").read_text().split())
    prefix = " ".join(f"{b:02x}" for b in seed_bytes(8))
    assert f"S starts `{prefix}`" in text


def test_bits_back_level_layout():
    with pytest.raises(ValueError, match="sample size"):
        BitsBackLevel("x", (2, 3), 0, None, None, None, None)
    level = BitsBackLevel("x", (5, 3), 4, None, None, None, None)
    assert level.samples == 4 and [level.bounds(i) for i in range(4)] == [(0, 4), (4, 8), (8, 12), (12, 15)]


def test_a_forged_large_geometry_fails_at_once(toy):
    """Levels of a huge image cost nothing to build, and its decoding stops at the first pop the
    (small) stream cannot pay for."""
    import time

    image = np.random.default_rng(13).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    data, _ = encode_image(toy, image)
    box = container.read(data)
    forged = container.write(replace(box, header=replace(box.header, height=6000, width=6000, tile_height=6000,
                                                          tile_width=6000)))
    start = time.perf_counter()
    with pytest.raises(FormatError):
        decode_image(forged, loader(toy), max_pixels=None)
    assert time.perf_counter() - start < 5


# -- the family and its model -----------------------------------------------------------------------


def test_the_family_is_registered_and_not_trainable():
    assert "bitsback-toy" in family_names() and "bitsback-toy" not in trainable()
    entry = registration("bitsback-toy")
    assert entry.family is ToyFamily and entry.network is ToyConfig and entry.task is None
    assert ToyConfig.from_dict(ToyConfig().to_dict()) == ToyConfig()
    for bad in ({"latents": 1}, {"dims": "6"}, {"shared": 1}, {"posterior_dims": 7}, {"depth": 2}, {"latents": True}):
        with pytest.raises(HiercodecError):
            ToyConfig.from_dict(bad)


def test_the_shipped_model_is_the_model_of_test_bitsback(tmp_path):
    """bitsback-toy-1 holds tests/test_bitsback.py's tables (seed 0), and its script remakes it."""
    import importlib.util
    from pathlib import Path

    from test_bitsback import Model as BitsBackModel

    stored = load_file(str(resolve(TOY_ID).path / WEIGHTS))
    made = toy_tensors(ToyConfig(), 0)
    assert stored.keys() == made.keys()
    for name, value in made.items():
        assert stored[name].dtype == torch.int64
        np.testing.assert_array_equal(stored[name].numpy(), value)
    reference = BitsBackModel(0)
    f = load(TOY_ID).family
    np.testing.assert_array_equal(f.prior_raw, reference.prior_raw)
    np.testing.assert_array_equal(f.lik_raw, reference.lik_raw)
    np.testing.assert_array_equal(f.lik, reference.lik)
    x = np.array([3, 9, 14, 0, 2, 7])
    np.testing.assert_array_equal(f.posterior(x), reference.posterior(x))
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "make_bitsback_toy.py"
    spec = importlib.util.spec_from_file_location("make_bitsback_toy", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path)]) == 0
    for name in (WEIGHTS, CONFIG):
        assert (tmp_path / TOY_ID / name).read_bytes() == (resolve(TOY_ID).path / name).read_bytes()


@pytest.mark.parametrize("change,match", [
    (lambda t: t.pop("low"), "no tensor 'low'"),
    (lambda t: t.update(prior=t["prior"].float()), "non-negative integers"),
    (lambda t: t.update(likelihood=t["likelihood"][:, :5]), "shape"),
    (lambda t: t.update(prior=-t["prior"]), "non-negative"),
    (lambda t: t.update(likelihood=t["likelihood"] * 1024), "too large"),
])
def test_bad_model_tensors_are_refused(change, match):
    tensors = {k: torch.from_numpy(v) for k, v in toy_tensors().items()}
    change(tensors)
    with pytest.raises(HiercodecError, match=match):
        ToyFamily({"family": "bitsback-toy", "network": ToyConfig().to_dict()}, tensors)


# -- info and verify show initial bits ---------------------------------------------------------------


def test_info_and_verify_show_initial_bits(tmp_path, toy):
    from PIL import Image

    runner = CliRunner()
    tiny, larger = tmp_path / "tiny.png", tmp_path / "larger.png"
    Image.fromarray(np.array([[0xA7]], np.uint8)).save(tiny)
    Image.fromarray(np.random.default_rng(12).integers(0, 256, (6, 5, 4), dtype=np.uint8)).save(larger)
    hc = tmp_path / "tiny.hc"
    r = runner.invoke(cli, ["compress", "-m", TOY_ID, str(tiny), str(hc)])
    assert r.exit_code == 0, r.output
    assert "initial bits/dim" in r.stdout
    data = hc.read_bytes()
    seed = container.read(data).chunks[0].initial_bits
    r = runner.invoke(cli, ["info", str(hc)])
    assert r.exit_code == 0, r.output
    header = next(line for line in r.stdout.splitlines() if line.split()[:1] == ["level"])
    assert header.split()[-2:] == ["initial", "bits"]
    row = next(line.split() for line in r.stdout.splitlines() if line.split()[:2] == ["0", "latent"])
    assert row[-1] == f"{seed:,}"
    low = next(line.split() for line in r.stdout.splitlines() if line.split()[:2] == ["1", "low"])
    assert low[2] == "(in" and low[-1] == "0"
    assert "levels 0-1 share one coded stream" in r.stdout and f"+ {seed:,} initial bits" in r.stdout
    d = hiercodec.info(data)
    assert d["format_version"] == 2 and d["initial_bits"] == seed and d["streams"] == [[0, 1]]
    assert [lv["continues"] for lv in d["levels"]] == [False, True]
    r = runner.invoke(cli, ["verify", "-m", TOY_ID, str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert r.stdout.count("initial bits") >= 4 and "2 of 2 images ok" in r.stdout
    rows = [line.split() for line in r.stdout.splitlines() if line.split()[:1] == ["latent"] and " + " not in line]
    assert sorted(row[2] for row in rows) == sorted(["0", f"{seed:,}"])  # larger: 0, shown all the same
    assert "latent + low: one coded stream" in r.stdout
    assert r.stdout.count("latent: negative ELBO") == 2 and "= reconstruction" in r.stdout and "+ KL" in r.stdout
    result = hiercodec.verify(tiny, TOY_ID)
    (lv, _) = result.levels
    # the bound also holds each sample's flag: ~1e-7 bits, 24 when a seed lies under the sample
    assert 0 <= lv.bound_bits - (lv.reconstruction_bits + lv.kl_bits) < 24 + 1e-3
    assert result.roundtrip_ok and result.initial_bits == seed
    assert result.overhead_percent == pytest.approx(100 * (result.written_bits / (result.bound_bits + seed) - 1))


def test_help_says_initial_bits_are_shown():
    for cmd in ("info", "verify"):
        r = CliRunner().invoke(cli, [cmd, "--help"])
        assert r.exit_code == 0 and "initial bits" in " ".join(r.stdout.split())
