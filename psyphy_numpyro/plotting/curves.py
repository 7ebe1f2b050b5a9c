"""Learning curves, threshold contours, psychometric functions and trial layouts."""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import InvalidInput, InvalidType
from ..validation import check_array, check_int, check_real, check_responses
from ._base import (
    AXIS_NAMES,
    COLORS,
    PALETTE,
    _check_style,
    _plt,
    axis_label,
    legend_outside,
    new_axes,
    own_axes,
    plane_covariances,
)
from .field import SLICE_PLANES, ellipse_points

__all__ = ["plot_learning_curve", "plot_thresholds", "threshold_scale", "plot_psychometric",
           "plot_trials"]


def plot_learning_curve(fit, *, ax=None, per_trial=True, all_restarts=True, log=True):
    """Plot the SVI loss of a MAP fit against the step, one labelled line per restart.

    Parameters
    ----------
    fit : MAPFit
    ax : matplotlib Axes, optional
        Default a new figure.
    per_trial : bool
        Divide the loss (negative log joint) by the number of trials.
    all_restarts : bool
        Draw every restart (each its own palette colour, labelled with its
        number; restarts screened out early stop where they were dropped);
        otherwise only the kept one.
    log : bool
        Steps on a logarithmic axis; the loss too when it is positive
        throughout (the negative log joint can be negative when the prior
        density dominates, then the loss axis stays linear).

    Returns
    -------
    matplotlib Axes
    """
    _plt()
    missing = [a for a in ("restart_histories", "loss_history", "best_restart", "data")
               if not hasattr(fit, a)]
    if missing:
        raise InvalidType(
            f"plot_learning_curve needs a MAPFit (from fit_map), got {type(fit).__name__} "
            f"without {missing}"
        )
    ax = own_axes(ax)
    n = len(fit.data) if per_trial else 1
    hist = np.atleast_2d(np.asarray(fit.restart_histories, dtype=float))
    best = int(fit.best_restart)
    kept = np.asarray(fit.loss_history, dtype=float) / n
    steps = np.arange(1, hist.shape[1] + 1)
    shown = [kept]
    if all_restarts:
        for r, h in enumerate(hist):
            if r == best:
                continue
            h = h / n
            ok = np.isfinite(h)
            label = f"restart {r}"
            if not ok.all() and ok.any():
                label += f" (screened out at step {int(np.argmin(ok))})"
            ax.plot(steps[ok], h[ok], color=PALETTE[1 + (r % (len(PALETTE) - 1))], lw=0.9,
                    alpha=0.85, label=label)
            shown.append(h[ok])
    ax.plot(np.arange(1, len(kept) + 1), kept, color=PALETTE[0], lw=1.8,
            label=f"restart {best} (kept)", zorder=3)
    values = np.concatenate(shown)
    values = values[np.isfinite(values)]
    if log:
        ax.set_xscale("log")
        if values.size and values.min() > 0:
            from matplotlib.ticker import FuncFormatter, NullFormatter

            ax.set_yscale("log")
            # plain numbers (0.4, 2, 3) rather than 4 x 10^-1; within ~a decade the minor
            # ticks 2, 3, 4, 6 x 10^k are labelled too
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            if np.log10(values.max() / values.min()) <= 1.5:
                def minor(v, _):
                    m = round(v / 10 ** np.floor(np.log10(v)), 6)
                    return f"{v:g}" if m in (2, 3, 4, 6) else ""

                ax.yaxis.set_minor_formatter(FuncFormatter(minor))
            else:
                ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("SVI step" + (" (log scale)" if log else ""))
    what = "negative log joint per trial" if per_trial else "negative log joint"
    ax.set_ylabel(what + (" (log scale)" if log and ax.get_yscale() == "log" else ""))
    legend_outside(ax, title="restarts (numbered from 0)", title_fontsize=8)
    return ax


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
            _axis_labels(a, 3, plane, th.space)
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
        _axis_labels(ax, 1, (0, 1), th.space)
        return ax
    E = np.asarray(th.ellipses, dtype=float) if th.has_draws else None
    points = th.median_points.reshape(-1, 2) if show_points else None
    _draw_ellipses(ax, refs, med, E, points, th.level, draws, max_draws, color, label, num,
                   scale, show_refs, style)
    _axis_labels(ax, 2, (0, 1), th.space)
    return ax


