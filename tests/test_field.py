"""Basis, covariance field and prior against psyphy and hand computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro import field

psyphy = pytest.importorskip("psyphy")


def _psyphy_model(d, degree=4, extra=1, diag=1e-4):
    from psyphy import WPPM, GaussianNoise, OddityTask, Prior

    prior = Prior(input_dim=d, basis_degree=degree, extra_embedding_dims=extra)
    return WPPM(prior, OddityTask(), GaussianNoise(), input_dim=d, extra_dims=extra,
                diag_term=diag)


def test_chebyshev_matches_psyphy_and_closed_form():
    from psyphy.utils.math import chebyshev_basis

    x = jnp.linspace(-1, 1, 17)
    ours = field.chebyshev(x, 6)
    np.testing.assert_allclose(ours, chebyshev_basis(x, 6), rtol=0, atol=1e-6)
    theta = np.arccos(np.asarray(x, dtype=np.float64))
    closed = np.cos(np.arange(7)[None, :] * theta[:, None])  # T_k(cos t) = cos(k t)
    np.testing.assert_allclose(ours, closed, atol=2e-6)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_covariance_matches_psyphy(d):
    ours = pn.WPPM(input_dim=d, basis_degree=3, extra_dims=1)
    theirs = _psyphy_model(d, degree=3)
    params = ours.sample_prior(jax.random.PRNGKey(d))
    assert params["W"].shape == theirs.init_params(jax.random.PRNGKey(0))["W"].shape
    x = jax.random.uniform(jax.random.PRNGKey(10 + d), (9, d), minval=-1, maxval=1)
    S = ours.covariance(params, x)
    U = ours.sqrt_covariance(params, x)
    for i in range(x.shape[0]):
        np.testing.assert_allclose(S[i], theirs.local_covariance(params, x[i]), rtol=1e-5,
                                   atol=1e-8)
        np.testing.assert_allclose(U[i], theirs._compute_sqrt(params, x[i]), rtol=1e-5,
                                   atol=1e-8)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_covariance_symmetric_positive_definite(d):
    model = pn.WPPM(input_dim=d, diag_term=1e-6)
    x = jax.random.uniform(jax.random.PRNGKey(0), (50, d), minval=-1, maxval=1)
    for k in range(5):
        S = np.asarray(model.covariance(model.sample_prior(k), x), dtype=np.float64)
        np.testing.assert_allclose(S, np.swapaxes(S, -1, -2), atol=1e-7)
        assert np.linalg.eigvalsh(S).min() > 0
    # batch shapes broadcast: (..., d) -> (..., d, d)
    assert model.covariance(model.sample_prior(0), x.reshape(5, 10, d)).shape == (5, 10, d, d)


def test_prior_moments_follow_decay():
    model = pn.WPPM(input_dim=2, basis_degree=3, extra_dims=1, variance_scale=4e-3,
                    decay_rate=0.4)
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    W = np.asarray(jax.vmap(lambda k: model.sample_prior(k)["W"])(keys), dtype=np.float64)
    a, b = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    expected = 4e-3 * 0.4 ** (a + b)
    var = W.var(axis=(0, 3, 4))
    # 4000 draws x 6 entries: relative standard error of a variance ~ sqrt(2/24000) = 0.9%
    np.testing.assert_allclose(var, expected, rtol=0.05)
    assert np.all(np.abs(W.mean(axis=(0, 3, 4))) < 4 * np.sqrt(expected / 24000))
    np.testing.assert_allclose(model.prior_std()[..., 0, 0] ** 2, expected, rtol=1e-12)


def test_prior_log_prob_matches_psyphy_up_to_constant():
    from psyphy import Prior

    model = pn.WPPM(input_dim=2)
    theirs = Prior(input_dim=2)
    W1, W2 = model.sample_prior(1)["W"], model.sample_prior(2)["W"]
    ours = model.prior().log_prob(W1) - model.prior().log_prob(W2)
    ref = theirs.log_prob({"W": W1}) - theirs.log_prob({"W": W2})
    np.testing.assert_allclose(ours, ref, rtol=1e-4)
