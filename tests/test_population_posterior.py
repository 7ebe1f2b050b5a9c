"""Laplace and NUTS posteriors of the population model (fit_population_laplace/_mcmc)."""

import jax
import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro.population_laplace import joint_weights

MODEL = pn.WPPM(input_dim=2, basis_degree=2, num_samples=16)
GRID = np.stack(np.meshgrid(np.linspace(-0.6, 0.6, 3), np.linspace(-0.6, 0.6, 3)),
                -1).reshape(-1, 2)


TAU = 0.3


def _truth(tau, k, seed=0):
    """The population's field ``W_pop / sqrt(1 + tau^2)`` and ``k`` observers' around it."""
    sd = MODEL.prior_std()
    W_pop = MODEL.sample_prior(seed)["W"]
    c = 1 / np.sqrt(1 + tau**2)
    Ws = [c * (W_pop + tau * sd * jax.random.normal(jax.random.PRNGKey(100 + i), sd.shape))
          for i in range(k)]
    return c * W_pop, Ws


def _observers(tau, sizes, seed=0):
    _, Ws = _truth(tau, len(sizes), seed)
    return [pn.simulate_experiment(MODEL, {"W": W}, n, key=jax.random.PRNGKey(10 + i))
            for i, (W, n) in enumerate(zip(Ws, sizes, strict=True))]


def _spread(fit):
    """Posterior standard deviation of every Sigma entry on the grid, (R, 2, 2)."""
    return np.std(np.asarray(fit.covariance(GRID)), axis=0)


@pytest.fixture(scope="module")
def datas():
    return _observers(TAU, [250, 250, 40])


@pytest.fixture(scope="module")
def pooled(datas):
    """A population point at the true weights (the Laplace route expands around any point;
    the fitted MAP is the slow tests' business)."""
    W_mean, Ws = _truth(TAU, len(datas))
    return pn.PopulationFit(
        population=pn.MAPFit.from_params(MODEL, {"W": W_mean}, pn.TrialData.concatenate(datas)),
        observers=[pn.MAPFit.from_params(MODEL, {"W": W}, d)
                   for W, d in zip(Ws, datas, strict=True)],
        tau=TAU, learned_tau=False, model=MODEL)


@pytest.fixture(scope="module")
def laplace(pooled):
    return pn.fit_population_laplace(init=pooled, num_draws=600, seed=0)


def test_members_are_gaussians_around_the_map(pooled, laplace):
    assert laplace.inference == "laplace" and pooled.inference == "map"
    assert isinstance(laplace.population, pn.LaplaceFit)
    for lap, m in zip([laplace.population, *laplace.observers],
                      [pooled.population, *pooled.observers], strict=True):
        assert isinstance(lap, pn.LaplaceFit) and lap.map_fit is m
        W = np.asarray(m.params["W"])
        assert np.allclose(lap.mean, W)
        assert lap.draws.shape == (1, 600) + MODEL.weight_shape
        # the draws scatter around the MAP with the stated covariance
        flat = lap.draws[0].reshape(600, -1)
        assert np.abs(flat.mean(0) - W.ravel()).max() < 4 * np.sqrt(np.diag(lap.cov)).max() / 20
        assert np.allclose(np.cov(flat.T), lap.cov, atol=0.25 * np.abs(lap.cov).max())
        assert np.linalg.eigvalsh(lap.cov).min() > -1e-8 * np.abs(lap.cov).max()
    # the members are marginals of one Gaussian: observer = (W_pop + delta) / sqrt(1 + tau^2)
    W_pop, delta = joint_weights(pooled)
    c = 1 / np.sqrt(1 + TAU**2)
    assert np.allclose(c * W_pop, pooled.population.params["W"], atol=1e-5)
    assert np.allclose(c * (W_pop + delta[2]), pooled.observers[2].params["W"], atol=1e-5)


