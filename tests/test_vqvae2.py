"""The `vqvae2` family (Razavi et al. 2019): levels top codes, bottom codes, pixels (and alpha).

What is its own: the decoded code maps are the float encoder's codes; progressive and lossy files
(a cut file, or `encode(levels=K)`, decodes to the exact decoder's reconstruction from the codes
present, which the bottom codes change); the exact decoder's output does not depend on threads or
on how its passes are cut, and is close to the float decoder's, borders included; the float
building blocks of hiercodec.nn.vqvae (transposed convolutions as 3 x 3 convolutions, nearest-code
quantization, EMA codebooks, commitment loss, straight-through gradient); configs; the training
task's two stages; the CLI's lossy mode.

Round trips of any size and colour, encoder = decoder tables at every level, batch, thread and
tile-position invariance, cut files in general and damaged chunks: the family contract,
tests/test_contract.py.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hiercodec
from hiercodec.exact.quant import threads
from hiercodec import container
from hiercodec.codec import decode_image, encode_image
from hiercodec.coding.ans import StackCoder
from hiercodec.errors import HiercodecError
from hiercodec.families import vqvae2 as fv
from hiercodec.images import luma
from hiercodec.nn.vqvae import VectorQuantizer, transposed_as_conv
from hiercodec.nn.vqvae import reconstruction_pixels
from test_exact import levels_of, natural


def image_of(seed: int, h: int, w: int, c: int) -> np.ndarray:
    """A natural-ish image; its alpha (c = 2, 4) mostly opaque, as alpha planes are."""
    rng = np.random.default_rng(seed)
    image = natural(rng, h, w, c)
    if c in (2, 4):
        image[..., -1] = np.where(rng.random((h, w)) < 0.8, 255, image[..., -1])
    return image


def expected_reconstruction(model, image: np.ndarray, levels: int) -> np.ndarray:
    """What a file with the first `levels` (1 or 2) levels decodes to, from the encoder's codes:
    the exact decoder's image (H, W, 3), or its luma (H, W) for gray images."""
    top, bottom = model.family.encode_codes(image)
    h, w, c = image.shape
    recon = model.family.reconstruction(top, bottom if levels == 2 else None, h, w)
    return recon if c >= 3 else luma(recon).astype(np.uint8)


@pytest.fixture
def installed(tiny_vqvae2, tiny_vqvae2_models, monkeypatch):
    """tiny-vqvae2 installed as a user model, so that hiercodec.decode finds it by id."""
    monkeypatch.setenv("HIERCODEC_MODELS", str(tiny_vqvae2_models))
    assert hiercodec.load_model("tiny-vqvae2").hash == tiny_vqvae2.hash
    return tiny_vqvae2


# -- the code levels --------------------------------------------------------------------------------


def test_decoded_code_maps_are_the_encoders_codes(tiny_vqvae2):
    """The code levels of a real file decode to the float encoder's code maps, bit for bit, of
    shapes ceil(H/8) x ceil(W/8) and twice that; codes of several values (the codebooks started
    on data)."""
    image = image_of(5, 40, 33, 3)
    top, bottom = tiny_vqvae2.family.encode_codes(image)
    assert top.shape == (5, 5) and bottom.shape == (10, 10)
    assert len(np.unique(top)) > 3 and len(np.unique(bottom)) > 3
    data, _ = encode_image(tiny_vqvae2, image, levels=2)
    above: dict[str, np.ndarray] = {}
    for level, chunk in zip(levels_of(tiny_vqvae2, image), container.read(data).chunks):
        coder = StackCoder(chunk.data)
        above[level.name] = level.decode(above, coder)
        coder.pop_sentinel(level.name)
        assert coder.is_empty()
    assert above["top"].dtype == np.dtype("<u2") and above["top"].shape == (5, 5, 1)
    np.testing.assert_array_equal(above["top"][..., 0], top)
    np.testing.assert_array_equal(above["bottom"][..., 0], bottom)


