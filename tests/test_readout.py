"""Read-outs: psychometric functions, thresholds, ellipse fits and their plots."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy.special import expit  # noqa: E402

import psyphy_numpyro as pn  # noqa: E402
from psyphy_numpyro.plotting import plot_psychometric, plot_thresholds, plot_trials  # noqa: E402
from psyphy_numpyro.readout import ray_extent, unit_directions  # noqa: E402

W_CONST = np.array([[0.05, 0.02, 0.0], [0.0, 0.03, 0.01]])


def _map_fit(model, W):
    data = pn.TrialData(np.zeros((1, 2, model.input_dim)), np.ones(1))
    return pn.MAPFit(
        params={"W": np.asarray(W)},
        model=model,
        data=data,
        loss_history=np.zeros(1),
        restart_histories=np.zeros((1, 1)),
        restart_losses=np.zeros(1),
        best_restart=0,
    )


def _const_fit(scale=1.0, diag_term=1e-4, estimator="cv", num_samples=128):
    model = pn.WPPM(input_dim=2, basis_degree=0, diag_term=diag_term, estimator=estimator,
                    num_samples=num_samples)
    W = np.zeros(model.weight_shape)
    W[0, 0] = scale * W_CONST
    return _map_fit(model, W)


def _mc_threshold(Sigma, u, bandwidth, target, t_grid, n=100_000, seed=1):
    """Independent three-sample plain Monte Carlo (SPEC 2) of p(t) on a grid, inverted."""
    rng = np.random.default_rng(seed)
    L = np.linalg.cholesky(Sigma)
    m = np.linalg.solve(L, u)  # whitened unit step: comparison mean = t * m
    w0, w1, n2 = (rng.standard_normal((n, 2)) for _ in range(3))
    d01 = np.sum((w0 - w1) ** 2, 1)
    a02, a12 = np.sum((w0 - n2) ** 2, 1), np.sum((w1 - n2) ** 2, 1)
    b02, b12 = (w0 - n2) @ m, (w1 - n2) @ m
    t = t_grid[:, None]
    mm = m @ m
    delta = np.minimum(a02 - 2 * t * b02, a12 - 2 * t * b12) + t**2 * mm - d01
    p = expit(delta / bandwidth).mean(1)
    i = int(np.argmax(p >= target))
    assert i > 0 and p[0] < target, "grid does not bracket the target"
    return t_grid[i - 1] + (target - p[i - 1]) / (p[i] - p[i - 1]) * (t_grid[i] - t_grid[i - 1])


# --- (a) constant field: thresholds invert the Monte Carlo psychometric function ---------
CHECK_DIRS = (0, 1, 2, 5)


@pytest.fixture(scope="module")
def mc_reference():
    """High-sample Monte Carlo thresholds of the constant field along unit_directions(2, 8)."""
    fit = _const_fit()
    Sigma = np.asarray(fit.covariance(np.zeros(2)), dtype=float)
    dirs = unit_directions(2, 8)
    bw = fit.model.bandwidth
    grid = np.linspace(0, 0.3, 151)
    per_dir = {k: _mc_threshold(Sigma, dirs[k], bw, 2 / 3, grid) for k in CHECK_DIRS}
    dstar = _mc_threshold(np.eye(2), np.array([1.0, 0.0]), bw, 2 / 3, np.linspace(1.5, 3.5, 201))
    return Sigma, dirs, per_dir, dstar


@pytest.mark.parametrize("estimator,num_samples", [("cv", None), ("reparam", 80000)])
def test_constant_field_threshold_matches_monte_carlo_inverse(
    estimator, num_samples, mc_reference
):
    Sigma, dirs, per_dir, dstar = mc_reference
    fit = _const_fit(estimator=estimator)
    th = pn.thresholds(fit, np.zeros((1, 2)), directions=dirs, num_samples=num_samples)
    assert th.lengths.shape == (1, 8)
    for k in CHECK_DIRS:
        assert th.lengths[0, k] == pytest.approx(per_dir[k], rel=0.02)
    # the boundary of a constant field is the Mahalanobis ellipse d*^2 Sigma
    E = dstar**2 * Sigma
    assert np.linalg.norm(th.ellipses[0] - E) < 0.04 * np.linalg.norm(E)
    # the psychometric function crosses the target at the threshold
    t = th.lengths[0, 3]
    p = pn.psychometric(fit, np.zeros(2), dirs[3], [0.0, 0.999 * t, 1.001 * t],
                        num_samples=num_samples)
    assert p.shape == (3,)
    assert p[0] == pytest.approx(1 / 3, abs=0.02)
    assert p[1] < 2 / 3 < p[2]


def test_field_legend_states_the_threshold_it_draws():
    """plot_fit's legend calls its Sigma(x) ellipses 66.7%-correct thresholds drawn at
    scale / k x true size: on a constant field, Sigma at radius k is the threshold ellipse."""
    from psyphy_numpyro.hyperparameters import threshold_constant
    from psyphy_numpyro.plotting import scale_text

    fit = _const_fit()
    th = pn.thresholds(fit, np.zeros((1, 2)), num_directions=16)
    k = threshold_constant(2, fit.model.bandwidth)
    Sigma = np.asarray(fit.covariance(np.zeros(2)), dtype=float)
    np.testing.assert_allclose(th.ellipses[0], k**2 * Sigma, rtol=0.03, atol=1e-3 * Sigma.max())
    assert scale_text(0.5 * k, fit.model) == (
        "ellipses: 66.7%-correct thresholds, drawn at 0.5 x true size")


def test_psychometric_is_smooth_and_monotone_with_fixed_noise():
    fit = _const_fit()
    t = np.linspace(0, 0.4, 41)
    p = pn.psychometric(fit, [0.1, -0.2], [1.0, 1.0], t, key=3)
    assert np.all(np.diff(p) > 0)
    np.testing.assert_array_equal(p, pn.psychometric(fit, [0.1, -0.2], [2.0, 2.0], t, key=3))


# --- (b) ellipse fit and scaling ---------------------------------------------------------
def test_fit_ellipse_recovers_known_ellipse_exactly():
    E = np.array([[0.04, 0.015], [0.015, 0.02]])
    u = unit_directions(2, 12)
    r = 1.0 / np.sqrt(np.einsum("ki,ij,kj->k", u, np.linalg.inv(E), u))
    got = pn.fit_ellipse(r[:, None] * u)
    np.testing.assert_allclose(got, E, rtol=1e-4)
    # batched, with some NaN rows left out of the fit
    v = np.stack([r[:, None] * u, 2 * r[:, None] * u])
    v[0, :3] = np.nan
    got = pn.fit_ellipse(v)
    np.testing.assert_allclose(got[0], E, rtol=1e-4)
    np.testing.assert_allclose(got[1], 4 * E, rtol=1e-4)
    # 3-D, Fibonacci directions
    E3 = np.array([[0.05, 0.01, 0.0], [0.01, 0.03, -0.005], [0.0, -0.005, 0.02]])
    u3 = unit_directions(3, 20)
    r3 = 1.0 / np.sqrt(np.einsum("ki,ij,kj->k", u3, np.linalg.inv(E3), u3))
    np.testing.assert_allclose(pn.fit_ellipse(r3[:, None] * u3), E3, rtol=1e-4, atol=1e-7)
    # too few points: NaN, not garbage
    assert np.all(np.isnan(pn.fit_ellipse((r[:, None] * u)[:2])))


@pytest.mark.parametrize("c", [0.25, 2.0])
def test_thresholds_scale_as_sqrt_c(c):
    refs = np.array([[0.0, 0.0], [0.3, -0.4]])
    base = pn.thresholds(_const_fit(), refs)
    scaled = pn.thresholds(_const_fit(scale=np.sqrt(c), diag_term=c * 1e-4), refs)
    np.testing.assert_allclose(scaled.lengths, np.sqrt(c) * base.lengths, rtol=2e-3)
    np.testing.assert_allclose(scaled.ellipses, c * base.ellipses, rtol=5e-3)
    pts = base.points - refs[:, None]
    E_inv = np.linalg.inv(base.ellipses)
    np.testing.assert_allclose(np.einsum("rki,rij,rkj->rk", pts, E_inv, pts), 1.0, rtol=1e-3)


def test_varying_field_rays_and_nan_warning():
    model = pn.WPPM(input_dim=2, basis_degree=2)
    fit = _map_fit(model, model.sample_prior(2)["W"])
    refs = np.array([[0.0, 0.0], [0.6, 0.5], [-0.5, 0.5]])
    th = pn.thresholds(fit, refs, num_directions=12, num_samples=256)
    ok = np.isfinite(th.lengths)
    assert ok.all()
    assert np.all(th.lengths <= th.max_lengths + 1e-6)
    assert np.all(np.abs(th.points) <= 1 + 1e-6)
    # every boundary point sits on the target contour of the fixed-noise psychometric function
    for r, k in [(0, 0), (1, 7), (2, 4)]:
        t = th.lengths[r, k]
        p = pn.psychometric(fit, refs[r], th.directions[k], [0.995 * t, 1.005 * t],
                             num_samples=256)
        assert p[0] < 2 / 3 < p[1]
    with pytest.warns(RuntimeWarning, match="rays never reach"):
        short = pn.thresholds(fit, refs, num_directions=12, max_distance=0.01,
                              num_samples=256)
    assert np.all(np.isnan(short.lengths))
    assert np.all(np.isnan(short.ellipses))


def test_one_dimensional_intervals():
    model = pn.WPPM(input_dim=1, basis_degree=1)
    W = np.zeros(model.weight_shape)
    W[0] = [[0.05, 0.01]]
    W[1] = [[0.02, 0.0]]
    fit = _map_fit(model, W)
    refs = np.array([[-0.5], [0.0], [0.5]])
    th = pn.thresholds(fit, refs)
    assert th.directions.shape == (2, 1) and th.lengths.shape == (3, 2)
    assert th.ellipses.shape == (3, 2)
    np.testing.assert_allclose(th.ellipses[:, 0], refs[:, 0] - th.lengths[:, 1])
    np.testing.assert_allclose(th.ellipses[:, 1], refs[:, 0] + th.lengths[:, 0])
    # the noise grows with x (W[1] > 0), so thresholds grow to the right
    assert np.all(np.diff(th.lengths[:, 0]) > 0)


# --- (c) draw-based fits -------------------------------------------------------------------
def _laplace_fit(num=8):
    model = pn.WPPM(input_dim=2, basis_degree=1)
    W0 = np.asarray(model.sample_prior(5)["W"])
    scales = np.linspace(0.7, 1.3, num)
    draws = (scales[:, None, None, None, None] * W0)[None]  # (1 chain, num, ...)
    data = pn.TrialData(np.zeros((1, 2, 2)), np.ones(1))
    return pn.LaplaceFit(model=model, data=data, draws=draws), W0, scales


def test_draw_based_thresholds_have_per_draw_results_and_intervals(tmp_path):
    post, W0, scales = _laplace_fit()
    refs = np.array([[0.0, 0.0], [0.4, 0.2]])
    th = pn.thresholds(post, refs, num_directions=8, level=0.8, num_samples=256)
    S = len(scales)
    assert th.has_draws
    assert th.lengths.shape == (S, 2, 8) and th.points.shape == (S, 2, 8, 2)
    assert th.ellipses.shape == (S, 2, 2, 2)
    assert th.median.shape == (2, 8) and th.interval.shape == (2, 2, 8) and th.level == 0.8
    np.testing.assert_allclose(th.median, np.median(th.lengths, 0), rtol=1e-6)
    np.testing.assert_allclose(th.interval, np.quantile(th.lengths, [0.1, 0.9], 0), rtol=1e-6)
    assert np.all(th.interval[0] < th.median) and np.all(th.median < th.interval[1])
    # larger W (bigger Sigma) -> longer thresholds, draw by draw
    assert np.all(np.diff(th.lengths, axis=0) > 0)
    # each draw equals the MAP read-out of that draw's weights (same fixed noise)
    for s in (0, S - 1):
        one = pn.thresholds(_map_fit(post.model, scales[s] * W0), refs, num_directions=8,
                            num_samples=256)
        np.testing.assert_allclose(th.lengths[s], one.lengths, rtol=1e-4)
    assert th.median_ellipses.shape == (2, 2, 2)
    thin = pn.thresholds(post, refs, num_directions=8, num_draws=4, num_samples=256)
    assert thin.lengths.shape == (4, 2, 8)
    # the table: median-ellipse parameters and credible bounds of the semi-axes
    table = th.table()
    assert isinstance(table, pd.DataFrame) and len(table) == 2
    assert table["missing_rays"].dtype.kind == "i" and table["E_xx"].dtype == np.float64
    names, values = list(table.columns), table.to_numpy(dtype=float)
    E = th.median_ellipses
    col = {n: values[:, i] for i, n in enumerate(names)}
    np.testing.assert_array_equal(col["E_xy"], E[:, 0, 1])
    np.testing.assert_allclose(col["semi_major"], np.sqrt(np.linalg.eigvalsh(E)[:, 1]))
    assert np.all(col["semi_major_lo"] <= col["semi_major"])
    assert np.all(col["semi_major"] <= col["semi_major_hi"])
    path = tmp_path / "th.csv"
    th.to_csv(path)
    back = np.genfromtxt(path, delimiter=",", names=True)
    assert list(back.dtype.names) == names
    for i, n in enumerate(names):
        np.testing.assert_array_equal(back[n], values[:, i])  # full precision round trip


def test_draw_based_psychometric():
    post, W0, scales = _laplace_fit(num=5)
    t = np.linspace(0.0, 0.3, 7)
    p = pn.psychometric(post, [0.1, 0.1], [0.0, 1.0], t, key=2)
    assert p.shape == (5, 7)
    one = pn.psychometric(_map_fit(post.model, scales[2] * W0), [0.1, 0.1], [0.0, 1.0], t, key=2)
    np.testing.assert_allclose(p[2], one, rtol=1e-5)
    # a larger field needs a longer distance for the same p(correct)
    assert np.all(p[0, 1:] > p[-1, 1:])


def test_median_treats_missing_crossings_as_beyond_the_edge():
    from psyphy_numpyro.contours import length_quantiles

    x = np.array([[1.0], [2.0], [np.nan], [np.nan], [np.nan]])
    med, hi = length_quantiles(x, [0.5, 0.9])
    assert np.isnan(med[0]) and np.isnan(hi[0])
    lo = length_quantiles(x, [0.1])[0]
    assert lo[0] == pytest.approx(1.4)


# --- (d) plots -----------------------------------------------------------------------------
def test_plot_thresholds_map_and_draws(tmp_path):
    refs = np.array([[0.0, 0.0], [0.4, 0.2], [-0.3, 0.5]])
    th = pn.thresholds(_const_fit(), refs, num_directions=8)
    fig, ax = plt.subplots()
    assert plot_thresholds(th, ax=ax, label="MAP") is ax
    assert len(ax.lines) == 3 and len(ax.collections) == 2  # ellipses; boundary points + refs
    fig.savefig(tmp_path / "map.png")
    assert (tmp_path / "map.png").stat().st_size > 1000
    plt.close(fig)

    post, _, _ = _laplace_fit(num=6)
    thd = pn.thresholds(post, refs[:2], num_directions=8, num_samples=256)
    fig, ax = plt.subplots()
    plot_thresholds(thd, ax=ax, max_draws=4, show_points=False)
    assert len(ax.lines) == 4 * 2 + 2 and len(ax.collections) == 1
    fig.savefig(tmp_path / "spaghetti.png")
    plt.close(fig)
    fig, ax = plt.subplots()
    plot_thresholds(thd, ax=ax, draws="ribbon", show_refs=False)
    assert len(ax.patches) == 2 and len(ax.lines) == 2
    fig.savefig(tmp_path / "ribbon.png")
    assert (tmp_path / "ribbon.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="spaghetti"):
        plot_thresholds(thd, ax=ax, draws="bogus")
    plt.close(fig)


def test_plot_psychometric_and_trials(tmp_path):
    t = np.linspace(0, 0.3, 20)
    rng = np.random.default_rng(0)
    p = np.clip(1 / 3 + 2 * t[None] * rng.uniform(0.8, 1.2, (30, 1)), 0, 1)
    fig, ax = plt.subplots()
    obs = (rng.uniform(0, 0.3, 200), rng.integers(0, 2, 200))
    assert plot_psychometric(t, p, ax=ax, data=obs, bins=6, target=2 / 3) is ax
    assert len(ax.collections) == 2  # band + binned proportions
    assert len(ax.lines) == 3  # median curve, chance and target lines
    labels = [ln.get_label() for ln in ax.lines]
    assert labels[1:] == ["chance (1/3)", "66.7% correct"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), 1 / 3)
    offsets = ax.collections[1].get_offsets()
    assert len(offsets) == 6 and np.all((offsets[:, 1] >= 0) & (offsets[:, 1] <= 1))
    fig.savefig(tmp_path / "psy.png")
    assert (tmp_path / "psy.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="distances \\(T,\\)"):
        plot_psychometric(t, p[:, :5], ax=ax)
    plt.close(fig)

    fig, ax = plt.subplots()
    plot_psychometric(t, p[0], ax=ax)
    assert len(ax.lines) == 2 and len(ax.collections) == 0  # the curve and chance
    plt.close(fig)

    stim = rng.uniform(-0.5, 0.5, (40, 2, 2))
    data = pn.TrialData(stim, rng.integers(0, 2, 40))
    fig, ax = plt.subplots()
    assert plot_trials(data, ax=ax) is ax
    assert len(ax.collections) == 3  # segments, refs, comparisons
    assert len(ax.collections[0].get_segments()) == 40
    fig.savefig(tmp_path / "trials.png")
    assert (tmp_path / "trials.png").stat().st_size > 1000
    plt.close(fig)
    fig, ax = plt.subplots()
    plot_trials(data, ax=ax, max_trials=10)
    assert len(ax.collections[0].get_segments()) == 10
    plt.close(fig)


# --- (e) errors ----------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors():
    fit = _const_fit()
    with pytest.raises(ValueError, match="outside the domain"):
        pn.psychometric(fit, [0.9, 0.0], [1.0, 0.0], [0.0, 0.05, 0.2])
    with pytest.raises(ValueError, match="non-zero"):
        pn.psychometric(fit, [0.0, 0.0], [0.0, 0.0], [0.1])
    with pytest.raises(ValueError, match="direction must be"):
        pn.psychometric(fit, [0.0, 0.0], [1.0, 0.0, 0.0], [0.1])
    with pytest.raises(ValueError, match="distances must be"):
        pn.psychometric(fit, [0.0, 0.0], [1.0, 0.0], [[0.1]])
    with pytest.raises(ValueError, match="ref must have shape"):
        pn.psychometric(fit, [[0.0, 0.0]], [1.0, 0.0], [0.1])
    with pytest.raises(ValueError, match="outside the domain"):
        pn.thresholds(fit, [[1.5, 0.0]])
    with pytest.raises(ValueError, match="target must be in"):
        pn.thresholds(fit, [[0.0, 0.0]], target=0.3)
    with pytest.raises(ValueError, match="num_directions must be >= 3"):
        pn.thresholds(fit, [[0.0, 0.0]], num_directions=2)
    with pytest.raises(ValueError, match="max_distance"):
        pn.thresholds(fit, [[0.0, 0.0]], max_distance=-1.0)
    with pytest.raises(ValueError, match="refs must have shape"):
        pn.thresholds(fit, np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="directions must have shape"):
        pn.thresholds(fit, [[0.0, 0.0]], directions=np.ones((3, 3)))
    with pytest.raises(TypeError, match="MAPFit"):
        pn.thresholds(object(), [[0.0, 0.0]])
    with pytest.raises(ValueError, match="offsets must have shape"):
        pn.fit_ellipse(np.ones(3))


def test_ray_extent():
    refs = np.array([[0.0, 0.0], [0.5, -0.5], [1.0, 0.0]])
    u = np.array([[1.0, 0.0], [-np.sqrt(0.5), -np.sqrt(0.5)], [1.0, 0.0]])
    np.testing.assert_allclose(ray_extent(refs, u), [1.0, 0.5 / np.sqrt(0.5), 0.0], rtol=1e-6)


def test_one_d_thresholds_with_given_directions():
    """In 1-D any direction list works: the interval takes the first +1 and -1 rays (NaN
    for a side without one)."""
    model = pn.WPPM(input_dim=1, basis_degree=2, num_samples=16)
    fit = (model, model.sample_prior(0))
    both = pn.thresholds(fit, [[0.1]], num_samples=64)
    up = pn.thresholds(fit, [[0.1]], directions=[[1.0]], num_samples=64)
    three = pn.thresholds(fit, [[0.1]], directions=[[-2.0], [1.0], [1.0]], num_samples=64)
    np.testing.assert_allclose(up.ellipses[0, 1], both.ellipses[0, 1], rtol=1e-6)
    assert np.isnan(up.ellipses[0, 0])
    np.testing.assert_allclose(three.ellipses, both.ellipses, rtol=1e-6)
