"""Figures: every plot function in 1-D, 2-D and 3-D, for every fit kind, saved as PNG/PDF/SVG.

Fits are built from weights without optimising (a MAP fit of a prior draw,
and draw-based fits of the same 20 perturbed draws), shared per module.
"""

import matplotlib

matplotlib.use("Agg")
import re
import warnings  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

import psyphy_numpyro as pn  # noqa: E402
from psyphy_numpyro.arviz_io import default_grid  # noqa: E402
from psyphy_numpyro.plotting import (  # noqa: E402
    COLORS,
    PALETTE,
    auto_scale,
    binned_ppc,
    ellipse_points,
    grid_points,
    plane_covariances,
    plot_field,
    plot_field_band,
    plot_fit,
    plot_learning_curve,
    plot_ppc,
    plot_psychometric,
    plot_thresholds,
    plot_trials,
    save_figure,
    threshold_scale,
)

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}
KINDS = ("map", "laplace", "bootstrap", "mcmc", "posterior")


def _saved_all(fig, tmp_path, stem="f"):
    """Save as PNG, PDF and SVG and check each file's type by its first bytes."""
    for ext in ("png", "pdf", "svg"):
        path = tmp_path / f"{stem}.{ext}"
        save_figure(fig, path, dpi=60)  # 300 dpi is checked once, in test_save_figure
        head = path.read_bytes()[:400]
        if ext == "svg":
            assert head.startswith(b"<?xml") and b"<svg" in head, head[:80]
        else:
            assert head.startswith(MAGIC[ext]), (ext, head[:10])
    plt.close(fig)


def _covs(g, seed=0, d=2):
    rng = np.random.default_rng(seed)
    A = rng.normal(0, 0.1, (g, d, d))
    return A @ np.swapaxes(A, 1, 2) + 1e-3 * np.eye(d)


def _make_fits(d):
    """Fits of one prior draw and of 20 draws around it, on 80 made-up trials (no compiling)."""
    model = pn.WPPM(input_dim=d, basis_degree=1, num_samples=16, estimator="reparam",
                    variance_scale=2e-3)
    W = np.asarray(model.sample_prior(d)["W"])
    rng = np.random.default_rng(d)
    ref = rng.uniform(-0.8, 0.8, (80, d))
    comp = np.clip(ref + rng.normal(0, 0.1, ref.shape), -1, 1)
    data = pn.TrialData.from_arrays(ref, comp, rng.uniform(size=80) < 0.7)
    fit = pn.MAPFit.from_params(model, {"W": W}, data)
    noise = rng.standard_normal((1, 20) + W.shape)
    draws = (W + 0.1 * model.prior_std() * noise).astype(W.dtype)
    two_chains = draws.reshape((2, 10) + W.shape)
    return {
        "map": fit,
        "laplace": pn.LaplaceFit(model=model, data=data, draws=draws, map_fit=fit, mean=W),
        "bootstrap": pn.BootstrapFit(model=model, data=data, draws=draws, map_fit=fit),
        "mcmc": pn.MCMCFit(model=model, data=data, draws=two_chains),
        "posterior": pn.PosteriorFit(model, data, draws),
    }


@pytest.fixture(scope="module")
def fits():
    return {d: _make_fits(d) for d in (1, 2, 3)}


