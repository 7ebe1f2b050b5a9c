"""One model under every inference: MAP (SVI + AutoDelta), Laplace and NUTS all evaluate the
log density of ``pn.wppm_model`` itself, never a second formula."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density, potential_energy

import psyphy_numpyro as pn
from psyphy_numpyro.inference.svi import lbfgs, map_svi, whitened_adam

MODEL = pn.WPPM(input_dim=2, basis_degree=2, num_samples=16, estimator="reparam")
TRUTH = MODEL.sample_prior(3)


def _data(n, key):
    return pn.simulate_experiment(MODEL, TRUTH, n, key=key)


def test_map_is_built_from_numpyro_svi_with_an_autodelta_guide():
    from numpyro.infer import SVI
    from numpyro.infer.autoguide import AutoDelta

    problem = pn.MAP(MODEL, lbfgs())
    assert isinstance(problem.svi, SVI) and isinstance(problem.svi.guide, AutoDelta)
    # one SVI object per configuration: its compiled programs are reused
    assert map_svi(MODEL, lbfgs()) is problem.svi
    assert map_svi(MODEL, whitened_adam()) is not problem.svi


def test_svi_map_is_a_stationary_point_of_the_models_log_density():
    """L-BFGS through SVI on fixed noise ends where the gradient of wppm_model's own
    log_density (same noise) vanishes: the optimum of the one model, found by NumPyro.
    (The smooth "cv" estimator: "reparam" averages near-steps, whose fixed-noise loss is
    rough at the scale of the bandwidth.)"""
    model = MODEL.replace(estimator="cv")
    data = _data(200, 21)
    problem = pn.MAP(model, lbfgs())
    trials = problem.trials(data)
    noise = model.fresh_noise(jax.random.PRNGKey(5), (trials.stimuli.shape[0],))
    start = problem.params(problem.init_z(jax.random.split(jax.random.PRNGKey(0))[0]))
    params, _, losses = problem.run(jax.random.PRNGKey(0), data, 150, noise=noise)
    assert losses[-1] < losses[0]
    fn = partial(pn.wppm_model, config=model, noise=noise, weights=trials.weights)

    def grad(W):  # gradient of the log joint, in units of each weight's prior sd
        g = jax.grad(lambda w: log_density(fn, (trials.stimuli, trials.responses), {},
                                           {"W": w})[0])(jnp.asarray(W))
        return np.asarray(g) * model.prior_std()

    g0, g1 = np.linalg.norm(grad(start["W"])), np.linalg.norm(grad(params["W"]))
    assert g1 < 1e-2 * g0, (g0, g1)


def test_the_default_fit_is_deterministic_and_equals_a_seed_given_as_a_key():
    data = _data(150, 22)
    kw = {"num_restarts": 2, "steps": 40, "progress": False}
    a = pn.fit_map(data, MODEL, seed=7, **kw)
    b = pn.fit_map(data, MODEL, seed=jax.random.PRNGKey(7), **kw)
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    assert np.isfinite(a.restart_losses).all()


@pytest.mark.slow  # a NUTS run: compile-heavy
def test_nuts_potential_is_the_models_potential_energy():
    """The potential NUTS recorded at its draws is numpyro's potential_energy of wppm_model
    (the surrogate configuration fit_mcmc reports) with the sampler's own arguments."""
    data = _data(120, 23)
    post = pn.fit_mcmc(data, MODEL, init=TRUTH, num_warmup=20, num_draws=10, num_chains=1,
                       progress=False)
    mcmc = post.mcmc
    recorded = np.asarray(mcmc.get_extra_fields()["potential_energy"])
    draws = mcmc.get_samples()["W"]
    model_fn = mcmc.sampler.model
    assert model_fn.func is pn.wppm_model
    for i in (0, len(draws) - 1):
        ours = potential_energy(model_fn, mcmc._args, mcmc._kwargs, {"W": draws[i]})
        np.testing.assert_allclose(float(ours), recorded[i], rtol=1e-5)


