"""Learning curves, psychometric functions and trial layouts (threshold contours:
:mod:`psyphy_numpyro.plotting.threshold_plot`, re-exported here)."""

from __future__ import annotations

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
    set_axis_labels,
)
from .field import SLICE_PLANES
from .threshold_plot import plot_thresholds, threshold_scale  # re-exported

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
            set_axis_labels(a, 3, plane, data.space)
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
        set_axis_labels(ax, 2, (0, 1), data.space)
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
