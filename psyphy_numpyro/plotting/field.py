"""Covariance-field figures: ellipses on a grid, posterior bands, and whole fits."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInput, InvalidType
from ..fits import Fit
from ..validation import check_array, check_int, check_real
from ._base import _check_covs, _check_style, _plt

__all__ = ["grid_points", "ellipse_points", "auto_scale", "plot_field", "plot_field_band",
           "plot_fit"]


def grid_points(points_per_axis: int = 5, lo: float = -0.8, hi: float = 0.8) -> np.ndarray:
    """A regular 2-D grid, shape ``(points_per_axis**2, 2)``."""
    check_int("points_per_axis", points_per_axis, 1)
    lo, hi = check_real("lo", lo), check_real("hi", hi)
    if lo > hi:
        raise InvalidInput(f"lo must be <= hi, got lo={lo} and hi={hi}")
    g = np.linspace(lo, hi, points_per_axis)
    return np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)


def ellipse_points(center, cov, scale=1.0, num=100) -> np.ndarray:
    """Boundary ``{center + scale * L u : |u| = 1}`` of a 2-D ellipse, shape (num, 2)."""
    center = check_array("center", center)
    if center.shape != (2,):
        raise InvalidInput(f"center must have shape (2,), got {center.shape}")
    cov = _check_covs("cov", cov, f"cov must have shape (2, 2), got {np.shape(cov)}")
    if cov.shape != (2, 2):
        raise InvalidInput(f"cov must have shape (2, 2), got {cov.shape}")
    scale = check_real("scale", scale, 0.0)
    num = check_int("num", num, 2)
    L = np.linalg.cholesky(cov)
    t = np.linspace(0.0, 2 * np.pi, num)
    circle = np.stack([np.cos(t), np.sin(t)])
    return center[None, :] + scale * (L @ circle).T


def auto_scale(centers, covs, fill: float = 0.4) -> float:
    """Scale so that the largest ellipse's semi-axis is ``fill`` x the grid spacing."""
    centers = check_array("centers", centers)
    covs = _check_covs("covs", covs)
    fill = check_real("fill", fill, 0.0)
    if centers.ndim != 2 or len(centers) == 0:
        raise InvalidInput(f"centers must have shape (G, 2) with G >= 1, got {centers.shape}")
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
    centers = check_array("centers", centers)
    covs = check_array("covs", covs)
    if centers.ndim != 2 or centers.shape[1] != 2 or covs.shape != (len(centers), 2, 2):
        raise InvalidInput(
            f"plot_field needs centers (G, 2) and covs (G, 2, 2), got {centers.shape} "
            f"and {covs.shape}"
        )
    covs = _check_covs("covs", covs)
    scale = auto_scale(centers, covs) if scale is None else check_real("scale", scale, 0.0)
    _check_style("plot_field", style)
    ax = ax if ax is not None else plt.gca()
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
    cov_draws = check_array("cov_draws", cov_draws)
    centers = check_array("centers", centers)
    if centers.ndim != 2 or centers.shape[1] != 2:
        raise InvalidInput(f"plot_field_band needs centers (G, 2), got {centers.shape}")
    if cov_draws.ndim != 4 or cov_draws.shape[1:] != (len(centers), 2, 2):
        raise InvalidInput(
            f"plot_field_band needs cov_draws (D, G, 2, 2) for G={len(centers)} centers, "
            f"got {cov_draws.shape}"
        )
    cov_draws = _check_covs("cov_draws", cov_draws)
    level = check_real("level", level, 0.0, 1.0)
    num = check_int("num", num, 3)
    _check_style("plot_field_band", style, "patch")
    ax = ax if ax is not None else plt.gca()
    if scale is None:
        scale = auto_scale(centers, np.median(cov_draws, axis=0))
    scale = check_real("scale", scale, 0.0)
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


_KIND_LABEL = {"map": "MAP", "laplace": "Laplace", "mcmc": "NUTS", "posterior": "posterior"}


