"""Plots render to PNG and draw what they should."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from psyphy_numpyro.plotting import (  # noqa: E402
    auto_scale,
    ellipse_points,
    grid_points,
    plot_field,
    plot_field_band,
    plot_learning_curve,
)


def _covs(g, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.normal(0, 0.1, (g, 2, 2))
    return A @ np.swapaxes(A, 1, 2) + 1e-3 * np.eye(2)


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


def test_plot_field_and_band(tmp_path):
    grid = grid_points(3)
    covs = _covs(9)
    fig, ax = plt.subplots()
    out = plot_field(covs, grid, ax=ax, color="k", label="truth")
    assert out is ax and len(ax.lines) == 9
    draws = covs[None] * np.random.default_rng(1).uniform(0.8, 1.2, (50, 9, 1, 1))
    plot_field_band(draws, grid, ax=ax, color="C0", label="band")
    assert len(ax.patches) == 9
    assert [t.get_text() for t in ax.legend().get_texts()] == ["truth", "band"]
    fig.savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="cov_draws \\(D, G, 2, 2\\)"):
        plot_field_band(covs, grid, ax=ax)
    with pytest.raises(ValueError, match="centers \\(G, 2\\) and covs \\(G, 2, 2\\)"):
        plot_field(covs[:3], grid, ax=ax)
    plt.close(fig)


def test_plot_learning_curve(tmp_path):
    class Fit:
        data = np.zeros(10)
        restart_histories = np.vstack([np.linspace(20, 5, 30), np.linspace(25, 8, 30)])
        loss_history = restart_histories[0]
        best_restart = 0

    fig, ax = plt.subplots()
    plot_learning_curve(Fit(), ax=ax)
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[-1].get_ydata(), Fit.loss_history / 10)
    fig.savefig(tmp_path / "lc.png")
    plt.close(fig)


def _hand_fits(d):
    """A MAP fit and a 20-draw posterior around it (no optimisation)."""
    import psyphy_numpyro as pn

    model = pn.WPPM(input_dim=d, basis_degree=1, num_samples=8)
    W = np.asarray(model.sample_prior(d)["W"])
    data = pn.TrialData(np.zeros((3, 2, d)), np.ones(3))
    fit = pn.MAPFit.from_params(model, {"W": W}, data)
    noise = np.random.default_rng(0).standard_normal((1, 20) + W.shape)
    post = pn.PosteriorFit(model, data, (W + 0.1 * model.prior_std() * noise).astype(W.dtype))
    return fit, post


@pytest.mark.parametrize("d", [1, 2])
def test_plot_fit_draws_point_and_draw_based_fits(d, tmp_path):
    from psyphy_numpyro.plotting import plot_fit, save_figure

    fit, post = _hand_fits(d)
    for f, n_fill in ((fit, 0), (post, 1)):
        fig = plot_fit(f)
        ax = fig.axes[0]
        assert "model units" in ax.get_xlabel()
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        if d == 2:
            assert len(ax.lines) == 25 and len(ax.patches) == 25 * n_fill
            assert any("ellipses x" in label for label in labels), labels
        else:
            # sqrt Sigma along x: the drawn curve is the fit's (median) sd
            x = np.linspace(-1, 1, 101)[:, None]
            sd = np.sqrt(np.asarray(f.covariance(x))[..., 0, 0])
            expect = sd if f.point else np.median(sd, 0)
            np.testing.assert_allclose(ax.lines[0].get_ydata(), expect, rtol=1e-5)
            assert len(ax.collections) == n_fill
        assert ("90% band" in labels) == (not f.point)
        save_figure(fig, tmp_path / "f.pdf")
        assert (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
        plt.close(fig)


def test_save_figure_formats_and_errors(tmp_path):
    from psyphy_numpyro.plotting import plot_fit, save_figure

    fig = plot_fit(_hand_fits(2)[0])
    save_figure(fig, tmp_path / "f.png")
    save_figure(fig, tmp_path / "f.svg")
    from matplotlib.image import imread

    h, w = imread(tmp_path / "f.png").shape[:2]
    assert max(h, w) > 1500  # 300 dpi of a 6-inch figure
    assert b"<svg" in (tmp_path / "f.svg").read_bytes()[:400]
    with pytest.raises(ValueError, match=r"f.jpg: figures are written as .png, .pdf, .svg"):
        save_figure(fig, tmp_path / "f.jpg")
    with pytest.raises(FileNotFoundError, match="no_dir"):
        save_figure(fig, tmp_path / "no_dir" / "f.png")
    with pytest.raises(TypeError, match="plot_fit needs a fit"):
        plot_fit(object())
    fit3 = _hand_fits(3)[0]
    with pytest.raises(ValueError, match="plot_fit draws 1-D and 2-D fits"):
        plot_fit(fit3)
    plt.close("all")