def _axis_labels(ax, d, plane, space=None):
    """Axis labels (the space's, in its units, when there is one), where none is set yet."""
    if not ax.get_xlabel():
        ax.set_xlabel(axis_label(plane[0], d, space))
    if not ax.get_ylabel():
        ax.set_ylabel("reference (row)" if d == 1 else axis_label(plane[1], d, space))


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


def plot_psychometric(distances, p, ax=None, data=None, *, level=0.9, bins=10, target=None,
                      color=None, label=None, **style):
    """Draw a psychometric function, with a credible band when ``p`` has a draws axis.

    Parameters
    ----------
    distances : array (T,)
    p : array (T,) or (num_draws, T)
        From :func:`~psyphy_numpyro.psychometric`. With draws, the median is
        drawn as a line and the central ``level`` range as a band.
    ax : matplotlib Axes, optional
        Default a new figure.
    data : tuple (distances, responses) or TrialData, optional
        Observed trials, shown as proportions correct in ``bins`` equal-width
        distance bins (marker area proportional to the trial count). A
        ``TrialData`` uses the Euclidean reference-comparison distance of every
        trial, so pass only the trials near the ray being plotted.
    target : float, optional
        Draw a dotted horizontal line at this p(correct) (labelled). A dashed line
        marks chance, 1/3 (the oddity task's floor), either way.
    **style
        Passed to ``ax.plot`` for the curve.

    Returns
    -------
    matplotlib Axes
    """
    _plt()
    x = check_array("distances", distances)
    p = check_array("p", p)
    if x.ndim != 1 or p.ndim not in (1, 2) or p.shape[-1] != len(x):
        raise InvalidInput(
            f"plot_psychometric needs distances (T,) and p (T,) or (draws, T), got {x.shape} "
            f"and {p.shape}"
        )
    if np.any((p < 0) | (p > 1)):
        raise InvalidInput(
            f"p must be probabilities in [0, 1], got values in [{p.min():.4g}, {p.max():.4g}]"
        )
    level = check_real("level", level, 0.0, 1.0)
    bins = check_int("bins", bins, 1)
    if target is not None:
        target = check_real("target", target, 0.0, 1.0, lo_closed=True, hi_closed=True)
    _check_style("plot_psychometric", style)
    if data is not None:
        if hasattr(data, "stimuli"):
            s = np.asarray(data.stimuli, dtype=float)
            dist_obs = np.linalg.norm(s[:, 1] - s[:, 0], axis=-1)
            y = np.asarray(data.responses, dtype=float)
        else:
            if not isinstance(data, (tuple, list)) or len(data) != 2:
                raise InvalidType(
                    "data must be a TrialData or a (distances, responses) pair, got "
                    f"{type(data).__name__}"
                )
            dist_obs = check_array("data distances", data[0]).ravel()
            y = check_responses(np.ravel(data[1]), name="data responses").astype(float)
            if dist_obs.shape != y.shape:
                raise InvalidInput(
                    f"data distances and responses differ in length: {dist_obs.shape} vs {y.shape}"
                )
            if dist_obs.size == 0:
                raise InvalidInput("data is empty: pass at least one (distance, response)")
    ax = own_axes(ax)
    color = PALETTE[0] if color is None else color
    if p.ndim == 2:
        q = 50 * (1 - level)
        lo, mid, hi = np.percentile(p, [q, 50, 100 - q], axis=0)
        ax.fill_between(x, lo, hi, color=color, alpha=0.3, lw=0,
                        label=f"{round(100 * level)}% band")
    else:
        mid = p
    ax.plot(x, mid, color=color, label=label, **style)
    if data is not None:
        edges = np.linspace(min(x.min(), dist_obs.min()), max(x.max(), dist_obs.max()), bins + 1)
        which = np.clip(np.digitize(dist_obs, edges) - 1, 0, bins - 1)
        count = np.bincount(which, minlength=bins)
        hits = np.bincount(which, weights=y, minlength=bins)
        keep = count > 0
        centres = 0.5 * (edges[1:] + edges[:-1])
        ax.scatter(centres[keep], hits[keep] / count[keep], s=8 + 60 * count[keep] / count.max(),
                   color="k", zorder=3, label="observed")
    ax.axhline(1 / 3, color="0.35", ls="--", lw=0.8, label="chance (1/3)")
    if target is not None:
        ax.axhline(target, color="0.5", ls=":", lw=1, label=f"{100 * target:.3g}% correct")
    if not ax.get_xlabel():
        space = getattr(data, "space", None)
        ax.set_xlabel("distance from reference ("
                      + ("model units" if space is None else f"{space.name} units") + ")")
    if not ax.get_ylabel():
        ax.set_ylabel("p(correct)")
    ax.set_ylim(0.0, 1.02)
    return ax


