"""hiercodec.exact.gaussian: discretized Gaussian latents as exact integer tables, and a bits-back
round trip of continuous latents through them."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hiercodec.coding.ans import StackCoder
from hiercodec.coding.bitsback import bits_back_pop, bits_back_push
from hiercodec.coding.groups import table_decoder
from hiercodec.coding.tables import TOTAL, bits, check, normalize
from hiercodec.exact.gaussian import (
    CDF_BITS, LS_MAX, LS_MIN, MU_MAX, Z_FRAC, ExactGaussian, build_luts, quantize_params,
)

BITS = 10


@pytest.fixture(scope="module")
def gauss() -> ExactGaussian:
    return ExactGaussian(build_luts(BITS))


def kl_bits(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """KL(q || p) in bits of coder tables, per row."""
    q, p = q / TOTAL, p / TOTAL
    return (q * np.log2(q / p)).sum(axis=1)


def continuous_kl_bits(mu, sigma, mu_p=0.0, sigma_p=1.0):
    return (np.log(sigma_p / sigma) + (sigma**2 + (mu - mu_p) ** 2) / (2 * sigma_p**2) - 0.5) / np.log(2)


@given(mu=st.integers(-2 * MU_MAX, 2 * MU_MAX), ls=st.integers(LS_MIN - 100, LS_MAX + 100),
       mu_p=st.integers(-MU_MAX, MU_MAX), ls_p=st.integers(LS_MIN, LS_MAX))
@settings(max_examples=200, deadline=None)
def test_masses_sum_exactly_and_tables_are_valid_for_any_parameters(gauss, mu, ls, mu_p, ls_p):
    args = (np.array([mu]), np.array([ls]), np.array([mu_p]), np.array([ls_p]))
    m = gauss.masses(*args)
    assert m.min() >= 0 and int(m.sum()) == 1 << CDF_BITS
    check(gauss.posterior_table(*args))


def test_an_unused_latent_costs_almost_nothing(gauss):
    """q = p (a latent the model does not use): the bits got back nearly cancel the prior's."""
    q = gauss.posterior_table(np.zeros(1, np.int64), np.zeros(1, np.int64))
    assert kl_bits(q, gauss.prior_table(1))[0] < 1e-3
    # a posterior equal to a non-standard prior is uniform over that prior's bins too
    mu_p, ls_p = quantize_params([1.5], [np.log(0.2)])
    q = gauss.posterior_table(mu_p, ls_p, mu_p, ls_p)
    assert kl_bits(q, gauss.prior_table(1))[0] < 1e-3


def test_discretized_kl_is_the_continuous_kl(gauss):
    """Bins of equal prior mass: the discrete KL approaches the continuous one wherever the
    posterior spans many bins (and little of it lies in the outermost ones, whose width the
    discretization cannot see); a posterior narrower than its bin costs the bin's P bits."""
    mu = np.array([0.5, -1.2, 0.0, 1.0, 0.3])
    sigma = np.array([0.3, 0.05, 0.2, 0.9, 0.8])
    q = gauss.posterior_table(*quantize_params(mu, np.log(sigma)))
    got = kl_bits(q, gauss.prior_table(len(mu)))
    np.testing.assert_allclose(got, continuous_kl_bits(mu, sigma), rtol=0.02, atol=0.02)
    centre = NormalDist().inv_cdf(700.5 / gauss.bins)  # mu's rounding (2^-10) stays inside the bin
    narrow = gauss.posterior_table(*quantize_params([centre], [np.log(1e-4)]))
    assert kl_bits(narrow, gauss.prior_table(1))[0] == pytest.approx(BITS, abs=0.01)


def test_masses_match_the_float_discretization(gauss):
    normal = NormalDist()
    edges = [normal.inv_cdf(k / gauss.bins) for k in range(1, gauss.bins)]
    for mu, sigma in [(0.0, 1.0), (0.7, 0.25), (-2.0, 0.02), (1.0, 3.0)]:
        ref = np.diff([0.0, *(NormalDist(mu, sigma).cdf(e) for e in edges), 1.0])
        got = gauss.masses(*quantize_params([mu], [np.log(sigma)]))[0] / 2.0**CDF_BITS
        # the parameters are rounded (1/1024 and 1/64 nat), the rest is interpolation
        assert np.abs(got - ref).max() < 2e-2 * max(ref.max(), 1e-3)


