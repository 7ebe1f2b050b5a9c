"""The population model (hierarchical WPPM) and fit_population."""

import jax
import numpy as np
import numpyro.distributions as dist
import pytest
from numpyro.infer.util import log_density

import psyphy_numpyro as pn
from psyphy_numpyro.hierarchy import population_model
from psyphy_numpyro.noise import SharedNoise
from psyphy_numpyro.population_fit import PopulationFit

MODEL = pn.WPPM(input_dim=2, basis_degree=2, num_samples=16)
GRID = np.stack(np.meshgrid(np.linspace(-0.7, 0.7, 4), np.linspace(-0.7, 0.7, 4)),
                -1).reshape(-1, 2)


def _observers(tau, n=300, k=3, seed=0):
    """Observers drawn from the population model's own prior at deviation scale ``tau``."""
    sd = MODEL.prior_std()
    W_pop = MODEL.sample_prior(seed)["W"]
    c = 1 / np.sqrt(1 + tau**2)
    Ws = [c * (W_pop + tau * sd * jax.random.normal(jax.random.PRNGKey(100 + i), sd.shape))
          for i in range(k)]
    datas = [pn.simulate_experiment(MODEL, {"W": W}, n, key=jax.random.PRNGKey(10 + i))
             for i, W in enumerate(Ws)]
    return datas, Ws


def _field_gap(a, b):
    """Mean relative Frobenius distance of two fits' covariance fields on the grid."""
    Sa = np.asarray(a.covariance(GRID)).reshape(-1, 2, 2)
    Sb = np.asarray(b.covariance(GRID)).reshape(-1, 2, 2)
    return float(np.mean(np.linalg.norm(Sa - Sb, axis=(1, 2)) / np.linalg.norm(Sb, axis=(1, 2))))


@pytest.fixture(scope="module")
def data():
    return _observers(0.4)


@pytest.fixture(scope="module")
def shared(data):
    return pn.fit_population(data[0], MODEL, tau=1e-3, seed=0, progress=False, steps=100)


@pytest.fixture(scope="module")
def learned(data):
    return pn.fit_population(data[0], MODEL, seed=0, progress=False, steps=150)


def test_tiny_tau_is_one_shared_field(shared):
    W = [np.asarray(f.params["W"]) for f in shared.observers]
    pop = np.asarray(shared.population.params["W"])
    scale = np.abs(pop).max()
    assert all(np.abs(w - pop).max() < 0.02 * scale for w in W)
    assert shared.tau == pytest.approx(1e-3) and not shared.learned_tau


@pytest.mark.slow
def test_huge_tau_gives_the_independent_fits(data):
    huge = pn.fit_population(data[0], MODEL, tau=50.0, seed=0, progress=False, steps=150)
    alone = pn.fit_map(data[0], MODEL, seed=0, progress=False)
    gaps = [_field_gap(p, a) for p, a in zip(huge.observers, alone, strict=True)]
    pooled = pn.fit_population(data[0], MODEL, tau=1e-3, seed=0, progress=False, steps=100)
    assert max(gaps) < 0.15, gaps
    # and they are far from one shared field
    assert max(gaps) < 0.5 * max(_field_gap(p, a) for p, a in zip(pooled.observers, alone,
                                                                    strict=True))


@pytest.mark.slow
def test_learned_tau_is_between_and_pools(data, learned):
    datas, Ws = data
    # 300 trials of a degree-2 field say little about tau: only its range is checked here
    # (test_recovers_the_spread, slow tier, checks the value)
    assert learned.learned_tau and 0.0 < learned.tau < 3.0
    truth = [pn.MAPFit.from_params(MODEL, {"W": W}) for W in Ws]
    alone = pn.fit_map(datas, MODEL, seed=0, progress=False)
    err_pooled = np.mean([_field_gap(f, t) for f, t in zip(learned.observers, truth,
                                                           strict=True)])
    err_alone = np.mean([_field_gap(f, t) for f, t in zip(alone, truth, strict=True)])
    assert err_pooled < 1.1 * err_alone


