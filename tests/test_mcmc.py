"""fit_mcmc (NUTS), ArviZ InferenceData for every fit type, LOO/compare, NetCDF."""

import warnings
from functools import partial

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density
from scipy.stats import norm

import psyphy_numpyro as pn
from psyphy_numpyro.mcmc import surrogate_noise
from psyphy_numpyro.plotting import grid_points


def _simulate(model, truth, n, seed, radius=(1.0, 4.0)):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-1, 1, (n, model.input_dim))
    comp = pn.comparisons_at_radius(model, truth, ref, rng.uniform(*radius, n), key=seed)
    return pn.simulate_trials(model, truth, ref, comp, key=seed + 1)


@pytest.fixture(scope="module")
def small_nuts():
    model = pn.WPPM(input_dim=2, basis_degree=1, num_samples=32)
    truth = model.sample_prior(2)
    data = _simulate(model, truth, 300, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = pn.fit_mcmc(data, model, num_warmup=100, num_draws=100, num_chains=2,
                          seed=1, progress=False, steps=200)
    return model, data, fit


@pytest.mark.parametrize("samples", [pytest.param(0, marks=pytest.mark.slow), 8])
def test_surrogate_log_likelihood_is_deterministic_and_the_documented_one(samples):
    model = pn.WPPM(input_dim=2, basis_degree=1)
    data = _simulate(model, model.sample_prior(0), 50, seed=3)
    noise = surrogate_noise(model, len(data), samples, seed=4)
    assert noise.shape == (50, 2, 2, samples)
    np.testing.assert_array_equal(noise, surrogate_noise(model, len(data), samples, seed=4))
    W = model.sample_prior(5)
    fn = partial(pn.wppm_model, config=model, noise=noise)
    args = (jnp.asarray(data.stimuli, jnp.float32), jnp.asarray(data.responses))
    a = float(log_density(fn, args, {}, W)[0])
    assert np.isfinite(a) and a == float(log_density(fn, args, {}, W)[0])
    # the surrogate's likelihood: prior (scipy) plus Bernoulli of the table or of the
    # fixed-noise estimate, and a different seed moves it only when there is noise
    other = surrogate_noise(model, len(data), samples, seed=5)
    b = float(log_density(partial(pn.wppm_model, config=model, noise=other), args, {}, W)[0])
    assert (a == b) if samples == 0 else (a != b and abs(a - b) < 0.05 * abs(a))
    if samples == 0:
        m = model.replace(estimator="table")
        p = np.asarray(m.p_correct(W, data.ref, data.comparison, key=0), np.float64)
        y = data.responses
        expect = (norm.logpdf(np.asarray(W["W"]), scale=model.prior_std()).sum()
                  + np.sum(y * np.log(p) + (1 - y) * np.log1p(-p)))
        assert a == pytest.approx(expect, rel=1e-5)


def test_fixed_noise_cv_density_is_smooth():
    """With fixed draws, "cv" (radius integrated in closed form) gives a smooth
    log density along a line in W; "reparam" on the same draws is a sum of
    near-steps. Second differences on a fine grid measure the roughness."""
    model = pn.WPPM(input_dim=2, basis_degree=2)
    truth = model.sample_prior(0)
    data = _simulate(model, truth, 200, seed=3)
    args = (jnp.asarray(data.stimuli, jnp.float32), jnp.asarray(data.responses))
    direction = model.sample_prior(9)["W"]
    ts = jnp.linspace(-0.05, 0.05, 201)
    rough = {}
    for est in ["cv", "reparam"]:
        m = model.replace(estimator=est)
        fn = partial(pn.wppm_model, config=m, noise=surrogate_noise(m, len(data), 16, seed=4))
        line = jax.jit(jax.vmap(
            lambda t, fn=fn: log_density(fn, args, {}, {"W": truth["W"] + t * direction})[0]))
        rough[est] = float(np.abs(np.diff(np.asarray(line(ts), np.float64), 2)).max())
    assert rough["cv"] < rough["reparam"] / 20, rough


@pytest.mark.slow  # one NUTS run shared by these three (about 40 s to set up)
def test_mcmc_fit_interface(small_nuts):
    model, data, fit = small_nuts
    assert fit.draws.shape == (2, 100) + model.weight_shape
    assert fit.samples["W"].shape == (200,) + model.weight_shape
    x = np.array([[0.0, 0.0], [0.5, -0.5]])
    assert fit.covariance(x).shape == (200, 2, 2, 2)
    p = fit.p_correct(x, x + 0.1)
    assert p.shape == (200, 2) and np.all((p > 0) & (p < 1))
    assert fit.surrogate["num_samples"] == 0 and 0 <= fit.surrogate["rms_error"] < 0.1
    table = fit.summary()
    assert {"mean", "sd", "r_hat", "ess_bulk"} <= set(table.columns)
    assert table.index[0].startswith("Sigma[")


@pytest.mark.slow  # one NUTS run shared by these three (about 40 s to set up)
def test_mcmc_inference_data(small_nuts, tmp_path):
    model, data, fit = small_nuts
    idata = fit.to_arviz()
    for group in ("posterior", "sample_stats", "observed_data", "log_likelihood",
                  "constant_data"):
        assert group in idata.groups()
    assert idata.unconstrained_posterior["W"].dims == (
        "chain", "draw", "basis_0", "basis_1", "stimulus_dim", "embedding_dim")
    for stat in ("diverging", "tree_depth", "step_size", "energy", "acceptance_rate"):
        assert idata.sample_stats[stat].shape == (2, 100), stat
    assert idata.log_likelihood["y"].shape == (2, 100, len(data))
    np.testing.assert_array_equal(idata.constant_data["comparison"].values, data.comparison)
    assert idata.posterior.attrs["inference"] == "nuts"
    # NetCDF round trip is lossless
    path = tmp_path / "fit.nc"
    idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    for group in idata.groups():
        for name, var in getattr(idata, group).data_vars.items():
            np.testing.assert_array_equal(getattr(back, group)[name].values, var.values)
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo)


