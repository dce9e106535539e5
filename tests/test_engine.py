"""The compiled engine (hiercodec.engine) against the torch reference (hiercodec.exact): two
independent implementations of the format must give the same integers, table for table, and the
same file bytes; a file written by either decodes with the other.

Per layer kind: the gated network's whole-tile pass and incremental steps (with and without
conditioning, 0 to 3 gated layers, 1 to 4 input planes), the mixture head (random and extreme
parameters), the softmax head. Then every family's tiny model through the codec, at 1 and 2
threads and several lockstep batch sizes, and every golden file.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hiercodec import engine
from hiercodec.codec import decode_image, encode_image
from hiercodec.engine.gated import CompiledPixelCNN
from hiercodec.engine.heads import CompiledCategorical, CompiledMixture
from hiercodec.exact.categorical import ExactCategorical
from hiercodec.exact.mixture import ExactMixture, build_luts
from hiercodec.exact.pixelcnn import ExactPixelCNN
from hiercodec.exact.quant import DTYPE
from hiercodec.export.hierarchy import export_hierarchy
from hiercodec.families import raster
from hiercodec.families.pixelcnn_config import PixelCNNConfig
from conftest import TINY_MODELS
from test_contract import image_of, loader_for
from test_exact import decoder_params, mixture_tables, random_mixture, sample_mixture
from test_golden import GOLDEN, make_golden

numba = pytest.importorskip("numba")


def reference_net(net) -> ExactPixelCNN:
    return getattr(net, "reference", net)


def random_network(seed: int, channels: int, layers: int, in_channels: int = 3, cond: int = 0) -> ExactPixelCNN:
    """An exact gated PixelCNN from a random float initialisation, quantized by the exporter
    (calibrated on random patches); `cond` > 0 adds conditioning layers on that many feature
    planes, with random integer weights of the exported kind."""
    torch.manual_seed(seed)
    config = PixelCNNConfig(channels=channels, layers=layers, head=2 * channels, mixtures=2, tile=8)
    rng = np.random.default_rng(seed)
    tensors, exported = export_hierarchy(config.build().state_dict(), config, rng.integers(0, 256, (6, 8, 8, 3), np.uint8))
    t = {k: torch.from_numpy(np.asarray(v)) for k, v in tensors.items()}
    if cond:
        for l in range(layers + 1):
            t[f"cond.{l}.w"] = torch.from_numpy(rng.integers(-511, 512, (4 * channels, cond)).astype(np.int16))
            t[f"cond.{l}.b"] = torch.from_numpy(rng.integers(-1 << 20, 1 << 20, 4 * channels))
            t[f"cond.{l}.shift"] = torch.from_numpy(rng.integers(6, 12, 4 * channels).astype(np.int32))
    if in_channels != 3:  # other input planes: the input layers' weights re-drawn at their shapes
        for name, (kh, kw) in (("v_in", (3, 7)), ("h_in", (1, 3))):
            t[f"{name}.w"] = torch.from_numpy(rng.integers(-511, 512, (2 * channels, in_channels * kh * kw)).astype(np.int16))
    return ExactPixelCNN(t, channels, layers, exported["exact"]["h_frac"], in_channels=in_channels, in_max=128)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**16), channels=st.sampled_from([4, 8, 16]), layers=st.integers(0, 3),
       in_channels=st.sampled_from([1, 3, 4]), cond=st.sampled_from([0, 5]), h=st.integers(1, 6), w=st.integers(1, 7),
       batch=st.integers(1, 3))
def test_network_equals_reference(seed, channels, layers, in_channels, cond, h, w, batch):
    """Whole tiles (the encoder) and incremental steps (the decoder): the reference's integers."""
    net = random_network(seed, channels, layers, in_channels, cond)
    compiled = CompiledPixelCNN(net)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.integers(-128, 129, (batch, in_channels, h, w)).astype(np.float64))
    f = torch.from_numpy(rng.integers(-2048, 2048, (batch, cond, h, w)).astype(np.int16)) if cond else None
    expected = net.forward(x, None if f is None else f.to(DTYPE))
    assert torch.equal(compiled.forward(x, f), expected)
    assert torch.equal(decoder_params(_Features(compiled, f), x), expected)


