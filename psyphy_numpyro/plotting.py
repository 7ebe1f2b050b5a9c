"""Matplotlib figures: covariance-field ellipses and learning curves.

matplotlib is imported lazily so that the numerical core never needs it.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ellipse_points",
    "auto_scale",
    "plot_field",
    "plot_field_band",
    "plot_learning_curve",
    "grid_points",
]


def _plt():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ImportError(
            "plotting needs matplotlib: pip install matplotlib"
        ) from exc
    return plt


def grid_points(points_per_axis: int = 5, lo: float = -0.8, hi: float = 0.8) -> np.ndarray:
    """A regular 2-D grid, shape ``(points_per_axis**2, 2)``."""
    g = np.linspace(lo, hi, points_per_axis)
    return np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)


def ellipse_points(center, cov, scale=1.0, num=100) -> np.ndarray:
    """Boundary ``{center + scale * L u : |u| = 1}`` of a 2-D ellipse, shape (num, 2)."""
    L = np.linalg.cholesky(np.asarray(cov, dtype=float))
    t = np.linspace(0.0, 2 * np.pi, num)
    circle = np.stack([np.cos(t), np.sin(t)])
    return np.asarray(center, dtype=float)[None, :] + scale * (L @ circle).T


def auto_scale(centers, covs, fill: float = 0.4) -> float:
    """Scale so that the largest ellipse's semi-axis is ``fill`` x the grid spacing."""
    centers = np.asarray(centers, dtype=float)
    covs = np.asarray(covs, dtype=float)
    if len(centers) > 1:
        diff = np.abs(centers[:, None, :] - centers[None, :, :]).max(-1)
        diff[diff == 0] = np.inf
        spacing = float(diff.min())
    else:
        spacing = 1.0
    largest = float(np.sqrt(np.linalg.eigvalsh(covs)[..., -1].max()))
    return fill * spacing / largest


def plot_field(covs, centers, *, ax=None, scale=None, label=None, **style):
    """Draw one covariance field as ellipses at ``centers``.

    Parameters
    ----------
    covs : array (G, 2, 2)
        Covariances, e.g. ``fit.covariance(centers)``.
    centers : array (G, 2)
    ax : matplotlib Axes, optional
    scale : float, optional
        Ellipses are drawn at Mahalanobis radius ``scale``. Default:
        :func:`auto_scale` (pass the same value when overlaying fields).
    label : str, optional
        Legend label (attached to the first ellipse only).
    **style
        Passed to ``ax.plot`` (color, lw, ls, alpha ...).

    Returns
    -------
    matplotlib Axes
    """
    plt = _plt()
    ax = ax if ax is not None else plt.gca()
    centers = np.asarray(centers, dtype=float)
    covs = np.asarray(covs, dtype=float)
    if centers.ndim != 2 or centers.shape[1] != 2 or covs.shape != (len(centers), 2, 2):
        raise ValueError(
            f"plot_field needs centers (G, 2) and covs (G, 2, 2), got {centers.shape} "
            f"and {covs.shape}"
        )
    scale = auto_scale(centers, covs) if scale is None else scale
    for i, (c, S) in enumerate(zip(centers, covs, strict=True)):
        pts = ellipse_points(c, S, scale)
        ax.plot(pts[:, 0], pts[:, 1], label=label if i == 0 else None, **style)
    ax.set_aspect("equal")
    return ax


def plot_field_band(cov_draws, centers, *, ax=None, scale=None, level=0.9, label=None,
                    num=120, **style):
    """Draw a credible band of ellipses per center from posterior draws.

    In every direction ``u`` the ellipse of a draw reaches
    ``scale / sqrt(u' Sigma^-1 u)``; the band spans the central ``level``
    fraction of those radii over the draws.

    Parameters
    ----------
    cov_draws : array (D, G, 2, 2)
        Covariances per draw, e.g. ``fit.covariance(centers)`` of an MCMC fit.
    centers : array (G, 2)
    scale : float, optional
        Mahalanobis radius; default :func:`auto_scale` of the median field.
    level : float
        Central probability of the band (0.9: 5th to 95th percentile).
    **style
        Passed to ``ax.fill`` (color, alpha ...).

    Returns
    -------
    matplotlib Axes
    """
    plt = _plt()
    ax = ax if ax is not None else plt.gca()
    cov_draws = np.asarray(cov_draws, dtype=float)
    centers = np.asarray(centers, dtype=float)
    if cov_draws.ndim != 4 or cov_draws.shape[1:] != (len(centers), 2, 2):
        raise ValueError(
            f"plot_field_band needs cov_draws (D, G, 2, 2) for G={len(centers)} centers, "
            f"got {cov_draws.shape}"
        )
    if scale is None:
        scale = auto_scale(centers, np.median(cov_draws, axis=0))
    t = np.linspace(0.0, 2 * np.pi, num)
    u = np.stack([np.cos(t), np.sin(t)], -1)  # (num, 2)
    prec = np.linalg.inv(cov_draws)  # (D, G, 2, 2)
    radius = scale / np.sqrt(np.einsum("ti,dgij,tj->dgt", u, prec, u))
    q = 50 * (1 - level)
    lo, hi = np.percentile(radius, [q, 100 - q], axis=0)  # (G, num)
    style.setdefault("alpha", 0.35)
    for g, c in enumerate(centers):
        outer = c + hi[g][:, None] * u
        inner = c + lo[g][::-1, None] * u[::-1]
        ring = np.concatenate([outer, inner])
        ax.fill(ring[:, 0], ring[:, 1], label=label if g == 0 else None, lw=0, **style)
    ax.set_aspect("equal")
    return ax


def plot_learning_curve(fit, *, ax=None, per_trial=True, all_restarts=True):
    """Plot the SVI loss of a MAP fit against the step.

    Returns
    -------
    matplotlib Axes
    """
    plt = _plt()
    ax = ax if ax is not None else plt.gca()
    n = len(fit.data) if per_trial else 1
    if all_restarts:
        for r, h in enumerate(fit.restart_histories):
            if r != fit.best_restart:
                ax.plot(h / n, color="0.7", lw=0.8)
    ax.plot(fit.loss_history / n, color="C0", lw=1.2, label=f"restart {fit.best_restart} (kept)")
    ax.set_xlabel("SVI step")
    ax.set_ylabel("loss per trial" if per_trial else "loss")
    ax.legend()
    return ax
