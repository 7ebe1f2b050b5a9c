"""A new observer's prior from a population fit (issue 24 part 3): WeightPrior, WPPM.with_prior,
fit_map(prior=), Experiment(prior=)."""

import jax
import numpy as np
import pytest
from numpyro.infer.util import log_density

import psyphy_numpyro as pn
from psyphy_numpyro.design.refit import posterior_mode
from psyphy_numpyro.inference.svi import from_whitened, to_whitened
from psyphy_numpyro.population_fit import PopulationFit
from psyphy_numpyro.wppm import model_with_prior

MODEL = pn.WPPM(input_dim=2, basis_degree=2, num_samples=16)
TAU = 0.3
GRID = np.stack(np.meshgrid(np.linspace(-0.7, 0.7, 4), np.linspace(-0.7, 0.7, 4)),
                -1).reshape(-1, 2)


def _population(tau=TAU, seed=3):
    """A population fit with a known mean (no fitting: the read-outs' own constructor)."""
    W_pop = np.asarray(MODEL.sample_prior(seed)["W"])
    pop = pn.MAPFit.from_params(MODEL, {"W": W_pop})
    return PopulationFit(population=pop, observers=[pop, pop], tau=tau, learned_tau=False,
                         model=MODEL)


def _new_observer(pop, seed=7):
    """An observer drawn from the population's new-observer distribution."""
    prior = pop.new_observer_prior()
    return prior.mean + prior.std * np.asarray(jax.random.normal(jax.random.PRNGKey(seed),
                                                                 prior.shape))


def _log_joint(model, W):
    """The model's log joint on one weightless trial: its log prior at W."""
    stim = np.zeros((1, 2, 2))
    kw = {"config": model, "noise": model.draw_noise(0, 1), "weights": np.zeros(1)}
    return float(log_density(pn.wppm_model, (stim, np.zeros(1, np.int32)), kw, {"W": W})[0])


def _gap(fit, W):
    """Field error of a fit's point estimate (a Laplace fit's: its MAP) against ``W``."""
    params = fit.params if hasattr(fit, "params") else posterior_mode(fit)
    return pn.field_error(MODEL, params, {"W": W}, GRID)


def test_the_population_prior_is_the_models_prior():
    pop = _population()
    prior = pop.new_observer_prior()
    sd = MODEL.prior_std()
    np.testing.assert_allclose(prior.std, sd * TAU / np.sqrt(1 + TAU**2))
    np.testing.assert_array_equal(prior.mean, pop.population.params["W"])
    model = MODEL.with_prior(pop)
    assert model.weight_prior == prior and model == model_with_prior(None, pop)
    # equal priors: equal, equally hashed models (compiled programs are shared)
    again = MODEL.with_prior(pn.WeightPrior(prior.mean.copy(), prior.std.copy()))
    assert again == model and hash(again) == hash(model)
    assert MODEL.with_prior(pop).with_prior(None) == MODEL

    # the log joint: maximal at the mean, Gaussian with the prior's std around it (the
    # likelihood is weightless here, so a cheap estimator serves)
    W0, step = prior.mean, 0.5 * prior.std
    cheap = MODEL.replace(estimator="reparam", num_samples=2)
    model, blank = cheap.with_prior(pop), cheap
    assert _log_joint(model, W0) > _log_joint(model, W0 + step)
    assert _log_joint(model, W0) - _log_joint(model, W0 + step) == pytest.approx(
        0.125 * W0.size, rel=1e-4)
    assert _log_joint(blank, 0 * W0) > _log_joint(blank, W0)  # the default prior: at 0
    # prior draws and the decentred coordinates are centred on the mean
    draws = np.stack([np.asarray(model.sample_prior(k)["W"]) for k in range(100)])
    assert np.all(np.abs(draws.mean(0) - W0) < 0.5 * prior.std)
    z = to_whitened(model, {"W": W0 + prior.std})
    np.testing.assert_allclose(np.asarray(z["W"]), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(from_whitened(model, z)["W"]), W0 + prior.std,
                               rtol=1e-5, atol=1e-9)
    assert "WeightPrior" in repr(model)


def test_bad_priors_are_named():
    sd = MODEL.prior_std()
    with pytest.raises(ValueError, match="shape"):
        pn.WeightPrior(np.zeros(3), np.ones(4))
    with pytest.raises(ValueError, match="positive"):
        pn.WeightPrior(np.zeros(sd.shape), -sd)
    with pytest.raises(ValueError, match="weights have shape"):
        pn.WPPM(input_dim=2, basis_degree=3).with_prior(pn.WeightPrior(np.zeros(sd.shape), sd))
    with pytest.raises(ValueError, match="weights of shape"):
        pn.WPPM(input_dim=2, basis_degree=3).with_prior(_population())
    with pytest.raises(TypeError, match="PopulationFit"):
        MODEL.with_prior("population.nc")
    with pytest.raises(TypeError, match="WeightPrior"):
        pn.WPPM(weight_prior=3.0)
    with pytest.raises(ValueError, match="needs the model"):
        pn.fit_map(pn.TrialData(np.zeros((1, 2, 2)), [1]),
                   prior=pn.WeightPrior(np.zeros(sd.shape), sd))
    with pytest.raises(ValueError, match="weight_prior"):
        one = pn.TrialData(np.zeros((1, 2, 2)), [1])
        pn.fit_population([one, one], MODEL.with_prior(_population()))
    with pytest.raises(AttributeError):
        _population().new_observer_prior().mean = 0


