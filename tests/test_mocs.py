"""MOCS validation: Weibull fits (weibull.py), condition grouping, simulation, validate_mocs
and its plot."""

import csv
import warnings

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

import psyphy_numpyro as pn  # noqa: E402
from psyphy_numpyro import mocs, weibull  # noqa: E402
from psyphy_numpyro.errors import InvalidInput, InvalidType  # noqa: E402
from psyphy_numpyro.plotting import save_figure  # noqa: E402
from psyphy_numpyro.plotting.mocs import plot_mocs  # noqa: E402

# Three references x two directions: conditions sharing a reference share one
# thresholds call, and every validate_mocs below reuses one compiled program.
REFS = np.array([[-0.4, -0.3], [0.0, 0.2], [0.4, -0.2]])
DIRS = np.array([[1.0, 0.0], [0.0, 1.0]])
LEVEL_GRID = np.linspace(0.3, 2.5, 8)  # multiples of the true threshold
REPEATS = 40


# ---------------------------------------------------------------------------
# the Weibull function and its fit (pure numpy, fast)
# ---------------------------------------------------------------------------
def test_weibull_p_and_threshold_closed_form():
    t = np.array([0.0, 0.1, 0.2])
    p = weibull.weibull_p(t, 0.1, 2.0)
    np.testing.assert_allclose(p, 1 / 3 + 2 / 3 * (1 - np.exp(-np.array([0.0, 1.0, 4.0]))))
    thr = weibull.weibull_threshold(0.1, 2.0)
    np.testing.assert_allclose(thr, 0.1 * np.log(2) ** 0.5)
    np.testing.assert_allclose(weibull.weibull_p(thr, 0.1, 2.0), 2 / 3)
    # with a lapse rate and another target the inverse still holds
    thr = weibull.weibull_threshold(0.2, 3.0, target=0.8, lapse=0.05)
    np.testing.assert_allclose(weibull.weibull_p(thr, 0.2, 3.0, lapse=0.05), 0.8)
    np.testing.assert_allclose(weibull.weibull_p(100.0, 0.2, 3.0, lapse=0.05), 0.95)


def _simulate_weibull(alpha, beta, repeats, seed, lapse=0.0, grid=LEVEL_GRID):
    thr = weibull.weibull_threshold(alpha, beta, lapse=lapse)
    d = np.repeat(thr * grid, repeats)
    rng = np.random.default_rng(seed)
    y = (rng.random(d.size) < weibull.weibull_p(d, alpha, beta, lapse=lapse)).astype(int)
    return d, y, float(thr)


@pytest.mark.parametrize("alpha,beta", [(0.05, 1.5), (0.2, 3.0), (0.1, 5.0)])
def test_fit_weibull_recovers_threshold(alpha, beta):
    # 8 levels x 300 trials: at 400 trials the relative sd of the fitted
    # threshold over 50 simulated experiments is 6-11% (beta 5 .. 1.5), so at
    # 2400 it is <= 4.5%; 15% is more than 3 sd.
    d, y, thr = _simulate_weibull(alpha, beta, 300, seed=int(100 * beta))
    wf = weibull.fit_weibull(d, y)
    assert wf.converged and wf.in_range
    assert abs(wf.threshold / thr - 1) < 0.15
    assert wf.threshold == pytest.approx(weibull.weibull_threshold(wf.alpha, wf.beta))
    assert len(wf.levels) == 8 and wf.num_trials.sum() == len(d)
    assert wf.num_correct.sum() == y.sum()


def test_fit_weibull_matches_scipy_optimum_and_bootstrap_brackets_truth():
    d, y, thr = _simulate_weibull(0.1, 2.0, 40, seed=3, lapse=0.02)
    wf = weibull.fit_weibull(d, y, lapse=0.02)

    def nll(x):
        p = weibull.weibull_p(d, np.exp(x[0]), np.exp(x[1]), lapse=0.02)
        return -np.sum(y * np.log(p) + (1 - y) * np.log1p(-p))

    best = min((minimize(nll, x0, method="Nelder-Mead", options={"xatol": 1e-10,
                                                                  "fatol": 1e-12})
                for x0 in ([np.log(0.1), np.log(2.0)], [np.log(0.05), 0.0])),
               key=lambda r: r.fun)
    assert wf.nll <= best.fun + 1e-6  # Bernoulli NLL of the trials = binomial NLL
    assert wf.nll == pytest.approx(nll(np.log([wf.alpha, wf.beta])), rel=1e-10)
    boot = wf.bootstrap(200, seed=1)
    assert boot.shape == (200,) and np.all(np.isfinite(boot))
    lo, hi = np.quantile(boot, [0.025, 0.975])
    assert lo < wf.threshold < hi and lo < thr < hi
    np.testing.assert_array_equal(boot, wf.bootstrap(200, seed=1))


