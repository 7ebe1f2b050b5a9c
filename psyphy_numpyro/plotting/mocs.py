"""MOCS validation figure: WPPM thresholds against Weibull thresholds."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidType
from ._base import COLORS, _check_style, _plt

__all__ = ["plot_mocs"]

_BLUE = COLORS["blue"]
_VERMILLION = COLORS["vermillion"]
_ORANGE = COLORS["orange"]
_ERRORBAR_KEYS = ("fmt", "capsize", "capthick", "elinewidth", "ecolor", "errorevery")


def _bars(center, interval):
    """Asymmetric error-bar lengths ``(2, n)`` of an interval ``(2, n)``; 0 where NaN."""
    if interval is None:
        return None
    lo, hi = np.asarray(interval, dtype=float)
    return np.nan_to_num(np.stack([center - lo, hi - center]).clip(min=0.0))


def _axes_fraction(v, lims, log):
    """Positions ``v`` as fractions of the axis range ``lims``."""
    if log:
        v, lims = np.log(v), np.log(lims)
    return (v - lims[0]) / (lims[1] - lims[0])


def _common_limits(ax, x, y, xerr, yerr, shown, log):
    """One range for both axes (so the identity is the diagonal) over the ``shown``
    points and their error bars; with ``log`` the axes become logarithmic.

    Returns
    -------
    lims : (float, float)
    line_x : numpy array (100,)
        Abscissae of the regression line across ``lims``.
    """
    ends = [x[shown], y[shown]]
    for err, c in ((xerr, x), (yerr, y)):
        if err is not None:
            ends += [(c - err[0])[shown], (c + err[1])[shown]]
    vals = np.concatenate(ends) if shown.any() else np.array([1.0])
    vals = vals[np.isfinite(vals) & (vals > 0)] if log else vals[np.isfinite(vals)]
    top = float(vals.max()) if vals.size else 1.0
    if not log:
        lims = (0.0, 1.08 * top)
        return lims, np.linspace(*lims, 100)
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    bottom = float(vals.min()) if vals.size else 0.1
    lims = (bottom / 1.25, top * 1.25)
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(NullFormatter())
    return lims, np.geomspace(*lims, 100)


def _regression_line(ax, validation, line_x, line_color):
    """The line ``y = slope x`` with its bootstrap band, where finite; returns the slope."""
    slope = float(validation.slope)
    if np.isfinite(slope):
        lo, hi = np.asarray(validation.slope_interval, dtype=float)
        if np.isfinite(lo) and np.isfinite(hi):
            ax.fill_between(line_x, lo * line_x, hi * line_x, color=line_color, alpha=0.15,
                            lw=0, zorder=0)
        ax.plot(line_x, slope * line_x, color=line_color, lw=1.5, zorder=2,
                label=f"y = {slope:.2f} x")
    return slope


def _text_box(ax, validation, slope, box_upper):
    """Slope and r with their intervals, in the upper-left or the lower-right corner."""
    ci = f"{100 * validation.level:.0f}% CI"
    s_lo, s_hi = validation.slope_interval
    r_lo, r_hi = validation.r_interval
    text = (f"slope = {slope:.2f} [{s_lo:.2f}, {s_hi:.2f}]\n"
            f"r = {validation.pearson_r:.2f} [{r_lo:.2f}, {r_hi:.2f}]\n"
            f"brackets: bootstrap {ci}")
    # below the points, so a condition behind the box stays visible
    ax.text(0.04 if box_upper else 0.96, 0.96 if box_upper else 0.04, text,
            transform=ax.transAxes, va="top" if box_upper else "bottom",
            ha="left" if box_upper else "right", multialignment="left", fontsize=8,
            zorder=3.5,
            bbox={"boxstyle": "round,pad=0.35", "fc": "white", "ec": "0.8", "alpha": 0.9})


def plot_mocs(validation, ax=None, *, log=False, show_excluded=True, annotate=True,
              color=_BLUE, line_color=_VERMILLION, excluded_color=_ORANGE, **style):
    """Scatter of the WPPM fit's thresholds against the MOCS Weibull thresholds.

    Every condition is a point with its bootstrap interval (horizontal) and,
    for a draw-based fit, its credible interval (vertical). The dashed line
    is the identity, the solid line the no-intercept regression ``y = slope x``
    with its bootstrap band; a text box gives slope and Pearson r with their
    intervals. Conditions left out of slope and r (Weibull threshold outside
    the tested levels) are drawn as hollow markers.

    Parameters
    ----------
    validation : MOCSValidation
        From :func:`~psyphy_numpyro.mocs.validate_mocs`.
    ax : matplotlib Axes, optional
        Draw into it; by default a new 4.2 x 4.2 inch figure is made.
    log : bool
        Logarithmic axes (useful when thresholds span a decade or more).
    show_excluded : bool
        Draw the conditions left out of slope and r.
    annotate : bool
        Add the slope / r text box.
    color, line_color, excluded_color
        Colours of the used points, the regression line and band, and the
        excluded points (Okabe-Ito blue, vermillion and orange by default).
    **style
        Passed to ``ax.errorbar`` for the used points (marker size etc.).

    Returns
    -------
    matplotlib Figure
    """
    plt = _plt()
    need = ("weibull_threshold", "weibull_interval", "fit_threshold", "fit_interval", "used",
            "slope", "slope_interval", "pearson_r", "r_interval", "level", "target")
    if not all(hasattr(validation, a) for a in need):
        raise InvalidType(
            "plot_mocs needs a MOCSValidation (from psyphy_numpyro.mocs.validate_mocs), "
            f"got {type(validation).__name__}"
        )
    _check_style("plot_mocs", {k: v for k, v in style.items() if k not in _ERRORBAR_KEYS})
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 4.2))
    fig = ax.figure
    x = np.asarray(validation.weibull_threshold, dtype=float)
    y = np.asarray(validation.fit_threshold, dtype=float)
    xerr = _bars(x, validation.weibull_interval)
    yerr = _bars(y, validation.fit_interval)
    used = np.asarray(validation.used, dtype=bool)
    shown = np.isfinite(x) & np.isfinite(y) & (used | show_excluded)

    style = {"fmt": "o", "ms": 5, "capsize": 2, "elinewidth": 0.8, "mew": 0.8, **style}
    ax.errorbar(x[used], y[used], xerr=None if xerr is None else xerr[:, used],
                yerr=None if yerr is None else yerr[:, used], color=color, mec="white",
                zorder=4, label=f"conditions (n = {int(used.sum())})", **style)
    excl = shown & ~used
    if excl.any():
        ax.errorbar(x[excl], y[excl], xerr=None if xerr is None else xerr[:, excl],
                    yerr=None if yerr is None else yerr[:, excl], fmt="o", ms=5, capsize=2,
                    elinewidth=0.8, color=excluded_color, mfc="none", zorder=4,
                    label="outside tested levels (excluded)")

    lims, line_x = _common_limits(ax, x, y, xerr, yerr, shown, log)
    ax.plot(lims, lims, color="0.35", ls="--", lw=1.0, zorder=1, label="identity")
    slope = _regression_line(ax, validation, line_x, line_color)
    ax.set_xlim(lims)
    ax.set_ylim(lims)
    ax.set_aspect("equal", adjustable="box")
    pct = f"{100 * validation.target:.1f}%"
    ax.set_xlabel(f"Weibull {pct} threshold (MOCS)")
    ax.set_ylabel("WPPM threshold")
    # text box and legend go to the off-diagonal corners; the box takes the
    # emptier one (excluded conditions lie far off the diagonal)
    frac = _axes_fraction(x[shown], lims, log), _axes_fraction(y[shown], lims, log)
    upper_left = int(np.sum((frac[0] < 0.5) & (frac[1] > 0.75)))
    lower_right = int(np.sum((frac[0] > 0.5) & (frac[1] < 0.25)))
    box_upper = upper_left <= lower_right
    if annotate:
        _text_box(ax, validation, slope, box_upper)
    ax.legend(loc="lower right" if box_upper else "upper left", fontsize=8, frameon=False)
    return fig