def _hand_thresholds(d, num_draws=None, seed=0):
    """A Thresholds result of known ellipses (no fit): lengths ``1 / sqrt(u' E^-1 u)``."""
    from psyphy_numpyro.contours import Thresholds, fit_ellipse, unit_directions

    rng = np.random.default_rng(seed)
    refs = default_grid(d, 3)
    u = unit_directions(d, 8)
    E = _covs(len(refs), seed, d) * 4  # semi-axes up to ~0.3
    S = 1 if num_draws is None else num_draws
    E = E[None] * rng.uniform(0.8, 1.25, (S, len(refs), 1, 1))
    lengths = 1 / np.sqrt(np.einsum("ki,srij,kj->srk", u, np.linalg.inv(E), u))
    lengths[..., 0, 0] = np.nan  # a ray without a crossing
    points = refs[:, None, :] + lengths[..., None] * u
    if d == 1:
        ellipses = np.stack([refs[:, 0] - lengths[..., 1], refs[:, 0] + lengths[..., 0]], -1)
    else:
        ellipses = fit_ellipse(points - refs[:, None, :])
    kw = {}
    if num_draws is None:
        lengths, points, ellipses = lengths[0], points[0], ellipses[0]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the ray without a crossing
            kw = {"median": np.nanmedian(lengths, 0), "level": 0.9,
                  "interval": np.nanquantile(lengths, [0.05, 0.95], axis=0)}
    return Thresholds(refs=refs, directions=u, lengths=lengths, points=points,
                      ellipses=ellipses, max_lengths=np.ones(lengths.shape[-2:]), **kw)


@pytest.fixture(scope="module")
def thresholds():
    return {d: {"map": _hand_thresholds(d), "posterior": _hand_thresholds(d, 6)}
            for d in (1, 2, 3)}


# --- helpers and fields -------------------------------------------------------------------------
def test_palette_is_okabe_ito():
    assert PALETTE[:3] == (COLORS["blue"], COLORS["vermillion"], COLORS["green"])
    assert "#0072B2" in PALETTE and len(set(PALETTE)) == len(PALETTE)
    assert not {to_hex(f"C{i}").upper() for i in range(10)} & {c.upper() for c in PALETTE}


def test_ellipse_points_lie_on_the_mahalanobis_contour():
    S = np.array([[0.04, 0.01], [0.01, 0.02]])
    pts = ellipse_points([0.1, -0.2], S, scale=2.0)
    d = pts - [0.1, -0.2]
    np.testing.assert_allclose(np.einsum("ni,ij,nj->n", d, np.linalg.inv(S), d), 4.0)


def test_auto_scale_fills_the_grid_spacing():
    grid = grid_points(3, -0.5, 0.5)
    covs = _covs(9)
    s = auto_scale(grid, covs, fill=0.4)
    largest = np.sqrt(np.linalg.eigvalsh(covs)[:, -1].max())
    assert s * largest == pytest.approx(0.4 * 0.5)


def test_plane_covariances_section_and_marginal():
    S = _covs(4, d=3)
    marg = plane_covariances(S, (0, 2), "marginal")
    np.testing.assert_array_equal(marg, S[:, [0, 2]][:, :, [0, 2]])
    sec = plane_covariances(S, (0, 2), "section")
    # the section is the inverse of the precision's sub-block (the ellipsoid cut by the plane)
    prec = np.linalg.inv(S)[:, [0, 2]][:, :, [0, 2]]
    np.testing.assert_allclose(sec, np.linalg.inv(prec), rtol=1e-10)
    assert np.all(np.linalg.eigvalsh(marg - sec) > -1e-12)  # the shadow contains the section
    with pytest.raises(ValueError, match='cut must be "section" or "marginal"'):
        plane_covariances(S, (0, 1), "slice")
    with pytest.raises(ValueError, match="plane must be two distinct coordinates"):
        plane_covariances(S, (1, 1))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\) covariances"):
        plane_covariances(_covs(2), (0, 1))