class _Features:
    """decoder_params' view of a network whose decoder takes conditioning features."""

    def __init__(self, net, features):
        self.net, self.features = net, features

    def decoder(self, batch, width):
        return self.net.decoder(batch, width, self.features)


def test_default_network_equals_reference(default_model):
    net = reference_net(default_model.family.net)
    x = torch.from_numpy(np.random.default_rng(3).integers(-128, 128, (2, 3, 9, 11)).astype(np.float64))
    compiled = CompiledPixelCNN(net)
    expected = net.forward(x)
    assert torch.equal(compiled.forward(x), expected)
    assert torch.equal(decoder_params(compiled, x), expected)


def test_inputs_beyond_their_bound_are_refused(tiny_model):
    compiled = CompiledPixelCNN(reference_net(tiny_model.family.net))
    with pytest.raises(ValueError, match="beyond their bound"):
        compiled.forward(torch.full((1, 3, 2, 2), 129.0, dtype=DTYPE))


def test_networks_the_engine_does_not_cover_run_on_the_reference(tiny_vqvae2):
    """Attention layers (the top priors of vqvae2 and ham) are not compiled yet: the reference runs."""
    top, _ = tiny_vqvae2.family.exact["top"]
    assert top.reference.attn and not CompiledPixelCNN.covers(top.reference) and top.compiled is None
    with pytest.raises(ValueError, match="does not cover"):
        CompiledPixelCNN(top.reference)


@pytest.mark.parametrize("k,extreme,positions", [(1, False, 300), (3, False, 300), (5, False, 300), (1, True, 300),
                                                 (3, True, 300), (5, True, 300), (5, False, 3000)])
def test_mixture_tables_equal_reference(k, extreme, positions):
    """On one thread, and (3000 positions, the encoder's blocks) on every thread."""
    rng = np.random.default_rng(k + 10 * extreme)
    luts = {name: torch.from_numpy(v) for name, v in build_luts().items()}
    reference = ExactMixture(k, luts)
    compiled = CompiledMixture(reference, luts)
    params, _, parts = random_mixture(rng, positions, k, extreme)
    symbols = torch.from_numpy(sample_mixture(rng, parts))
    if extreme:
        symbols[::3] = torch.from_numpy(rng.choice([0, 255], (len(symbols[::3]), 3)))
    p = torch.from_numpy(params).to(DTYPE)
    for a, b in zip(mixture_tables(compiled, p, symbols), mixture_tables(reference, p, symbols), strict=True):
        assert a.dtype == b.dtype == np.int64
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("k", [2, 16, 512])
def test_categorical_tables_equal_reference(k):
    rng = np.random.default_rng(k)
    exp = torch.from_numpy(build_luts()["exp"])
    reference = ExactCategorical(exp)
    logits = rng.integers(-2047, 2048, (200, k))
    logits[:50] = rng.choice([-2047, 2047], (50, k))  # extremes: many zero weights, ties
    p = torch.from_numpy(logits).to(DTYPE)
    compiled = CompiledCategorical(reference)
    np.testing.assert_array_equal(compiled.table(compiled.begin(p)), reference.table(reference.begin(p)))


# -- every family through the codec -------------------------------------------------------------


@pytest.fixture(params=sorted(TINY_MODELS))
def family_model(request):
    return request.param, request.getfixturevalue(TINY_MODELS[request.param])


@pytest.mark.parametrize("threads,max_tiles", [(1, 256), (2, 256), (2, 1), (1, 4)])
def test_files_identical_and_cross_decode(family_model, threads, max_tiles, monkeypatch):
    """The same bytes from the engine and the reference, whatever the thread count and lockstep
    batch size; each decodes the other's file."""
    family, model = family_model
    monkeypatch.setattr(raster, "MAX_TILES", max_tiles)
    image = image_of(11, 21, 30, 3)
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        with engine.using("torch"):
            reference, _ = encode_image(model, image)
        with engine.using("numba"):
            compiled, _ = encode_image(model, image)
            decoded, _ = decode_image(reference, loader=loader_for(model))
        if model.family.exact_encoder:
            assert compiled == reference, f"{family}: the engine's file differs from the reference's"
        np.testing.assert_array_equal(decoded, image)
        with engine.using("torch"):
            back, _ = decode_image(compiled, loader=loader_for(model))
        np.testing.assert_array_equal(back, image)
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_golden_files_decode_alike_on_both(path):
    """Every golden file (written by the reference) decodes on the engine to its PNG (test_golden)
    and on the reference to the same pixels."""
    data = path.read_bytes()
    with engine.using("numba"):
        a, _ = decode_image(data)
    with engine.using("torch"):
        b, _ = decode_image(data)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a if a.ndim == 3 else a[..., None], make_golden.read_png(path.with_suffix(".png")))


