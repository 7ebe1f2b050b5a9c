"""fit_bootstrap: stratified resampling, one batched program, a draw-based fit like any other."""

import jax
import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro.bootstrap import default_strata, resample_counts

# the default "cv" estimator: its low-noise gradients let warm-started refits converge
# ("reparam" at 16 samples leaves an optimiser-noise floor that swamps the bootstrap spread)
MODEL = pn.WPPM(input_dim=2, basis_degree=1)
TRUTH = MODEL.sample_prior(3)
GRID = np.array([[-0.5, -0.5], [0.0, 0.0], [0.5, 0.3]])


def _data(n, seed, num_refs=8):
    """``n`` trials at ``num_refs`` repeated references (the paper's design)."""
    rng = np.random.default_rng(seed)
    refs = rng.uniform(-0.7, 0.7, (num_refs, 2))
    ref = refs[rng.integers(0, num_refs, n)]
    comp = pn.comparisons_at_radius(MODEL, TRUTH, ref, rng.uniform(0.5, 3.0, n), key=seed)
    return pn.simulate_trials(MODEL, TRUTH, ref, comp, key=seed + 1)


def test_resampling_keeps_every_stratum_and_is_seeded():
    strata = np.repeat([0, 1, 2], [5, 10, 20])
    c = resample_counts(strata, 200, seed=1)
    assert c.shape == (200, 35)
    for s, n in ((0, 5), (1, 10), (2, 20)):
        assert np.all(c[:, strata == s].sum(1) == n)
    # each trial appears once on average (multinomial, uniform within the stratum)
    np.testing.assert_allclose(c.mean(0), 1.0, atol=0.3)
    np.testing.assert_array_equal(c, resample_counts(strata, 200, seed=1))
    assert not np.array_equal(c, resample_counts(strata, 200, seed=2))


def test_default_strata_are_references_only_when_they_repeat():
    repeated = _data(80, 0)
    labels = default_strata(repeated)
    assert labels.max() + 1 == len(np.unique(repeated.ref, axis=0)) == 8
    np.testing.assert_array_equal(labels[:, None] == labels[None, :],
                                  np.all(repeated.ref[:, None] == repeated.ref[None], -1))
    fresh = pn.simulate_experiment(MODEL, TRUTH, 80, key=1)  # a new reference every trial
    assert np.all(default_strata(fresh) == 0)


QUICK = MODEL.replace(estimator="reparam", num_samples=16)  # compiles fast


@pytest.fixture(scope="module")
def tiny():
    """A quick bootstrap started at the truth (no MAP fit): for wiring, files, read-outs."""
    data = _data(200, 5)
    init = pn.MAPFit.from_params(QUICK, TRUTH, data)
    return pn.fit_bootstrap(data, QUICK, init=init, num_fits=6, steps=30, seed=4,
                            progress=False)


@pytest.fixture(scope="module")
def boots():
    small, big = _data(300, 10), _data(3000, 11)
    kw = {"num_fits": 12, "progress": False}  # default route: 15 chord-Newton steps
    init_small = pn.fit_map(small, MODEL, steps=1000, num_restarts=1, progress=False)
    init_big = pn.fit_map(big, MODEL, steps=1000, num_restarts=1, progress=False)
    return (pn.fit_bootstrap(small, MODEL, init=init_small, seed=4, **kw),
            pn.fit_bootstrap(big, MODEL, init=init_big, seed=4, **kw))


@pytest.mark.slow
def test_bootstrap_draws_have_the_requested_count_and_shrink_with_more_data(boots):
    small, big = boots
    assert small.draws.shape == (1, 12) + MODEL.weight_shape
    assert small.counts.shape == (12, 300) and np.all(small.counts.sum(1) == 300)
    # the refits moved away from their common start, each to its own resample's optimum
    W0 = np.asarray(small.map_fit.params["W"])
    moved = np.abs(small.draws[0] - W0).reshape(12, -1).max(1)
    assert np.all(moved > 0) and len(np.unique(small.draws[0, :, 0, 0, 0, 0])) == 12

    def spread(fit):
        S = fit.covariance(GRID)  # (12, G, 2, 2)
        return np.mean(S.std(0) / np.abs(S.mean(0)).max())

    # 10x the trials: the spread of Sigma across refits shrinks (measured 0.6x here: at
    # 300 trials the prior holds part of the field)
    assert spread(big) < 0.75 * spread(small), (spread(small), spread(big))


