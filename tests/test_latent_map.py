"""hiercodec.families.latent_map: a latent map under an autoregressive Gaussian prior, drawn from
the stream with q and given back exactly (the hierarchical PixelVAE's latent levels)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hiercodec.coding.ans import StackCoder
from hiercodec.coding.groups import pop_groups, push_in_order
from hiercodec.coding.tables import TOTAL
from hiercodec.exact import gaussian as xg
from hiercodec.exact.gaussian import ExactGaussian, build_luts, quantize_params
from hiercodec.exact.pixelcnn import ExactPixelCNN
from hiercodec.export.quantize import Exporter, export_gated
from hiercodec.families.base import decoder
from hiercodec.families.latent_map import GaussianMap
from hiercodec.nn.gated import GatedPixelCNN

C, H, W, E = 3, 4, 5, 6


def prior_network(features: int, seed: int = 0) -> ExactPixelCNN:
    """A tiny untrained gated PixelCNN with a Gaussian head over C latent channels, exported."""
    torch.manual_seed(seed)
    model = GatedPixelCNN(C, 2 * C, channels=8, layers=2, head=16, features=features).eval()
    with torch.no_grad():  # outputs of a useful size: means around +-1, scales around 0.2 ... 2
        model.out2.weight.mul_(4)
    x = torch.round(torch.randn(16, C, H, W) * 2**xg.Z_FRAC) * 2.0**-xg.Z_FRAC
    f = torch.randn(16, features, H, W).round() if features else None
    ex = Exporter()
    fracs = export_gated(ex, "", model, x, xg.Z_FRAC, 2047, "gaussian", C, f, 0)
    tensors = {k: torch.from_numpy(v) for k, v in ex.tensors.items()}
    return ExactPixelCNN(tensors, 8, 2, fracs["h_frac"], in_channels=C, in_max=2047)


@pytest.fixture(scope="module")
def gauss():
    return ExactGaussian(build_luts(8))


@pytest.mark.parametrize("features", [0, E])
@pytest.mark.parametrize("batch", [1, 3])
def test_drawing_a_map_from_q_and_giving_it_back_restores_the_stream(gauss, features, batch):
    rng = np.random.default_rng(features)
    f = torch.from_numpy(rng.integers(-3, 4, (batch, E, H, W)).astype(np.float64)).to(torch.int16) if features else None
    net = prior_network(features)
    latent = GaussianMap(net, gauss, C, H, W, f, batch=batch)
    shape = (batch, C, H, W)
    mu_q, ls_q = quantize_params(rng.normal(0, 1, shape), np.log(rng.uniform(0.05, 0.5, shape)))
    coder = StackCoder()
    coder.push_sentinel()
    noise = rng.integers(0, 256, 400).astype(np.int32)
    push_in_order(coder, [(noise, np.full((400, 256), TOTAL // 256, np.int64))])
    before = coder.to_bytes()
    (bins, values), popped = pop_groups(coder, decoder(latent.pop_schedule(mu_q, ls_q)), measure=True)
    assert 0 < popped.bits < latent.size * gauss.bits
    # the decoder's pass over the bins finds the same values, and the prior's parameters it used
    walked, mu_p, ls_p = latent.walk(bins)
    np.testing.assert_array_equal(walked, values)
    np.testing.assert_array_equal(np.stack(latent.whole(values)), np.stack([mu_p, ls_p]))
    for t in range(batch):  # a tile's maps do not depend on the others in its batch
        alone = GaussianMap(net, gauss, C, H, W, None if f is None else f[t : t + 1])
        np.testing.assert_array_equal(alone.walk(bins[t : t + 1])[0], values[t : t + 1])
    pushed = push_in_order(coder, latent.posterior_groups(bins, mu_q, ls_q, mu_p, ls_p))
    assert pushed.bits == pytest.approx(popped.bits)
    assert coder.to_bytes() == before  # bits back: the stream is exactly as before the draw
    # the values follow q: near mu_q where q is narrow
    assert np.abs(values / 2**xg.Z_FRAC - mu_q / 2**xg.MU_FRAC).mean() < 0.5


def test_the_prior_places_the_bins(gauss):
    """A posterior equal to the prior costs (almost) nothing: drawing z from q = p and giving it
    back with the prior's uniform table nets ~0 bits, whatever the prior network says."""
    latent = GaussianMap(prior_network(0, seed=3), gauss, C, H, W)
    rng = np.random.default_rng(1)
    bins = rng.integers(0, gauss.bins, (1, C, H, W))
    values, mu_p, ls_p = latent.walk(bins)
    groups = latent.posterior_groups(bins, mu_p, ls_p, mu_p, ls_p)
    q_bits = sum(-np.log2(t[np.arange(len(s)), s] / TOTAL).sum() for s, t in groups)
    assert abs(q_bits - latent.size * gauss.bits) < 0.05 * latent.size
    assert latent.prior_table().shape == (latent.size, gauss.bins)


