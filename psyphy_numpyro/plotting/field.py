"""Covariance-field figures: ellipses on a grid, posterior bands, and whole fits."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInput, InvalidType
from ..fits import Fit
from ..validation import check_array, check_int, check_real
from ._base import (
    AXIS_NAMES,
    PALETTE,
    _check_covs,
    _check_style,
    _plt,
    axis_label,
    check_plane,
    cut_text,
    figure_legend,
    legend_outside,
    new_axes,
    own_axes,
    plane_covariances,
    unit_ticks,
)

__all__ = ["grid_points", "ellipse_points", "auto_scale", "plot_field", "plot_field_band",
           "plot_fit", "scale_text", "SLICE_PLANES"]

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


_KIND_LABEL = {"map": "MAP", "laplace": "Laplace", "mcmc": "NUTS", "posterior": "posterior",
               "bootstrap": "bootstrap"}


def plot_fit(fit, *, ax=None, points_per_axis: int = 5, level: float = 0.9, title=None,
             through=None, cut: str = "section", scale=None):
    """The covariance field of any fit, as one figure.

    - 1-D: ``sqrt Sigma(x)`` against ``x`` (model units).
    - 2-D: ``Sigma(x)`` ellipses on a ``points_per_axis``-squared grid over
      ``[-0.8, 0.8]^2``.
    - 1-D and 2-D fits whose data have a stimulus space are drawn in its
      units: the grid spans the central 80% of the space's bounds, the
      covariances are mapped by its Jacobian (``J Sigma J^T``) and the axes
      carry its labels (e.g. "CIE x"). 3-D fits are drawn in model units.
    - 3-D: three panels, the orthogonal slices ``z = c_z``, ``y = c_y`` and
      ``x = c_x`` through the point ``through = c`` (default the centre),
      each a ``points_per_axis``-squared grid of ellipses; ``cut`` says which
      2 x 2 ellipse of ``Sigma`` is drawn, and the figure says it too.

    The ellipse scale is chosen so that neighbours do not overlap (the largest
    semi-axis is 0.4 x the grid spacing; one scale for all panels) and is
    stated in the legend in plain words (:func:`scale_text`: the ellipses are
    66.7%-correct thresholds, drawn at a stated fraction of their true size).
    Draw-based fits (Laplace, bootstrap, NUTS, posterior draws) show the
    posterior median and the central ``level`` band; a MAP fit its point estimate. Colours come from
    :data:`~psyphy_numpyro.plotting.PALETTE` (colour-blind safe) and the
    legend sits outside the data.

    Parameters
    ----------
    fit : MAPFit, LaplaceFit, BootstrapFit, MCMCFit or PosteriorFit
    ax : matplotlib Axes (three Axes for a 3-D fit), optional
        Draw into them; by default a new figure is made.
    points_per_axis : int
        Grid points per axis (2-D and each 3-D slice).
    level : float
        Central probability of the band (draw-based fits).
    title : str, optional
        Default: the fit kind and trial count.
    through : array (3,), optional
        3-D: the point the three slices pass through (default the centre: the
        origin, or the middle of the data's space, in its units).
    cut : {"section", "marginal"}
        3-D: ``"section"`` draws the ellipsoid ``Sigma`` cut by each plane (the
        conditional covariance, the contour of comparisons inside the plane);
        ``"marginal"`` its 2 x 2 sub-block (the ellipsoid's shadow).
    scale : float, optional
        2-D, 3-D: draw the ellipses at this Mahalanobis radius instead of the
        automatic one (e.g. to overlay another field with :func:`plot_field`
        at the same scale; the grid is :func:`grid_points` of
        ``points_per_axis``, and in 3-D slice ``p`` of :data:`SLICE_PLANES`
        holds the other coordinate at ``through``).

    Returns
    -------
    matplotlib Figure

    Raises
    ------
    TypeError
        ``fit`` is not a fit.
    ValueError
        Bad ``through``, ``cut``, ``points_per_axis`` or ``level``.
    """
    if not isinstance(fit, Fit):
        raise InvalidType(f"plot_fit needs a fit (from fit_map, fit_laplace, fit_bootstrap, "
                          f"fit_mcmc), got {type(fit).__name__}")
    d = fit.model.input_dim
    check_int("points_per_axis", points_per_axis, 1)
    level = check_real("level", level, 0.0, 1.0)
    if cut not in ("section", "marginal"):
        raise InvalidInput(f'cut must be "section" or "marginal", got {cut!r}')
    if scale is not None:
        scale = check_real("scale", scale, 0.0)
    if d != 3 and through is not None:
        raise InvalidInput(f"through selects the slices of a 3-D fit; this fit is {d}-D")
    space = getattr(fit.data, "space", None)
    if d == 3:
        lo, hi = (np.full(3, -1.0), np.full(3, 1.0)) if space is None else space_extent(space)
        through = (0.5 * (lo + hi) if through is None
                   else np.asarray(check_array("through", through), float))
        if through.shape != (3,) or np.any(through < lo - 1e-12) or np.any(through > hi + 1e-12):
            where = "[-1, 1]^3" if space is None else "the space's bounds"
            raise InvalidInput(f"through must be one point (3,) inside {where}, got "
                               f"{through.tolist()}")
    plt = _plt()
    own = ax is None
    if own and d == 3:
        fig, axes = plt.subplots(1, 3, figsize=(13.5, 5.2), layout="constrained")
    elif own:
        fig, axes = plt.subplots(figsize=(7.4, 6) if d == 2 else (7.5, 4),
                                 layout="constrained")
    else:
        fig, axes = new_axes(ax, d)
    name = _KIND_LABEL.get(fit.kind, fit.kind)
    pct = f"{100 * level:.0f}%"
    n = 0 if fit.data is None else len(fit.data)
    default_title = f"WPPM covariance field ({name}, {n} trials)"
    if d == 3:
        _field_3d(fit, fig, axes, grid_points(points_per_axis), level, name, pct, through, cut,
                  scale, space)
        fig.suptitle(title if title is not None else
                     f"{default_title}: slices through "
                     f"({', '.join(f'{v:.2g}' for v in through)}), {cut_text(cut)}")
        return fig
    if d == 2:
        _field_2d(fit, axes, grid_points(points_per_axis), level, name, pct, scale, space)
    else:
        _field_1d(fit, axes, level, name, pct, space)
    axes.set_title(title if title is not None else default_title)
    return fig


def _median_band(fit, ax, S, centers, level, name, pct, scale, color, ticks=True, **kw):
    """Point estimate, or median + band, of covariances ``S`` at ``centers``."""
    if fit.point:
        plot_field(S, centers, ax=ax, scale=scale, color=color, lw=1.3, label=name, **kw)
    else:
        plot_field_band(S, centers, ax=ax, scale=scale, level=level, color=color,
                        label=f"{pct} band", **kw)
        plot_field(np.median(S, axis=0), centers, ax=ax, scale=scale, color=color, lw=1.3,
                   label=f"{name} median", **kw)
    if ticks:
        unit_ticks(ax)


def space_extent(space):
    """``(lo, hi)`` drawn for a space: its bounds, or the box's image's bounding box."""
    if space.lo is not None:
        return np.asarray(space.lo), np.asarray(space.hi)
    d = space.input_dim
    corners = np.stack(np.meshgrid(*[[-1.0, 1.0]] * d, indexing="ij"), -1).reshape(-1, d)
    lab = space.to_lab(corners)
    return lab.min(0), lab.max(0)


def _label_space_axes(ax, space, d):
    if not ax.get_xlabel():
        ax.set_xlabel(axis_label(0, d, space))
    if d == 1 and not ax.get_ylabel():
        ax.set_ylabel(f"sqrt Sigma(x) ({space.axis_labels[0]})")
    elif d == 2 and not ax.get_ylabel():
        ax.set_ylabel(axis_label(1, d, space))


def _field_2d(fit, ax, grid, level, name, pct, scale, space=None):
    centers, lim = grid, ((-1, 1), (-1, 1))
    if space is not None:  # a grid over the space's bounds, covariances in its units
        lo, hi = space_extent(space)
        centers = lo + 0.5 * (grid + 1.0) * (hi - lo)
        grid = np.clip(space.to_model(centers, check=False), -1.0, 1.0)
        lim = tuple(zip(lo, hi, strict=True))
        _label_space_axes(ax, space, 2)
    S = np.asarray(fit.covariance(grid), dtype=float)
    if space is not None:
        S = space.covariance_to_lab(S)
    if scale is None:
        scale = auto_scale(centers, S if fit.point else np.median(S, axis=0))
    _median_band(fit, ax, S, centers, level, name, pct, scale,
                 PALETTE[1] if fit.point else PALETTE[0], ticks=space is None)
    ax.set_xlim(*lim[0])
    ax.set_ylim(*lim[1])
    legend_outside(ax, title=scale_text(scale, fit.model).replace(", drawn", ",\ndrawn"),
                   title_fontsize=8)


def _field_3d(fit, fig, axes, grid2, level, name, pct, through, cut, scale, space=None):
    lo, hi = (np.full(3, -1.0), np.full(3, 1.0)) if space is None else space_extent(space)
    pts = np.repeat(through[None, None, :], 3, 0).repeat(len(grid2), 1)  # (3, G, 3)
    for p, plane in enumerate(SLICE_PLANES):  # the grid spread over each plane's extent
        pl = list(plane)
        pts[p][:, pl] = lo[pl] + 0.5 * (grid2 + 1.0) * (hi[pl] - lo[pl])
    if space is None:
        S = np.asarray(fit.covariance(pts), dtype=float)  # ([D,] 3, G, 3, 3)
    else:  # slices of the lab's space: covariances at their points, in its units
        model_pts = np.clip(space.to_model(pts, check=False), -1.0, 1.0)
        S = space.covariance_to_lab(np.asarray(fit.covariance(model_pts), dtype=float))
    red = [plane_covariances(S[..., p, :, :, :], plane, cut) for p, plane in
           enumerate(SLICE_PLANES)]
    med = np.concatenate([r if fit.point else np.median(r, axis=0) for r in red])
    if scale is None:
        scale = auto_scale(np.concatenate([pts[p][:, list(plane)] for p, plane in
                                           enumerate(SLICE_PLANES)]), med)
    color = PALETTE[1] if fit.point else PALETTE[0]
    for p, (plane, ax) in enumerate(zip(SLICE_PLANES, axes, strict=True)):
        k = ({0, 1, 2} - set(plane)).pop()
        Sp = S[..., p, :, :, :]
        _median_band(fit, ax, Sp, pts[p], level, name, pct, scale, color, plane=plane, cut=cut,
                     **({} if space is None else {"ticks": False}))
        ax.scatter([through[plane[0]]], [through[plane[1]]], marker="+", s=60, color="k",
                   zorder=3, label="slice point" if p == 0 else None)
        ax.set_xlim(lo[plane[0]], hi[plane[0]])
        ax.set_ylim(lo[plane[1]], hi[plane[1]])
        if space is None:
            ax.set_title(f"slice {AXIS_NAMES[k]} = {through[k]:.2g}")
        else:
            ax.set_xlabel(axis_label(plane[0], 3, space))
            ax.set_ylabel(axis_label(plane[1], 3, space))
            ax.set_title(f"slice {space.axis_labels[k]} = {through[k]:.3g}")
            ax.set_aspect("equal", adjustable="box")  # ellipses keep their shapes
    figure_legend(fig, axes, scale_text(scale, fit.model))


def _field_1d(fit, ax, level, name, pct, space=None):
    x = np.linspace(-1, 1, 101)[:, None]
    lim = (-1, 1)
    if space is not None:
        lo, hi = space_extent(space)
        lim = (lo[0], hi[0])
        x_model = np.clip(space.to_model(np.linspace(lo, hi, 101), check=False), -1.0, 1.0)
        S = space.covariance_to_lab(np.asarray(fit.covariance(x_model), dtype=float))
        x = np.linspace(lo, hi, 101)
        _label_space_axes(ax, space, 1)
    else:
        S = np.asarray(fit.covariance(x), dtype=float)
    if fit.point:
        plot_field(S, x, ax=ax, color=PALETTE[1], label=name)
    else:
        plot_field_band(S, x, ax=ax, level=level, color=PALETTE[0], alpha=0.3,
                        label=f"{pct} band")
        med_sd = np.median(np.sqrt(S[..., 0, 0]), axis=0)  # the median of sqrt Sigma
        plot_field(med_sd[:, None, None] ** 2, x, ax=ax, color=PALETTE[0],
                   label=f"{name} median")
    ax.set_xlim(*lim)
    ax.set_ylim(bottom=0)
    if space is None:
        unit_ticks(ax, y=False)
    legend_outside(ax)