@pytest.mark.parametrize("route", ["adam", "newton"])
def test_refits_share_their_noise_so_only_resampling_spreads_them(tiny, route):
    """Common random numbers: refits of identical counts are identical, so none of the
    bootstrap spread is optimiser noise."""
    from psyphy_numpyro.refits import refit_batch

    fit = tiny
    W, _, kept = refit_batch(QUICK, [(fit.data, fit.map_fit, np.ones((6, 200), np.int64))],
                             30 if route == "adam" else 4, 0.02, None, 4, False,
                             route=route)[0]
    assert kept.all() and W.shape == (1, 6) + QUICK.weight_shape
    for k in range(1, 6):
        np.testing.assert_array_equal(W[0, 0], W[0, k])
    # while the resampled refits (same noise, other counts) all differ
    assert len(np.unique(fit.draws[0, :, 0, 0, 0, 0])) == 6


def test_newton_refits_see_only_their_resampled_trials_and_lose_nothing(tiny, monkeypatch):
    """The Newton route gives each refit its trials of non-zero count (with their fixed
    noise): the same refits as over every trial with zero weights, in a smaller program."""
    from psyphy_numpyro import refits

    counts = resample_counts(np.zeros(200, int), 6, seed=2)
    job = [(tiny.data, tiny.map_fit, counts)]
    assert refits._kept_size(job, 208) < 208  # about 63% of the trials per refit
    W, _, kept = refits.refit_batch(QUICK, job, 4, 0.02, None, 4, False, route="newton")[0]
    monkeypatch.setattr(refits, "_kept_size", lambda jobs, size: None)
    W_all, _, _ = refits.refit_batch(QUICK, job, 4, 0.02, None, 4, False, route="newton")[0]
    assert kept.all()
    spread = W.std(axis=1).mean()
    assert np.abs(W - W_all).max() < 0.02 * spread  # float sums in another order


def test_bootstrap_fit_reads_out_saves_and_loads(tiny, tmp_path):
    fit = tiny
    assert fit.draws.shape == (1, 6) + QUICK.weight_shape
    assert fit.counts.shape == (6, 200) and np.all(fit.counts.sum(1) == 200)
    th = pn.thresholds(fit, GRID[:1], num_directions=4, num_samples=64, level=0.8)
    assert th.lengths.shape == (6, 1, 4) and th.interval.shape == (2, 1, 4)
    assert np.all(th.interval[0] <= th.interval[1])
    path = tmp_path / "boot.nc"
    fit.save(path, log_likelihood=False)
    back = pn.load_fit(path)
    assert type(back) is pn.BootstrapFit
    np.testing.assert_array_equal(back.draws, fit.draws)
    np.testing.assert_array_equal(back.counts, fit.counts)
    np.testing.assert_array_equal(back.strata, fit.strata)
    assert (back.steps, back.seed) == (30, 4) and back.timings == fit.timings
    assert set(fit.timings) == {"compile", "steps"} and fit.timings["steps"] > 0
    assert fit.optimizer == back.optimizer == "adam"  # the default below 2 000 trials
    np.testing.assert_array_equal(back.map_fit.params["W"], fit.map_fit.params["W"])
    np.testing.assert_array_equal(back.covariance(GRID), fit.covariance(GRID))
    assert "bootstrap: 6 refits of 30 adam steps, resampled within 8 strata" in "\n".join(
        back.describe())
    idata = fit.to_arviz(log_likelihood=False)
    assert idata.unconstrained_posterior["W"].shape[:2] == (1, 6)
    assert idata.posterior.attrs["inference"] == "bootstrap"


def test_many_observers_run_as_one_program_and_equal_separate_fits(tiny):
    """fit_bootstrap of a list: one batched program, each observer's fit equal to its
    separate call with the same seed and start (up to float32 rounding of batched sums,
    which 30 Adam steps amplify to about 1-4% of max|W|)."""
    other = _data(200, 6)
    inits = [tiny.map_fit, pn.MAPFit.from_params(QUICK, TRUTH, other)]
    many = pn.fit_bootstrap([tiny.data, other], init=inits, num_fits=6, steps=30, seed=4,
                            progress=False)
    assert len(many) == 2 and all(type(f) is pn.BootstrapFit for f in many)
    alone = pn.fit_bootstrap(other, QUICK, init=inits[1], num_fits=6, steps=30, seed=4,
                             progress=False)
    for fit, ref in ((many[0], tiny), (many[1], alone)):
        assert fit.model == QUICK and fit.draws.shape == ref.draws.shape
        np.testing.assert_array_equal(fit.counts, ref.counts)
        np.testing.assert_allclose(fit.draws, ref.draws, rtol=0, atol=0.04 * np.abs(
            ref.draws).max())
    # the two observers' refits differ: each saw its own data
    gap = np.abs(many[0].draws - many[1].draws).max() / np.abs(alone.draws).max()
    assert gap > 0.1, gap