def test_a_hierarchy_of_maps_round_trips_samples_chained_on_one_stream(gauss):
    """Two latent levels (z2: 2 x 2 x 2, z1: 4 x 4 x 3 given an upsampling of z2), x binary 4 x 4
    given z1: samples pushed one after the other on one stream decode in reverse order; the first
    are coded directly (the stream is short), the later ones by bits-back, which nets about the
    negative ELBO."""
    from hiercodec.coding.tables import normalize
    from hiercodec.families.latent_map import MapsSample

    top_net, low_net = prior_network_shaped(2, 0, seed=5), prior_network_shaped(3, 2, seed=6)

    def prior(k, values):
        if k == 0:
            return GaussianMap(top_net, gauss, 2, 2, 2)
        up = np.clip(values[0], -2047, 2047).repeat(2, axis=2).repeat(2, axis=3) // 64  # (1, 2, 4, 4)
        return GaussianMap(low_net, gauss, 3, 4, 4, torch.from_numpy(up).to(torch.int16))

    def likelihood(values, x=None):
        logits = values[1][0].sum(axis=0).reshape(-1) / 2**xg.Z_FRAC  # (16,)
        p1 = 1 / (1 + np.exp(-np.clip(logits, -8, 8)))
        table = normalize(np.rint(np.stack([1 - p1, p1], 1) * 2**20).astype(np.int64))
        if x is None:
            return (yield None, table)
        yield np.asarray(x, np.int32), table
        return x

    def posterior(x):
        s = (np.asarray(x).reshape(4, 4) * 2 - 1).astype(np.float64)
        top = quantize_params(np.full((2, 2, 2), s.mean()), np.full((2, 2, 2), np.log(0.3)))
        low = quantize_params(np.stack([s, -s, s * 0.5]), np.full((3, 4, 4), np.log(0.2)))
        return [tuple(p[None] for p in top), tuple(p[None] for p in low)]

    sample = MapsSample(prior, likelihood, posterior, 2)
    rng = np.random.default_rng(2)
    xs = [(rng.random(16) < rng.uniform(0.1, 0.9)).astype(np.int32) for _ in range(40)]
    coder = StackCoder()
    coder.push_sentinel()
    costs = [sample.push(coder, x) for x in xs[:5]]  # a short stream: coded directly
    assert all(direct for _, direct in costs)
    noise = rng.integers(0, 256, 200).astype(np.int32)  # then something else, 1600 bits of it
    uniform = np.full((200, 256), TOTAL // 256, np.int64)
    push_in_order(coder, [(noise, uniform)])
    start = coder.num_bits()
    costs = [sample.push(coder, x) for x in xs[5:]]
    assert not any(direct for _, direct in costs)
    net = sum(c.net_bits for c, _ in costs)
    assert abs(coder.num_bits() - start - net) < 64 + 0.02 * net  # bits-back nets the negative ELBO
    for x in reversed(xs[5:]):
        np.testing.assert_array_equal(np.asarray(sample.pop(coder)).reshape(-1), x)
    got, _ = pop_groups(coder, decoder(iter_table(uniform)))
    np.testing.assert_array_equal(got, noise)
    for x in reversed(xs[:5]):
        np.testing.assert_array_equal(np.asarray(sample.pop(coder)).reshape(-1), x)
    coder.pop_sentinel("maps")


def iter_table(table):
    """A schedule of one group with `table`."""
    symbols = yield None, table
    return symbols


def prior_network_shaped(channels: int, features: int, seed: int) -> ExactPixelCNN:
    """prior_network for another number of latent channels (and feature planes)."""
    global C
    saved, C = C, channels
    try:
        return prior_network(features, seed)
    finally:
        C = saved