@pytest.mark.slow
def test_warm_fit_is_closer_to_the_truth_and_round_trips(tmp_path):
    pop = _population()
    W = _new_observer(pop)
    data = pn.simulate_experiment(MODEL, {"W": W}, 60, key=jax.random.PRNGKey(1))
    kw = {"steps": 30, "num_restarts": 1, "progress": False, "seed": 0}
    warm = pn.fit_map(data, prior=pop, **kw)
    blank = pn.fit_map(data, MODEL, **kw)
    assert warm.model.weight_prior == pop.new_observer_prior()
    assert _gap(warm, W) < 0.6 * _gap(blank, W)
    warm.save(tmp_path / "warm.nc")
    back = pn.load_fit(tmp_path / "warm.nc")
    assert back.model == warm.model
    np.testing.assert_allclose(np.asarray(back.params["W"]), np.asarray(warm.params["W"]))


def test_session_stores_the_prior(tmp_path):
    pop = _population()
    path = tmp_path / "s.db"
    exp = pn.Experiment(path, prior=pop, seed=0, live=False)
    assert exp.model == MODEL.with_prior(pop)
    assert exp.settings["num_initial"] == 40  # 20 * d with a prior (150 * d without)
    exp.close()
    exp = pn.Experiment(path, live=False)  # reopened without it: the stored model has it
    assert exp.model == MODEL.with_prior(pop)
    exp.close()
    pn.Experiment(path, prior=pop, live=False).close()  # the same prior again: fine
    with pytest.raises(ValueError, match="created with another prior"):
        pn.Experiment(path, prior=_population(tau=0.5), live=False)
    with pytest.raises(ValueError, match="created with a prior"):
        pn.Experiment(path, MODEL, live=False)  # the model without the prior
    blank = tmp_path / "blank.db"
    pn.Experiment(blank, live=False).close()
    with pytest.raises(ValueError, match="created without a prior"):
        pn.Experiment(blank, prior=pop, live=False)


@pytest.mark.slow
def test_warm_session_proposes_differently_and_fits_closer(tmp_path):
    pop = _population()
    W = _new_observer(pop)
    opts = {"map_steps": 40, "warm_steps": 20, "num_draws": 16}

    def run(name, **kw):
        exp = pn.Experiment(tmp_path / name, seed=0, live=False, num_initial=40,
                            refit_every=20, fit_options=opts, **kw)
        key = jax.random.PRNGKey(5)
        while exp.fit is None or len(exp.data) < 60:
            ids, stim = exp.ask(20)
            key, sub = jax.random.split(key)
            p = MODEL.p_correct({"W": W}, stim[:, 0], stim[:, 1], key=sub)
            exp.tell(ids, (np.asarray(jax.random.uniform(sub, p.shape)) < np.asarray(p))
                     .astype(int))
        first = exp.stimuli(exp.trial_ids[40:60])
        fit = exp.fit
        exp.close()
        return first, fit

    warm_first, warm_fit = run("warm.db", prior=pop)
    blank_first, blank_fit = run("blank.db", model=MODEL)
    assert warm_fit.model.weight_prior is not None and blank_fit.model.weight_prior is None
    assert not np.allclose(warm_first, blank_first)  # the first proposals differ
    assert _gap(warm_fit, W) < _gap(blank_fit, W)
    # reopening the warm session keeps its prior-informed fit
    exp = pn.Experiment(tmp_path / "warm.db", read_only=True)
    assert exp.fit.model == MODEL.with_prior(pop)
    exp.close()


def test_restarts_of_a_model_with_a_prior_start_at_its_mean():
    base = pn.WPPM(input_dim=2, basis_degree=2)
    mean = np.asarray(base.sample_prior(3)["W"], np.float64)
    model = base.with_prior(pn.WeightPrior(mean, 0.5 * base.prior_std()))
    z = pn.MAP(model).init_z(jax.random.PRNGKey(0), init_scale=1e-6)
    np.testing.assert_allclose(np.asarray(from_whitened(model, z)["W"]), mean, atol=1e-5)
    # without a prior: the prior's typical isotropic field, not W = 0
    z0 = pn.MAP(base).init_z(jax.random.PRNGKey(0), init_scale=1e-6)
    assert np.abs(np.asarray(from_whitened(base, z0)["W"])).max() > 1e-3