def test_fit_weibull_flags_extrapolated_threshold():
    d = np.repeat([0.2, 0.3, 0.4], 20)
    y = np.ones_like(d, dtype=int)  # all correct: the threshold is below every level
    with pytest.warns(RuntimeWarning, match="outside the tested distances"):
        wf = weibull.fit_weibull(d, y)
    assert not wf.in_range and wf.threshold < 0.2


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"responses": [0, 1, 2, 1]}, InvalidInput,
     "responses must be 0 or 1; entry 2 is 2 (1 of 4 entries are not 0/1; 1 = correct, "
     "0 = incorrect)"),
    ({"distances": [0.1, 0.1, 0.1, 0.1]}, InvalidInput,
     "fit_weibull needs at least 2 distinct distances (levels), got 1"),
    ({"distances": [0.1, -0.2, 0.3, 0.4]}, InvalidInput,
     "distances must be >= 0; entry 1 is -0.2"),
    ({"distances": [0.1, 0.2, 0.3]}, InvalidInput,
     "responses has 4 entries but there are 3 trials"),
    ({"distances": [[0.1, 0.2], [0.3, 0.4]]}, InvalidInput,
     "distances must be a non-empty 1-D array, got shape (2, 2)"),
    ({"distances": [0.1, np.nan, 0.3, 0.4]}, InvalidInput,
     "distances contains NaN or Inf (1 of 4 values; first at index 1: nan)"),
    ({"distances": ["a", "b", "c", "d"]}, InvalidType,
     "distances must be a real numeric array, got dtype <U1"),
    ({"target": 0.3}, InvalidInput, "target must be in (0.3333, 1), got 0.3"),
    ({"target": 0.97, "lapse": 0.05}, InvalidInput, "target must be in (0.3333, 0.95), got 0.97"),
    ({"guess": 1.0}, InvalidInput, "guess must be in (0, 1), got 1.0"),
    ({"lapse": 0.7}, InvalidInput, "lapse must be in [0, 0.6667), got 0.7"),
])
def test_fit_weibull_bad_input_messages(kwargs, exc, msg):
    args = {"distances": [0.1, 0.2, 0.3, 0.4], "responses": [0, 1, 1, 1]}
    args.update(kwargs)
    with pytest.raises(exc) as info:
        weibull.fit_weibull(args.pop("distances"), args.pop("responses"), **args)
    assert str(info.value) == msg


# ---------------------------------------------------------------------------
# grouping into conditions
# ---------------------------------------------------------------------------
def test_mocs_conditions_groups_shuffled_trials():
    rng = np.random.default_rng(0)
    refs = np.array([[0.1, -0.2], [0.1, -0.2], [-0.5, 0.3]])
    dirs = np.array([[0.6, 0.8], [-1.0, 0.0], [0.0, 1.0]])
    levels = np.array([0.05, 0.1, 0.2])
    cond = np.repeat(np.arange(3), 3 * 4)
    t = np.tile(np.repeat(levels, 4), 3)
    ref = refs[cond]
    comp = ref + t[:, None] * dirs[cond]
    perm = rng.permutation(len(cond))
    data = pn.TrialData.from_arrays(ref[perm], comp[perm], rng.integers(0, 2, len(cond)))
    out = mocs.mocs_conditions(data)
    assert out.refs.shape == (3, 2) and out.directions.shape == (3, 2)
    # conditions are numbered by first appearance; map them back to the design
    first = [cond[perm][np.argmax(out.index == c)] for c in range(3)]
    assert sorted(first) == [0, 1, 2]
    np.testing.assert_array_equal(np.asarray(first)[out.index], cond[perm])
    np.testing.assert_allclose(out.refs, refs[first], atol=1e-12)
    np.testing.assert_allclose(out.directions, dirs[first], atol=1e-12)
    np.testing.assert_allclose(out.distances, t[perm], atol=1e-12)
    # float32 round-off (direction error ~1e-7 / distance) does not split a condition
    f32 = pn.TrialData(data.stimuli.astype(np.float32), data.responses)
    out32 = mocs.mocs_conditions(f32)
    np.testing.assert_array_equal(out32.index, out.index)
    np.testing.assert_allclose(out32.directions, out.directions, atol=1e-5)
    # but a tolerance tighter than that round-off does split it
    assert mocs.mocs_conditions(f32, direction_tol=1e-9).index.max() > 2