def test_mcmc_rejects_bad_arguments():
    model = pn.WPPM(input_dim=2, basis_degree=1, num_samples=32)
    data = pn.TrialData(np.random.default_rng(0).uniform(-0.5, 0.5, (20, 2, 2)), np.ones(20))
    with pytest.raises(ValueError, match="chain_method must be one of"):
        pn.fit_mcmc(data, model, chain_method="threads")
    with pytest.raises(ValueError, match="target_accept_prob must be in"):
        pn.fit_mcmc(data, model, target_accept_prob=1.5)
    with pytest.raises(TypeError, match="init must be a MAPFit"):
        pn.fit_mcmc(data, model, init="map")
    with pytest.raises(ValueError, match='estimator "cv" or "reparam"'):
        pn.fit_mcmc(data, model.replace(estimator="mc"), init=model.sample_prior(0),
                    surrogate_samples=16)


@pytest.mark.slow
def test_compare_prefers_the_well_specified_model():
    """Two MAP + Laplace fits and LOO on 1 500 trials (about 75 s on 2 cores)."""
    rich = pn.WPPM(input_dim=2, basis_degree=2, num_samples=64)
    truth = rich.sample_prior(11)
    data = _simulate(rich, truth, 1500, seed=5)
    fits = {}
    for name, m in {"degree2": rich, "degree0": rich.replace(basis_degree=0)}.items():
        mp = pn.fit_map(data, m, steps=800, num_restarts=2, progress=False)
        fits[name] = pn.fit_laplace(data, m, init=mp, num_draws=100).to_arviz()
        assert fits[name].posterior.attrs["inference"] == "laplace"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare(fits)
    assert table.index[0] == "degree2", table
    assert table.loc["degree0", "elpd_diff"] > 2 * table.loc["degree0", "dse"], table


@pytest.mark.slow
def test_nuts_recovers_known_field_with_calibrated_intervals():
    """basis_degree 2, 1 500 trials, 2 chains, plus threshold intervals (about 2 min)."""
    model = pn.WPPM(input_dim=2, basis_degree=2, num_samples=64)
    truth = model.sample_prior(4)
    data = _simulate(model, truth, 1500, seed=1)
    fit = pn.fit_mcmc(data, model, num_warmup=300, num_draws=300, num_chains=2, seed=0,
                      progress=False, steps=800)
    idata = fit.to_arviz(log_likelihood=False)
    rhat = float(az.rhat(idata, var_names=["Sigma"])["Sigma"].max())
    div = fit.divergences / fit.num_draws
    grid = grid_points(7, -1.0, 1.0)
    S = np.asarray(fit.covariance(grid))
    S_true = np.asarray(model.covariance(truth, grid))
    lo, hi = np.percentile(S, 5, axis=0), np.percentile(S, 95, axis=0)
    coverage = float(((S_true >= lo) & (S_true <= hi)).mean())
    # posterior threshold intervals (90%) contain the truth's thresholds on most rays
    refs = grid_points(3, -0.5, 0.5)
    th = pn.thresholds(fit, refs, num_directions=8, num_draws=200)
    th_true = pn.thresholds((model, truth), refs, num_directions=8)
    lo, hi = th.interval
    valid = np.isfinite(th_true.lengths) & np.isfinite(lo) & np.isfinite(hi)
    inside = (th_true.lengths >= lo) & (th_true.lengths <= hi)
    th_coverage = float(inside[valid].mean())
    msg = (f"r_hat {rhat:.3f}, divergences {div:.1%}, 90% coverage {coverage:.2f}, "
           f"threshold coverage {th_coverage:.2f} on {int(valid.sum())} rays")
    assert rhat < 1.05, msg
    assert div < 0.02, msg
    assert coverage > 0.75, msg
    assert valid.sum() >= 60, msg
    assert th_coverage > 0.6, msg


@pytest.mark.slow  # one NUTS run shared by these three (about 40 s to set up)
def test_posterior_predictive_and_arviz_plots(small_nuts, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, data, fit = small_nuts
    idata = fit.to_arviz(log_likelihood=False, posterior_predictive=True)
    assert "log_likelihood" not in idata.groups()
    y_rep = idata.posterior_predictive["y"].values
    assert y_rep.shape == (2, 100, len(data)) and set(np.unique(y_rep)) <= {0, 1}
    # replicated proportion correct brackets the observed one
    lo, hi = np.percentile(y_rep.mean(-1), [1, 99])
    assert lo <= data.responses.mean() <= hi
    axes = az.plot_trace(idata, var_names=["Sigma"], coords={"grid_point": [0]})
    assert axes.shape[1] == 2
    plt.savefig(tmp_path / "trace.png")
    ax = az.plot_rank(idata, var_names=["Sigma"], coords={"grid_point": [0]})
    assert np.size(ax) == 3  # the unique entries xx, xy, yy
    plt.close("all")
