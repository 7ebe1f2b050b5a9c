"""Per-observer deviation scales (issue 24): an outlier observer is not pulled into the
population; the scales are recorded, saved and loaded."""

import jax
import numpy as np
import pytest
import xarray as xr
from numpyro.infer.util import log_density

import psyphy_numpyro as pn
from psyphy_numpyro.hierarchy import population_model
from psyphy_numpyro.population_fit import PopulationFit

MODEL = pn.WPPM(input_dim=2, basis_degree=2, num_samples=16)


def _outlier_population(k=8, n=300, tau=0.3):
    """``k`` observers of the population model at ``tau``, the last an independent prior
    draw (a different field)."""
    sd = MODEL.prior_std()
    W_pop = MODEL.sample_prior(0)["W"]
    c = 1 / np.sqrt(1 + tau**2)
    Ws = [c * (W_pop + tau * sd * jax.random.normal(jax.random.PRNGKey(100 + i), sd.shape))
          for i in range(k)]
    Ws[-1] = MODEL.sample_prior(99)["W"]
    datas = [pn.simulate_experiment(MODEL, {"W": W}, n, key=jax.random.PRNGKey(10 + i))
             for i, W in enumerate(Ws)]
    return datas, Ws


def _fit(tau=0.4, taus=(0.3, 0.5), scales=True):
    """A population fit built by hand (no fitting)."""
    W = np.asarray(MODEL.sample_prior(3)["W"])
    data = pn.simulate_experiment(MODEL, {"W": W}, 20, key=jax.random.PRNGKey(1))
    f = pn.MAPFit.from_params(MODEL, {"W": W}, data)
    return PopulationFit(population=f, observers=[f, f], tau=tau, learned_tau=True,
                         model=MODEL, loss_history=np.zeros(3), observer_taus=np.array(taus),
                         observer_scales=scales)


def test_observer_scales_set_each_deviation_prior():
    """With ``kappa`` the deviations' prior is ``N(0, (tau kappa_i)^2 prior_std^2)`` and
    observer ``i``'s weights are ``(W_pop + delta_i) / sqrt(1 + tau_i^2)``."""
    sd = np.asarray(MODEL.prior_std())
    K, tau, kappa = 2, 0.5, np.array([[1.0], [4.0]])
    stim, resp = np.zeros((K, 4, 2, 2)), np.zeros((K, 4), np.int32)
    W_pop = np.asarray(MODEL.sample_prior(0)["W"])
    delta = 0.3 * np.stack([sd, -sd])[:, None]
    kw = {"config": MODEL, "noise": MODEL.fresh_noise(jax.random.PRNGKey(0), (K, 4)),
          "weights": np.zeros((K, 4)), "tau": tau, "kappa": kappa}
    sites = {"W_pop": W_pop, "delta": delta}
    lp, tr = log_density(population_model, (stim, resp), kw, sites)
    import numpyro.distributions as dist

    expect = float(MODEL.prior().log_prob(W_pop))
    for i in range(K):
        expect += float(dist.Normal(0, tau * kappa[i, 0] * sd).to_event(sd.ndim)
                        .log_prob(delta[i, 0]))
    assert float(lp) == pytest.approx(expect, rel=1e-5)
    taus = tau * kappa[:, 0]
    for i in range(K):
        np.testing.assert_allclose(np.asarray(tr["W"]["value"][i]),
                                   (W_pop + delta[i, 0]) / np.sqrt(1 + taus[i] ** 2),
                                   rtol=1e-5)
    np.testing.assert_allclose(np.asarray(tr["W_mean"]["value"]), W_pop / np.sqrt(1 + tau**2),
                               rtol=1e-6)


def test_scales_save_load_arviz_and_describe(tmp_path):
    fit = _fit()
    path = tmp_path / "pop.nc"
    fit.save(path)
    back = PopulationFit.load(path)
    np.testing.assert_allclose(back.observer_taus, [0.3, 0.5])
    assert back.observer_scales and back.tau == pytest.approx(0.4)
    post = pn.arviz_io.group(fit.to_arviz(), "posterior")
    np.testing.assert_allclose(post["observer_tau"].values.reshape(-1), [0.3, 0.5])
    assert post["observer_tau"].dims == ("chain", "draw", "observer")
    assert any("observer tau_i: 0.3, 0.5" in line for line in fit.describe())
    # the new observer's prior is the shared tau's, not the largest observer's
    prior = fit.new_observer_prior()
    np.testing.assert_allclose(prior.std, MODEL.prior_std() * 0.4 / np.sqrt(1 + 0.4**2))


def test_a_file_without_scales_loads(tmp_path):
    """A format-1 file (before the per-observer scales) loads with every tau_i = tau."""
    path, old = tmp_path / "new.nc", tmp_path / "old.nc"
    _fit().save(path)
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        ds = ds.load()
    ds = ds.drop_vars("observer_tau")
    ds.attrs = {k: v for k, v in ds.attrs.items() if k != "observer_scales"} | {"format": 1}
    ds.to_netcdf(old, engine="h5netcdf")
    back = PopulationFit.load(old)
    np.testing.assert_allclose(back.observer_taus, [0.4, 0.4])
    assert not back.observer_scales
    assert not any("tau_i" in line for line in back.describe())


def test_a_hand_built_fit_without_scales_has_tau_everywhere():
    f = _fit()
    old = PopulationFit(population=f.population, observers=f.observers, tau=0.2,
                        learned_tau=False, model=MODEL)
    np.testing.assert_allclose(old.observer_taus, [0.2, 0.2])
    assert not old.observer_scales


@pytest.fixture(scope="module")
def outliers():
    return _outlier_population()


@pytest.mark.slow
def test_the_outlier_strays_and_is_not_pulled_in(outliers):
    """Eight observers of 300 trials, the last an independent field: its scale is clearly the
    largest, and its pooled error is no worse than its independent fit's (one tau: 0.65
    against 0.52 here)."""
    datas, Ws = outliers
    pop = pn.fit_population(datas, MODEL, seed=0, progress=False, observer_scales=True)
    alone = pn.fit_map(datas, MODEL, seed=0, progress=False)
    taus = pop.observer_taus
    assert pop.observer_scales and np.argmax(taus) == len(datas) - 1
    assert taus[-1] > 1.5 * np.sort(taus)[-2]
    # the shared tau is the typical observers' scale, not the outlier's
    assert pop.tau < taus[-1] and np.median(taus[:-1]) < 2 * pop.tau

    def err(f, W):
        return pn.field_error(MODEL, f.params, {"W": W})

    assert err(pop.observers[-1], Ws[-1]) <= 1.05 * err(alone[-1], Ws[-1])
    typical = np.mean([err(f, W) for f, W in zip(pop.observers[:-1], Ws[:-1], strict=True)])
    assert typical < np.mean([err(f, W) for f, W in zip(alone[:-1], Ws[:-1], strict=True)])


@pytest.mark.slow
def test_one_tau_is_still_there(outliers):
    datas, _ = outliers
    pop = pn.fit_population(datas[:4], MODEL, seed=0, progress=False, observer_scales=False,
                            steps=60)
    assert not pop.observer_scales and np.all(pop.observer_taus == pop.tau)