def plot_fit(fit, *, ax=None, points_per_axis: int = 5, level: float = 0.9, title=None):
    """The covariance field of any fit, as one figure.

    2-D: ``Sigma(x)`` ellipses on a ``points_per_axis``-squared grid over
    ``[-0.8, 0.8]^2`` (the scale is chosen so that neighbours do not overlap
    and is stated in the legend); draw-based fits show the posterior median
    and the central ``level`` band. 1-D: ``sqrt Sigma(x)`` against ``x``, with
    the band for draw-based fits.

    Parameters
    ----------
    fit : MAPFit, LaplaceFit, MCMCFit or PosteriorFit
    ax : matplotlib Axes, optional
        Draw into it; by default a new figure is made.
    points_per_axis : int
        Grid points per axis (2-D).
    level : float
        Central probability of the band (draw-based fits).
    title : str, optional
        Default: the fit kind and trial count.

    Returns
    -------
    matplotlib Figure

    Raises
    ------
    TypeError
        ``fit`` is not a fit.
    ValueError
        A 3-D fit (plot 2-D slices of ``fit.covariance`` with :func:`plot_field`).
    """
    if not isinstance(fit, Fit):
        raise InvalidType(f"plot_fit needs a fit (from fit_map, fit_laplace, fit_mcmc), "
                          f"got {type(fit).__name__}")
    d = fit.model.input_dim
    if d == 3:
        raise InvalidInput("plot_fit draws 1-D and 2-D fits; for a 3-D fit draw 2-D slices "
                           "of fit.covariance(x) with plot_field")
    check_int("points_per_axis", points_per_axis, 1)
    level = check_real("level", level, 0.0, 1.0)
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 6) if d == 2 else (7, 4))
    else:
        fig = ax.figure
    name = _KIND_LABEL.get(fit.kind, fit.kind)
    pct = f"{100 * level:.0f}%"
    if d == 2:
        _field_2d(fit, ax, grid_points(points_per_axis), level, name, pct)
    else:
        _field_1d(fit, ax, level, name, pct)
    n = 0 if fit.data is None else len(fit.data)
    ax.set_title(title if title is not None else f"WPPM covariance field ({name}, {n} trials)")
    fig.tight_layout()
    return fig


def _field_2d(fit, ax, grid, level, name, pct):
    S = np.asarray(fit.covariance(grid), dtype=float)
    if fit.point:
        scale = auto_scale(grid, S)
        plot_field(S, grid, ax=ax, scale=scale, color="C3", lw=1.2,
                   label=f"{name} (ellipses x{scale:.3g})")
    else:
        med = np.median(S, axis=0)
        scale = auto_scale(grid, med)
        plot_field_band(S, grid, ax=ax, scale=scale, level=level, color="C0",
                        label=f"{pct} band")
        plot_field(med, grid, ax=ax, scale=scale, color="C0", lw=1.2,
                   label=f"{name} median (ellipses x{scale:.3g})")
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_xlabel("stimulus dimension 1 (model units, [-1, 1])")
    ax.set_ylabel("stimulus dimension 2 (model units, [-1, 1])")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)


def _field_1d(fit, ax, level, name, pct):
    x = np.linspace(-1, 1, 101)[:, None]
    sd = np.sqrt(np.asarray(fit.covariance(x), dtype=float)[..., 0, 0])
    if fit.point:
        ax.plot(x[:, 0], sd, color="C3", label=name)
    else:
        q = 0.5 * (1.0 - level)
        lo, mid, hi = np.quantile(sd, [q, 0.5, 1.0 - q], axis=0)
        ax.fill_between(x[:, 0], lo, hi, color="C0", alpha=0.3, lw=0, label=f"{pct} band")
        ax.plot(x[:, 0], mid, color="C0", label=f"{name} median")
    ax.set_xlabel("stimulus x (model units, [-1, 1])")
    ax.set_ylabel("sqrt Sigma(x) (model units)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