def test_rows_do_not_depend_on_the_batch(gauss):
    rng = np.random.default_rng(0)
    mu, ls = rng.integers(-4000, 4000, 64), rng.integers(LS_MIN, LS_MAX, 64)
    whole = gauss.posterior_table(mu, ls)
    for i in (0, 17, 63):
        np.testing.assert_array_equal(gauss.posterior_table(mu[i : i + 1], ls[i : i + 1])[0], whole[i])


def test_bin_centres_are_the_prior_quantiles(gauss):
    z = gauss.values(np.arange(gauss.bins))
    assert np.all(np.diff(z) >= 0) and z[0] < 0 < z[-1]  # near 0 neighbouring bins share a value at 2^-8
    normal = NormalDist()
    np.testing.assert_allclose(z / 2**Z_FRAC, [normal.inv_cdf((k + 0.5) / gauss.bins) for k in range(gauss.bins)],
                               atol=2**-Z_FRAC)
    mu_p, ls_p = quantize_params([1.0, -0.5], [np.log(2.0), np.log(0.5)])
    z = gauss.values(np.array([gauss.bins // 2, gauss.bins // 2]), mu_p, ls_p) / 2**Z_FRAC
    np.testing.assert_allclose(z, [1.0 + 2.0 * normal.inv_cdf(0.5 + 0.5 / gauss.bins),
                                   -0.5 + 0.5 * normal.inv_cdf(0.5 + 0.5 / gauss.bins)], atol=0.01)


def test_stored_tables_are_checked():
    luts = build_luts(4)
    assert ExactGaussian.stored({f"lut.gauss.{k}": v for k, v in luts.items()}).bins == 16
    broken = dict(luts, phi=luts["phi"][::-1].copy())
    with pytest.raises(ValueError, match="monotonic"):
        ExactGaussian(broken)
    with pytest.raises(ValueError, match="precision"):
        build_luts(17)


def test_bits_back_of_continuous_latents_costs_the_negative_elbo(gauss):
    """A linear-Gaussian toy: z ~ N(0, I) (4 latents), x in {0..15}^8 with p(x_d | z) centred on
    a linear map of z, q(z|x) Gaussian. Samples chained on one stack decode exactly, and the
    stack grows by the summed negative ELBO (one-sample estimates) plus the initial bits."""
    rng = np.random.default_rng(1)
    dims, latents, values = 8, 4, 16
    a = rng.normal(size=(dims, latents)) * 2.0

    def likelihood_table(z_bins: np.ndarray) -> np.ndarray:
        z = gauss.values(z_bins) / 2**Z_FRAC
        centre = 7.5 + a @ z
        w = np.exp(-0.5 * (np.arange(values)[None, :] - centre[:, None]) ** 2)
        return normalize(np.rint(w * 2**20).astype(np.int64))

    def posterior(x: np.ndarray) -> np.ndarray:
        mu = np.linalg.lstsq(a, x - 7.5, rcond=None)[0]
        return gauss.posterior_table(*quantize_params(mu, np.full(latents, np.log(0.3))))

    samples = [np.clip(np.rint(7.5 + a @ rng.normal(size=latents) + rng.normal(size=dims)), 0, 15).astype(np.int32)
               for _ in range(12)]
    coder = StackCoder()
    net = initial = 0.0
    for x in samples:
        _, stats = bits_back_push(coder, posterior(x), lambda z, x=x: [(x, likelihood_table(z))],
                                  gauss.prior_table(latents))
        net += stats.net_bits
        initial += stats.initial_bits
    size = coder.num_bits()
    assert initial > 0  # the first sample found an empty stack
    assert abs(size - (net + initial)) < 64 + 0.005 * size
    for x in reversed(samples):
        _, got, _ = bits_back_pop(coder, gauss.prior_table(latents),
                                  lambda z: table_decoder(likelihood_table(z)), posterior)
        np.testing.assert_array_equal(got, x)
    assert coder.is_empty()
    assert bits(np.zeros(1, np.int32), gauss.prior_table(1)) == pytest.approx(BITS)
