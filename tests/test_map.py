"""fit_map: recovery of a known field, determinism, divergence handling, ArviZ output."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro.arviz_io import expand_sigma
from psyphy_numpyro.inference.svi import isotropic_start
from psyphy_numpyro.plotting import grid_points

TRUTH = pn.WPPM(input_dim=2, basis_degree=2, num_samples=64)
GRID7 = grid_points(7, -1.0, 1.0)


def _simulate(n, seed=0, truth_seed=4):
    truth = TRUTH.sample_prior(truth_seed)
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-1, 1, (n, 2))
    comp = pn.comparisons_at_radius(TRUTH, truth, ref, rng.uniform(1.0, 4.0, n), key=seed)
    return truth, pn.simulate_trials(TRUTH, truth, ref, comp, key=seed + 100)


def field_error(params, truth):
    S_true = np.asarray(TRUTH.covariance(truth, GRID7), dtype=np.float64)
    S = np.asarray(TRUTH.covariance(params, GRID7), dtype=np.float64)
    return float(np.mean(np.linalg.norm(S - S_true, axis=(1, 2))
                         / np.linalg.norm(S_true, axis=(1, 2))))


@pytest.fixture(scope="module")
def recovery():
    errs = {}
    for n in (300, 3000):
        truth, data = _simulate(n)
        fit = pn.fit_map(data, TRUTH, steps=1000, num_restarts=3, seed=0, progress=False)
        errs[n] = field_error(fit.params, truth)
    prior_err = np.mean([field_error(TRUTH.sample_prior(k), truth) for k in range(20, 40)])
    return errs, prior_err, fit, data


def test_fit_map_recovers_known_field(recovery):
    errs, prior_err, _, _ = recovery
    msg = (f"field error: prior draws {prior_err:.3f}, fit(300) {errs[300]:.3f}, "
           f"fit(3000) {errs[3000]:.3f}")
    assert errs[3000] < 0.4 * prior_err, msg
    assert errs[3000] < 0.55, msg
    assert errs[3000] < 0.75 * errs[300], msg  # error falls as trials grow


def test_fit_result_interface(recovery, sigma_ref, ref_mc):
    _, _, fit, data = recovery
    assert fit.params["W"].shape == TRUTH.weight_shape
    assert fit.loss_history.shape == (1000,)
    assert np.isfinite(fit.loss_history).all()
    # the loss goes down: last 50 steps well below the first 50
    assert fit.loss_history[-50:].mean() < fit.loss_history[:50].mean()
    x = jnp.array([[0.1, -0.2], [0.5, 0.5]])
    S = sigma_ref(fit.params["W"], x, TRUTH.diag_term)  # independent numpy Chebyshev
    np.testing.assert_allclose(fit.covariance(x), S, rtol=2e-4, atol=1e-9)
    p = fit.p_correct(x, x + 0.05, num_samples=4096)
    S_c = sigma_ref(fit.params["W"], x + 0.05, TRUTH.diag_term)
    for i in range(2):  # against independent float64 three-sample Monte Carlo
        expect, se = ref_mc(S[i], S_c[i], np.asarray(x[i]), np.asarray(x[i] + 0.05),
                            TRUTH.bandwidth)
        assert abs(p[i] - expect) < 4 * se + 2e-3, (i, p[i], expect, se)
    assert fit.log_likelihood().shape == (len(data),)


def test_to_arviz_has_named_dims_and_groups(recovery, sigma_ref):
    _, _, fit, data = recovery
    idata = fit.to_arviz()
    for group in ("posterior", "unconstrained_posterior", "sample_stats", "observed_data",
                  "log_likelihood", "constant_data"):
        assert group in idata.groups(), group
    assert "W" not in idata.posterior  # W is not identified: kept out of the summary
    W = idata.unconstrained_posterior["W"]
    assert W.dims == ("chain", "draw", "basis_0", "basis_1", "stimulus_dim", "embedding_dim")
    np.testing.assert_allclose(W.values[0, 0], fit.params["W"])
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "trial")
    np.testing.assert_allclose(idata.log_likelihood["y"].values[0, 0].sum(),
                               float(fit.log_likelihood().sum()), rtol=1e-5)
    np.testing.assert_array_equal(idata.observed_data["y"].values, data.responses)
    np.testing.assert_array_equal(idata.constant_data["ref"].values, data.ref)
    grid = idata.constant_data["grid"].values
    np.testing.assert_allclose(expand_sigma(idata.posterior["Sigma"].values[0, 0]),
                               sigma_ref(fit.params["W"], grid, TRUTH.diag_term), rtol=2e-4,
                               atol=1e-9)
    assert idata.posterior["Sigma"].dims[2:] == ("grid_point", "sigma_entry")


@pytest.mark.slow  # compile-heavy: runs in the slow tier (CI runs both)
def test_same_seed_gives_bit_identical_fit():
    _, data = _simulate(200, seed=5)
    fits = [pn.fit_map(data, TRUTH, steps=60, num_restarts=2, seed=7, progress=False)
            for _ in range(2)]
    np.testing.assert_array_equal(fits[0].params["W"], fits[1].params["W"])
    np.testing.assert_array_equal(fits[0].loss_history, fits[1].loss_history)
    other = pn.fit_map(data, TRUTH, steps=60, num_restarts=2, seed=8, progress=False)
    assert not np.array_equal(other.params["W"], fits[0].params["W"])
    # best restart is the one with the lowest low-noise final loss
    assert fits[0].best_restart == int(np.argmin(fits[0].restart_losses))


def _nan_after(k):
    """An optax transformation that behaves like SGD, then emits NaN updates from step k."""

    def init(params):
        return jnp.zeros((), jnp.int32)

    def update(updates, count, params=None):
        scale = jnp.where(count >= k, jnp.nan, -1e-4)
        return jax.tree_util.tree_map(lambda u: scale * u, updates), count + 1

    return optax.GradientTransformation(init, update)


@pytest.mark.slow  # compile-heavy: runs in the slow tier (CI runs both)
def test_diverging_fit_raises_naming_the_step():
    _, data = _simulate(100, seed=6)
    with pytest.raises(pn.FitDivergedError, match="restart 0 diverged at step 4"):
        pn.fit_map(data, TRUTH, steps=20, num_restarts=1, optimizer=_nan_after(3),
                   progress=False)


def test_fit_map_rejects_bad_arguments():
    _, data = _simulate(50, seed=7)
    with pytest.raises(ValueError, match="stimulus dimension 2 but the model has input_dim=1"):
        pn.fit_map(data, pn.WPPM(input_dim=1))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        pn.fit_map(data, steps=0)
    with pytest.raises(ValueError, match='optimizer must be "lbfgs", "adam"'):
        pn.fit_map(data, optimizer="sgd")
    with pytest.raises(TypeError, match="optimizer must be an optax.GradientTransformation"):
        pn.fit_map(data, optimizer=3)
    with pytest.raises(ValueError, match='optimizer="lbfgs" needs every trial'):
        pn.fit_map(data, optimizer="lbfgs", batch_size=10)
    with pytest.raises(TypeError, match="data must be a TrialData"):
        pn.fit_map(np.zeros((5, 2, 2)))


@pytest.mark.slow  # compile-heavy: runs in the slow tier (CI runs both)
def test_default_model_and_psyphy_init_params():
    _, data = _simulate(80, seed=8)
    init = TRUTH.sample_prior(1)
    fit = pn.fit_map(data, TRUTH, steps=1, num_restarts=1, init=init, progress=False)
    np.testing.assert_array_equal(fit.init_params["W"], init["W"])
    # without init_params, restarts start from the prior's typical isotropic field plus
    # init_scale x a prior draw
    one = pn.fit_map(data, TRUTH, steps=1, num_restarts=1, init_scale=0.5, seed=3,
                     progress=False)
    k_init = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(3), 0))[0]
    np.testing.assert_allclose(one.init_params["W"], isotropic_start(TRUTH)
                               + 0.5 * TRUTH.sample_prior(k_init)["W"], rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="init_scale must be > 0"):
        pn.fit_map(data, TRUTH, init_scale=0.0)
    # no model: the default one with variance_scale and diag_term from the data
    default = pn.fit_map(data, steps=2, num_restarts=1, progress=False).model
    assert default == pn.WPPM.for_data(data)
    assert default.replace(variance_scale=4e-3, diag_term=1e-4) == pn.WPPM(input_dim=2)


def test_restarts_start_from_the_priors_typical_isotropic_field():
    model = pn.WPPM(input_dim=2, basis_degree=3, variance_scale=0.02, diag_term=1e-4)
    z = pn.MAP(model).init_z(jax.random.PRNGKey(0), init_scale=1e-6)
    S = np.asarray(model.covariance(pn.MAP(model).params(z), GRID7), np.float64)
    prior = np.mean([np.asarray(model.covariance(model.sample_prior(k), GRID7))
                     for k in range(200)], 0)
    iso = np.mean(np.diagonal(prior, axis1=1, axis2=2))  # the prior's typical Sigma_ii
    np.testing.assert_allclose(S, np.broadcast_to(iso * np.eye(2), S.shape), rtol=0.15,
                               atol=1e-4 * iso)


@pytest.mark.slow
def test_fit_map_does_not_stall_on_data_all_above_threshold():
    """An adaptive session's trials all sit near threshold: from a start near W = 0 (the
    noise floor alone) every one of them was at the ceiling of p(correct), the gradient
    vanished and restarts stalled (or blew up)."""
    truth = TRUTH.sample_prior(4)
    rng = np.random.default_rng(0)
    ref = rng.uniform(-1, 1, (300, 2))
    comp = pn.comparisons_at_radius(TRUTH, truth, ref, rng.uniform(2.8, 5.5, 300), key=0)
    data = pn.simulate_trials(TRUTH, truth, ref, comp, key=100)
    model = pn.WPPM.for_data(data, basis_degree=2, num_samples=64)
    fit = pn.fit_map(data, model, seed=0, steps=20, progress=False)
    assert np.ptp(fit.restart_losses) < 0.02 * fit.restart_losses.min(), fit.restart_losses
    assert field_error(fit.params, truth) < 0.7


@pytest.mark.slow
def test_minibatch_fit_recovers_field():
    truth, data = _simulate(1200, seed=9)
    fit = pn.fit_map(data, TRUTH, steps=1000, num_restarts=2, batch_size=300, progress=False)
    prior_err = np.mean([field_error(TRUTH.sample_prior(k), truth) for k in range(20, 30)])
    err = field_error(fit.params, truth)
    assert err < 0.5 * prior_err, (err, prior_err)
    # the minibatch loss is rescaled to the full data set (plate subsample scaling)
    best = fit.restart_losses[fit.best_restart]
    assert abs(fit.loss_history[-50:].mean() - best) < 0.2 * abs(best)


@pytest.mark.slow
def test_fast_estimator_recovers_field_at_least_as_well_as_plain_mc():
    """Same data, same samples per trial (64), same optimiser: the default "cv"
    estimator (radially integrated, control variate) recovers the field at
    least as well as psyphy's plain three-sample Monte Carlo rule, on two data
    sets (measured figures in docs/performance.md)."""
    errs = {"cv": [], "mc": []}
    for seed in (11, 12):
        truth, data = _simulate(2000, seed=seed)
        for est in errs:
            model = TRUTH.replace(estimator=est, num_samples=64)
            fit = pn.fit_map(data, model, steps=800, num_restarts=1, seed=1, progress=False)
            errs[est].append(pn.field_error(model, fit.params, truth, GRID7))
    # measured: cv 0.284 / 0.264 against mc 0.446 / 0.398
    assert np.mean(errs["cv"]) <= 0.8 * np.mean(errs["mc"]), errs
    assert max(errs["cv"]) < 0.35, errs


@pytest.mark.slow
def test_many_observers_in_one_call_equal_separate_fits():
    """fit_map([d1, d2, d3], model) runs the observers as one batch and returns one fit per
    observer, each equal to its separate fit (same size bucket, same seed)."""
    model = pn.WPPM(input_dim=2, basis_degree=1, num_samples=8)
    datas = [pn.simulate_experiment(model, model.sample_prior(s), 120, key=10 + s)
             for s in range(3)]
    kw = dict(steps=40, num_restarts=2, screen_steps=20, eval_samples=64)
    many = pn.fit_map(datas, model, **kw)
    assert isinstance(many, list) and len(many) == 3
    # equal up to float32 rounding: XLA orders a batch's sums differently at each batch size
    # (the loss at the same start differs by ~3e-4 relative), which 40 Adam steps amplify
    for data, fit in zip(datas, many, strict=True):
        alone = pn.fit_map(data, model, **kw)
        assert fit.data == data and fit.best_restart == alone.best_restart
        np.testing.assert_allclose(fit.restart_histories[:, 0], alone.restart_histories[:, 0],
                                   rtol=2e-3)
        W, W1 = np.asarray(fit.params["W"]), np.asarray(alone.params["W"])
        assert np.abs(W - W1).max() < 0.05 * np.abs(W1).max()
        assert fit.final_loss == pytest.approx(alone.final_loss, rel=1e-2)
    # the observers really differ
    assert not np.allclose(many[0].params["W"], many[1].params["W"])
    with pytest.raises(ValueError, match="data is an empty list"):
        pn.fit_map([], model)
