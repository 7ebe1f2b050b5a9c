"""The lapse rate: fixed, learned (MAP, Laplace, bootstrap, NUTS), read-outs and files."""

import jax
import numpy as np
import numpyro
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro.inference.svi import (
    evaluate,
    from_whitened,
    negative_log_posterior,
    pad_trials,
    to_whitened,
)

BASE = pn.WPPM(input_dim=2, basis_degree=2, num_samples=16)
LEARN = BASE.replace(lapse_rate="learn")


@pytest.fixture(scope="module")
def truth():
    params = BASE.sample_prior(3)
    data = pn.simulate_experiment(BASE, params, 200, key=1)
    return params, data


# -- configuration ----------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lapse_rate": 0.5}, "lapse_rate must be in [0, 0.5)"),
        ({"lapse_rate": -0.01}, "lapse_rate must be in [0, 0.5)"),
        ({"lapse_rate": "fit"}, 'lapse_rate must be a number in [0, 0.5) or "learn", got \'fit\''),
        ({"lapse_prior": (2.0,)}, "lapse_prior must be a pair (a, b) of Beta parameters"),
        ({"lapse_prior": (2.0, 0.0)}, "lapse_prior[1] must be finite and > 0"),
    ],
)
def test_bad_lapse_settings_are_named(kwargs, message):
    with pytest.raises(ValueError) as err:
        pn.WPPM(**kwargs)
    assert message in str(err.value)


def test_lapse_params_must_match_the_model(truth):
    params, _ = truth
    with pytest.raises(ValueError, match='the model learns its lapse rate .* "lapse_rate"'):
        LEARN.checked_params(params)
    with pytest.raises(ValueError, match="the model fixes lapse_rate=0"):
        BASE.checked_params({**params, "lapse_rate": 0.1})
    with pytest.raises(ValueError, match=r'params\["lapse_rate"\] must be a scalar in \[0, 1\)'):
        LEARN.checked_params({**params, "lapse_rate": 1.5})


def test_zero_lapse_is_exactly_the_model_without_lapses(truth):
    params, data = truth
    fixed0 = BASE.replace(lapse_rate=0.0)
    assert fixed0 == BASE and not BASE.learns_lapse
    np.testing.assert_array_equal(
        BASE.log_likelihood(params, data, key=4), fixed0.log_likelihood(params, data, key=4))
    trace = numpyro.handlers.trace(numpyro.handlers.seed(pn.wppm_model, 0)).get_trace(
        data.stimuli, data.responses, config=BASE)
    assert "lapse_rate" not in trace


def test_response_probability_is_the_lapse_mixture(truth):
    params, data = truth
    lam = 0.06
    fixed = BASE.replace(lapse_rate=lam)
    p = BASE.p_correct(params, data.ref, data.comparison, key=2)
    np.testing.assert_allclose(
        fixed.p_correct(params, data.ref, data.comparison, key=2, include_lapse=True),
        (1 - lam) * p + lam / 3, rtol=1e-6)
    # the perceptual p(correct) is the default read-out
    np.testing.assert_array_equal(fixed.p_correct(params, data.ref, data.comparison, key=2), p)
    # the log-likelihood is Bernoulli of the mixture (same noise: same key and chunking)
    q = np.asarray((1 - lam) * BASE.p_correct(params, data.ref, data.comparison,
                                              noise=BASE.fresh_noise(
                                                  jax.random.fold_in(jax.random.PRNGKey(5), 0),
                                                  (len(data),)).materialize()) + lam / 3)
    y = data.responses
    np.testing.assert_allclose(fixed.log_likelihood(params, data, key=5),
                               y * np.log(q) + (1 - y) * np.log1p(-q), rtol=2e-5, atol=1e-6)


def test_learned_lapse_site_and_prior(truth):
    params, data = truth
    trace = numpyro.handlers.trace(numpyro.handlers.seed(pn.wppm_model, 0)).get_trace(
        data.stimuli, data.responses, config=LEARN)
    site = trace["lapse_rate"]
    assert isinstance(site["fn"], numpyro.distributions.Beta)
    assert float(site["fn"].concentration1) == 2.0 and float(site["fn"].concentration0) == 50.0
    draw = LEARN.sample_prior(0)
    assert set(draw) == {"W", "lapse_rate"} and 0 < float(draw["lapse_rate"]) < 1