def test_the_blow_up_bound_is_on_the_scale_of_the_loss_it_judges():
    """fit_map drops a restart that ends above the largest loss W = 0 can have; that bound's
    prior term is the SVI loss's own (decentred weights), read here off the model on
    weightless trials."""
    import math

    from psyphy_numpyro import oddity
    from psyphy_numpyro.inference.restarts import _loss_bound
    from psyphy_numpyro.inference.svi import negative_log_posterior, pad_trials

    data = _data(100, 24)
    trials = pad_trials(data)
    noise = MODEL.fresh_noise(jax.random.PRNGKey(1), (trials.stimuli.shape[0],))
    zero = jnp.zeros(MODEL.weight_shape)
    prior_only = negative_log_posterior(MODEL, zero, trials._replace(weights=trials.weights * 0),
                                        jax.random.PRNGKey(0), noise=noise)
    bound = _loss_bound(MODEL, 100)
    np.testing.assert_allclose(bound - 100 * (0.1 - math.log(oddity.P_EPS)), float(prior_only),
                               rtol=1e-5)
    at_zero = negative_log_posterior(MODEL, zero, trials, jax.random.PRNGKey(0), noise=noise)
    assert float(at_zero) <= bound


@pytest.mark.parametrize("lapse", [0.0, pytest.param("learn", marks=pytest.mark.slow)])
def test_the_reported_nll_is_the_loss_less_its_prior_term(lapse, capsys):
    """fit.final_nll (reported as nll_per_trial by describe, the CLI and the progress bar) is
    the SVI loss less the prior term, read here off the model on weightless trials, and is
    the fit's own negative log-likelihood: positive, whatever the sign of the loss."""
    from psyphy_numpyro.inference.svi import (
        negative_log_posterior,
        negative_log_prior,
        pad_trials,
        to_whitened,
    )

    # the default "cv" estimator: its loss is close to the exact log-likelihood ("reparam" at
    # 16 samples overstates it, p(correct) being a multiple of 1/16)
    model = MODEL.replace(basis_degree=1, lapse_rate=lapse, estimator="cv", num_samples=64)
    data = _data(150, 25)
    fit = pn.fit_map(data, model, steps=40, num_restarts=1, progress=True)
    # the progress bar's nll_per_trial: the same quantity, positive
    import re

    shown = re.findall(r"nll_per_trial=([-0-9.]+)", capsys.readouterr().err)
    assert shown and float(shown[-1]) > 0
    assert float(shown[-1]) == pytest.approx(fit.nll_per_trial, rel=0.05)
    z = to_whitened(model, fit.params)
    trials = pad_trials(data)
    noise = model.fresh_noise(jax.random.PRNGKey(1), (trials.stimuli.shape[0],))
    prior_only = negative_log_posterior(model, z, trials._replace(weights=trials.weights * 0),
                                        jax.random.PRNGKey(0), noise=noise)
    np.testing.assert_allclose(float(negative_log_prior(model, z)), float(prior_only),
                               rtol=1e-5)
    assert fit.final_nll == pytest.approx(fit.final_loss - float(prior_only), rel=1e-5)
    nll = -float(np.sum(fit.log_likelihood(num_samples=256)))  # another estimator draw
    assert fit.final_nll == pytest.approx(nll, rel=0.02) and fit.final_nll > 0
    assert fit.nll_per_trial == pytest.approx(fit.final_nll / len(data))
    text = "\n".join(fit.describe())
    assert f"negative log-likelihood: {fit.nll_per_trial:.4f} per trial" in text
    p = data.responses.mean()
    assert f"a constant p(correct) = {p:.3f} gives " in text
    # a point fit made from parameters has no recorded loss: no number that looks wrong
    bare = pn.MAPFit.from_params(model, fit.params, data)
    assert np.isnan(bare.nll_per_trial)