def test_a_sparse_observer_borrows_precision_from_the_population(datas, pooled, laplace):
    alone = pn.fit_laplace(datas[2], MODEL, init=pooled.observers[2], num_draws=600, seed=0)
    pooled_spread, alone_spread = _spread(laplace.observers[2]), _spread(alone)
    # 40 trials alone against 40 trials in a population of 540 at tau = 0.3 (same point)
    assert np.median(pooled_spread / alone_spread) < 0.8


@pytest.mark.slow
def test_huge_tau_gives_the_independent_posteriors(datas):
    pop = pn.fit_population(datas[:2], MODEL, tau=30.0, seed=0, progress=False, steps=80)
    lap = pn.fit_population_laplace(init=pop, num_draws=600, seed=1)
    alone = pn.fit_laplace(datas[0], MODEL, init=pop.observers[0], num_draws=600, seed=1)
    ratio = _spread(lap.observers[0]) / _spread(alone)
    assert 0.75 < np.median(ratio) < 1.3


def test_laplace_saves_loads_and_goes_to_arviz(laplace, tmp_path):
    path = tmp_path / "pop.nc"
    laplace.save(path)
    back = pn.PopulationFit.load(path)
    assert back.inference == "laplace" and isinstance(back.observers[1], pn.LaplaceFit)
    assert np.allclose(back.observers[1].draws, laplace.observers[1].draws)
    assert np.allclose(back.population.cov, laplace.population.cov)
    assert np.allclose(back.observers[0].map_fit.params["W"], laplace.observers[0].mean)
    post = laplace.to_arviz(grid=GRID).posterior
    assert post["Sigma"].dims[:3] == ("chain", "draw", "observer")
    assert post.sizes["draw"] == 600 and post.sizes["observer"] == 3
    assert np.allclose(post["tau"], TAU)
    assert "laplace" in repr(laplace)
    lo, hi = pn.thresholds(laplace.observers[0], GRID[4:5]).interval  # the centre
    finite = np.isfinite(hi)
    assert finite.mean() > 0.5 and np.all(hi[finite] > lo[finite])


def test_bad_input_is_named(pooled):
    with pytest.raises(TypeError, match="init must be a PopulationFit"):
        pn.fit_population_laplace(init=pooled.observers[0])
    with pytest.raises(ValueError, match="data sets or init"):
        pn.fit_population_laplace()
    with pytest.raises(ValueError, match="num_draws"):
        pn.fit_population_laplace(init=pooled, num_draws=0)
    with pytest.raises(ValueError, match="need init=None"):
        pn.fit_population_laplace(init=pooled, steps=3)


@pytest.mark.slow
def test_nuts_samples_tau_and_every_field(datas, laplace, tmp_path):  # a fitted start
    learned = pn.fit_population(datas, MODEL, seed=0, progress=False, steps=80)
    fit = pn.fit_population_mcmc(init=learned, num_warmup=120, num_draws=120, num_chains=1,
                                 seed=0, progress=False)
    assert fit.inference == "nuts" and isinstance(fit.observers[0], pn.MCMCFit)
    assert fit.tau_draws.shape == (1, 120) and np.all(fit.tau_draws > 0)
    assert fit.tau == pytest.approx(np.median(fit.tau_draws))
    assert fit.observers[2].init_fit is learned.observers[2]
    assert fit.population.divergences <= 12
    # the population field is the observers' mean, draw by draw
    s = fit.observers[0].mcmc.get_samples()
    W_pop = np.asarray(s["W_pop"])
    assert np.allclose(fit.population.draws[0],
                       W_pop / np.sqrt(1 + np.asarray(s["tau"]) ** 2).reshape(-1, 1, 1, 1, 1),
                       atol=1e-5)
    # the sparse observer's spread is of the Laplace route's order
    ratio = np.median(_spread(fit.observers[2]) / _spread(laplace.observers[2]))
    assert 0.25 < ratio < 4.0
    path = tmp_path / "nuts.nc"
    fit.save(path)
    back = pn.PopulationFit.load(path)
    assert back.inference == "nuts" and np.allclose(back.tau_draws, fit.tau_draws)
    assert back.observers[0].divergences == fit.observers[0].divergences
    assert fit.to_arviz(grid=GRID).posterior["tau"].shape == (1, 120)
