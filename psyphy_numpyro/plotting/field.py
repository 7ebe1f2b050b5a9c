"""Covariance-field figures: ellipses on a grid and posterior bands (whole fits:
:func:`~psyphy_numpyro.plotting.plot_fit`, in :mod:`psyphy_numpyro.plotting.fit_plot`)."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInput
from ..validation import check_array, check_int, check_real
from ._base import (
    PALETTE,
    _check_covs,
    _check_style,
    _plt,
    axis_label,
    check_plane,
    own_axes,
    plane_covariances,
)

__all__ = ["grid_points", "ellipse_points", "auto_scale", "plot_field", "plot_field_band",
           "scale_text", "SLICE_PLANES"]

#: The three orthogonal slices of a 3-D figure: the coordinates spanning each plane.
SLICE_PLANES = ((0, 1), (0, 2), (1, 2))


def scale_text(scale: float, model=None, target: float = 2.0 / 3.0) -> str:
    """The words a figure uses to say what its ellipses are and at what size.

    Parameters
    ----------
    scale : float
        Mahalanobis radius the ellipses of ``Sigma(x)`` are drawn at.
    model : WPPM, optional
        With it, the ellipses are stated as what they stand for: the
        ``target``-correct threshold of an oddity trial at that reference
        (Mahalanobis radius ``k``, :func:`~psyphy_numpyro.hyperparameters.threshold_constant`,
        lapses aside; exact where ``Sigma`` is locally constant), drawn at
        ``scale / k`` x their true size.
    target : float
        The p(correct) of that threshold.

    Returns
    -------
    str
        E.g. ``"ellipses: 66.7%-correct thresholds, drawn at 0.31 x true size"``.
    """
    if model is None:
        return f"ellipses: noise covariance Sigma(x) (1 sd), drawn at {scale:.3g} x true size"
    from ..hyperparameters import threshold_constant

    k = threshold_constant(model.input_dim, model.bandwidth, target)
    return (f"ellipses: {100 * target:.3g}%-correct thresholds, drawn at {scale / k:.2g} x "
            "true size")


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


def _field_input(name, covs, centers, plane, cut):
    """Checked ``(covs, centers, d, plane)``; 3-D input reduced to the 2-D ``plane``."""
    centers = check_array("centers", centers)
    covs = check_array("covs", covs)
    d = centers.shape[1] if centers.ndim == 2 else 0
    if d not in (1, 2, 3):
        raise InvalidInput(f"{name} needs centers (G, d) with d in 1..3, got {centers.shape}")
    if covs.shape != (len(centers), d, d):
        raise InvalidInput(
            f"{name} needs centers (G, {d}) and covs (G, {d}, {d}), got {centers.shape} and "
            f"{covs.shape}"
        )
    covs, centers, plane = _in_plane("covs", covs, centers, d, plane, cut)
    return covs, centers, d, plane


def _in_plane(name, covs, centers, d, plane, cut):
    """``(covs, centers, plane)`` in the 2-D ``plane`` of 3-D input (checked there), else
    as given with plane ``(0, 1)``; ``covs`` may have leading draw axes."""
    if d == 3:
        plane = (0, 1) if plane is None else check_plane(plane)
        _check_covs(name, plane_covariances(covs, plane, "marginal"))
        return plane_covariances(covs, plane, cut), centers[:, list(plane)], plane
    if plane is not None:
        raise InvalidInput(f"plane selects a slice of 3-D covariances; these are {d}-D")
    return covs, centers, (0, 1)


def _palette_color(ax, style):
    """Fill in a colour from :data:`PALETTE` when none is given: the next one after the
    labelled artists already on ``ax`` (so overlaid fields differ, never matplotlib's
    ``tab10``)."""
    if not any(k in style for k in ("color", "c", "facecolor", "fc")):
        style["color"] = PALETTE[len(ax.get_legend_handles_labels()[0]) % len(PALETTE)]


def _label_axes(ax, d, plane):
    if not ax.get_xlabel():
        ax.set_xlabel(axis_label(plane[0], d))
    if not ax.get_ylabel():
        ax.set_ylabel("sqrt Sigma(x) (model units)" if d == 1 else axis_label(plane[1], d))


def plot_field(covs, centers, *, ax=None, scale=None, label=None, plane=None, cut="section",
               **style):
    """Draw one covariance field: ellipses at ``centers`` (2-D, 3-D slices) or sqrt Sigma (1-D).

    Parameters
    ----------
    covs : array (G, d, d)
        Covariances, e.g. ``fit.covariance(centers)``; ``d`` is 1, 2 or 3.
    centers : array (G, d)
    ax : matplotlib Axes, optional
        Default a new figure (pass ``ax`` to overlay fields).
    scale : float, optional
        2-D and 3-D: ellipses are drawn at Mahalanobis radius ``scale``
        (``scale`` x the 1-sd contour). Default: :func:`auto_scale` (pass the
        same value when overlaying fields). 1-D: the curve is
        ``scale * sqrt Sigma(x)`` (default 1).
    label : str, optional
        Legend label (attached to the first ellipse only).
    plane : pair of ints, optional
        3-D only: the two coordinates of the slice drawn (default ``(0, 1)``);
        ``centers`` are projected onto it, so pass centers that lie in one
        plane (e.g. :data:`SLICE_PLANES` grids from :func:`plot_fit`).
    cut : {"section", "marginal"}
        3-D only: ellipses of the ellipsoids cut by the plane (conditional
        covariance) or of the 2 x 2 sub-blocks (see
        :func:`~psyphy_numpyro.plotting.plane_covariances`).
    **style
        Passed to ``ax.plot`` (color, lw, ls, alpha ...). Without a colour,
        the next :data:`PALETTE` colour after the labelled artists on ``ax``.

    Returns
    -------
    matplotlib Axes
    """
    _plt()
    covs, centers, d, plane = _field_input("plot_field", covs, centers, plane, cut)
    _check_style("plot_field", style)
    if d == 1:
        if np.any(covs[:, 0, 0] <= 0):
            raise InvalidInput("covs must be positive (1 x 1 variances), got "
                               f"{covs[:, 0, 0].min():.4g}")
        scale = 1.0 if scale is None else check_real("scale", scale, 0.0)
        ax = own_axes(ax, (7.0, 4.0))
        _palette_color(ax, style)
        order = np.argsort(centers[:, 0])
        ax.plot(centers[order, 0], scale * np.sqrt(covs[order, 0, 0]), label=label, **style)
        _label_axes(ax, d, plane)
        return ax
    covs = _check_covs("covs", covs)
    scale = auto_scale(centers, covs) if scale is None else check_real("scale", scale, 0.0)
    ax = own_axes(ax, (6.0, 6.0))
    _palette_color(ax, style)
    for i, (c, S) in enumerate(zip(centers, covs, strict=True)):
        pts = ellipse_points(c, S, scale)
        ax.plot(pts[:, 0], pts[:, 1], label=label if i == 0 else None, **style)
    ax.set_aspect("equal")
    _label_axes(ax, d, plane)
    return ax


def plot_field_band(cov_draws, centers, *, ax=None, scale=None, level=0.9, label=None,
                    num=120, plane=None, cut="section", **style):
    """Draw a credible band of the field from posterior draws.

    2-D and 3-D slices: in every direction ``u`` the ellipse of a draw
    reaches ``scale / sqrt(u' Sigma^-1 u)``; the band spans the central
    ``level`` fraction of those radii over the draws. 1-D: the central
    ``level`` range of ``scale * sqrt Sigma(x)``.

    Parameters
    ----------
    cov_draws : array (D, G, d, d)
        Covariances per draw, e.g. ``fit.covariance(centers)`` of an MCMC fit.
    centers : array (G, d)
    scale : float, optional
        Mahalanobis radius; default :func:`auto_scale` of the median field
        (1 in 1-D).
    level : float
        Central probability of the band (0.9: 5th to 95th percentile).
    plane, cut
        3-D only, as in :func:`plot_field`.
    **style
        Passed to ``ax.fill`` (color, alpha ...).

    Returns
    -------
    matplotlib Axes
    """
    _plt()
    cov_draws = check_array("cov_draws", cov_draws)
    centers = check_array("centers", centers)
    if centers.ndim != 2 or centers.shape[1] not in (1, 2, 3):
        raise InvalidInput(f"plot_field_band needs centers (G, d) with d in 1..3, got "
                           f"{centers.shape}")
    d = centers.shape[1]
    if cov_draws.ndim != 4 or cov_draws.shape[1:] != (len(centers), d, d):
        raise InvalidInput(
            f"plot_field_band needs cov_draws (D, G, {d}, {d}) for G={len(centers)} centers, "
            f"got {cov_draws.shape}"
        )
    cov_draws, centers, plane = _in_plane("cov_draws", cov_draws, centers, d, plane, cut)
    level = check_real("level", level, 0.0, 1.0)
    num = check_int("num", num, 3)
    _check_style("plot_field_band", style, "patch")
    style.setdefault("alpha", 0.35)
    q = 50 * (1 - level)
    if d == 1:
        if np.any(cov_draws <= 0):
            raise InvalidInput("cov_draws must be positive (1 x 1 variances)")
        scale = 1.0 if scale is None else check_real("scale", scale, 0.0)
        ax = own_axes(ax, (7.0, 4.0))
        _palette_color(ax, style)
        order = np.argsort(centers[:, 0])
        lo, hi = np.percentile(scale * np.sqrt(cov_draws[:, order, 0, 0]), [q, 100 - q], axis=0)
        ax.fill_between(centers[order, 0], lo, hi, label=label, lw=0, **style)
        _label_axes(ax, d, plane)
        return ax
    cov_draws = _check_covs("cov_draws", cov_draws)
    ax = own_axes(ax, (6.0, 6.0))
    _palette_color(ax, style)
    if scale is None:
        scale = auto_scale(centers, np.median(cov_draws, axis=0))
    scale = check_real("scale", scale, 0.0)
    t = np.linspace(0.0, 2 * np.pi, num)
    u = np.stack([np.cos(t), np.sin(t)], -1)  # (num, 2)
    prec = np.linalg.inv(cov_draws)  # (D, G, 2, 2)
    radius = scale / np.sqrt(np.einsum("ti,dgij,tj->dgt", u, prec, u))
    lo, hi = np.percentile(radius, [q, 100 - q], axis=0)  # (G, num)
    for g, c in enumerate(centers):
        outer = c + hi[g][:, None] * u
        inner = c + lo[g][::-1, None] * u[::-1]
        ring = np.concatenate([outer, inner])
        ax.fill(ring[:, 0], ring[:, 1], label=label if g == 0 else None, lw=0, **style)
    ax.set_aspect("equal")
    _label_axes(ax, d, plane)
    return ax