def test_mocs_conditions_rejects_zero_offset():
    data = pn.TrialData.from_arrays(np.zeros((3, 2)), [[0.1, 0], [0, 0], [0, 0]], [1, 0, 1])
    with pytest.raises(InvalidInput) as info:
        mocs.mocs_conditions(data)
    assert str(info.value) == (
        "trial 1 has comparison == reference (2 of 3 trials): a MOCS trial needs a non-zero "
        "offset to define its direction"
    )


# ---------------------------------------------------------------------------
# simulate_mocs and validate_mocs against a known WPPM
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def truth():
    """A prior draw (W x 0.6: thresholds 0.07-0.28, levels stay inside the domain)."""
    model = pn.WPPM(input_dim=2)
    params = model.sample_prior(jax.random.PRNGKey(0))
    params = {"W": params["W"] * 0.6}
    # the same (1 reference x 2 directions) call validate_mocs makes: one compile
    true = np.concatenate([pn.thresholds((model, params), r, directions=DIRS).lengths[0]
                           for r in REFS])
    refs, dirs = np.repeat(REFS, 2, axis=0), np.tile(DIRS, (3, 1))
    assert np.all((true > 0.05) & (true < 0.35)), true
    levels = true[:, None] * LEVEL_GRID
    data = mocs.simulate_mocs(model, params, refs, dirs, levels, REPEATS, key=0)
    return model, params, refs, dirs, levels, true, data


def test_simulate_mocs_layout(truth):
    model, params, refs, dirs, levels, true, data = truth
    assert len(data) == 6 * 8 * REPEATS
    cond = mocs.mocs_conditions(data)
    np.testing.assert_allclose(cond.refs, refs, atol=1e-6)
    np.testing.assert_allclose(cond.directions, dirs, atol=1e-6)
    # simulate_trials stores float32-rounded stimuli
    np.testing.assert_allclose(cond.distances.reshape(6, 8, REPEATS),
                               np.broadcast_to(levels[..., None], (6, 8, REPEATS)), atol=1e-6)
    # p(correct) rises from near chance to near ceiling across the levels
    pc = data.responses.reshape(6, 8, REPEATS).mean(-1)
    assert pc[:, 0].mean() < 0.5 and pc[:, -1].mean() > 0.85


def test_simulate_mocs_bad_input(truth):
    model, params = truth[:2]
    with pytest.raises(InvalidInput) as info:
        mocs.simulate_mocs(model, params, [0.9, 0.0], [1.0, 0.0], [0.05, 0.2], 2, key=0)
    assert str(info.value) == (
        "levels of condition 0 reach outside the domain [-1, 1]^2: along direction "
        "[1.0, 0.0] from ref [0.9, 0.0] distances must be <= 0.1, got 0.2"
    )
    with pytest.raises(InvalidInput, match="levels must be > 0, got minimum 0"):
        mocs.simulate_mocs(model, params, [0.0, 0.0], [1.0, 0.0], [0.0, 0.1], 2, key=0)
    with pytest.raises(InvalidInput, match=r"directions must have shape \(2, 2\)"):
        mocs.simulate_mocs(model, params, REFS[:2], np.ones((3, 2)), [0.1], 2, key=0)


def test_validate_mocs_true_model(truth):
    model, params, refs, dirs, levels, true, data = truth
    v = mocs.validate_mocs(pn.MAPFit.from_params(model, params), data, num_bootstrap=300)
    assert v.num_conditions == 6 and not v.has_draws
    np.testing.assert_allclose(v.refs, refs, atol=1e-6)
    np.testing.assert_allclose(v.fit_threshold, true, rtol=1e-6)  # the truth's own thresholds
    assert v.in_range.all() and v.used.all()
    # 320 trials per condition: ~7% sd per Weibull threshold, ~3% on the slope
    np.testing.assert_allclose(v.weibull_threshold, true, rtol=0.25)
    assert abs(v.slope - 1) < 0.1
    assert v.pearson_r > 0.9
    s_lo, s_hi = v.slope_interval
    assert s_lo < v.slope < s_hi and s_lo < 1.0 < s_hi
    assert v.r_interval[0] < v.pearson_r <= v.r_interval[1] <= 1.0
    lo, hi = v.weibull_interval
    assert np.all(lo < v.weibull_threshold) and np.all(v.weibull_threshold < hi)
    assert v.bootstrap_slope.shape == (300,) and v.weibull_bootstrap.shape == (300, 6)
    assert "slope" in v.summary() and "6 of 6 conditions" in v.summary()