def test_plot_field_and_band_2d(tmp_path):
    grid = grid_points(3)
    covs = _covs(9)
    fig, ax = plt.subplots()
    out = plot_field(covs, grid, ax=ax, color="k", label="truth")
    assert out is ax and len(ax.lines) == 9
    plot_field(covs, grid, ax=ax, label="again")  # the next palette colour after "truth"
    assert ax.lines[-1].get_color() == PALETTE[1]
    for line in list(ax.lines[9:]):
        line.remove()
    draws = covs[None] * np.random.default_rng(1).uniform(0.8, 1.2, (50, 9, 1, 1))
    plot_field_band(draws, grid, ax=ax, color=PALETTE[0], label="band")
    assert len(ax.patches) == 9
    assert [t.get_text() for t in ax.legend().get_texts()] == ["truth", "band"]
    assert "model units" in ax.get_xlabel() and "model units" in ax.get_ylabel()
    _saved_all(fig, tmp_path)
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="cov_draws \\(D, G, 2, 2\\)"):
        plot_field_band(covs, grid, ax=ax)
    with pytest.raises(ValueError, match="centers \\(G, 2\\) and covs \\(G, 2, 2\\)"):
        plot_field(covs[:3], grid, ax=ax)
    with pytest.raises(ValueError, match="plane selects a slice of 3-D covariances"):
        plot_field(covs, grid, ax=ax, plane=(0, 1))
    plt.close(fig)


def test_plot_field_1d_and_3d(tmp_path):
    x = np.linspace(-1, 1, 7)[:, None]
    var = np.linspace(0.01, 0.04, 7)[:, None, None]
    fig, ax = plt.subplots()
    plot_field(var, x, ax=ax, scale=2.0)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), 2.0 * np.sqrt(var[:, 0, 0]))
    assert ax.lines[0].get_color() == PALETTE[0]  # no colour given: the palette, not tab10
    plot_field_band(var[None] * [[[[0.8]]], [[[1.2]]]], x, ax=ax)
    assert len(ax.collections) == 1 and "sqrt Sigma" in ax.get_ylabel()
    _saved_all(fig, tmp_path, "one")

    centers = np.c_[grid_points(3), np.full(9, 0.2)]
    covs = _covs(9, d=3)
    fig, axes = plt.subplots(1, 2)
    plot_field(covs, centers, ax=axes[0], plane=(0, 2), scale=1.0)
    plot_field_band(covs[None] * [[[[0.9]]], [[[1.1]]]], centers, ax=axes[1], plane=(0, 2),
                    cut="marginal", scale=1.0)
    assert len(axes[0].lines) == 9 and len(axes[1].patches) == 9
    assert axes[0].get_ylabel().startswith("stimulus z")
    # the drawn ellipse is the section of Sigma by the (x, z) plane
    pts = axes[0].lines[0].get_xydata() - centers[0, [0, 2]]
    sec = plane_covariances(covs[0], (0, 2))
    np.testing.assert_allclose(np.einsum("ni,ij,nj->n", pts, np.linalg.inv(sec), pts), 1.0,
                               rtol=1e-6)
    _saved_all(fig, tmp_path, "three")


# --- plot_fit: every kind, every dimension -------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_plot_fit_every_kind_and_dimension(fits, d, kind, tmp_path):
    f = fits[d][kind]
    fig = plot_fit(f)
    axes = fig.axes
    draws = not f.point
    for ax in axes:
        assert "model units" in ax.get_xlabel() and ax.get_ylabel()
    if d == 1:
        (ax,) = axes
        x = np.linspace(-1, 1, 101)[:, None]
        sd = np.sqrt(np.asarray(f.covariance(x))[..., 0, 0])
        expect = np.median(sd, 0) if draws else sd
        np.testing.assert_allclose(ax.lines[0].get_ydata(), expect, rtol=1e-4)
        assert len(ax.collections) == int(draws)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
    elif d == 2:
        (ax,) = axes
        assert len(ax.lines) == 25 and len(ax.patches) == 25 * draws
        legend = ax.get_legend()
        labels = [t.get_text() for t in legend.get_texts()]
        assert "66.7%-correct thresholds," in legend.get_title().get_text()
        assert "drawn at" in legend.get_title().get_text()
        # legend outside the data: left of it is the axes' right edge
        fig.canvas.draw()
        assert legend.get_window_extent().x0 >= ax.get_window_extent().x1
        _no_overlap(ax)
    else:
        assert len(axes) == 3
        for ax, title in zip(axes, ("slice z = 0", "slice y = 0", "slice x = 0"), strict=True):
            assert ax.get_title() == title
            assert len(ax.lines) == 25 and len(ax.patches) == 25 * draws
            _no_overlap(ax)
        (legend,) = fig.legends
        labels = [t.get_text() for t in legend.get_texts()]
        assert "66.7%-correct thresholds," in legend.get_title().get_text()
        assert "drawn at" in legend.get_title().get_text()
        assert "sections of the ellipsoids" in fig._suptitle.get_text()
        assert axes[2].get_xlabel().startswith("stimulus y")
    assert ("90% band" in labels) == draws
    _saved_all(fig, tmp_path)


