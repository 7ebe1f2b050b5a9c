"""Threshold contours: :func:`plot_thresholds` and the scale that sizes them,
:func:`threshold_scale`.

One concept: drawing a :class:`~psyphy_numpyro.Thresholds` result (ellipses, 1-D
intervals, 3-D slices, posterior draws as spaghetti or bands). Re-exported by
:mod:`psyphy_numpyro.plotting.curves` and :mod:`psyphy_numpyro.plotting`.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import InvalidInput, InvalidType
from ..validation import check_array, check_int, check_real
from ._base import (
    AXIS_NAMES,
    PALETTE,
    _check_style,
    _plt,
    new_axes,
    own_axes,
    plane_covariances,
    set_axis_labels,
)
from .field import SLICE_PLANES, ellipse_points

__all__ = ["plot_thresholds", "threshold_scale"]


def _ellipse_radius(E, u):
    """Radius ``1 / sqrt(u' E^-1 u)`` of ellipses ``E`` (..., 2, 2) along unit ``u`` (T, 2)."""
    prec = np.linalg.inv(E)
    return 1.0 / np.sqrt(np.einsum("ti,...ij,tj->...t", u, prec, u))


def _check_thresholds(th, func):
    if not all(hasattr(th, a) for a in ("refs", "lengths", "median_ellipses", "has_draws")):
        raise InvalidType(
            f"{func} needs a Thresholds result (from psyphy_numpyro.thresholds), "
            f"got {type(th).__name__}"
        )
    refs = np.asarray(th.refs, dtype=float)
    if refs.ndim != 2 or refs.shape[1] not in (1, 2, 3):
        raise InvalidInput(f"{func}: thresholds of refs {refs.shape} are not 1-, 2- or 3-D")
    return refs


def _slice_point(refs, through):
    """The point the 3-D slices pass through: ``through`` or the ref nearest the refs' centroid."""
    if through is None:
        return refs[np.argmin(np.linalg.norm(refs - refs.mean(0), axis=1))]
    through = check_array("through", through)
    if through.shape != (3,):
        raise InvalidInput(f"through must be one 3-D point (3,), got shape {through.shape}")
    return through


def _in_plane(refs, through, k):
    """References lying in the slice ``x_k = through_k`` (to float32 precision)."""
    return np.abs(refs[:, k] - through[k]) <= 1e-5 * max(1.0, float(np.abs(refs).max()))


def _plane_parts(th, refs, through, cut):
    """Per slice: (plane, fixed coordinate, in-plane mask, median 2x2, draws 2x2 or None)."""
    med = np.asarray(th.median_ellipses, dtype=float)
    E = np.asarray(th.ellipses, dtype=float) if th.has_draws else None
    out = []
    for plane in SLICE_PLANES:
        k = ({0, 1, 2} - set(plane)).pop()
        m = _in_plane(refs, through, k)
        out.append((plane, k, m, plane_covariances(med[m], plane, cut),
                    None if E is None else plane_covariances(E[:, m], plane, cut)))
    return out


def _largest_semi_axis(E, q=None):
    """Largest semi-axis of finite ellipses ``E`` (..., 2, 2); over draws its ``q`` percentile."""
    ok = np.all(np.isfinite(E), axis=(-1, -2))
    lam = np.linalg.eigvalsh(np.where(ok[..., None, None], E, np.eye(2)))[..., -1]
    semi = np.where(ok, np.sqrt(np.maximum(lam, 0.0)), np.nan)
    if q is not None and semi.ndim > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # refs without any finite draw
            semi = np.nanpercentile(semi, q, axis=0) if np.isfinite(semi).any() else semi[0]
    return float(np.nanmax(semi)) if np.isfinite(semi).any() else np.nan


def _spacing(centers):
    """Smallest Chebyshev distance between distinct centers (1 for a single center)."""
    centers = np.unique(np.round(centers, 9), axis=0)
    if len(centers) < 2:
        return 1.0
    diff = np.abs(centers[:, None, :] - centers[None, :, :]).max(-1)
    diff[diff == 0] = np.inf
    return float(diff.min())


def threshold_scale(th, *, fill=0.4, through=None, cut="section"):
    """A drawing scale for threshold ellipses so that neighbouring ones do not overlap.

    The largest semi-axis (of the median ellipses, or of the upper credible
    end over draws) becomes ``fill`` x the smallest spacing between
    references (Chebyshev distance), so two neighbours take at most
    ``2 fill`` of the space between them. 3-D: over the three slices
    :func:`plot_thresholds` draws. 1-D: 1 (intervals are drawn on separate rows).

    Returns
    -------
    float
    """
    refs = _check_thresholds(th, "threshold_scale")
    fill = check_real("fill", fill, 0.0)
    d = refs.shape[1]
    if d == 1:
        return 1.0
    q = 50 * (1 + th.level) if th.has_draws else None
    if d == 2:
        parts = [(refs, np.asarray(th.median_ellipses, dtype=float),
                  np.asarray(th.ellipses, dtype=float) if th.has_draws else None)]
    else:
        through = _slice_point(refs, through)
        parts = [(refs[m][:, list(plane)], med, E)
                 for plane, _, m, med, E in _plane_parts(th, refs, through, cut)]
    ratios = []
    for centers, med, E in parts:
        if not len(centers):
            continue
        sizes = [_largest_semi_axis(med), np.nan if E is None else _largest_semi_axis(E, q)]
        sizes = [v for v in sizes if np.isfinite(v)]
        big = max(sizes) if sizes else np.nan
        if np.isfinite(big) and big > 0:
            ratios.append(fill * _spacing(centers) / big)
    if not ratios:
        raise InvalidInput("threshold_scale: no finite threshold ellipse to scale")
    return float(min(ratios))


def plot_thresholds(th, ax=None, *, draws="spaghetti", max_draws=50, show_points=True,
                    show_refs=True, color=None, label=None, num=120, scale=1.0, through=None,
                    cut="section", **style):
    """Draw threshold ellipses (2-D), slices of ellipsoids (3-D) or intervals (1-D).

    Parameters
    ----------
    th : Thresholds
        From :func:`~psyphy_numpyro.thresholds`.
    ax : matplotlib Axes, optional
        1-D/2-D: one Axes (default a new figure). 3-D: three Axes, one per
        slice (default a new figure).
    draws : {"spaghetti", "ribbon"}
        For draw-based results: ``"spaghetti"`` draws the ellipse of each of
        up to ``max_draws`` posterior draws as thin lines; ``"ribbon"`` fills,
        in every direction, the central ``th.level`` range of the draws' ellipse
        radii. The ellipse fitted to the median lengths is drawn on top. When
        ``label`` is given, the band (or the draws) gets a legend entry too.
    max_draws : int
        Most draws in the spaghetti (evenly thinned).
    show_points : bool
        Mark the boundary points the ellipses were fitted to (median ones for
        draws) as one scatter (2-D only: in 3-D the rays leave the slices).
    show_refs : bool
        Mark the references as one scatter.
    color, label, num
        Line colour (default the palette's blue), legend label (first ellipse
        only), points per ellipse.
    scale : float or "auto"
        Ellipses are drawn at ``scale`` x the threshold contour around their
        reference (1: true size, so thresholds read off the axes); ``"auto"``
        takes :func:`threshold_scale` (no overlap). A scale other than 1 is
        appended to ``label``.
    through : array (3,), optional
        3-D: the point the slices ``z = c_z``, ``y = c_y``, ``x = c_x`` pass
        through (default the reference nearest the references' centroid); each
        panel draws the references lying in its slice.
    cut : {"section", "marginal"}
        3-D: the threshold ellipsoid cut by the slice (the contour of
        comparisons inside the plane) or its 2 x 2 sub-block (its shadow).
    **style
        Passed to ``ax.plot`` for the (median) ellipses.

    Returns
    -------
    matplotlib Axes (1-D, 2-D) or list of three Axes (3-D)
    """
    _plt()
    refs = _check_thresholds(th, "plot_thresholds")
    if draws not in ("spaghetti", "ribbon"):
        raise InvalidInput(f'draws must be "spaghetti" or "ribbon", got {draws!r}')
    if cut not in ("section", "marginal"):
        raise InvalidInput(f'cut must be "section" or "marginal", got {cut!r}')
    max_draws = check_int("max_draws", max_draws, 1)
    num = check_int("num", num, 3)
    d = refs.shape[1]
    if d != 3 and through is not None:
        raise InvalidInput(f"through selects the slices of 3-D thresholds; these are {d}-D")
    _check_style("plot_thresholds", style, "lines" if d == 1 else "line")
    if isinstance(scale, str):
        if scale != "auto":
            raise InvalidInput(f'scale must be a positive number or "auto", got {scale!r}')
        scale = threshold_scale(th, through=through, cut=cut)
    scale = check_real("scale", scale, 0.0)
    color = PALETTE[0] if color is None else color
    if label is not None and abs(scale - 1.0) > 1e-12:
        label = f"{label} (drawn at {scale:.3g} x true size)"
    if d == 3:
        through = _slice_point(refs, through)
        _, axes = new_axes(ax, 3)
        for (plane, k, m, med, E), a in zip(_plane_parts(th, refs, through, cut), axes,
                                            strict=True):
            _draw_ellipses(a, refs[m][:, list(plane)], med, E, None, th.level, draws,
                           max_draws, color, label, num, scale, show_refs, style)
            if not a.get_title():
                a.set_title(f"slice {AXIS_NAMES[k]} = {through[k]:.3g}")
            set_axis_labels(a, 3, plane, th.space)
        return axes
    ax = own_axes(ax, (6.0, 6.0) if d == 2 else (7.0, 4.0))
    med = np.asarray(th.median_ellipses, dtype=float)
    if d == 1:
        y = np.arange(len(refs))
        c = refs[:, 0]
        if th.has_draws:
            lo, hi = th.interval
            ax.hlines(y, c - scale * hi[:, 1], c + scale * hi[:, 0], color=color, lw=6,
                      alpha=0.25)
        ax.hlines(y, c + scale * (med[:, 0] - c), c + scale * (med[:, 1] - c), color=color,
                  label=label, **style)
        if show_refs:
            ax.scatter(c, y, color="k", s=12, zorder=3)
        set_axis_labels(ax, 1, (0, 1), th.space)
        return ax
    E = np.asarray(th.ellipses, dtype=float) if th.has_draws else None
    points = th.median_points.reshape(-1, 2) if show_points else None
    _draw_ellipses(ax, refs, med, E, points, th.level, draws, max_draws, color, label, num,
                   scale, show_refs, style)
    set_axis_labels(ax, 2, (0, 1), th.space)
    return ax


def _draw_ellipses(ax, refs, med, E, points, level, draws, max_draws, color, label, num, scale,
                   show_refs, style):
    """2-D threshold ellipses ``med`` (R, 2, 2) at ``refs`` (R, 2), draws ``E`` (S, R, 2, 2)."""
    t = np.linspace(0.0, 2 * np.pi, num)
    circle = np.stack([np.cos(t), np.sin(t)], -1)
    if E is not None and len(refs):
        if draws == "spaghetti":
            idx = np.unique(np.linspace(0, len(E) - 1, min(max_draws, len(E))).round().astype(int))
            tag = None if label is None else f"draws ({len(idx)} shown)"
            for s in idx:
                for g, c in enumerate(refs):
                    if np.all(np.isfinite(E[s, g])):
                        pts = ellipse_points(c, E[s, g], scale, num)
                        ax.plot(pts[:, 0], pts[:, 1], color=color, lw=0.5, alpha=0.25,
                                label=tag)
                        tag = None
        else:
            ok = np.all(np.isfinite(E), axis=(-1, -2))
            safe = np.where(ok[..., None, None], E, np.eye(2))
            radius = np.where(ok[..., None], _ellipse_radius(safe, circle), np.nan)
            q = 50 * (1 - level)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # refs without finite draws
                lo, hi = np.nanpercentile(radius, [q, 100 - q], axis=0)  # (R, num)
            tag = None if label is None else f"{100 * level:.0f}% band"
            for g, c in enumerate(refs):
                if np.all(np.isfinite(lo[g])) and np.all(np.isfinite(hi[g])):
                    ring = np.concatenate([c + scale * hi[g][:, None] * circle,
                                           c + scale * lo[g][::-1, None] * circle[::-1]])
                    ax.fill(ring[:, 0], ring[:, 1], color=color, alpha=0.3, lw=0, label=tag)
                    tag = None
    style = {"lw": 1.5, **style}
    first = True
    for g, c in enumerate(refs):
        if np.all(np.isfinite(med[g])):
            pts = ellipse_points(c, med[g], scale, num)
            ax.plot(pts[:, 0], pts[:, 1], color=color, label=label if first else None, **style)
            first = False
    if points is not None:
        r = np.repeat(refs, len(points) // max(len(refs), 1), axis=0)
        bp = r + scale * (points - r)
        ax.scatter(bp[:, 0], bp[:, 1], color=color, s=6, zorder=3)
    if show_refs and len(refs):
        ax.scatter(refs[:, 0], refs[:, 1], color="k", marker="+", s=30, zorder=3)
    ax.set_aspect("equal")
