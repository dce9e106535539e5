"""The `pixelvae` family (Gulrajani et al. 2016) as a bits-back codec: binary digits round trip, the
file pays the negative ELBO plus the initial bits, the posterior's tables are exact (the encoder's
and the decoder's agree across batch sizes and thread counts), the exact networks compute what
the float ones do, and bad input gets a clear error. The family contract (tests/test_contract.py)
covers the 8-bit tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hiercodec.codec import decode_image, encode_image
from hiercodec.errors import HiercodecError
from hiercodec.exact import gaussian as xg
from hiercodec.exact.quant import threads
from hiercodec.export.pixelvae import export_pixelvae
from hiercodec.families import build_family
from hiercodec.families.pixelvae_config import PixelVAEConfig, network_input
from hiercodec.nn.pixelvae import broadcast
from hiercodec.train.datasets import binarize
from hiercodec.train.pixelvae import PixelVAETask
from hiercodec.zoo import Model

BINARY = PixelVAEConfig(binary=1, upsample=0, latents=8, layers=1, channels=8, head=16, latent_bits=10)


def digits(n: int, seed: int = 0) -> np.ndarray:
    """n binary 28x28 'digits' (N, 28, 28, 1) of 0s and 255s: blurred random strokes, binarized."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        im = np.zeros((28, 28))
        y, x = rng.integers(6, 22, 2)
        for _ in range(40):
            y = int(np.clip(y + rng.integers(-1, 2), 4, 23))
            x = int(np.clip(x + rng.integers(-1, 2), 4, 23))
            im[y - 2 : y + 2, x - 1 : x + 2] = 230
        out.append(im.astype(np.uint8)[:, :, None])
    return np.stack(binarize(out, seed=seed).images)


def make_model(config: PixelVAEConfig, calibration: np.ndarray, seed: int = 0) -> tuple[Model, torch.nn.Module]:
    torch.manual_seed(seed)
    float_model = config.build().eval()
    tensors, exact = export_pixelvae(float_model.state_dict(), config, calibration)
    exact = dict(exact, id="test-pixelvae", description="untrained")
    family = build_family(exact, {k: torch.from_numpy(v) for k, v in tensors.items()})
    return Model("test-pixelvae", bytes(32), exact, family), float_model


@pytest.fixture(scope="module")
def binary_model():
    return make_model(BINARY, digits(16, seed=1))


def round_trip(model: Model, image: np.ndarray):
    data, report = encode_image(model, image)
    decoded = decode_image(data, lambda name: model)
    return data, report, decoded[0]