def _no_overlap(ax):
    """Ellipses of neighbouring grid points do not touch (each stays in its own cell)."""
    for line in ax.lines:
        xy = line.get_xydata()
        if len(xy) < 10:
            continue
        centre = xy.mean(0)
        cell = np.round(centre / 0.4) * 0.4
        assert np.abs(xy - cell).max() < 0.2, (centre, np.abs(xy - cell).max())


def test_plot_fit_3d_options(fits):
    f = fits[3]["map"]
    sec = plot_fit(f, through=[0.2, -0.4, 0.5])
    assert [ax.get_title() for ax in sec.axes[:3]] == ["slice z = 0.5", "slice y = -0.4",
                                                        "slice x = 0.2"]
    marg = plot_fit(f, through=[0.2, -0.4, 0.5], cut="marginal")
    assert "2x2 sub-blocks of Sigma (marginal)" in marg._suptitle.get_text()
    # one shared scale; the marginal ellipse contains the section
    area = [np.ptp(fig.axes[0].lines[12].get_xdata()) for fig in (sec, marg)]
    scale = [float(re.search(r"drawn at ([0-9.eE+-]+) x", fig.legends[0].get_title().get_text())
                   .group(1)) for fig in (sec, marg)]
    assert area[1] / scale[1] >= area[0] / scale[0] - 1e-9
    fig, axes = plt.subplots(1, 3)
    assert plot_fit(f, ax=axes) is fig
    with pytest.raises(ValueError, match="3-D figures draw three slices"):
        plot_fit(f, ax=axes[0])
    with pytest.raises(ValueError, match="through must be one point"):
        plot_fit(f, through=[0, 0, 2])
    with pytest.raises(ValueError, match="through selects the slices of a 3-D fit"):
        plot_fit(fits[2]["map"], through=[0, 0])
    with pytest.raises(ValueError, match='cut must be "section" or "marginal"'):
        plot_fit(f, cut="middle")
    with pytest.raises(TypeError, match="plot_fit needs a fit"):
        plot_fit(object())
    plt.close("all")


def test_save_figure_formats_and_errors(fits, tmp_path):
    fig = plot_fit(fits[2]["map"])
    save_figure(fig, tmp_path / "f.png")
    from matplotlib.image import imread

    h, w = imread(tmp_path / "f.png").shape[:2]
    assert max(h, w) > 1500  # 300 dpi of a 6-inch figure
    with pytest.raises(ValueError, match=r"f.jpg: figures are written as .png, .pdf, .svg"):
        save_figure(fig, tmp_path / "f.jpg")
    with pytest.raises(FileNotFoundError, match="no_dir"):
        save_figure(fig, tmp_path / "no_dir" / "f.png")
    plt.close("all")


