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
def test_drawing_a_map_from_q_and_giving_it_back_restores_the_stream(gauss, features):
    rng = np.random.default_rng(features)
    f = torch.from_numpy(rng.integers(-3, 4, (1, E, H, W)).astype(np.float64)).to(torch.int16) if features else None
    latent = GaussianMap(prior_network(features), gauss, C, H, W, f)
    mu_q, ls_q = quantize_params(rng.normal(0, 1, (C, H, W)), np.log(rng.uniform(0.05, 0.5, (C, H, W))))
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
    bins = rng.integers(0, gauss.bins, (C, H, W))
    values, mu_p, ls_p = latent.walk(bins)
    groups = latent.posterior_groups(bins, mu_p, ls_p, mu_p, ls_p)
    q_bits = sum(-np.log2(t[np.arange(len(s)), s] / TOTAL).sum() for s, t in groups)
    assert abs(q_bits - latent.size * gauss.bits) < 0.05 * latent.size
    assert latent.prior_table().shape == (latent.size, gauss.bins)
