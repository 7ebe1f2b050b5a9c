"""fit_laplace and fit_mcmc of a model carrying an informative weight prior
(``WPPM.with_prior``): both evaluate ``wppm_model`` with ``W ~ N(mean, std^2)``, so a tight
prior far from 0 holds their posteriors at its mean and its precision enters their
curvature and potential. Every assertion here fails if the prior were replaced by the default
zero-mean one."""

import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density
from scipy.stats import norm

import psyphy_numpyro as pn
from psyphy_numpyro.estimators import surrogate_model, surrogate_noise
from psyphy_numpyro.inference.svi import pad_trials

# one stimulus axis, no extra dimensions: m = 1, so no rotation directions are projected out
# and the Laplace covariance is the plain inverse curvature
BASE = pn.WPPM(input_dim=1, basis_degree=2, extra_dims=0, num_samples=16)
SD = BASE.prior_std()
# the prior's mean: 1.5 default prior sds from 0 in every entry, i.e. 15 of its own sds
MEAN = 1.5 * SD * np.array([1.0, -1.0, 1.0]).reshape(BASE.weight_shape)
PRIOR = pn.WeightPrior(MEAN, 0.1 * SD, "test")
TIGHT = BASE.with_prior(PRIOR)


def _data(n, seed=0):
    """``n`` trials simulated from a field far from the prior's mean (the default model's
    draw), so the data pull away from it."""
    truth = BASE.sample_prior(seed + 7)
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-1, 1, (n, 1))
    comp = np.clip(ref + rng.normal(0, 0.3, ref.shape), -1, 1)
    return truth, pn.simulate_trials(BASE, truth, ref, comp, key=seed + 1)


@pytest.fixture(scope="module")
def few():
    """Twelve trials: both Laplace tests share their padded size, so their programs."""
    return _data(12, seed=2)[1]


def test_laplace_with_a_tight_prior_and_few_trials_is_nearly_the_prior(few):
    # fit_map with the prior (one restart: a cheaper program than fit_laplace's default
    # MAP), then the Gaussian at its MAP
    mp = pn.fit_map(few, TIGHT, steps=100, num_restarts=1, seed=0, progress=False)
    lf = pn.fit_laplace(few, TIGHT, init=mp, num_draws=2000, seed=0)
    assert lf.model.weight_prior == PRIOR and mp.model.weight_prior == PRIOR
    assert lf.num_floored == 0
    std = PRIOR.std.ravel()
    # the MAP (the Gaussian's mean) sits at the prior's mean: 15 of its sds from 0
    np.testing.assert_array_less(np.abs(lf.mean - MEAN).ravel(), 0.3 * std)
    # the spread is the prior's: twelve trials barely add precision, and never remove it
    ratio = np.sqrt(np.diag(lf.cov)) / std
    assert np.all((ratio > 0.8) & (ratio <= 1.0 + 1e-6)), ratio  # default prior: ~10
    draws = lf.samples["W"].reshape(lf.num_draws, -1).astype(np.float64)
    np.testing.assert_allclose(draws.mean(0), lf.mean.ravel(), atol=0.1 * std.max())
    np.testing.assert_allclose(draws.std(0) / std, ratio, rtol=0.1)


def test_laplace_curvature_holds_the_priors_precision(few):
    """At the same point, on the same data and noise, the tight prior's curvature exceeds the
    default prior's by exactly the difference of their precisions; and with
    ``curvature="hessian"`` the covariance is the inverse ``jax.hessian`` of NumPyro's
    ``log_density`` of ``wppm_model`` with the prior."""
    data = few
    at = pn.MAPFit.from_params(BASE, {"W": jnp.asarray(0.5 * MEAN, jnp.float32)})
    tight = pn.fit_laplace(data, TIGHT, init=at, num_draws=10)
    blank = pn.fit_laplace(data, BASE, init=at, num_draws=10)
    assert tight.num_floored == 0 and blank.num_floored == 0
    extra = np.linalg.inv(tight.cov) - np.linalg.inv(blank.cov)
    expect = np.diag(1.0 / PRIOR.std.ravel() ** 2 - 1.0 / SD.ravel() ** 2)
    np.testing.assert_allclose(extra, expect, rtol=1e-3, atol=1e-4 * expect.max())

    lf = pn.fit_laplace(data, TIGHT, init=at, curvature="hessian", hessian_samples=0,
                        num_draws=10)
    table = surrogate_model(TIGHT, 0)
    trials = pad_trials(data)
    noise = surrogate_noise(table, trials.stimuli.shape[0], 0, 0)
    fn = partial(pn.wppm_model, config=table, noise=noise, weights=trials.weights)

    def neg(w):
        return -log_density(fn, (trials.stimuli, trials.responses), {},
                            {"W": w.reshape(BASE.weight_shape)})[0]

    H = np.asarray(jax.jit(jax.hessian(neg))(at.params["W"].reshape(-1)), np.float64)
    np.testing.assert_allclose(lf.cov, np.linalg.inv(H), rtol=2e-3)


@pytest.mark.slow  # NUTS compiles for ~20 s
def test_nuts_with_a_tight_prior_samples_around_its_mean_on_the_models_potential():
    truth, data = _data(10, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # started at the field that made the data, 15 prior sds from the prior's mean
        fit = pn.fit_mcmc(data, TIGHT, init=truth, num_warmup=50, num_draws=50, num_chains=1,
                          seed=0, progress=False)
    assert fit.model.weight_prior == PRIOR
    draws = fit.samples["W"].reshape(fit.num_draws, -1).astype(np.float64)
    std = PRIOR.std.ravel()
    np.testing.assert_array_less(np.abs(draws.mean(0) - MEAN.ravel()), 0.75 * std)
    ratio = draws.std(0) / std
    assert np.all((ratio > 0.4) & (ratio < 1.6)), ratio

    # the potential NUTS recorded at its draws is -log_density of wppm_model with the prior
    # (the table surrogate fit_mcmc samples), on the sampler's own trials and noise
    mcmc = fit.mcmc
    recorded = np.asarray(mcmc.get_extra_fields()["potential_energy"], np.float64)
    config = mcmc.sampler.model.keywords["config"]
    assert config.weight_prior == PRIOR
    stimuli, responses = mcmc._args
    kw = {"noise": mcmc._kwargs["noise"], "weights": mcmc._kwargs["weights"]}
    table = surrogate_model(TIGHT, 0, fit.surrogate["bandwidth"])
    blank = surrogate_model(BASE, 0, fit.surrogate["bandwidth"])
    for i in (0, fit.num_draws - 1):
        W = mcmc.get_samples()["W"][i]
        ours = -float(log_density(partial(pn.wppm_model, config=table),
                                  (stimuli, responses), kw, {"W": W})[0])
        np.testing.assert_allclose(ours, recorded[i], rtol=1e-5)
        # and it differs from the default model's by the two priors' log densities (scipy)
        default = -float(log_density(partial(pn.wppm_model, config=blank),
                                     (stimuli, responses), kw, {"W": W})[0])
        w = np.asarray(W, np.float64)
        gap = (norm.logpdf(w, 0.0, SD).sum()
               - norm.logpdf(w, PRIOR.mean, PRIOR.std).sum())
        assert recorded[i] - default == pytest.approx(gap, rel=1e-4, abs=1e-2)