def test_engine_selection_and_status(monkeypatch):
    with engine.using("torch"):
        assert not engine.active() and "reference" in engine.status()
    with engine.using("numba"):
        assert engine.active() and "compiled" in engine.status()
    with pytest.raises(ValueError, match="engine must be one of"):
        with engine.using("fortran"):
            pass
    monkeypatch.setattr(engine, "_why_not", "numba could not be imported (ImportError: test); using the torch reference")
    with engine.using("numba"):
        assert not engine.active() and "could not be imported" in engine.status()


# -- threads in the CLI and the API -------------------------------------------------------------


def test_threads_option_changes_no_byte(tmp_path, tiny_model, monkeypatch):
    """compress / decompress / verify take --threads N; the file is the same for 1 and 2 threads,
    and the API's threads= gives it too. 0 threads is refused with a one-line error."""
    from click.testing import CliRunner

    from hiercodec import api
    from hiercodec.cli.main import cli
    from conftest import TINY_ID

    import hiercodec.codec

    monkeypatch.setattr(api, "_model", lambda name: tiny_model)
    encode, seen = hiercodec.codec.encode_image, []

    def counting(*args, **kwargs):  # the thread count the codec runs with
        seen.append(engine.thread_count())
        return encode(*args, **kwargs)

    monkeypatch.setattr(hiercodec.codec, "encode_image", counting)
    image = image_of(4, 19, 23, 3)
    png = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray(image).save(png)
    files = []
    try:
        for n in (1, 2):
            out = tmp_path / f"{n}.hc"
            result = CliRunner().invoke(cli, ["compress", "--threads", str(n), "-m", TINY_ID, str(png), str(out)])
            assert result.exit_code == 0, result.output
            files.append(out.read_bytes())
    finally:
        engine.set_threads(None)  # the CLI sets the process's count: put it back for the other tests
    assert seen == [1, 2]
    assert files[0] == files[1] == api.encode(image, TINY_ID, threads=2)
    with engine.threads(1):
        np.testing.assert_array_equal(decode_image(files[0], loader=loader_for(tiny_model))[0], image)
    small = tmp_path / "small.png"
    Image.fromarray(image[:9, :12]).save(small)  # verify loads from the zoo: the default model
    result = CliRunner().invoke(cli, ["verify", "-j", "2", str(small)])
    engine.set_threads(None)
    assert result.exit_code == 0 and "round trip" in result.output.lower(), result.output
    bad = CliRunner().invoke(cli, ["compress", "--threads", "0", str(png), str(tmp_path / "x.hc")])
    assert bad.exit_code == 2 and "--threads" in bad.output
    with pytest.raises(ValueError, match="at least 1"):
        api.encode(image, TINY_ID, threads=0)


