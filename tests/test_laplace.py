"""fit_laplace: inverse curvature, rotation handling, draws interface."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

import psyphy_numpyro as pn
from psyphy_numpyro.laplace import negative_log_joint, rotation_tangents
from psyphy_numpyro.mcmc import surrogate_noise


def _data(model, n, seed=0):
    truth = model.sample_prior(seed)
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-1, 1, (n, model.input_dim))
    comp = np.clip(ref + rng.normal(0, 0.2, ref.shape), -1, 1)
    return truth, pn.simulate_trials(model, truth, ref, comp, key=seed + 1)


@pytest.fixture(scope="module")
def tiny():
    model = pn.WPPM(input_dim=1, basis_degree=2, extra_dims=0, num_samples=64)
    _, data = _data(model, 400)
    fit = pn.fit_map(data, model, steps=400, num_restarts=1, progress=False)
    return model, data, fit


def test_laplace_covariance_is_inverse_hessian(tiny):
    model, data, fit = tiny
    # the deterministic (table) negative log joint and its exact minimum near the MAP
    f = negative_log_joint(model, jnp.asarray(data.stimuli, jnp.float32),
                           jnp.asarray(data.responses), surrogate_noise(model, len(data), 0, 0))
    shape = fit.params["W"].shape
    fw = jax.jit(lambda w: f(w.reshape(shape)))
    res = minimize(lambda w: float(fw(jnp.asarray(w, jnp.float32))),
                   np.asarray(fit.params["W"], np.float64).ravel(),
                   jac=lambda w: np.asarray(jax.grad(fw)(jnp.asarray(w, jnp.float32)), np.float64),
                   method="BFGS")
    mode = dataclasses.replace(fit, params={"W": jnp.asarray(res.x.reshape(shape), jnp.float32)})
    lf = pn.fit_laplace(data, model, init=mode, curvature="hessian", hessian_samples=0)
    # independent: jax.hessian of the NumPyro log joint on the same deterministic likelihood
    W0 = mode.params["W"]
    H = np.asarray(jax.hessian(fw)(W0.reshape(-1)), np.float64)
    assert np.linalg.eigvalsh(H).min() > 0  # a proper mode for this tiny model
    np.testing.assert_allclose(lf.cov, np.linalg.inv(H), rtol=2e-3, atol=1e-12)
    assert lf.num_floored == 0
    # the draws have that covariance and are centred at the MAP
    draws = lf.samples["W"].reshape(lf.num_draws, -1).astype(np.float64)
    np.testing.assert_allclose(np.cov(draws.T), lf.cov, rtol=0.15, atol=1e-3 * lf.cov.max())
    np.testing.assert_allclose(lf.mean, mode.params["W"])


def test_fisher_curvature_is_positive_definite_and_tight(tiny):
    model, data, fit = tiny
    lf = pn.fit_laplace(data, model, init=fit)
    assert lf.curvature == "fisher"
    ev = np.linalg.eigvalsh(lf.cov)
    assert ev.min() > 0
    # 400 trials pin the field far below the prior's spread
    assert ev.max() < 0.5 * model.variance_scale


@pytest.mark.slow
def test_rotation_directions_are_flat_and_projected_out():
    model = pn.WPPM(input_dim=2, basis_degree=1, extra_dims=1)
    W = np.asarray(model.sample_prior(3)["W"], np.float64)
    T = rotation_tangents(W)
    assert T.shape == (W.size, 3)  # m (m - 1) / 2 with m = 3
    np.testing.assert_allclose(T.T @ T, np.eye(3), atol=1e-10)
    # moving along a tangent changes Sigma only to second order
    x = np.array([[0.2, -0.4]])
    S0 = np.asarray(model.covariance({"W": W}, x), np.float64)
    step = 1e-3 * T[:, 0].reshape(W.shape)
    S1 = np.asarray(model.covariance({"W": W + step}, x), np.float64)
    assert np.abs(S1 - S0).max() < 1e-5
    _, data = _data(model, 300, seed=2)
    fit = pn.fit_map(data, model, steps=300, num_restarts=1, progress=False)
    lf = pn.fit_laplace(data, model, init=fit, num_draws=200)
    Tm = rotation_tangents(fit.params["W"])
    # no posterior spread along the orbit of the MAP
    assert np.abs(Tm.T @ lf.cov @ Tm).max() < 1e-10 * np.abs(lf.cov).max() + 1e-14
    assert lf.covariance(x).shape == (200, 1, 2, 2)
    assert lf.p_correct(x, x + 0.05).shape == (200, 1)


def test_laplace_rejects_bad_arguments(tiny):
    model, data, fit = tiny
    with pytest.raises(ValueError, match='curvature must be "fisher" or "hessian"'):
        pn.fit_laplace(data, model, init=fit, curvature="exact")
    with pytest.raises(TypeError, match="init must be a MAPFit"):
        pn.fit_laplace(data, model, init={"W": fit.params["W"]})
