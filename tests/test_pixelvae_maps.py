"""The two-level `pixelvae` (Gulrajani et al. 2016, sec. 3.1, appendix E.2) as a codec: each tile
a bits-back sample of two latent maps under autoregressive Gaussian priors; photos round trip, the
file pays the negative ELBO plus the initial bits, the exact networks follow the float ones, and
q's tables do not depend on batch or thread count."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hiercodec.codec import decode_image, encode_image
from hiercodec.exact.quant import threads
from hiercodec.export.pixelvae import export_pixelvae
from hiercodec.export.run import exact_bits
from hiercodec.families import build_family
from hiercodec.families.pixelvae_config import PixelVAEConfig
from hiercodec.train.config import RunConfig, TrainSettings
from hiercodec.train.pixelvae import PixelVAETask, elbo_terms
from hiercodec.zoo import Model

NET = PixelVAEConfig(levels=2, binary=0, map_tile=16, hidden=8, blocks=2, c1=2, c2=3, prior_layers=1,
                     prior_channels=8, layers=1, channels=8, head=16, mixtures=3, latent_bits=10)


def photos(n: int, side: int, seed: int = 0) -> np.ndarray:
    """n smooth colour images (N, side, side, 3): gradients of random direction plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side]
    out = []
    for _ in range(n):
        a, b = rng.uniform(-6, 6, 2)
        base = 128 + a * (x - side / 2) + b * (y - side / 2)
        colour = rng.uniform(-40, 40, 3)
        out.append(np.clip(base[..., None] + colour + rng.normal(0, 6, (side, side, 3)), 0, 255))
    return np.stack(out).astype(np.uint8)


@pytest.fixture(scope="module")
def trained_float():
    """A tiny two-level model trained for a few steps (so that q and the priors mean something)."""
    task = PixelVAETask(RunConfig("t", "pixelvae", "", NET.to_dict(), TrainSettings()))
    torch.manual_seed(0)
    model = task.build()
    batch = torch.from_numpy(photos(16, 16, seed=1))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(40):
        loss, _ = task.loss(model, batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return task, model.eval()


def exported(task, model, band: int) -> Model:
    net = dataclasses.replace(NET, band=band)
    tensors, exact = export_pixelvae(model.state_dict(), net, photos(16, 16, seed=2))
    exact = dict(exact, id="test-pixelvae-maps", description="tiny")
    family = build_family(exact, {k: torch.from_numpy(v) for k, v in tensors.items()})
    return Model("test-pixelvae-maps", bytes(32), exact, family)


@pytest.fixture(scope="module", params=[0, 1], ids=["tiles", "bands"])
def trained(trained_float, request):
    """The model exported to code a tile (0) or a row of tiles (1) per bits-back sample."""
    task, model = trained_float
    return exported(task, model, request.param), task, model


@pytest.mark.parametrize("shape", [(16, 16), (16, 80), (21, 37), (5, 9), (32, 96)])
def test_photos_round_trip_and_the_file_is_the_negative_elbo_plus_initial_bits(trained, shape):
    model, _, _ = trained
    h, w = shape
    image = np.concatenate(list(photos(6, 16, seed=3)), axis=1)
    image = np.concatenate([image, image[:, ::-1]], axis=0)[:h, :w]
    data, report = encode_image(model, image)
    decoded = decode_image(data, lambda name: model)[0]
    np.testing.assert_array_equal(decoded, image)
    (level,) = report.levels
    paid = level.bound_bits + level.initial_bits
    assert abs(8 * level.written_bytes - paid) < 64 + 0.01 * paid, level
    if h == 32:  # the second row of tiles drew its latents from the first row's bits
        assert level.kl_bits != 0


def test_the_exact_model_codes_at_about_the_float_models_bound(trained):
    """Export loses little: the exact one-sample negative ELBO of held-out tiles is within 5% of the
    float model's (both single samples of z: a loose tolerance)."""
    model, task, float_model = trained
    tiles = photos(8, 16, seed=4)
    with torch.no_grad():
        float_bits = float(task.bits(float_model, torch.from_numpy(tiles)).sum())
    _, exact = exact_bits(model.family, tiles)
    assert abs(exact / float_bits - 1) < 0.05, (exact, float_bits)


def test_posterior_tables_do_not_depend_on_batch_or_threads(trained):
    model, _, _ = trained
    maps = model.family.maps
    tiles = photos(4, 16, seed=5)
    inputs = torch.cat([model.family.tile_inputs(t.reshape(-1), t.shape) for t in tiles])
    with threads(1):
        h1 = maps.enc1.forward(inputs)
        batched = (maps.q1.conv(h1), maps.q2.conv(maps.enc2.forward(h1)))
    with threads(2):
        for i, t in enumerate(tiles):
            (mu2, ls2), (mu1, ls1) = maps.posterior(model.family.tile_inputs(t.reshape(-1), t.shape))
            np.testing.assert_array_equal(np.concatenate([mu1, ls1], axis=1)[0], batched[0][i].numpy())
            np.testing.assert_array_equal(np.concatenate([mu2, ls2], axis=1)[0], batched[1][i].numpy())


def test_a_damaged_file_never_decodes_to_a_wrong_image(trained):
    from hiercodec.errors import HiercodecError

    model, _, _ = trained
    image = np.concatenate(list(photos(3, 16, seed=6)), axis=1)
    data, _ = encode_image(model, image)
    rng = np.random.default_rng(0)
    for _ in range(6):
        bad = bytearray(data)
        k = int(rng.integers(len(data) - 40, len(data)))  # inside the chunk, near its end
        bad[k] ^= 1 << int(rng.integers(0, 8))
        try:
            out = decode_image(bytes(bad), lambda name: model)[0]
        except HiercodecError:
            continue
        np.testing.assert_array_equal(out, image)  # only a flip the format ignores may decode


def test_importance_weights_estimate_the_negative_elbo_and_bound_the_nll(trained_float):
    """log_weights (sec. 3.1's joint over z1, z2): minus their mean is close to the closed-form
    negative ELBO of training, and the importance-sampled estimate lies below it (Jensen)."""
    import math

    task, model = trained_float
    x = torch.from_numpy(photos(1, 16, seed=7))
    with torch.no_grad():
        log_w = task.log_weights(model, x, 256, torch.Generator().manual_seed(0))
        rec, kl = elbo_terms(NET, model, x)
    elbo = float(-log_w.mean())
    iw = float(-(torch.logsumexp(log_w, 0) - math.log(len(log_w))))
    assert iw <= elbo
    assert abs(elbo - float(rec + kl)) < 0.02 * elbo