# -- progressive and lossy files ------------------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 1])
def test_cut_and_lossy_files_decode_to_the_reconstruction(installed, channels):
    """A lossless file cut after K = 1, 2 levels, a file written with levels=K, and the lossless
    file decoded with levels=K: all the exact decoder's reconstruction from the encoder's codes
    (top alone: bottom vectors zero), as the public API returns it; the header says lossy."""
    image = image_of(7 + channels, 21, 18, channels)
    data = hiercodec.encode(image, installed)
    np.testing.assert_array_equal(hiercodec.decode(data), image[..., 0] if channels == 1 else image)
    assert hiercodec.info(data)["mode"] == "lossless"
    previous = None
    for k in (1, 2):
        expected = expected_reconstruction(installed, image, k)
        part = hiercodec.cut(data, k)
        lossy = hiercodec.encode(image, installed, levels=k)
        info = hiercodec.info(lossy)
        assert (info["mode"], info["levels_present"], info["levels_total"]) == ("lossy", k, 3)
        assert hiercodec.info(part)["mode"] == "lossy"
        assert len(lossy) < len(data)
        for decoded in (hiercodec.decode(part), hiercodec.decode(lossy), hiercodec.decode(data, levels=k)):
            assert decoded.shape == expected.shape == image.shape[:2] + ((3,) if channels == 3 else ())
            np.testing.assert_array_equal(decoded, expected)
        assert lossy == part  # the same bytes: levels=K writes what cut keeps
        assert previous is None or not np.array_equal(expected, previous)  # the bottom codes change the image
        previous = expected


def test_lossy_levels(tiny_vqvae2):
    """A lossy file keeps the two code levels; other counts of levels are refused with a message."""
    assert hiercodec.lossy_levels(tiny_vqvae2) == 2
    image = image_of(1, 9, 9, 3)
    with pytest.raises(HiercodecError, match="cannot keep 4 levels"):
        encode_image(tiny_vqvae2, image, levels=4)
    data, _ = encode_image(tiny_vqvae2, image, levels=1)
    with pytest.raises(HiercodecError, match="cannot decode 2 levels: the file has 1"):
        decode_image(data, loader=lambda name: tiny_vqvae2, levels=2)


# -- the exact decoder ------------------------------------------------------------------------------


def test_reconstruction_independent_of_threads_and_passes(tiny_vqvae2, monkeypatch):
    """The exact decoder's image from both code maps and from the top codes alone: the same
    pixels with 1 and 2 threads, and whatever the size of its passes (RECON_TILE top codes: one
    pass for the whole 5 x 5 map, or 3 x 3 passes of 2 codes, or 25 passes of 1; RECON_HALO
    covers the receptive field of a decoder with res_layers <= 3, bitstreams/FORMAT.md)."""
    assert tiny_vqvae2.family.net.res_layers <= 3
    image = image_of(13, 40, 33, 3)
    top, bottom = tiny_vqvae2.family.encode_codes(image)
    monkeypatch.setattr(fv, "threads", lambda n: contextlib.nullcontext())  # the test sets the count

    def both() -> list[np.ndarray]:
        return [tiny_vqvae2.family.reconstruction(top, b, 40, 33) for b in (bottom, None)]

    with threads(1):
        reference = both()
    with threads(2):
        for got, want in zip(both(), reference):
            np.testing.assert_array_equal(got, want)
    for tile in (1, 2, 3):
        monkeypatch.setattr(fv, "RECON_TILE", tile)
        for got, want in zip(both(), reference):
            np.testing.assert_array_equal(got, want, err_msg=f"RECON_TILE {tile}")
    assert reference[0].std() > 10 and not np.array_equal(reference[0], reference[1])


