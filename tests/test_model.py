"""The NumPyro model: sites, log density, configuration checks."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from numpyro.infer.util import log_density
from scipy.stats import norm

import psyphy_numpyro as pn


def _data(model, n=60, seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-0.9, 0.9, (n, model.input_dim))
    comp = np.clip(ref + rng.normal(0, 0.15, ref.shape), -1, 1)
    return pn.simulate_trials(model, model.sample_prior(seed), ref, comp, key=seed)


@pytest.mark.parametrize("estimator", ["cv", "reparam", "mc"])
def test_log_density_equals_prior_plus_bernoulli(estimator):
    model = pn.WPPM(input_dim=2, basis_degree=2, estimator=estimator, num_samples=32)
    data = _data(model)
    W = np.asarray(model.sample_prior(11)["W"], dtype=np.float64)
    noise = model.draw_noise(3, len(data))
    stim = jnp.asarray(data.stimuli, jnp.float32)
    y = jnp.asarray(data.responses)
    lp, trace = log_density(pn.wppm_model, (stim, y), {"config": model, "noise": noise},
                            {"W": jnp.asarray(W, jnp.float32)})
    assert set(trace) == {"W", "trials", "y"}
    assert trace["trials"]["type"] == "plate"
    # hand computation: independent normal prior + Bernoulli with the same noise
    sd = model.prior_std()
    prior = norm.logpdf(W, scale=sd).sum()
    p = np.asarray(model.p_correct({"W": W}, data.ref, data.comparison, noise=noise),
                   dtype=np.float64)
    yy = data.responses
    lik = np.sum(yy * np.log(p) + (1 - yy) * np.log1p(-p))
    np.testing.assert_allclose(float(lp), prior + lik, rtol=2e-5)
    # NumPyro's pointwise log-likelihood of the model is the same Bernoulli term
    from numpyro.infer.util import log_likelihood

    fn = partial(pn.wppm_model, config=model, noise=noise)
    ll = log_likelihood(fn, {"W": jnp.asarray(W, jnp.float32)}, stim, y, batch_ndims=0)["y"]
    np.testing.assert_allclose(float(jnp.sum(ll)), lik, rtol=2e-5)


def test_model_draws_fresh_noise_under_seed_and_refuses_without():
    model = pn.WPPM(input_dim=1, basis_degree=2)
    data = _data(model, n=30)
    stim = jnp.asarray(data.stimuli, jnp.float32)
    W = model.sample_prior(0)
    lps = [
        float(log_density(numpyro.handlers.seed(pn.wppm_model, k), (stim, data.responses),
                          {"config": model}, W)[0])
        for k in range(2)
    ]
    assert lps[0] != lps[1]  # fresh Monte Carlo noise per evaluation
    with pytest.raises(ValueError, match="without fixed noise and outside a numpyro.handlers.seed"):
        log_density(pn.wppm_model, (stim, data.responses), {"config": model}, W)


def test_prior_predictive_samples_responses():
    model = pn.WPPM(input_dim=2, basis_degree=1)
    data = _data(model, n=40)
    pred = numpyro.infer.Predictive(pn.wppm_model, num_samples=3)
    out = pred(jax.random.PRNGKey(0), jnp.asarray(data.stimuli, jnp.float32), config=model)
    assert out["W"].shape == (3,) + model.weight_shape
    assert out["y"].shape == (3, 40)
    assert set(np.unique(out["y"])) <= {0, 1}


def test_subsampled_plate_rescales_likelihood():
    model = pn.WPPM(input_dim=2, basis_degree=1, num_samples=16)
    data = _data(model, n=50)
    stim = jnp.asarray(data.stimuli, jnp.float32)
    noise = model.draw_noise(0, 50)
    W = model.sample_prior(1)
    seeded = numpyro.handlers.seed(pn.wppm_model, 0)
    _, tr = log_density(seeded, (stim, data.responses),
                        {"config": model, "noise": noise, "subsample_size": 10}, W)
    assert tr["y"]["value"].shape == (10,)
    assert tr["y"]["scale"] == pytest.approx(5.0)


@pytest.mark.parametrize(
    "kwargs, exc, msg",
    [
        ({"input_dim": 4}, ValueError, "input_dim must be in \\[1, 3\\]"),
        ({"input_dim": 2.0}, TypeError, "input_dim must be an integer"),
        ({"basis_degree": -1}, ValueError, "basis_degree must be >= 0"),
        ({"extra_dims": -1}, ValueError, "extra_dims must be >= 0"),
        ({"num_samples": 0}, ValueError, "num_samples must be >= 1"),
        ({"variance_scale": 0.0}, ValueError, "variance_scale must be finite and > 0"),
        ({"decay_rate": 1.5}, ValueError, "decay_rate must be in \\(0, 1\\]"),
        ({"diag_term": -1e-3}, ValueError, "diag_term must be finite and >= 0"),
        ({"bandwidth": 0.0}, ValueError, "bandwidth must be finite and > 0"),
        ({"bandwidth": float("nan")}, ValueError, "bandwidth must be finite"),
        ({"estimator": "qmc"}, ValueError, "estimator must be one of"),
    ],
)
def test_bad_configuration_is_rejected(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        pn.WPPM(**kwargs)


def test_config_is_immutable_and_hashable():
    model = pn.WPPM()
    with pytest.raises(AttributeError):
        model.num_samples = 5
    assert hash(model) == hash(pn.WPPM())
    assert model.replace(num_samples=5).num_samples == 5


def test_readouts_reject_bad_points_and_params():
    model = pn.WPPM(input_dim=2)
    params = model.sample_prior(0)
    with pytest.raises(ValueError, match="outside the domain \\[-1, 1\\]"):
        model.covariance(params, jnp.array([[0.0, 1.5]]))
    with pytest.raises(ValueError, match="must have shape \\(\\.\\.\\., 2\\)"):
        model.covariance(params, jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN or Inf"):
        model.covariance(params, jnp.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="params\\['W'\\] has shape"):
        model.covariance({"W": jnp.zeros((3, 3, 2, 3))}, jnp.zeros((1, 2)))
    with pytest.raises(TypeError, match='dict with key "W"'):
        model.covariance(jnp.zeros(3), jnp.zeros((1, 2)))


@pytest.mark.slow
def test_float64_is_available_end_to_end():
    """float32 by default; under ``jax.enable_x64`` every stage runs in float64
    and agrees with the float32 result (same noise: to rounding; fresh noise:
    within Monte Carlo error)."""
    model = pn.WPPM(input_dim=2, basis_degree=2, num_samples=64)
    truth = model.sample_prior(0)
    data = pn.simulate_experiment(model, truth, 200, key=1)
    noise = np.asarray(model.draw_noise(0, len(data)))
    p32 = model.p_correct(truth, data.ref, data.comparison, noise=noise)
    ll32 = model.log_likelihood(truth, data)
    assert p32.dtype == jnp.float32 and ll32.dtype == jnp.float32
    with jax.enable_x64(True):
        truth64 = {"W": jnp.asarray(np.asarray(truth["W"]), jnp.float64)}
        p64 = model.p_correct(truth64, data.ref, data.comparison,
                              noise=noise.astype(np.float64))
        ll64 = model.log_likelihood(truth64, data)
        stim = jnp.asarray(data.stimuli, jnp.float64)
        fresh = model.fresh_noise(jax.random.PRNGKey(0), (len(data),), dtype=jnp.float64)
        fn = partial(pn.wppm_model, config=model, noise=fresh)
        grad = jax.grad(lambda w: log_density(fn, (stim, jnp.asarray(data.responses)), {},
                                              {"W": w})[0])(truth64["W"])
        assert p64.dtype == jnp.float64 and ll64.dtype == jnp.float64
        assert grad.dtype == jnp.float64 and np.all(np.isfinite(np.asarray(grad)))
    np.testing.assert_allclose(np.asarray(p64), np.asarray(p32), atol=1e-4)
    total32 = float(np.sum(np.asarray(ll32)))
    total64 = float(np.sum(np.asarray(ll64)))
    assert abs(total64 - total32) < 0.02 * abs(total32), (total32, total64)