# --- thresholds ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["map", "posterior"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_plot_thresholds(thresholds, d, kind, tmp_path):
    th = thresholds[d][kind]
    fig, ax = (None, None) if d == 3 else plt.subplots(layout="constrained")
    out = plot_thresholds(th, ax=ax, scale="auto", draws="ribbon", label=kind)
    axes = out if d == 3 else [out]
    for a in axes:
        assert a.get_xlabel().startswith("stimulus") and a.get_ylabel()
    if d == 1:
        assert len(out.collections) == 2 + th.has_draws  # intervals, refs, credible bars
        labels = [t.get_text() for t in out.legend().get_texts()]
        assert labels == [kind]  # true size: no scale to state
    elif d == 2:
        finite = np.all(np.isfinite(th.median_ellipses), axis=(1, 2))
        assert len(out.lines) == finite.sum() > 0
        assert (1 <= len(out.patches) <= 9) if th.has_draws else not out.patches
        scale = threshold_scale(th)
        labels = [t.get_text() for t in out.legend().get_texts()]
        assert f"{kind} (drawn at {scale:.3g} x true size)" in labels
        # auto scale: two neighbours never reach each other
        largest = max(np.ptp(line.get_xydata(), 0).max() for line in out.lines) / 2
        assert largest <= 0.4 * 0.8 + 1e-9
    else:
        assert len(axes) == 3 and fig is None
        through = th.refs[np.argmin(np.linalg.norm(th.refs - th.refs.mean(0), axis=1))]
        for a, k in zip(axes, (2, 1, 0), strict=True):
            assert a.get_title() == f"slice {'xyz'[k]} = {through[k]:.3g}"
            in_plane = np.isclose(th.refs[:, k], through[k])
            assert len(a.lines) <= in_plane.sum() and len(a.lines) >= 1
        fig = axes[0].figure
    _saved_all(fig if d == 3 else out.figure, tmp_path)


def test_plot_thresholds_options_and_errors(thresholds, fits):
    th = thresholds[2]["posterior"]
    fig, ax = plt.subplots()
    plot_thresholds(th, ax=ax, draws="spaghetti", max_draws=3, scale=1.0, label="fit")
    labels = [t.get_text() for t in ax.legend().get_texts()]
    assert labels[0] == "draws (3 shown)" and labels[1] == "fit"  # true size: no scale note
    with pytest.raises(ValueError, match='scale must be a positive number or "auto"'):
        plot_thresholds(th, ax=ax, scale="big")
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        plot_thresholds(th, ax=ax, scale=-1.0)
    with pytest.raises(ValueError, match='draws must be "spaghetti" or "ribbon"'):
        plot_thresholds(th, ax=ax, draws="cloud")
    with pytest.raises(ValueError, match="through selects the slices of 3-D thresholds"):
        plot_thresholds(th, ax=ax, through=[0, 0, 0])
    with pytest.raises(TypeError, match="plot_thresholds needs a Thresholds result"):
        plot_thresholds(fits[2]["map"], ax=ax)
    with pytest.raises(ValueError, match="3-D figures draw three slices"):
        plot_thresholds(thresholds[3]["map"], ax=ax)
    with pytest.raises(ValueError, match=r"through must be one 3-D point"):
        plot_thresholds(thresholds[3]["map"], through=[0, 0])
    plt.close("all")


