"""Causal multi-head self-attention in the gated PixelCNN (Razavi et al. 2019 sec. 3.2), float and
exact: the float network stays causal; the exact network's whole-tile pass and its incremental
decoder agree bit for bit across batch sizes, thread counts and tile shapes; the exact network
approximates the float one; the exact division under its softmax is exact; networks without
attention are unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hiercodec.exact import attention as xa
from hiercodec.exact.attention import floor_div, round_div
from hiercodec.export.quantize import Exporter, export_gated
from hiercodec.families.inputs import PIXELS

INPUT_FRAC = PIXELS.frac
from hiercodec.exact.pixelcnn import ExactPixelCNN
from hiercodec.exact.quant import DTYPE
from hiercodec.nn.gated import GatedPixelCNN
from test_exact import decoder_params

CHANNELS, LAYERS, HEADS, KEY_CHANNELS = 16, 3, 2, 8
HEADS_OF = {"categorical": (1, 512), "mixture": (3, 40)}  # head -> (in_channels, out_channels)


def float_net(in_channels: int, out_channels: int, attention_every: int, dropout: float = 0.0,
              seed: int = 0) -> GatedPixelCNN:
    """A small random float network whose attention is far from uniform: q and k weights x4 give
    logits of about +-1 nat (the default initialisation gives nearly uniform weights)."""
    torch.manual_seed(seed)
    net = GatedPixelCNN(in_channels, out_channels, CHANNELS, LAYERS, 32, dropout, attention_every=attention_every,
                        heads=HEADS, key_channels=KEY_CHANNELS)
    with torch.no_grad():
        for att in net.attn.values():
            att.q.weight.mul_(4)
            att.k.weight.mul_(4)
    return net


def integer_inputs(rng: np.random.Generator, n: int, c: int, h: int, w: int) -> torch.Tensor:
    """Network inputs as the codec gives them: integers in [-128, 127], float64."""
    return torch.from_numpy(rng.integers(-128, 128, (n, c, h, w)).astype(np.float64))


# -- float causality --------------------------------------------------------------------------


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("every", [1, 2])
def test_float_attention_is_causal(every, train):
    """Perturbing the inputs at raster positions >= p (all channels) never changes the outputs at
    positions <= p, and does change later ones. In training mode too (dropout on the logits and
    in the residual branches, the same draws for both passes)."""
    net = float_net(3, 8, every, dropout=0.3 if train else 0.0).double().train(train)
    rng = np.random.default_rng(every)
    x = integer_inputs(rng, 2, 3, 5, 6) / 128
    positions = x.shape[2] * x.shape[3]

    def run(inp: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(99)
        with torch.no_grad():
            return net(inp).flatten(2)

    base = run(x)
    assert torch.isfinite(base).all()
    for p in (0, 5, 6, 17, 29):
        y = x.clone().flatten(2)
        y[:, :, p:] += torch.from_numpy(rng.normal(0, 1, y[:, :, p:].shape))
        out = run(y.reshape(x.shape))
        torch.testing.assert_close(out[:, :, : p + 1], base[:, :, : p + 1], rtol=0, atol=1e-12,
                                   msg=lambda m: f"position <= {p} depends on inputs >= {p}: {m}")
        if p + 1 < positions:
            assert not torch.allclose(out[:, :, p + 1 :], base[:, :, p + 1 :])


def test_float_attention_dropout_trains():
    """Dropout on the logits: finite outputs and gradients, even where a row loses every logit
    (position 0 has one logit; with dropout 0.9 most such rows are fully dropped)."""
    net = float_net(3, 8, 1, dropout=0.9).train()
    x = integer_inputs(np.random.default_rng(1), 2, 3, 4, 4).float() / 128
    out = net(x)
    out.square().mean().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    assert net.attn["0"].q.weight.grad.abs().sum() > 0


# -- exact network ----------------------------------------------------------------------------


def export_tensors(head: str) -> tuple[GatedPixelCNN, dict[str, torch.Tensor], dict]:
    """(float network, exact tensors, export's dict) of a random network with attention after every
    layer, calibrated on random inputs."""
    in_c, out_c = HEADS_OF[head]
    net = float_net(in_c, out_c, 1).eval()
    calib = integer_inputs(np.random.default_rng(3), 16, in_c, 8, 8) * 2.0 ** -INPUT_FRAC
    ex = Exporter()
    k = out_c if head == "categorical" else out_c // 10
    fracs = export_gated(ex, "", net, calib.float(), INPUT_FRAC, 128, head, k)
    return net, {name: torch.from_numpy(v) for name, v in ex.tensors.items()}, fracs


def export_small(head: str) -> tuple[GatedPixelCNN, ExactPixelCNN, dict]:
    """(float network, exact network, export's dict), as export_tensors."""
    net, tensors, fracs = export_tensors(head)
    exact = ExactPixelCNN(tensors, CHANNELS, LAYERS, fracs["h_frac"], in_channels=HEADS_OF[head][0], heads=HEADS,
                          key_channels=KEY_CHANNELS)
    return net, exact, fracs


@pytest.fixture(scope="module", params=list(HEADS_OF))
def exported(request):
    return request.param, *export_small(request.param)


def test_export_describes_attention(exported):
    head, _, exact, fracs = exported
    att = fracs["attention"]
    assert (att["every"], att["heads"], att["key_channels"]) == (1, HEADS, KEY_CHANNELS)
    assert sorted(att["layers"]) == [str(l) for l in range(LAYERS)] and sorted(exact.attn) == list(range(LAYERS))
    for layer in att["layers"].values():
        assert layer["logit_shift"] == layer["q_frac"] + layer["k_frac"] - 4
    assert {"h_frac", "vp_frac", "hp_frac", "o1_frac"} <= set(fracs)


@pytest.mark.parametrize("size", [(5, 7), (8, 8)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_decoder_equals_whole_tile_pass(exported, size, monkeypatch):
    """The decoder's steps (attending over its caches) give exactly the whole-tile pass's
    parameters, for 1, 2 and 5 tiles in lockstep; the whole-tile pass does not depend on the
    batch, on a tile's place in it, or on how many (tile, head) pairs it scores at once."""
    head, _, net, _ = exported
    x = integer_inputs(np.random.default_rng(size[0]), 5, HEADS_OF[head][0], *size)
    full = net.forward(x)
    for b in (1, 2, 5):
        torch.testing.assert_close(decoder_params(net, x[:b]), full[:b], rtol=0, atol=0)
        torch.testing.assert_close(net.forward(x[:b]), full[:b], rtol=0, atol=0)
    torch.testing.assert_close(net.forward(x[3:4]), full[3:4], rtol=0, atol=0)
    monkeypatch.setattr(xa, "CHUNK", 1)  # one (tile, head) pair at a time
    torch.testing.assert_close(net.forward(x), full, rtol=0, atol=0)


def test_identical_across_thread_counts(exported):
    head, _, net, _ = exported
    rng = np.random.default_rng(7)
    big = integer_inputs(rng, 8, HEADS_OF[head][0], 16, 16)  # products large enough to be split
    small = integer_inputs(rng, 5, HEADS_OF[head][0], 8, 8)
    previous = torch.get_num_threads()
    results = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results[threads] = (net.forward(big), net.forward(small), decoder_params(net, small))
    finally:
        torch.set_num_threads(previous)
    for a, b in zip(results[1], results[2]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(results[1][1], results[1][2], rtol=0, atol=0)


def test_exact_approximates_float():
    """Integer logits (1/16 nat) of the exact categorical network against 16 x the float network's:
    quantization error well below what the attention layers themselves change."""
    net, exact, _ = export_small("categorical")
    x = integer_inputs(np.random.default_rng(11), 6, 1, 8, 8)
    with torch.no_grad():
        want = net((x * 2.0 ** -INPUT_FRAC).float()).double() * 16
        for att in net.attn.values():  # the same network without its attention updates
            att.out.weight.zero_()
            att.out.bias.zero_()
        without = net((x * 2.0 ** -INPUT_FRAC).float()).double() * 16
    got = exact.forward(x)
    err = (got - want).abs().mean().item()
    effect = (without - want).abs().mean().item()
    corr = np.corrcoef(got.flatten().numpy(), want.flatten().numpy())[0, 1]
    assert corr > 0.98, f"correlation {corr:.4f}"
    assert err < 0.15 * want.std().item(), f"mean abs error {err:.3f}, std {want.std().item():.3f}"
    assert err < 0.5 * effect, f"mean abs error {err:.3f}, attention changes logits by {effect:.3f}"


def test_exact_network_needs_heads():
    """The tensors hold heads x key_channels only: a network with attention refuses to load
    without its heads, or with a split that does not match."""
    _, tensors, fracs = export_tensors("categorical")
    in_c = HEADS_OF["categorical"][0]
    with pytest.raises(ValueError, match="heads"):
        ExactPixelCNN(tensors, CHANNELS, LAYERS, fracs["h_frac"], in_channels=in_c)
    with pytest.raises(ValueError, match="outputs"):
        ExactPixelCNN(tensors, CHANNELS, LAYERS, fracs["h_frac"], in_channels=in_c, heads=HEADS, key_channels=3)


def test_decoder_steps_in_raster_order(exported):
    """A skipped position would leave a hole in the attention caches: refused."""
    _, _, net, _ = exported
    dec = net.decoder(1, 4)
    dec.row(0)
    with pytest.raises(ValueError, match="position 1 stepped before position 0"):
        dec.step(1)


# -- exact division ---------------------------------------------------------------------------


def test_floor_div_is_exact():
    """floor_div and round_div against Python's integer floor division, on random integers up to
    the bound (|num| + den < 2^53) and on quotients next to an integer."""
    rng = np.random.default_rng(0)
    limit = 1 << 53
    den = [int(d) for d in rng.integers(1, 1 << 52, 3000)] + [int(d) for d in rng.integers(1, 1 << 20, 3000)]
    num = [int(rng.integers(-(limit - d - 1), limit - d)) for d in den]
    for d in [int(v) for v in rng.integers(1, 1 << 26, 2000)]:  # exact multiples and one off
        q = int(rng.integers(-(1 << 52) // d + 2, (1 << 52) // d - 2))
        for off in (-1, 0, 1):
            num.append(q * d + off)
            den.append(d)
    num += [limit - 2, -(limit - 2), 1, -1, 0, limit - 3]
    den += [1, 1, limit - 2, limit - 2, 7, 2]
    n, d = torch.tensor(num, dtype=DTYPE), torch.tensor(den, dtype=DTYPE)
    assert [int(v) for v in n] == num and [int(v) for v in d] == den  # representable
    got = floor_div(n, d)
    assert [int(v) for v in got] == [a // b for a, b in zip(num, den)]
    fits = [i for i, (a, b) in enumerate(zip(num, den)) if abs(2 * a + b) + 2 * b < limit]  # round_div's domain
    assert len(fits) > 1000
    got = round_div(n[fits], d[fits])
    assert [int(v) for v in got] == [(2 * num[i] + den[i]) // (2 * den[i]) for i in fits]


# -- networks without attention ---------------------------------------------------------------


def test_no_attention_state_dict_unchanged():
    """attention_every=0 is the network of before: the same keys in the same order, the same
    initial weights from the same seed (no extra random draws) and the same outputs."""
    layers = 2
    expected = ["v_in.weight", "v_in.bias", "h_in.weight", "h_in.bias", "link_in.weight"]
    for stack, bias in (("v", True), ("h", True), ("link", False), ("res", True)):
        for l in range(layers):
            expected += [f"{stack}.{l}.weight"] + ([f"{stack}.{l}.bias"] if bias else [])
    expected += ["out1.weight", "out1.bias", "out2.weight", "out2.bias"]
    expected += [f"cond.{l}.{p}" for l in range(layers + 1) for p in ("weight", "bias")]
    torch.manual_seed(5)
    plain = GatedPixelCNN(3, 30, 8, layers, 16, features=4)
    torch.manual_seed(5)
    zero = GatedPixelCNN(3, 30, 8, layers, 16, features=4, attention_every=0, heads=2, key_channels=4)
    assert list(zero.state_dict()) == expected == list(plain.state_dict())
    for k, v in plain.state_dict().items():
        assert torch.equal(v, zero.state_dict()[k]), k
    x, f = torch.randn(2, 3, 5, 5), torch.randn(2, 4, 5, 5)
    assert torch.equal(plain.eval()(x, f), zero.eval()(x, f))
    # with attention: only attn.<l>.* keys are added, after every second layer
    with_attn = GatedPixelCNN(3, 30, 8, 4, 16, attention_every=2, heads=2, key_channels=4)
    extra = [k for k in with_attn.state_dict() if k.startswith("attn.")]
    assert extra == [f"attn.{l}.{c}.{p}" for l in (1, 3) for c in ("q", "k", "v", "out") for p in ("weight", "bias")]