def test_without_numba_the_reference_runs_with_a_warning(monkeypatch, tiny_model):
    """A machine where numba does not import decodes every file with the reference, after one
    clear warning."""
    import builtins

    real_import = builtins.__import__

    def no_numba(name, *args, **kwargs):
        if name == "numba" or name.startswith("numba."):
            raise ImportError("no numba here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(engine, "_why_not", None)
    monkeypatch.setattr(builtins, "__import__", no_numba)
    with engine.using("numba"), pytest.warns(RuntimeWarning, match="compiled engine is unavailable"):
        assert not engine.active()
    monkeypatch.setattr(builtins, "__import__", real_import)
    with engine.using("numba"):
        assert "could not be imported" in engine.status()
        image = image_of(2, 9, 10, 3)
        data, _ = encode_image(tiny_model, image)
        np.testing.assert_array_equal(decode_image(data, loader=loader_for(tiny_model))[0], image)


def test_latent_priors_take_the_whole_activation_range():
    """The hierarchical PixelVAE's latent priors read latents clamped to [ACT_MIN, ACT_MAX]:
    -2048 is a valid input (a photo's latents reach it), and the engine equals the reference there."""
    from hiercodec.zoo import load

    prior = load("pixelvae-photos").family.maps.prior1
    x = torch.full((1, prior.in_channels, 3, 4), -2048.0, dtype=DTYPE)
    x[0, :, 1] = 2047.0
    net = prior.reference
    f = None
    if net.cond:
        f = torch.from_numpy(np.random.default_rng(1).integers(-2048, 2048, (1, net.cond[0].weight.shape[1], 3, 4))
                             .astype(np.int16))
    compiled = CompiledPixelCNN(net)
    assert torch.equal(compiled.forward(x, f), net.forward(x, None if f is None else f.to(DTYPE)))


def test_restrict_equals_reference():
    """Consistency-constrained tables (grayscale, pyramid): the compiled restriction gives
    coding.tables.restrict's integers, empty and one-symbol intervals included."""
    from hiercodec.coding.tables import normalize, restrict as reference
    from hiercodec.engine.heads import restrict

    rng = np.random.default_rng(7)
    for k in (16, 256):
        table = normalize(rng.integers(0, 1 << 20, (400, k)))
        table[:40] = normalize(np.ones((40, k), np.int64))  # ties: the first largest takes the rest
        lo = rng.integers(0, k, 400)
        hi = np.where(rng.random(400) < 0.1, lo - 1, np.minimum(k - 1, lo + rng.integers(0, k, 400)))  # some empty
        hi[:20] = lo[:20]  # one symbol
        np.testing.assert_array_equal(restrict(table, lo, hi), reference(table, lo, hi))


@pytest.mark.parametrize("kernel,cin,clamp", [((1, 1), 12, True), ((3, 3), 5, False), ((2, 3), 8, True),
                                              ((3, 7), 3, True), ((2, 2), 4, False)])
def test_conv_equals_reference(kernel, cin, clamp):
    """QConv.conv (embeddings, conditioning stacks, VQ decoders): compiled = reference, per-channel
    clamps included; inputs beyond the layer's bound go to the reference."""
    from hiercodec.engine.conv import compiled
    from hiercodec.exact.layers import QConv

    rng = np.random.default_rng(cin)
    o, (kh, kw) = 7, kernel
    w = rng.integers(-511, 512, (o, cin * kh * kw))
    conv = QConv.from_ints(w, rng.integers(-1 << 16, 1 << 16, o), rng.integers(-2, 12, o), kernel,
                           lo=rng.integers(-2048, -100, o), hi=rng.integers(100, 2048, o))
    x = torch.from_numpy(rng.integers(-2048, 2049, (3, cin, 9, 11)).astype(np.float64))
    with engine.using("torch"):
        expected = conv.conv(x, clamp)
    got = compiled(conv, x, clamp)
    assert got is not None and torch.equal(got, expected)
    with engine.using("numba"):
        assert torch.equal(conv.conv(x, clamp), expected)
    assert compiled(conv, x * 2, clamp) is None  # |x| up to 4096: beyond the checked 2048


def test_kernels_are_cached_in_hiercodecs_cache_folder(tmp_path):
    """Compiled kernels go to $HIERCODEC_CACHE/numba, not beside the installed sources (files
    written there outlive `pip uninstall` and shadow a later installation)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"} | {"HIERCODEC_CACHE": str(tmp_path)}
    code = ("import numpy as np; from hiercodec.engine import head_kernels as K; o = np.empty((1, 3), np.int64); "
            "K.categorical_table(np.zeros((1, 3), np.int64), np.ones(4095, np.int64), o); print(o.sum())")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == str(1 << 24), done.stderr
    assert list((tmp_path / "numba").rglob("head_kernels.categorical_table*.nbi"))


def test_an_unknown_engine_name_warns_and_uses_the_engine():
    import os
    import subprocess
    import sys

    code = "import warnings; warnings.simplefilter('always'); from hiercodec import engine; print(engine._kind)"
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, HIERCODEC_ENGINE="gpu"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "numba", done.stderr
    assert "HIERCODEC_ENGINE='gpu' is not one of numba, torch" in done.stderr