# --- posterior predictive check ------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_plot_ppc_from_every_fit_kind(fits, kind, tmp_path):
    f = fits[2][kind]
    res = binned_ppc(f, bins=4, num_samples=64, num_replicates=400)
    y = np.asarray(f.data.responses, float)
    assert res.counts.tolist() == [20, 20, 20, 20]
    assert np.all(np.diff(res.x) >= 0) and np.allclose(res.x, res.predicted)
    assert np.all(res.lower <= res.upper) and np.all(res.lower <= res.predicted + 1e-9)
    # the bins partition the trials: their weighted proportions give the overall one
    assert np.sum(res.observed * res.counts) / res.counts.sum() == pytest.approx(y.mean())
    fig = plot_ppc(f, bins=4, num_samples=64, num_replicates=400)
    (ax,) = fig.axes
    assert ax.get_xlabel().startswith("predicted p(correct)")
    assert ax.get_ylabel() == "proportion correct"
    np.testing.assert_allclose(ax.lines[-1].get_ydata(), res.observed)
    assert len(ax.collections) == 1  # the band
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "90% interval of replicated data" in labels and "chance (1/3)" in labels
    (chance,) = [ln for ln in ax.lines if ln.get_label() == "chance (1/3)"]
    np.testing.assert_allclose(chance.get_ydata(), 1 / 3)
    assert ax.get_ylim()[0] < 1 / 3
    _saved_all(fig, tmp_path)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_plot_ppc_from_arviz_data(fits, d, tmp_path):
    post = fits[d]["posterior"]
    if d == 2:
        idata = post.to_arviz(posterior_predictive=True, log_likelihood=False)
    else:  # made-up replicates, read through the same idata[group][var] access
        data = post.data
        rep = np.random.default_rng(d).uniform(size=(2, 10, len(data))) < 0.7
        idata = {"observed_data": {"y": data.responses},
                 "constant_data": {"ref": data.ref, "comparison": data.comparison},
                 "posterior_predictive": {"y": rep.astype(np.int8)}}
    res = binned_ppc(idata, bins=5, by="distance")
    data = post.data
    dist = np.linalg.norm(data.comparison - data.ref, axis=1)
    order = np.argsort(dist, kind="stable")
    expect = [np.mean(data.responses[g]) for g in np.array_split(order, 5)]
    np.testing.assert_allclose(res.observed, expect)
    assert res.num_replicates == post.num_draws
    fig = plot_ppc(idata, bins=5, by="distance")
    ax = fig.axes[0]
    assert "distance" in ax.get_xlabel() and "model units" in ax.get_xlabel()
    _saved_all(fig, tmp_path)
    if d == 2:
        # groups are read as idata[group][var]: any mapping of that shape works (ArviZ >= 1.0
        # DataTree included)
        tree = {g: {v: np.asarray(idata[g][v]) for v in idata[g].data_vars}
                for g in ("observed_data", "constant_data", "posterior_predictive")}
        again = binned_ppc(tree, bins=5, by="distance")
        np.testing.assert_allclose(again.upper, res.upper)


def test_plot_ppc_errors(fits):
    post, fit = fits[2]["posterior"], fits[2]["map"]
    with pytest.raises(ValueError, match='by must be "p" or "distance"'):
        plot_ppc(post, by="radius")
    with pytest.raises(ValueError, match=r"bins must be <= the number of trials \(80\)"):
        binned_ppc(post, bins=81, num_samples=16)
    with pytest.raises(ValueError, match="no posterior_predictive group"):
        binned_ppc(post.to_arviz(log_likelihood=False))
    with pytest.raises(ValueError, match="at least 20 posterior predictive draws.*MAP"):
        binned_ppc(fit.to_arviz(log_likelihood=False, posterior_predictive=True))
    with pytest.raises(TypeError, match="plot_ppc needs a fit or ArviZ data"):
        plot_ppc(object())
    plt.close("all")


# --- learning curve, trials, psychometric ---------------------------------------------------------
def test_plot_learning_curve(tmp_path):
    class Fit:
        data = np.zeros(10)
        restart_histories = np.vstack([np.linspace(20, 5, 30), np.linspace(25, 8, 30),
                                       np.r_[np.linspace(30, 20, 10), np.full(20, np.nan)]])
        loss_history = restart_histories[1]
        best_restart = 1

    fig, ax = plt.subplots(layout="constrained")
    plot_learning_curve(Fit(), ax=ax)
    assert len(ax.lines) == 3
    np.testing.assert_allclose(ax.lines[-1].get_ydata(), Fit.loss_history / 10)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["restart 0", "restart 2 (screened out at step 10)", "restart 1 (kept)"]
    assert ax.lines[-1].get_color() == PALETTE[0]
    assert "log scale" in ax.get_xlabel() and "per trial" in ax.get_ylabel()
    _saved_all(fig, tmp_path)
    Fit.restart_histories = Fit.restart_histories - 100  # a negative loss keeps a linear axis
    Fit.loss_history = Fit.restart_histories[1]
    fig, ax = plt.subplots()
    plot_learning_curve(Fit(), ax=ax, all_restarts=False)
    assert len(ax.lines) == 1 and ax.get_yscale() == "linear" and ax.get_xscale() == "log"
    plt.close("all")