def test_the_model_is_one_log_joint(data):
    """The population model at tau -> infinity has the independent models' likelihood."""
    datas, Ws = data
    trials = [pn.inference.pad_trials(d, 512) for d in datas]
    stim = np.stack([t.stimuli for t in trials])
    resp = np.stack([t.responses for t in trials])
    w = np.stack([t.weights for t in trials])
    noise = MODEL.fresh_noise(jax.random.PRNGKey(3), (len(datas), 512))
    sd = MODEL.prior_std()
    tau = 1e4
    c = 1 / np.sqrt(1 + tau**2)
    sites = {"W_pop": np.zeros(sd.shape),
             "delta": np.stack([np.asarray(W) / c for W in Ws])[:, None]}
    lp, _ = log_density(population_model, (stim, resp),
                        {"config": MODEL, "noise": noise, "weights": w, "tau": tau}, sites)
    total = 0.0
    for i, W in enumerate(Ws):
        one = SharedNoise(noise.z, noise.Q[i])  # observer i's trials, the shared block
        lp_i, _ = log_density(pn.wppm_model, (stim[i], resp[i]),
                              {"config": MODEL, "noise": one, "weights": w[i]}, {"W": W})
        total += float(lp_i) - float(MODEL.prior().log_prob(W))
    prior_pop = float(MODEL.prior().log_prob(np.zeros(sd.shape)))
    prior_delta = sum(float(dist.Normal(0, tau * sd).to_event(4).log_prob(np.asarray(W) / c))
                      for W in Ws)
    assert float(lp) == pytest.approx(total + prior_pop + prior_delta, rel=1e-5)


def test_readouts_save_load_and_arviz(shared, tmp_path):
    learned = shared
    dev = learned.deviation(GRID[:3], directions=pn.readout.unit_directions(2, 4))
    assert dev.shape == (3, 3, 4) and np.all(np.isfinite(dev))
    path = tmp_path / "pop.nc"
    learned.save(path)
    back = PopulationFit.load(path)
    assert back.tau == pytest.approx(learned.tau) and back.num_observers == 3
    for a, b in zip(back.observers, learned.observers, strict=True):
        np.testing.assert_allclose(np.asarray(a.params["W"]), np.asarray(b.params["W"]))
        assert len(a.data) == len(b.data)
    np.testing.assert_allclose(np.asarray(back.population.params["W"]),
                               np.asarray(learned.population.params["W"]))
    idata = learned.to_arviz()
    post = pn.arviz_io.group(idata, "posterior")
    assert post["Sigma"].sizes["observer"] == 3 and "Sigma_pop" in post and "tau" in post
    assert "population fit of 3 observers" in repr(learned)


def test_bad_input_is_named():
    d, _ = _observers(0.1, n=50, k=2)
    with pytest.raises(ValueError, match="at least two"):
        pn.fit_population(d[:1], MODEL)
    with pytest.raises(ValueError, match="tau"):
        pn.fit_population(d, MODEL, tau="often")
    with pytest.raises(ValueError, match="tau"):
        pn.fit_population(d, MODEL, tau=-1.0)


@pytest.mark.slow
def test_recovers_the_spread():
    """Four observers of 600 trials drawn at tau = 0.3 (the default degree-4 field): one
    ``tau`` for all (the per-observer scales' test is tests/test_population_outlier.py)."""
    model = pn.WPPM(input_dim=2)
    sd = model.prior_std()
    W_pop = model.sample_prior(0)["W"]
    c = 1 / np.sqrt(1 + 0.3**2)
    Ws = [c * (W_pop + 0.3 * sd * jax.random.normal(jax.random.PRNGKey(10 + i), sd.shape))
          for i in range(4)]
    datas = [pn.simulate_experiment(model, {"W": W}, 600, key=jax.random.PRNGKey(100 + i))
             for i, W in enumerate(Ws)]
    pop = pn.fit_population(datas, model, seed=0, progress=False, observer_scales=False)
    assert 0.12 < pop.tau < 0.6, pop.tau
    truth = pn.MAPFit.from_params(model, {"W": c * W_pop})
    assert _field_gap(pop.population, truth) < 0.35
