"""The `agave` family's training objective (Lucas & Verbeek 2018, eq. 7 and eq. 10)."""

from __future__ import annotations

import math

import numpy as np
import torch

from hiercodec.families.agave_config import AGAVEConfig
from hiercodec.train.agave import agave_terms, aux_nats

TINY = dict(latents=8, hidden=8, embed_channels=8, embed_blocks=1, layers=1, channels=8, head=16, mixtures=3)


def test_eq_10_is_a_distribution_over_the_colour_levels():
    """For each quantization b, the probabilities of the b levels of one pixel sum to 1."""
    for levels in (256, 32, 4):
        net = AGAVEConfig(binary=0, aux_levels=levels, **TINY)
        model = net.build()
        with torch.no_grad():
            model["aux_scale"].log_scale.fill_(math.log(9.0))
        c = 256 // levels
        values = torch.arange(0, 256, c, dtype=torch.uint8)  # one value of each level
        x = values[:, None, None, None].expand(-1, 1, 1, 3).contiguous()  # (b, 1, 1, 3) images
        f = torch.full((levels, 3, 1, 1), 0.3)  # the same means for every image
        with torch.no_grad():
            total = torch.exp(-aux_nats(net, model, x, f) / 3).sum()  # per channel, summed over levels
        assert abs(float(total) - 1) < 1e-4, levels


def test_training_on_eq_7_lowers_both_reconstructions():
    rng = np.random.default_rng(0)
    for binary in (1, 0):
        net = AGAVEConfig(binary=binary, aux_levels=256 if binary else 32, **TINY)
        torch.manual_seed(0)
        model = net.build()
        y, x = np.mgrid[0:28, 0:28]
        base = ((x + y) * 4)[None, ..., None] + rng.integers(0, 20, (8, 28, 28, 1 if binary else 3))
        images = np.where(base > 110, 255, 0) if binary else np.clip(base, 0, 255)
        batch = torch.from_numpy(images.astype(np.uint8))
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        rec0, aux0, _ = (t.mean().item() for t in agave_terms(net, model, batch))
        for _ in range(30):
            rec, aux, kl = agave_terms(net, model, batch)
            loss = (rec + aux + net.kl_weight * kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        rec1, aux1, kl1 = (t.mean().item() for t in agave_terms(net, model, batch))
        assert rec1 < rec0 and aux1 < aux0 and kl1 >= 0, (binary, rec0, rec1, aux0, aux1)


def test_agave_files_round_trip_and_its_exact_decoder_follows_the_float_one():
    """The codec (PixelVAE's bits-back tiles) with AGAVE's decoder: f(z), then the unmasked
    convolutions over it into every PixelCNN layer, all exact."""
    from hiercodec.codec import decode_image, encode_image
    from hiercodec.exact import gaussian as xg
    from hiercodec.export.pixelvae import export_agave
    from hiercodec.families.agave import AGAVEFamily
    from hiercodec.zoo import Model
    from test_pixelvae import digits

    net = AGAVEConfig(binary=1, latent_bits=10, **TINY)
    torch.manual_seed(0)
    float_model = net.build().eval()
    tensors, exact = export_agave(float_model.state_dict(), net, digits(16))
    exact = dict(exact, id="test-agave", description="untrained")
    family = AGAVEFamily(exact, {k: torch.from_numpy(v) for k, v in tensors.items()})
    model = Model("test-agave", bytes(32), exact, family)
    image = np.concatenate(list(digits(4, seed=3)), axis=1)
    data, report = encode_image(model, image)
    np.testing.assert_array_equal(decode_image(data, lambda name: model)[0], image)
    paid = report.levels[0].bound_bits + report.levels[0].initial_bits
    # at most the bound plus the coder's overhead; it may be less: the first symbols pushed on a
    # stream whose ANS state is still below a symbol's frequency cost nothing when their cumulative
    # frequency is 0 (here the background pixels at the end of the first, direct tile)
    assert report.levels[0].written_bits < paid + 64 + 0.01 * paid
    bins = np.arange(8) * 100
    z = torch.from_numpy(family.gauss.values(bins) / 2.0**xg.Z_FRAC).float()[None]
    with torch.no_grad():
        f_float = float_model["embed"](float_model["aux"](float_model["upsampler"](z)))
    frac = exact["exact"]["pixels"]["features_frac"]
    got = family.features(bins).double() * 2.0**-frac
    assert float((got - f_float.double()).abs().max()) < 0.05 * float(f_float.abs().max()) + 4 * 2.0**-frac


def test_importance_weights_are_those_of_the_true_model():
    """AGAVE's log_weights use lambda = 1 and no auxiliary term: minus their mean is close to the
    closed-form negative ELBO (reconstruction + KL), and the importance-sampled estimate is below."""
    from hiercodec.train.agave import AGAVETask
    from hiercodec.train.config import RunConfig, TrainSettings

    net = AGAVEConfig(binary=0, aux_levels=32, **TINY)
    task = AGAVETask(RunConfig("t", "agave", "", net.to_dict(), TrainSettings()))
    torch.manual_seed(0)
    model = task.build().eval()
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 28, 28, 3), dtype=np.uint8))
    with torch.no_grad():
        log_w = task.log_weights(model, x, 128, torch.Generator().manual_seed(0))
        rec, _, kl = agave_terms(net, model, x)
    elbo = float(-log_w.mean())
    assert float(-(torch.logsumexp(log_w, 0) - math.log(128))) <= elbo
    assert abs(elbo - float(rec + kl)) < 0.02 * elbo
