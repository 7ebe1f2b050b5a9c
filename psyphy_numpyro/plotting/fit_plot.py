"""A whole fit's covariance field as one figure: :func:`plot_fit`.

One concept: drawing any fit (point or draws; 1-D, 2-D or 3-D slices; in the
model's box or in its data's stimulus-space units) with the primitives of
:mod:`psyphy_numpyro.plotting.field`.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInput, InvalidType
from ..fits import Fit
from ..validation import check_array, check_int, check_real
from ._base import (
    AXIS_NAMES,
    PALETTE,
    _plt,
    axis_label,
    cut_text,
    figure_legend,
    legend_outside,
    new_axes,
    plane_covariances,
    unit_ticks,
)
from .field import SLICE_PLANES, auto_scale, grid_points, plot_field, plot_field_band, scale_text

__all__ = ["plot_fit", "space_extent"]


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