def test_decoder_receptive_field_within_the_halo():
    """What makes the passes exact: with the architecture of the float decoder (all weights 1,
    biases 0, so nothing cancels), a top or bottom code reaches pixels at most RECON_HALO top codes
    away when res_layers <= 3, and farther with 4 (where the passes, not one whole pass, define the
    image: bitstreams/FORMAT.md)."""
    from hiercodec.nn.vqvae import VQVAE2

    def reach(res_layers: int, bottom: bool) -> int:
        vq = VQVAE2(4, 2, res_layers, 8, 2).double()
        with torch.no_grad():
            for name, p in vq.named_parameters():
                p.copy_(torch.ones_like(p) if name.endswith("weight") else torch.zeros_like(p))
        q_t, q_b = torch.zeros(1, 2, 17, 17, dtype=torch.float64), torch.zeros(1, 2, 34, 34, dtype=torch.float64)
        (q_b[..., 16, 16] if bottom else q_t[..., 8, 8]).fill_(1)
        with torch.no_grad():
            y = vq.decode(q_t, q_b).abs().sum(dim=(0, 1))
        rows, cols = (torch.nonzero(y.sum(1)).flatten() // 8), (torch.nonzero(y.sum(0)).flatten() // 8)
        return int(max((rows - 8).abs().max(), (cols - 8).abs().max()))  # in top codes

    for res_layers in (1, 2, 3):
        assert max(reach(res_layers, False), reach(res_layers, True)) <= fv.RECON_HALO, res_layers
    assert reach(4, False) > fv.RECON_HALO


def test_exact_decoder_close_to_float_decoder(tiny_vqvae2, tiny_vqvae2_float):
    """The exact decoder against the float one it was exported from (rounded to pixels as training
    rounds them), for maps of several passes and sizes not multiples of 8: a mean difference well
    under a level and at most 2, at the image's borders as inside (the exact decoder zeroes
    its activations around the code maps, as the float decoder's zero padding does)."""
    vq = tiny_vqvae2_float["vq"]
    for h, w in ((64, 56), (21, 35)):
        image = image_of(17, h, w, 3)
        top, bottom = tiny_vqvae2.family.encode_codes(image)
        for b in (bottom, None):
            exact = tiny_vqvae2.family.reconstruction(top, b, h, w).astype(np.int64)
            with torch.no_grad():
                y = vq.decode_codes(torch.from_numpy(top)[None].long(),
                                    None if b is None else torch.from_numpy(b)[None].long())
            diff = np.abs(exact - reconstruction_pixels(y)[0, :h, :w].astype(np.int64))
            border = np.ones((h, w), bool)
            border[8:-8, 8:-8] = False
            assert diff.mean() < 0.25 and diff.max() <= 2, (diff.mean(), diff.max())
            assert diff[border].mean() < 0.25, diff[border].mean()
            assert exact.std() > 10  # not a flat image


def test_exact_decoder_batch_invariant_and_inside(tiny_vqvae2):
    """ExactVQDecoder.forward on a batch of maps gives each map's pixels as it gives them alone
    (integers: the batch cannot change a bit); a map decoded within a larger canvas of zero
    vectors, with `inside` marking where it lies, gives exactly the pixels of the map alone."""
    dec = tiny_vqvae2.family.decoder
    rng = np.random.default_rng(3)
    codes_t = torch.from_numpy(rng.integers(0, 32, (5, 4, 3)))
    codes_b = torch.from_numpy(rng.integers(0, 32, (5, 8, 6)))
    t, b = dec.planes(codes_t, False), dec.planes(codes_b, True)
    whole = dec.forward(t, b)
    assert whole.shape == (5, 3, 32, 24) and whole.min() >= 0 and whole.max() <= 255
    assert torch.equal(whole, whole.round())
    for i in (0, 3):
        assert torch.equal(dec.forward(t[i : i + 1], b[i : i + 1]), whole[i : i + 1])
    assert torch.equal(dec.forward(t, None), dec.forward(t, torch.zeros_like(b)))
    big_t, big_b = F.pad(t, (2, 3, 1, 4)), F.pad(b, (4, 6, 2, 8))
    inside = F.pad(torch.ones(1, 1, 8, 6, dtype=t.dtype), (4, 6, 2, 8))
    framed = dec.forward(big_t, big_b, inside)[..., 8 : 8 + 32, 16 : 16 + 24]
    assert torch.equal(framed, whole)
    assert not torch.equal(dec.forward(big_t, big_b)[..., 8 : 8 + 32, 16 : 16 + 24], whole)  # without it: not


# -- hiercodec.nn.vqvae -----------------------------------------------------------------------------


def test_transposed_as_conv_equals_conv_transpose():
    """A ConvTranspose2d(kernel 4, stride 2, padding 1) is a 3 x 3 convolution to 4x the channels
    followed by pixel_shuffle(2) (float64: equal to rounding)."""
    torch.manual_seed(0)
    up = torch.nn.ConvTranspose2d(3, 5, 4, stride=2, padding=1).double()
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    w, b = transposed_as_conv(up.weight.detach(), up.bias.detach())
    assert w.shape == (20, 3, 3, 3) and b.shape == (20,)
    with torch.no_grad():
        torch.testing.assert_close(F.pixel_shuffle(F.conv2d(x, w, b, padding=1), 2), up(x), rtol=0, atol=1e-12)
    w0, none = transposed_as_conv(up.weight.detach(), None)
    assert none is None and torch.equal(w0, w)


def test_nearest_is_the_argmin_of_distances():
    torch.manual_seed(1)
    vq = VectorQuantizer(16, 4).double()
    flat = torch.randn(200, 4, dtype=torch.float64)
    codes = vq.nearest(flat)
    d = torch.cdist(flat, vq.embed)
    torch.testing.assert_close(d.gather(1, codes[:, None])[:, 0], d.min(dim=1).values, rtol=0, atol=1e-12)
    assert torch.equal(vq.nearest(vq.embed), torch.arange(16))  # a codebook vector is its own code


def test_ema_update_rule():
    """Sec. 2.1 (van den Oord et al. 2017, appendix A.1): after the codebook started on the first
    training batch, each step N_i <- g N_i + (1 - g) n_i, m_i <- g m_i + (1 - g) sum of the vectors
    assigned to code i, e_i = m_i / N_i (N Laplace-smoothed: a relative change of about eps)."""
    torch.manual_seed(2)
    g = 0.9
    vq = VectorQuantizer(6, 3, decay=g).train()
    assert not vq.started
    first = torch.randn(1, 3, 4, 5)
    vq(first)
    assert vq.started
    start_rows = first.permute(0, 2, 3, 1).reshape(-1, 3)
    # every code started on an encoder output (then one EMA step): each lies near that batch
    assert (torch.cdist(vq.embed, start_rows).min(dim=1).values < 2).all()
    count, total, embed = vq.count.clone(), vq.total.clone(), vq.embed.clone()
    z = torch.randn(2, 3, 4, 4)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
    codes = vq.nearest(flat)
    out, got_codes, _ = vq(z)
    assert torch.equal(got_codes.flatten(), codes)
    n = torch.bincount(codes, minlength=6).float()
    s = torch.zeros(6, 3).index_add_(0, codes, flat)
    torch.testing.assert_close(vq.count, g * count + (1 - g) * n)
    torch.testing.assert_close(vq.total, g * total + (1 - g) * s)
    expected = (g * total + (1 - g) * s) / (g * count + (1 - g) * n)[:, None]
    torch.testing.assert_close(vq.embed, expected, rtol=1e-3, atol=1e-5)
    for i in codes.unique():  # a used code moves toward the mean of its vectors
        mean = flat[codes == i].mean(0)
        assert (vq.embed[i] - mean).norm() < (embed[i] - mean).norm()
    # the output is the codebook vectors of the codes before the update
    torch.testing.assert_close(out.permute(0, 2, 3, 1).reshape(-1, 3), embed[codes])
    # in eval mode nothing moves
    vq.eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    vq(torch.randn(1, 3, 4, 4))
    assert all(torch.equal(before[k], v) for k, v in vq.state_dict().items())


def test_commitment_loss_and_straight_through_gradient():
    torch.manual_seed(3)
    vq = VectorQuantizer(8, 4).eval()
    z = torch.randn(2, 4, 3, 5, requires_grad=True)
    out, codes, commitment = vq(z)
    q = vq.embed[codes].permute(0, 3, 1, 2)
    torch.testing.assert_close(out, q)  # the value: the codebook vectors
    torch.testing.assert_close(commitment, (q - z.detach()).pow(2).mean(dim=(1, 2, 3)))  # ||sg[e] - z||^2 per image
    (grad,) = torch.autograd.grad(out, z, torch.arange(out.numel(), dtype=out.dtype).view_as(out))
    torch.testing.assert_close(grad, torch.arange(out.numel(), dtype=out.dtype).view_as(out))  # identity
    (grad,) = torch.autograd.grad(commitment.sum(), z)
    torch.testing.assert_close(grad, 2 * (z.detach() - q) / (4 * 3 * 5))  # into the encoder only
    assert not vq.embed.requires_grad


# -- configs ------------------------------------------------------------------------------------------


def test_config_fields():
    """top_only_percent may be 0 (the paper's config, vqvae2.toml: no cut files in training);
    other fields stay positive, tiles multiples of 8."""
    from hiercodec.families.vqvae2_config import VQVAE2Config
    from hiercodec.train.config import load_config

    assert VQVAE2Config.from_dict(load_config("vqvae2").network).top_only_percent == 0
    assert VQVAE2Config.from_dict({"top_only_percent": 0}) == VQVAE2Config(top_only_percent=0)
    config = VQVAE2Config(top_only_percent=0, tile=32)
    assert VQVAE2Config.from_dict(config.to_dict()) == config
    for field, value, message in (("top_only_percent", 101, "0 ... 100"), ("top_only_percent", -1, "positive"),
                                  ("top_only_percent", False, "positive"), ("tile", 20, "multiple of 8"),
                                  ("codes", 0, "positive"), ("cond_blocks", 0, "positive")):
        with pytest.raises(HiercodecError, match=message):
            VQVAE2Config.from_dict({field: value})


# -- the training task -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def task():
    from hiercodec.train.config import load_config
    from hiercodec.train.tasks import task_for

    return task_for(load_config("vqvae2-small"))


def crops(n: int = 4, size: int = 16) -> torch.Tensor:
    return torch.from_numpy(np.stack([image_of(40 + i, size, size, 3) for i in range(n)]))


def test_training_autoencoder_stage(task):
    """Steps before autoencoder_steps: eq. 2 (MSE + beta commitment) + the code priors' bits, with
    gradients into the autoencoder and the priors, none into the pixel level; the codebooks move
    (EMA) in training mode."""
    torch.manual_seed(5)
    model = task.build().train()
    x = crops()
    books = model["vq"].vq_t.embed.clone()
    loss, log = task.loss(model, x, 0)
    assert torch.isfinite(loss)
    assert {"bpd_top", "bpd_bottom", "mse", "psnr", "codes_used_top", "codes_used_bottom"} <= set(log)
    assert "bpd_pixels" not in log
    assert float(loss.detach()) >= log["mse"] + log["bpd_top"] + log["bpd_bottom"] - 1e-5  # + beta x commitment >= 0
    loss.backward()
    assert model["vq"].enc_b[0].weight.grad is not None and model["vq"].enc_b[0].weight.grad.abs().sum() > 0
    assert model["vq"].up2.conv.weight.grad.abs().sum() > 0
    assert model["top"].parameters().__next__().grad is not None
    assert all(p.grad is None for p in model["pixels"].parameters())
    assert not torch.equal(model["vq"].vq_t.embed, books)


def test_training_prior_stage_and_bits(task):
    """From autoencoder_steps on the autoencoder is frozen (no gradients, no codebook updates) and
    the loss is the bits/dim of all three levels; `bits` is their sum per image."""
    torch.manual_seed(6)
    model = task.build()
    x = crops()
    model.train()
    task.loss(model, x, 0)  # start the codebooks on data
    frozen = {k: v.clone() for k, v in model["vq"].state_dict().items()}
    model.zero_grad(set_to_none=True)
    model.train()
    loss, log = task.loss(model, x, task.net.autoencoder_steps)
    assert torch.isfinite(loss) and set(log) == {"bpd", "bpd_top", "bpd_bottom", "bpd_pixels"}
    loss.backward()
    assert all(p.grad is None for p in model["vq"].parameters())
    assert all(torch.equal(frozen[k], v) for k, v in model["vq"].state_dict().items())
    for name in ("top", "bottom", "cond", "pixels", "embed", "top_in"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model[name].parameters()), name
    model.eval()
    with torch.no_grad():
        bits = task.bits(model, x)
        _, _, codes_t, codes_b, _ = task._codes(model, x, False)
        parts = task.prior_bits(model, x.numpy(), codes_t, codes_b)
        loss, log = task.loss(model, x, task.net.autoencoder_steps)
    assert bits.shape == (4,) and set(parts) == {"top", "bottom", "pixels"}
    torch.testing.assert_close(bits, parts["top"] + parts["bottom"] + parts["pixels"])
    assert float(loss) * x.numel() == pytest.approx(float(bits.sum()), rel=1e-5)
    assert log["bpd"] == pytest.approx(float(loss), rel=1e-5)
    assert sum(v for k, v in log.items() if k != "bpd") == pytest.approx(float(loss), rel=1e-5)


def test_learning_rate_ramps_up_again_when_the_priors_stage_begins():
    """The second stage's fresh Adam on the --init-from pixel network gets a warm-up of its own."""
    from hiercodec.train.config import load_config
    from hiercodec.train.tasks import task_for

    config = load_config("vqvae2-codec")
    t = task_for(config)
    a, w = t.net.autoencoder_steps, config.train.warmup
    assert t.lr_scale(0) == t.lr_scale(a - 1) == 1.0
    assert t.lr_scale(a) == pytest.approx(1 / w) and t.lr_scale(a + w // 2 - 1) == pytest.approx(0.5)
    assert t.lr_scale(a + w - 1) == t.lr_scale(a + 10 * w) == 1.0


def test_export_takes_the_live_autoencoder_and_the_averaged_priors():
    from hiercodec.train.vqvae2 import VQVAE2Task

    averaged = {"vq.enc_b.0.weight": torch.zeros(2), "top.v_in.weight": torch.zeros(2)}
    live = {"vq.enc_b.0.weight": torch.ones(2), "top.v_in.weight": torch.ones(2)}
    out = VQVAE2Task.export_weights(object.__new__(VQVAE2Task), averaged, live)
    assert torch.equal(out["vq.enc_b.0.weight"], live["vq.enc_b.0.weight"])
    assert torch.equal(out["top.v_in.weight"], averaged["top.v_in.weight"])


def test_cli_lossy_compress_verify_and_errors(installed, tmp_path):
    """compress --lossy / --levels K write the lossy files encode(levels=K) writes; verify --lossy
    reports the reconstruction; wrong combinations are one line and exit status 1."""
    from click.testing import CliRunner
    from PIL import Image

    from hiercodec.cli.main import cli

    image = natural(np.random.default_rng(21), 20, 27, 3)
    src = tmp_path / "in.png"
    Image.fromarray(image).save(src)
    run = CliRunner().invoke
    for args, k in ((["--lossy"], 2), (["--levels", "1"], 1)):
        out = tmp_path / f"{k}.hc"
        r = run(cli, ["compress", "-m", "tiny-vqvae2", *args, str(src), str(out)])
        assert r.exit_code == 0, r.output
        assert f"levels kept: {'top, bottom' if k == 2 else 'top'}" in r.output
        assert out.read_bytes() == hiercodec.encode(image, "tiny-vqvae2", levels=k)
    r = run(cli, ["verify", "-m", "tiny-vqvae2", "--lossy", str(src)])
    assert r.exit_code == 0 and "lossy: levels decode to the coded values, PSNR" in r.output, r.output
    for args in (["compress", "-m", "tiny-vqvae2", "--lossy", "--levels", "1", str(src), str(tmp_path / "x.hc")],
                 ["compress", "-m", "default", "--lossy", str(src), str(tmp_path / "y.hc")],
                 ["compress", "-m", "tiny-vqvae2", "--levels", "4", str(src), str(tmp_path / "z.hc")]):
        r = run(cli, args)
        assert r.exit_code == 1 and r.output.count("\n") == 1 and "error:" in r.output, r.output
    assert not (tmp_path / "x.hc").exists() and not (tmp_path / "y.hc").exists() and not (tmp_path / "z.hc").exists()