def test_many_observer_arguments_are_checked():
    data = [_data(40, 0), _data(40, 1)]
    init = pn.MAPFit.from_params(QUICK, TRUTH, data[0])
    with pytest.raises(ValueError, match="data is an empty list"):
        pn.fit_bootstrap([], QUICK)
    with pytest.raises(TypeError, match="init for 2 data sets must be a list of 2 MAPFits"):
        pn.fit_bootstrap(data, QUICK, init=init)
    with pytest.raises(ValueError, match="strata for 2 data sets must be a string or a list"):
        pn.fit_bootstrap(data, QUICK, init=[init, init], strata=[None])
    other = pn.MAPFit.from_params(QUICK.replace(diag_term=1e-3), TRUTH, data[1])
    with pytest.raises(ValueError, match=r"init\[1\].model differs from init\[0\].model"):
        pn.fit_bootstrap(data, init=[init, other])


def test_bad_arguments_fail_before_any_fit(monkeypatch):
    from psyphy_numpyro import bootstrap

    def reached(*a, **k):
        raise AssertionError("checks came too late")

    monkeypatch.setattr(bootstrap, "fit_map", reached)
    monkeypatch.setattr(bootstrap, "refit_batch", reached)
    data = _data(40, 0)
    cases = [
        ({"num_fits": 1}, ValueError, "num_fits must be >= 2"),
        ({"steps": 0}, ValueError, "steps must be >= 1"),
        ({"strata": np.zeros(3)}, ValueError, r"strata must have one label per trial \(40,\)"),
        ({"strata": "blocks"}, ValueError, 'strata must be "auto", "reference", "none"'),
        ({"init": {"W": 0}}, TypeError, "init must be a MAPFit or None, got dict"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate must be finite and > 0"),
        ({"optimizer": "sgd"}, ValueError, 'optimizer must be "newton", "adam" or None'),
        ({"optimizer": "newton", "batch_size": 10}, ValueError,
         'optimizer="newton" needs every trial every step'),
    ]
    for kwargs, exc, match in cases:
        with pytest.raises(exc, match=match):
            pn.fit_bootstrap(data, MODEL, **kwargs)
    other = pn.MAPFit.from_params(MODEL.replace(diag_term=1e-3), TRUTH, data)
    with pytest.raises(ValueError, match="init.model differs from model"):
        pn.fit_bootstrap(data, MODEL, init=other)


def test_newton_chord_solves_a_quadratic_in_one_step_and_never_goes_uphill():
    """The chord step with the exact inverse Hessian lands on a quadratic's minimum; with a
    wrong (too large) inverse, a step that would raise the loss is refused and shrunk."""
    import jax.numpy as jnp
    import optax

    from psyphy_numpyro.inference.optim import newton_chord, set_preconditioner

    A = jnp.array([[3.0, 1.0], [1.0, 2.0]])
    b = jnp.array([1.0, -1.0])

    def loss(p):
        x = p["x"]
        return 0.5 * x @ A @ x - b @ x

    tx = newton_chord()
    for inverse, expect_first in ((jnp.linalg.inv(A), True), (10 * jnp.linalg.inv(A), False)):
        params = {"x": jnp.zeros(2)}
        state = set_preconditioner(tx.init(params), inverse)
        values = []
        for _ in range(12):
            v, g = jax.value_and_grad(loss)(params)
            values.append(float(v))
            u, state = tx.update(g, state, params, value=v, grad=g, value_fn=loss)
            params = optax.apply_updates(params, u)
            if expect_first and len(values) == 1:
                np.testing.assert_allclose(params["x"], jnp.linalg.solve(A, b), atol=1e-5)
        assert np.all(np.diff(values) <= 1e-7)  # never uphill
        np.testing.assert_allclose(params["x"], jnp.linalg.solve(A, b), atol=1e-3)


def test_newton_route_is_recorded_saved_and_loaded(tiny, tmp_path):
    """optimizer="newton": the route, its curvature time and its step count are on the fit
    and in its file; every refit moved from the common start."""
    boot = pn.fit_bootstrap(tiny.data, QUICK, init=tiny.map_fit, num_fits=4,
                            optimizer="newton", steps=5, seed=1, progress=False)
    assert boot.optimizer == "newton" and boot.timings["curvature"] > 0
    W0 = np.asarray(tiny.map_fit.params["W"])
    assert np.all(np.abs(boot.draws[0] - W0).reshape(4, -1).max(1) > 0)
    boot.save(tmp_path / "b.nc", log_likelihood=False)
    back = pn.load_fit(tmp_path / "b.nc")
    assert (back.optimizer, back.steps) == ("newton", 5)
    assert "4 refits of 5 newton steps" in "\n".join(boot.describe())