def test_validate_mocs_detects_biased_fit(truth):
    model, params, *_, data = truth
    wrong = (model, {"W": params["W"] * 2.0})  # Sigma x 4: every threshold doubles
    v = mocs.validate_mocs(wrong, data, num_bootstrap=300)
    assert abs(v.slope - 2) < 0.2
    assert v.slope_interval[0] > 1.5
    assert v.pearson_r > 0.9  # r is blind to a scale bias; the slope is not


def test_validate_mocs_draw_based_fit_and_table_csv(truth, tmp_path):
    model, params, refs, dirs, levels, true, data = truth
    W = np.asarray(params["W"])
    draws = np.stack([W * s for s in (0.9, 0.95, 1.0, 1.05, 1.1)])[None]  # (1, 5, ...)
    fit = pn.PosteriorFit(model=model, data=data, draws=draws)
    v = mocs.validate_mocs(fit, data, num_bootstrap=100, level=0.9)
    assert v.has_draws
    lo, hi = v.fit_interval
    np.testing.assert_allclose(v.fit_threshold, true, rtol=1e-6)  # median = the 1.0 draw
    assert np.all(lo < true) and np.all(true < hi)
    np.testing.assert_allclose(lo, 0.9 * true, rtol=0.05)
    names, values = v.table()
    assert names[:5] == ["condition", "ref_x", "ref_y", "dir_x", "dir_y"]
    assert {"weibull_threshold", "weibull_lo", "weibull_hi", "fit_threshold", "fit_lo",
            "fit_hi", "in_range", "used"} <= set(names)
    assert values.shape == (6, len(names))
    col = dict(zip(names, values.T, strict=True))
    np.testing.assert_array_equal(col["num_trials"], 8 * REPEATS)
    np.testing.assert_array_equal(col["fit_lo"], lo)
    path = tmp_path / "mocs.csv"
    v.to_csv(path)
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == names
    np.testing.assert_array_equal(np.array(rows[1:], dtype=float), values)  # exact round trip
    assert rows[1][names.index("used")] == "1"
    # a point fit has no fit_lo / fit_hi columns
    names_point, _ = mocs.validate_mocs((model, params), data, num_bootstrap=20).table()
    assert "fit_lo" not in names_point and "fit_threshold" in names_point


def test_validate_mocs_flags_out_of_range_condition(truth):
    model, params, *_, data = truth
    # condition 2 answered correctly on every trial: its Weibull threshold is
    # below the lowest level, an extrapolation that must not enter the slope
    cond = mocs.mocs_conditions(data)
    y = data.responses.copy()
    y[cond.index == 2] = 1
    rigged = pn.TrialData(data.stimuli, y)
    with pytest.warns(RuntimeWarning, match=r"1 of 6 conditions lies outside the tested "
                                            r"levels \(conditions \[2\]\)"):
        v = mocs.validate_mocs((model, params), rigged, num_bootstrap=50)
    assert not v.in_range[2] and not v.used[2] and v.used.sum() == 5
    names, values = v.table()
    col = dict(zip(names, values.T, strict=True))
    assert col["in_range"][2] == 0 and col["used"][2] == 0
    assert col["weibull_threshold"][2] < col["level_min"][2]
    with pytest.warns(RuntimeWarning, match="included in slope and r"):
        v_all = mocs.validate_mocs((model, params), rigged, num_bootstrap=50,
                                   include_out_of_range=True)
    assert v_all.used.all()


def test_validate_mocs_fit_without_crossing_is_excluded(truth):
    model, params, *_, data = truth
    huge = (model, {"W": params["W"] * 20.0})  # thresholds x 20: beyond the domain edge
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        v = mocs.validate_mocs(huge, data, num_bootstrap=20)
    text = " ".join(str(w.message) for w in caught)
    assert "never reaches 0.6667 inside the domain for 6 of 6 conditions" in text
    assert "0 usable condition(s)" in text
    assert not v.used.any() and np.isnan(v.slope) and np.isnan(v.pearson_r)
    assert np.all(np.isnan(v.slope_interval))