@pytest.mark.parametrize("d", [1, 2, 3])
def test_plot_trials(fits, d, tmp_path):
    data = fits[d]["map"].data
    out = plot_trials(data, ax=None if d == 3 else plt.subplots()[1], max_trials=50)
    axes = out if d == 3 else [out]
    assert len(axes) == (3 if d == 3 else 1)
    for a in axes:
        (segments,) = [c for c in a.collections if hasattr(c, "get_segments")]
        assert len(segments.get_segments()) == 50
        assert a.get_xlabel().startswith("stimulus")
        labels = [t.get_text() for t in a.legend().get_texts()]
        assert labels == ["reference", "comparison", "correct", "incorrect"]
    _saved_all(axes[0].figure, tmp_path)


def test_plot_psychometric_with_draws(tmp_path):
    t = np.linspace(0, 0.3, 20)
    p = 1 / 3 + (2 / 3) * (1 - np.exp(-((t / 0.1) ** 2)))
    draws = np.clip(p[None] + np.random.default_rng(0).normal(0, 0.02, (30, 20)), 0, 1)
    fig, ax = plt.subplots()
    plot_psychometric(t, draws, ax=ax, data=(t, (p > 0.6).astype(int)), target=2 / 3,
                      label="fit")
    assert len(ax.collections) == 2  # band and observed
    assert ax.lines[0].get_color() == PALETTE[0]
    assert "model units" in ax.get_xlabel()
    _saved_all(fig, tmp_path)


# --- figures of their own --------------------------------------------------------------------
def test_every_plot_function_opens_its_own_figure_without_ax():
    """Without ``ax`` no plot function draws into the current figure (plt.gca())."""
    from psyphy_numpyro.contours import Thresholds, unit_directions

    plt.close("all")
    current = plt.figure()
    plt.gca()  # an Axes that a plt.gca() call would draw into
    grid = grid_points(3)
    covs = _covs(9)
    refs = grid_points(2)
    u = unit_directions(2, 8)
    lengths = np.full((len(refs), len(u)), 0.1)
    th = Thresholds(refs=refs, directions=u, lengths=lengths, points=refs[:, None] + 0.1 * u,
                    ellipses=np.broadcast_to(0.01 * np.eye(2), (len(refs), 2, 2)),
                    max_lengths=lengths)

    class Fit:
        data = np.zeros(10)
        restart_histories = np.linspace(20, 5, 30)[None]
        loss_history = restart_histories[0]
        best_restart = 0

    t = np.linspace(0, 0.3, 20)
    rng = np.random.default_rng(0)
    data = pn.TrialData(rng.uniform(-0.5, 0.5, (20, 2, 2)), rng.integers(0, 2, 20))
    x1 = np.linspace(-1, 1, 5)[:, None]
    made = [
        plot_field(covs, grid),
        plot_field(np.full((5, 1, 1), 0.01), x1),
        plot_field_band(covs[None] * [[[[0.9]]], [[[1.1]]]], grid),
        plot_field_band(np.full((2, 5, 1, 1), 0.01), x1),
        plot_thresholds(th),
        plot_psychometric(t, 1 / 3 + t),
        plot_trials(data),
        plot_learning_curve(Fit()),
    ]
    figures = [a.figure for a in made]
    assert current not in figures and len(current.axes[0].get_lines()) == 0
    assert len(set(map(id, figures))) == len(made)  # one new figure each
    plt.close("all")
