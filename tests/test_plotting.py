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