def test_objective_is_the_numpyro_log_joint_with_a_lapse(truth):
    """The whitened objective with a learned lapse equals -log p(W, lapse, y) of the NumPyro
    model (same fixed noise), so MAP, Laplace and NUTS target one density."""
    from numpyro.infer.util import log_density

    params, data = truth
    theta = {"W": params["W"], "lapse_rate": 0.07}
    z = to_whitened(LEARN, theta)
    back = from_whitened(LEARN, z)
    np.testing.assert_allclose(back["W"], params["W"], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(back["lapse_rate"], 0.07, rtol=1e-5)
    trials = pad_trials(data)
    key = jax.random.PRNGKey(3)
    noise = LEARN.fresh_noise(key, (trials.stimuli.shape[0],))
    ours = negative_log_posterior(LEARN, z, trials, key, noise=noise)
    ref = -log_density(pn.wppm_model, (trials.stimuli, trials.responses),
                       {"config": LEARN, "noise": noise, "weights": trials.weights}, theta)[0]
    # the SVI loss measures the weights' prior in decentred coordinates (W / prior_std)
    jacobian = float(np.sum(np.log(LEARN.prior_std())))
    np.testing.assert_allclose(float(ours), float(ref) - jacobian, rtol=2e-5)
    # the low-noise evaluation moves with the lapse rate
    worse = to_whitened(LEARN, {"W": params["W"], "lapse_rate": 0.4})
    assert float(evaluate(LEARN, worse, trials, key, 64)) > float(evaluate(LEARN, z, trials,
                                                                           key, 64))


# -- read-outs of a fit with a lapse rate -----------------------------------
def test_thresholds_and_psychometric_read_the_perceptual_field(truth):
    params, _ = truth
    lam = 0.09
    with_lapse = pn.MAPFit.from_params(LEARN, {**params, "lapse_rate": lam})
    without = pn.MAPFit.from_params(BASE, params)
    refs = np.array([[0.0, 0.0], [0.3, -0.2]])
    a = pn.thresholds(with_lapse, refs, num_directions=6)
    b = pn.thresholds(without, refs, num_directions=6)
    np.testing.assert_allclose(a.lengths, b.lengths, rtol=1e-6)
    # including lapses: the perceptual contour at the level the mixture maps 2/3 to
    c = pn.thresholds(with_lapse, refs, num_directions=6, include_lapse=True)
    d = pn.thresholds(without, refs, num_directions=6, target=(2 / 3 - lam / 3) / (1 - lam))
    np.testing.assert_allclose(c.lengths, d.lengths, rtol=1e-5)
    assert np.all(c.lengths > a.lengths)
    t = np.linspace(0.0, 0.2, 5)
    u = np.array([1.0, 0.0])
    p = pn.psychometric(with_lapse, refs[0], u, t)
    np.testing.assert_allclose(p, pn.psychometric(without, refs[0], u, t))
    np.testing.assert_allclose(pn.psychometric(with_lapse, refs[0], u, t, include_lapse=True),
                               (1 - lam) * p + lam / 3, rtol=1e-6)
    with pytest.raises(ValueError, match="above the highest response probability"):
        pn.thresholds(with_lapse, refs, target=0.97, include_lapse=True)


def test_draw_based_fit_with_lapse_saves_exports_and_loads(truth, tmp_path):
    params, data = truth
    W = np.stack([np.asarray(params["W"]) * s for s in (0.9, 1.0, 1.1)])[None]
    lapse = np.array([[0.02, 0.05, 0.08]], np.float32)
    fit = pn.PosteriorFit(model=LEARN, data=data, draws=W, lapse=lapse)
    idata = fit.to_arviz()
    np.testing.assert_allclose(idata.posterior["lapse_rate"].values, lapse)
    assert "lapse_rate" in fit.summary().index
    assert fit.samples["lapse_rate"].shape == (3,)
    # p(correct) with lapses uses each draw's own lapse rate
    p = fit.p_correct(data.ref[:4], data.comparison[:4])
    q = fit.p_correct(data.ref[:4], data.comparison[:4], include_lapse=True)
    np.testing.assert_allclose(q, (1 - lapse[0, :, None]) * p + lapse[0, :, None] / 3,
                               rtol=1e-6)
    path = tmp_path / "lapse.nc"
    fit.save(path)
    back = pn.load_fit(path)
    np.testing.assert_array_equal(back.lapse_draws, lapse)
    assert back.model == LEARN
    np.testing.assert_allclose(back.log_likelihood(), fit.log_likelihood(), rtol=1e-6)
    # a fit without its lapse draws is refused, not read as lapse-free
    with pytest.raises(ValueError, match="no lapse-rate draws"):
        pn.PosteriorFit(model=LEARN, data=data, draws=W).log_likelihood()


def test_map_fit_with_learned_lapse_round_trips(truth, tmp_path):
    params, data = truth
    fit = pn.MAPFit.from_params(LEARN, {**params, "lapse_rate": 0.04}, data)
    assert fit.lapse_rate == pytest.approx(0.04)
    assert any("lapse rate: 0.04" in line for line in fit.describe())
    path = tmp_path / "map.nc"
    fit.save(path)
    back = pn.load_fit(path)
    assert float(back.params["lapse_rate"]) == pytest.approx(0.04)


# -- fits ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def lapsing_observer():
    """An observer who lapses on 8% of trials, with many easy trials (the lapses show)."""
    model = pn.WPPM(input_dim=2, basis_degree=3, num_samples=32)
    params = model.sample_prior(11)
    data = pn.simulate_experiment(model.replace(lapse_rate=0.08), params, 4000, key=12,
                                  radius=(1.0, 6.0))
    return model, params, data


@pytest.mark.slow
def test_learned_lapse_recovers_the_rate_and_improves_the_field(lapsing_observer):
    model, params, data = lapsing_observer
    plain = pn.fit_map(data, model, steps=1500, seed=0)
    learn = pn.fit_map(data, model.replace(lapse_rate="learn"), steps=1500, seed=0)
    lam = learn.lapse_rate
    assert 0.05 < lam < 0.12, lam
    # unmodelled lapses (errors on easy trials) inflate the field: the thresholds of the fit
    # without the parameter are biased high, the learned one's are not
    g = np.linspace(-0.6, 0.6, 4)
    refs = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    true_t = pn.thresholds((model, params), refs, num_directions=8).lengths

    def log_error(fit):
        t = pn.thresholds(fit, refs, num_directions=8).lengths
        r = np.log(t / true_t)
        return float(np.nanmean(r)), float(np.nanmedian(np.abs(r)))

    bias_plain, err_plain = log_error(plain)
    bias_learn, err_learn = log_error(learn)
    assert err_learn < err_plain and abs(bias_learn) < abs(bias_plain), (
        bias_learn, err_learn, bias_plain, err_plain)
    # Laplace and bootstrap carry the lapse rate, with intervals around the MAP
    lap = pn.fit_laplace(data, learn.model, init=learn, num_draws=400)
    lo, hi = np.quantile(lap.lapse_draws, [0.05, 0.95])
    assert lo < lam < hi and hi - lo < 0.1
    boot = pn.fit_bootstrap(data, learn.model, init=learn, num_fits=8)
    assert boot.lapse_draws.shape == (1, 8)
    assert np.all((boot.lapse_draws > 0.02) & (boot.lapse_draws < 0.2))


@pytest.mark.slow
def test_nuts_samples_the_lapse_rate(lapsing_observer):
    model, params, data = lapsing_observer
    learn = model.replace(lapse_rate="learn")
    init = pn.MAPFit.from_params(learn, {**params, "lapse_rate": 0.08})
    fit = pn.fit_mcmc(data[:1500], learn, init=init, num_warmup=150, num_draws=100,
                      num_chains=1)
    lam = fit.lapse_draws
    assert lam.shape == (1, 100) and np.all((lam > 0) & (lam < 1))
    assert 0.03 < float(np.median(lam)) < 0.15