@pytest.mark.parametrize("shape", [(28, 28), (28, 84), (30, 45), (5, 9)])
def test_binary_images_round_trip_and_the_file_is_the_negative_elbo(binary_model, shape):
    model, _ = binary_model
    h, w = shape
    mosaic = np.concatenate(list(digits(6, seed=2)), axis=1)  # (28, 168, 1)
    image = np.tile(mosaic, (2, 1, 1))[:h, :w]
    data, report, decoded = round_trip(model, image)
    np.testing.assert_array_equal(decoded, image)
    (level,) = report.levels
    tiles = -(-h // 28) * -(-w // 28)
    assert level.initial_bits > 0  # the first tile found the stream empty
    # the chunk: the summed one-sample negative ELBOs of the tiles plus the initial bits; it can be
    # smaller: the first symbols pushed onto a nearly empty stream (the last of the first row of
    # tiles, a digit's blank bottom rows) cost nothing while the coder's state is below their
    # frequency (an ANS property: they pop back from a small state exactly)
    paid = level.bound_bits + level.initial_bits
    assert 0.85 * paid < 8 * level.written_bytes < paid + 64 + 0.01 * paid, (tiles, level)
    # the report splits the negative ELBO into its terms; the bound also holds each tile's flag
    # (~1e-7 bits; 24 bits for the one tile with initial bits under it)
    assert 0 <= level.bound_bits - (level.reconstruction_bits + level.kl_bits) < 24 + 1e-3
    assert level.reconstruction_bits > 0


def test_rows_of_tiles_as_samples_round_trip_and_draw_from_the_rows_before(binary_model):
    """band = 1: each row of tiles is one bits-back sample (its tiles' latents drawn together, its
    networks run as one batch); the first row is coded directly, later rows by bits-back. The
    tables are the per-tile ones: a row's negative ELBO is within a few bits of its tiles'."""
    import dataclasses

    model = make_model(dataclasses.replace(BINARY, band=1), digits(16, seed=1))[0]
    rows = [np.concatenate(list(digits(4, seed=20 + r)), axis=1) for r in range(3)]
    image = np.concatenate(rows, axis=0)[:80, :100]  # 3 x 4 tiles, the last row and column partial
    data, report, decoded = round_trip(model, image)
    np.testing.assert_array_equal(decoded, image)
    (level,) = report.levels
    assert level.kl_bits != 0  # rows 1 and 2 drew latents
    paid = level.bound_bits + level.initial_bits
    assert 0.85 * paid < 8 * level.written_bytes < paid + 64 + 0.01 * paid
    tiles = binary_model[0]
    q_band = model.family.posterior((image[:28, :100] > 127).astype(np.uint8).reshape(-1), (28, 100, 1))
    q_tiles = [tiles.family.posterior((image[:28, x : x + 28] > 127).astype(np.uint8).reshape(-1),
                                      (28, min(28, 100 - x), 1)) for x in range(0, 100, 28)]
    np.testing.assert_array_equal(q_band, np.concatenate(q_tiles))


def test_later_tiles_draw_their_latents_from_the_file(binary_model):
    """Chained tiles: a file of 6 digits pays the initial bits once, so it costs far less than 6
    files of one digit."""
    model, _ = binary_model
    six = digits(6, seed=3)
    one_by_one = sum(round_trip(model, d)[1].levels[0].initial_bits for d in six)
    _, report, _ = round_trip(model, np.concatenate(list(six), axis=1))
    assert report.levels[0].initial_bits < one_by_one / 3


def test_posterior_tables_do_not_depend_on_batch_or_threads(binary_model):
    model, _ = binary_model
    family = model.family
    images = digits(5, seed=4)
    x = family.spec.input.exact(torch.from_numpy((images > 127).astype(np.float64)).permute(0, 3, 1, 2))
    with threads(1):
        mu1, ls1 = family.encoder(x)
    with threads(2):
        mu2, ls2 = zip(*(family.encoder(x[i : i + 1]) for i in range(len(x))))
    np.testing.assert_array_equal(mu1.numpy(), torch.cat(mu2).numpy())
    np.testing.assert_array_equal(ls1.numpy(), torch.cat(ls2).numpy())
    for i in range(len(x)):
        table = family.posterior((images[i] > 127).astype(np.uint8).reshape(-1), (28, 28, 1))
        np.testing.assert_array_equal(table, family.gauss.posterior_table(mu1[i].numpy().astype(np.int64),
                                                                           ls1[i].numpy().astype(np.int64)))


@pytest.mark.parametrize("upsample", [0, 1])
def test_exact_networks_compute_what_the_float_ones_do(upsample):
    """Quantization, not a different computation: the exact encoder's mean and log scale and the
    exact features of z follow the float networks closely (the transposed convolutions included)."""
    config = PixelVAEConfig(binary=1, upsample=upsample, latents=8, layers=1, channels=8, head=16, latent_bits=10)
    calibration = digits(16, seed=5)
    model, float_model = make_model(config, calibration, seed=upsample)
    family = model.family
    images = digits(4, seed=6)
    with torch.no_grad():
        mu_f, ls_f = float_model["encoder"](network_input(config, torch.from_numpy(images)))
    x = family.spec.input.exact(torch.from_numpy((images > 127).astype(np.float64)).permute(0, 3, 1, 2))
    mu, ls = family.encoder(x)
    assert np.abs(mu.numpy() / 2**xg.MU_FRAC - mu_f.numpy()).max() < 0.05 * max(1.0, float(mu_f.abs().max()))
    assert np.abs(ls.numpy() / xg.LS_SCALE - ls_f.numpy()).max() < 0.05 * max(1.0, float(ls_f.abs().max()))
    bins = np.arange(8) * 100
    features = family.features(bins).double()
    z = torch.from_numpy(family.gauss.values(bins) / 2.0**xg.Z_FRAC).float()[None]
    with torch.no_grad():
        f_float = float_model["upsampler"](z) if upsample else broadcast(z)
    frac = model.config["exact"]["pixels"]["features_frac"]
    scale = float(f_float.abs().max())
    assert float((features * 2.0**-frac - f_float.double()).abs().max()) < 0.05 * scale + 2.0**-frac


def test_a_binary_model_refuses_other_images_with_one_line(binary_model):
    model, _ = binary_model
    gray = np.full((28, 28, 1), 128, np.uint8)
    with pytest.raises(HiercodecError, match="binary images"):
        encode_image(model, gray)
    with pytest.raises(HiercodecError, match="gray images"):
        encode_image(model, np.zeros((28, 28, 3), np.uint8))


def test_binary_digits_with_alpha_share_one_stream(binary_model):
    """Gray + alpha: the alpha level is pushed first on the same stream, so the first tile's
    latent is drawn from alpha's bits (fewer initial bits than without it)."""
    model, _ = binary_model
    image = np.concatenate(list(digits(2, seed=7)), axis=1)
    alpha = np.random.default_rng(0).integers(0, 256, image.shape, dtype=np.uint8)
    data, report, decoded = round_trip(model, np.concatenate([image, alpha], axis=2))
    np.testing.assert_array_equal(decoded[..., :1], image)
    _, alone, _ = round_trip(model, image)
    assert report.levels[0].initial_bits < alone.levels[0].initial_bits


def test_training_lowers_the_negative_elbo_and_evaluation_is_repeatable():
    from hiercodec.train.config import RunConfig, TrainSettings

    config = RunConfig("t", "pixelvae", "", BINARY.to_dict(), TrainSettings())
    task = PixelVAETask(config)
    torch.manual_seed(0)
    model = task.build()
    batch = torch.from_numpy(digits(32, seed=8))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        before = float(task.bits(model, batch).mean())
        assert float(task.bits(model, batch).mean()) == before  # the evaluation's z samples are fixed
    for step in range(30):
        loss, log = task.loss(model, batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert {"nats", "kl_nats", "bpd"} <= log.keys()
    with torch.no_grad():
        assert float(task.bits(model, batch).mean()) < 0.8 * before


def test_a_pixelcnn_of_its_input_layer_alone_codes():
    """layers = 0 (Figure 4a's shallowest point): the input layer and the head, no gated layer;
    the exact network's whole-tile and step-by-step passes still agree (the file decodes)."""
    config = PixelVAEConfig(binary=1, upsample=0, latents=8, layers=0, channels=8, head=16, latent_bits=10)
    model, _ = make_model(config, digits(8))
    image = np.concatenate(list(digits(3, seed=11)), axis=1)
    np.testing.assert_array_equal(round_trip(model, image)[2], image)


def test_a_model_without_latents_is_a_plain_pixelcnn():
    """latents = 0: the same codec with no latent (Figure 4a's PixelCNN baseline): no initial bits,
    no KL, the file is the PixelCNN's bits; it trains with the same task."""
    from hiercodec.train.config import RunConfig, TrainSettings

    config = PixelVAEConfig(binary=1, upsample=0, latents=0, layers=1, channels=8, head=16, latent_bits=10)
    model, float_model = make_model(config, digits(8))
    assert "encoder" not in float_model
    image = np.concatenate(list(digits(3, seed=9)), axis=1)
    data, report, decoded = round_trip(model, image)
    np.testing.assert_array_equal(decoded, image)
    (level,) = report.levels
    assert level.initial_bits == 0 and level.kl_bits == 0
    # (smaller where a blank bottom row was pushed first onto a nearly empty stream: see above)
    assert 0.85 * level.bound_bits < 8 * level.written_bytes < level.bound_bits + 64 + 0.01 * level.bound_bits
    task = PixelVAETask(RunConfig("t", "pixelvae", "", config.to_dict(), TrainSettings()))
    loss, log = task.loss(task.build(), torch.from_numpy(digits(4)), 0)
    assert torch.isfinite(loss) and log["kl_nats"] == 0
    with pytest.raises(HiercodecError, match="nothing to upsample"):
        PixelVAEConfig.from_dict({"latents": 0, "upsample": 1})


def test_a_short_stream_codes_its_first_tiles_directly_not_on_a_seed(binary_model):
    """HiLLoC: while the stream holds too few bits to draw a tile's latents from, the tile is coded
    given fixed latents (no seed is pushed); later tiles draw theirs from those bits. Each tile's
    mode is in the stream, so the decoder follows."""
    from hiercodec.coding.ans import StackCoder
    from hiercodec.geometry import Geometry

    model, _ = binary_model
    image = np.concatenate(list(digits(12, seed=10)), axis=1)
    (level,) = model.family.color_levels(Geometry(28, 28 * 12, 1), None)
    values = level.analyze(image, {})
    coder = StackCoder()
    coder.push_sentinel()  # as the codec does: pops check that the stream holds more than it
    stats = level.encode(values, {}, coder)
    direct = stats.extra["direct_samples"]
    assert 1 <= direct < 12 and stats.extra["injections"] == direct
    assert abs(coder.num_bits() - (stats.bound_bits + stats.initial_bits)) < 64 + 0.01 * coder.num_bits()
    np.testing.assert_array_equal(level.decode({}, coder), values)
    coder.pop_sentinel("pixels")


def test_the_two_level_model_trains_on_the_negative_elbo():
    """levels = 2 (sec. 3.1): encoders down to z1 at 1/4 and z2 at 1/16, autoregressive Gaussian
    priors, the pixels given z1; one step's loss is finite and training lowers it."""
    from hiercodec.train.config import RunConfig, TrainSettings

    net = PixelVAEConfig(levels=2, binary=0, map_tile=16, hidden=8, blocks=2, c1=2, c2=2, prior_layers=1,
                         prior_channels=8, layers=1, channels=8, head=16, mixtures=3)
    task = PixelVAETask(RunConfig("t", "pixelvae", "", net.to_dict(), TrainSettings()))
    torch.manual_seed(0)
    model = task.build()
    assert {"enc1", "q1", "enc2", "q2", "prior2", "dec2", "prior1", "dec1", "pixels"} <= set(model)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:16, 0:16]
    batch = torch.from_numpy(np.clip((x * 12 + y * 3)[None, ..., None] + rng.integers(0, 30, (8, 16, 16, 3)),
                                     0, 255).astype(np.uint8))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        before = float(task.bits(model, batch).mean())
    for step in range(25):
        loss, log = task.loss(model, batch, step)
        assert torch.isfinite(loss) and log["kl_nats"] >= 0
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(task.bits(model, batch).mean()) < 0.9 * before
    with pytest.raises(HiercodecError, match="two-level"):
        PixelVAEConfig.from_dict({"levels": 2, "binary": 1})
