"""Learning curves, threshold contours, psychometric functions and trial layouts."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInput, InvalidType
from ..validation import check_array, check_int, check_real, check_responses
from ._base import _check_style, _plt
from .field import ellipse_points

__all__ = ["plot_learning_curve", "plot_thresholds", "plot_psychometric", "plot_trials"]


def plot_learning_curve(fit, *, ax=None, per_trial=True, all_restarts=True):
    """Plot the SVI loss of a MAP fit against the step.

    Returns
    -------
    matplotlib Axes
    """
    plt = _plt()
    missing = [a for a in ("restart_histories", "loss_history", "best_restart", "data")
               if not hasattr(fit, a)]
    if missing:
        raise InvalidType(
            f"plot_learning_curve needs a MAPFit (from fit_map), got {type(fit).__name__} "
            f"without {missing}"
        )
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


def _ellipse_radius(E, u):
    """Radius ``1 / sqrt(u' E^-1 u)`` of ellipses ``E`` (..., 2, 2) along unit ``u`` (T, 2)."""
    prec = np.linalg.inv(E)
    return 1.0 / np.sqrt(np.einsum("ti,...ij,tj->...t", u, prec, u))


def plot_thresholds(th, ax=None, *, draws="spaghetti", max_draws=50, show_points=True,
                    show_refs=True, color="C0", label=None, num=120, **style):
    """Draw threshold ellipses (2-D) or intervals (1-D) from :func:`~psyphy_numpyro.thresholds`.

    Parameters
    ----------
    th : Thresholds
    ax : matplotlib Axes, optional
    draws : {"spaghetti", "ribbon"}
        For draw-based results: ``"spaghetti"`` draws the ellipse of each of
        up to ``max_draws`` posterior draws as thin lines; ``"ribbon"`` fills,
        in every direction, the central ``th.level`` range of the draws' ellipse
        radii. The ellipse fitted to the median lengths is drawn on top.
    max_draws : int
        Most draws in the spaghetti (evenly thinned).
    show_points : bool
        Mark the boundary points the ellipses were fitted to (median ones for
        draws) as one scatter.
    show_refs : bool
        Mark the references as one scatter.
    color, label, num
        Line colour, legend label (first ellipse only), points per ellipse.
    **style
        Passed to ``ax.plot`` for the (median) ellipses.

    Returns
    -------
    matplotlib Axes
    """
    plt = _plt()
    if not all(hasattr(th, a) for a in ("refs", "lengths", "median_ellipses", "has_draws")):
        raise InvalidType(
            "plot_thresholds needs a Thresholds result (from psyphy_numpyro.thresholds), "
            f"got {type(th).__name__}"
        )
    if draws not in ("spaghetti", "ribbon"):
        raise InvalidInput(f'draws must be "spaghetti" or "ribbon", got {draws!r}')
    max_draws = check_int("max_draws", max_draws, 1)
    num = check_int("num", num, 3)
    refs = np.asarray(th.refs, dtype=float)
    d = refs.shape[1]
    if d == 3:
        raise InvalidInput("plot_thresholds draws 1-D or 2-D thresholds, got 3-D")
    _check_style("plot_thresholds", style, "lines" if d == 1 else "line")
    ax = ax if ax is not None else plt.gca()
    med = th.median_ellipses
    if d == 1:
        y = np.arange(len(refs))
        if th.has_draws:
            lo, hi = th.interval
            ax.hlines(y, refs[:, 0] - hi[:, 1], refs[:, 0] + hi[:, 0], color=color, lw=6,
                      alpha=0.25)
        ax.hlines(y, med[:, 0], med[:, 1], color=color, label=label, **style)
        if show_refs:
            ax.scatter(refs[:, 0], y, color="k", s=12, zorder=3)
        ax.set_xlabel("stimulus")
        ax.set_ylabel("reference")
        return ax
    t = np.linspace(0.0, 2 * np.pi, num)
    circle = np.stack([np.cos(t), np.sin(t)], -1)
    if th.has_draws:
        E = np.asarray(th.ellipses, dtype=float)  # (S, R, 2, 2)
        if draws == "spaghetti":
            idx = np.unique(np.linspace(0, len(E) - 1, min(max_draws, len(E))).round().astype(int))
            for s in idx:
                for g, c in enumerate(refs):
                    if np.all(np.isfinite(E[s, g])):
                        pts = ellipse_points(c, E[s, g], 1.0, num)
                        ax.plot(pts[:, 0], pts[:, 1], color=color, lw=0.5, alpha=0.25)
        else:
            ok = np.all(np.isfinite(E), axis=(-1, -2))
            safe = np.where(ok[..., None, None], E, np.eye(2))
            radius = np.where(ok[..., None], _ellipse_radius(safe, circle), np.nan)
            q = 50 * (1 - th.level)
            lo, hi = np.nanpercentile(radius, [q, 100 - q], axis=0)  # (R, num)
            for g, c in enumerate(refs):
                if np.all(np.isfinite(lo[g])) and np.all(np.isfinite(hi[g])):
                    ring = np.concatenate([c + hi[g][:, None] * circle,
                                           c + lo[g][::-1, None] * circle[::-1]])
                    ax.fill(ring[:, 0], ring[:, 1], color=color, alpha=0.3, lw=0)
    style.setdefault("lw", 1.5)
    first = True
    for g, c in enumerate(refs):
        if np.all(np.isfinite(med[g])):
            pts = ellipse_points(c, med[g], 1.0, num)
            ax.plot(pts[:, 0], pts[:, 1], color=color, label=label if first else None, **style)
            first = False
    if show_points:
        bp = th.median_points.reshape(-1, 2)
        ax.scatter(bp[:, 0], bp[:, 1], color=color, s=6, zorder=3)
    if show_refs:
        ax.scatter(refs[:, 0], refs[:, 1], color="k", marker="+", s=30, zorder=3)
    ax.set_aspect("equal")
    return ax


def plot_psychometric(distances, p, ax=None, data=None, *, level=0.9, bins=10, target=None,
                      color="C0", label=None, **style):
    """Draw a psychometric function, with a credible band when ``p`` has a draws axis.

    Parameters
    ----------
    distances : array (T,)
    p : array (T,) or (num_draws, T)
        From :func:`~psyphy_numpyro.psychometric`. With draws, the median is
        drawn as a line and the central ``level`` range as a band.
    ax : matplotlib Axes, optional
    data : tuple (distances, responses) or TrialData, optional
        Observed trials, shown as proportions correct in ``bins`` equal-width
        distance bins (marker area proportional to the trial count). A
        ``TrialData`` uses the Euclidean reference-comparison distance of every
        trial, so pass only the trials near the ray being plotted.
    target : float, optional
        Draw a dotted horizontal line at this p(correct).
    **style
        Passed to ``ax.plot`` for the curve.

    Returns
    -------
    matplotlib Axes
    """
    plt = _plt()
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
    ax = ax if ax is not None else plt.gca()
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
    if target is not None:
        ax.axhline(target, color="0.5", ls=":", lw=1)
    ax.set_xlabel("distance from reference")
    ax.set_ylabel("p(correct)")
    ax.set_ylim(0.0, 1.02)
    return ax


def plot_trials(data, ax=None, *, max_trials=None, seed=0):
    """Draw trials: references, comparisons and a segment joining each pair.

    Segments are green for correct and red for incorrect responses (one line
    collection); references and comparisons are one scatter each. In 1-D the
    vertical axis is the trial index.

    Parameters
    ----------
    data : TrialData
    ax : matplotlib Axes, optional
    max_trials : int, optional
        Draw a random subset of this many trials (chosen with ``seed``).

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.collections import LineCollection

    from ..data import as_trial_data

    plt = _plt()
    data = as_trial_data(data)
    d = data.input_dim
    if d == 3:
        raise InvalidInput("plot_trials draws 1-D or 2-D data, got 3-D stimuli")
    if max_trials is not None:
        max_trials = check_int("max_trials", max_trials, 1)
    ax = ax if ax is not None else plt.gca()
    idx = np.arange(len(data))
    if max_trials is not None and max_trials < len(data):
        idx = np.sort(np.random.default_rng(seed).choice(len(data), max_trials, replace=False))
    s = np.asarray(data.stimuli, dtype=float)[idx]
    y = np.asarray(data.responses)[idx]
    if d == 1:
        row = np.arange(len(idx), dtype=float)
        r = np.stack([s[:, 0, 0], row], -1)
        c = np.stack([s[:, 1, 0], row], -1)
    else:
        r, c = s[:, 0], s[:, 1]
    colors = np.where(y[:, None] == 1, [[0.1, 0.6, 0.2, 0.6]], [[0.8, 0.1, 0.1, 0.6]])
    ax.add_collection(LineCollection(np.stack([r, c], 1), colors=colors, lw=0.6))
    ax.scatter(r[:, 0], r[:, 1], s=6, color="k", label="reference", zorder=3)
    ax.scatter(c[:, 0], c[:, 1], s=6, color="C1", label="comparison", zorder=3)
    ax.autoscale_view()
    if d == 2:
        ax.set_aspect("equal")
    else:
        ax.set_ylabel("trial")
    return ax