def plot_trials(data, ax=None, *, max_trials=None, seed=0):
    """Draw trials: references, comparisons and a segment joining each pair.

    Segments are blue for correct and vermillion for incorrect responses
    (one line collection, colour-blind safe); references (black) and
    comparisons (grey) are one scatter each. In 1-D the vertical axis is the
    trial index; in 3-D three panels show the trials projected onto the
    ``(x, y)``, ``(x, z)`` and ``(y, z)`` planes.

    Stimuli are drawn in the data's units (those of its space, if any).

    Parameters
    ----------
    data : TrialData
    ax : matplotlib Axes, optional
        One Axes (1-D, 2-D) or three (3-D); default a new figure.
    max_trials : int, optional
        Draw a random subset of this many trials (chosen with ``seed``).

    Returns
    -------
    matplotlib Axes (1-D, 2-D) or list of three Axes (3-D)
    """
    from ..data import as_trial_data

    _plt()
    data = as_trial_data(data)
    d = data.input_dim
    if max_trials is not None:
        max_trials = check_int("max_trials", max_trials, 1)
    idx = np.arange(len(data))
    if max_trials is not None and max_trials < len(data):
        idx = np.sort(np.random.default_rng(seed).choice(len(data), max_trials, replace=False))
    s = np.asarray(data.stimuli, dtype=float)[idx]
    y = np.asarray(data.responses)[idx]
    if d == 3:
        _, axes = new_axes(ax, 3)
        for plane, a in zip(SLICE_PLANES, axes, strict=True):
            _draw_trials(a, s[:, 0][:, list(plane)], s[:, 1][:, list(plane)], y)
            a.set_aspect("equal")
            _axis_labels(a, 3, plane, data.space)
            k = ({0, 1, 2} - set(plane)).pop()
            if not a.get_title():
                a.set_title(f"projected along {AXIS_NAMES[k]}")
        return axes
    ax = own_axes(ax, (6.0, 6.0) if d == 2 else (7.0, 4.0))
    if d == 1:
        row = np.arange(len(idx), dtype=float)
        r = np.stack([s[:, 0, 0], row], -1)
        c = np.stack([s[:, 1, 0], row], -1)
    else:
        r, c = s[:, 0], s[:, 1]
    _draw_trials(ax, r, c, y)
    if d == 2:
        ax.set_aspect("equal")
        _axis_labels(ax, 2, (0, 1), data.space)
    else:
        if not ax.get_xlabel():
            ax.set_xlabel(axis_label(0, 1, data.space))
        ax.set_ylabel("trial")
    return ax


def _draw_trials(ax, r, c, y):
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_rgba
    from matplotlib.lines import Line2D

    good, bad = to_rgba(COLORS["blue"], 0.6), to_rgba(COLORS["vermillion"], 0.6)
    colors = np.where(y[:, None] == 1, [good], [bad])
    ax.add_collection(LineCollection(np.stack([r, c], 1), colors=colors, lw=0.6))
    ax.scatter(r[:, 0], r[:, 1], s=6, color="k", label="reference", zorder=3)
    ax.scatter(c[:, 0], c[:, 1], s=6, color="0.55", label="comparison", zorder=3)
    # proxies so the legend explains the segment colours
    ax.add_line(Line2D([], [], color=good, lw=1.5, label="correct"))
    ax.add_line(Line2D([], [], color=bad, lw=1.5, label="incorrect"))
    ax.autoscale_view()