def test_validate_mocs_1d_picks_the_ray_direction():
    # 1-D: thresholds always solves the +1 and -1 rays; each condition must get its own
    model = pn.WPPM(input_dim=1, basis_degree=2)
    W = np.zeros(model.weight_shape)
    W[0, 0] = [0.03, 0.01]
    W[1, 0] = [0.02, 0.0]  # Sigma grows with x: the +1 ray has the larger threshold
    refs = np.array([[0.0], [0.0], [0.3]])
    dirs = np.array([[1.0], [-1.0], [-1.0]])
    _, y, _ = _simulate_weibull(0.05, 2.0, 10, seed=0)
    t = np.repeat(weibull.weibull_threshold(0.05, 2.0) * LEVEL_GRID, 10)
    ref = np.repeat(refs, len(t), axis=0)
    comp = ref + np.tile(t, 3)[:, None] * np.repeat(dirs, len(t), axis=0)
    data = pn.TrialData.from_arrays(ref, comp, np.tile(y, 3))
    v = mocs.validate_mocs((model, {"W": W}), data, num_bootstrap=20)
    # (2 refs, [+1, -1]), one reference per call as validate_mocs does (one compile)
    th = np.concatenate([pn.thresholds((model, {"W": W}), [r]).lengths for r in (0.0, 0.3)])
    np.testing.assert_allclose(v.fit_threshold, [th[0, 0], th[0, 1], th[1, 1]], rtol=1e-6)
    assert th[0, 0] > th[0, 1]
    assert v.table()[0][:3] == ["condition", "ref_x", "dir_x"]


def test_validate_mocs_bad_input(truth):
    model, params, *_, data = truth
    with pytest.raises(InvalidType, match="fit must be a fit"):
        mocs.validate_mocs("fit", data)
    data_1d = pn.TrialData(np.full((4, 2, 1), 0.1) + [[0.0], [0.1]], [0, 1, 1, 0])
    with pytest.raises(InvalidInput) as info:
        mocs.validate_mocs((model, params), data_1d)
    assert str(info.value) == (
        "mocs_data has 1-D stimuli but the fit's model has input_dim=2")
    one_level = pn.TrialData.from_arrays(np.zeros((4, 2)), np.full((4, 2), 0.1), [0, 1, 1, 0])
    with pytest.raises(InvalidInput) as info:
        mocs.validate_mocs((model, params), one_level)
    assert str(info.value) == (
        "condition 0 (ref [0.0, 0.0], direction [0.7071, 0.7071]) has 1 level; a Weibull fit "
        "needs at least 2 distinct distances"
    )
    with pytest.raises(InvalidInput, match=r"level must be in \(0, 1\), got 1.5"):
        mocs.validate_mocs((model, params), data, level=1.5)


# ---------------------------------------------------------------------------
# the figure
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def validation(truth):
    model, params, *_, data = truth
    W = np.asarray(params["W"])
    draws = np.stack([W * s for s in (0.9, 0.95, 1.0, 1.05, 1.1)])[None]
    fit = pn.PosteriorFit(model=model, data=data, draws=draws)
    return mocs.validate_mocs(fit, data, num_bootstrap=100)


def test_plot_mocs_artists_and_png(validation, tmp_path):
    v = validation
    fig = v.plot()
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Weibull 66.7% threshold (MOCS)"
    assert ax.get_ylabel() == "WPPM threshold"
    assert ax.get_aspect() == 1.0
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["identity", f"y = {v.slope:.2f} x", "conditions (n = 6)"]
    # identity and slope line
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    x_id, y_id = lines["identity"].get_data()
    np.testing.assert_allclose(x_id, y_id)
    xs, ys = lines[f"y = {v.slope:.2f} x"].get_data()
    np.testing.assert_allclose(ys, v.slope * xs)
    # one errorbar container with both horizontal and vertical bars
    (cont,) = ax.containers
    assert cont.has_xerr and cont.has_yerr
    np.testing.assert_allclose(cont.lines[0].get_xdata(), v.weibull_threshold)
    text = " ".join(t.get_text() for t in ax.texts)
    assert f"slope = {v.slope:.2f}" in text and f"r = {v.pearson_r:.2f}" in text
    assert ax.get_xlim() == ax.get_ylim() and ax.get_xlim()[0] == 0.0
    path = tmp_path / "mocs.png"
    save_figure(fig, path, dpi=80)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close(fig)


def test_plot_mocs_log_axes_existing_ax_and_bad_input(validation):
    fig, ax = plt.subplots()
    out = plot_mocs(validation, ax=ax, log=True, annotate=False, ms=3)
    assert out is fig and ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert not ax.texts
    plt.close(fig)
    with pytest.raises(InvalidType, match="plot_mocs needs a MOCSValidation"):
        plot_mocs(object())
    with pytest.raises(InvalidType, match=r"unexpected keyword argument\(s\) \['bogus'\]"):
        plot_mocs(validation, bogus=1)
