"""MOCS validation: WPPM thresholds against Weibull fits to held-out constant-stimuli data.

In the method of constant stimuli (MOCS) every *condition* is a fixed
reference, a fixed unit direction and a handful of comparison distances
("levels"), each tested many times. A Weibull psychometric function
(:mod:`psyphy_numpyro.weibull`) is fitted to each condition by maximum
likelihood, and its ``target`` threshold (66.7 % correct by default) is
compared with the threshold a fitted WPPM predicts along the same ray (Hong
et al. 2025). Agreement is summarised by the slope of a no-intercept
regression of the WPPM thresholds on the Weibull thresholds (1 = no bias) and
by Pearson's r, each with a bootstrap interval.

- :func:`validate_mocs`: the whole comparison; its result,
  :class:`MOCSValidation`, lives in :mod:`psyphy_numpyro.mocs_result`;
- :func:`mocs_conditions` (:class:`MOCSConditions`) and :func:`simulate_mocs`,
  the design side, live in :mod:`psyphy_numpyro.mocs_design`.

All of these are re-exported here.
"""

from __future__ import annotations

import warnings

import numpy as np

from .data import as_trial_data
from .errors import InvalidInput
from .mocs_design import (  # the design names stay importable from here too
    MOCSConditions,
    cluster_rows,
    mocs_conditions,
    simulate_mocs,
)
from .mocs_result import MOCSValidation  # the result stays importable from here too
from .readout import fit_weights, thresholds
from .validation import (
    check_int,
    check_real,
)
from .weibull import (  # noqa: F401 - the Weibull names stay importable from here too
    WeibullFit,
    bootstrap_thresholds,
    check_weibull_rates,
    fit_weibull,
    fit_weibull_counts,
    level_counts,
    weibull_p,
    weibull_threshold,
)

__all__ = [
    "mocs_conditions",
    "MOCSConditions",
    "simulate_mocs",
    "validate_mocs",
    "MOCSValidation",
]


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------
def _fit_thresholds(fit, refs, dirs, *, target, level, ref_tol, **kwargs):
    """The fit's threshold along every condition's ray, one ``thresholds`` call per reference.

    Every call gets the same number of directions (a reference with fewer
    conditions repeats its first direction), so all calls share one compiled
    program. In 1-D every call asks for the two directions ``+1, -1``.

    Returns
    -------
    median : numpy array (C,)
        The threshold of a point fit, the posterior median of a draw-based one.
    interval : numpy array (2, C) or None
        The credible interval of a draw-based fit.
    """
    groups = cluster_rows(refs, ref_tol)
    members = [np.flatnonzero(groups == g) for g in range(groups.max() + 1)]
    width = max(len(m) for m in members)
    median = np.full(len(refs), np.nan)
    interval = None
    for m in members:
        if refs.shape[1] == 1:
            rays, pick = np.array([[1.0], [-1.0]]), (dirs[m, 0] < 0).astype(int)
        else:
            rays = dirs[np.concatenate([m, np.full(width - len(m), m[0])])]
            pick = np.arange(len(m))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="thresholds:", category=RuntimeWarning)
            th = thresholds(fit, refs[m[0]], directions=rays, target=target, level=level,
                            **kwargs)
        if th.has_draws:
            if interval is None:
                interval = np.full((2, len(refs)), np.nan)
            median[m] = th.median[0, pick]
            interval[:, m] = th.interval[:, 0, pick]
        else:
            median[m] = th.lengths[0, pick]
    return median, interval


def _slope_r(x, y):
    """No-intercept slope ``sum(xy) / sum(x^2)`` and Pearson r along the last axis."""
    xc = x - x.mean(-1, keepdims=True)
    yc = y - y.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.sum(x * y, -1) / np.sum(x * x, -1)
        r = np.sum(xc * yc, -1) / np.sqrt(np.sum(xc * xc, -1) * np.sum(yc * yc, -1))
    return slope, r


def _interval(samples, level):
    q = 0.5 * (1.0 - level)
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return np.full(2, np.nan)
    return np.quantile(finite, [q, 1.0 - q])


def _weibull_fits(cond, y, guess, lapse, target):
    """The Weibull fit of every condition of ``cond`` (responses ``y``), in order.

    Raises
    ------
    InvalidInput
        A condition with fewer than 2 distinct distances.
    """
    weibull = []
    for c in range(len(cond.refs)):
        sel = cond.index == c
        levels, n, k = level_counts(cond.distances[sel], y[sel])
        if len(levels) < 2:
            raise InvalidInput(
                f"condition {c} (ref {np.round(cond.refs[c], 4).tolist()}, direction "
                f"{np.round(cond.directions[c], 4).tolist()}) has {len(levels)} level; a "
                "Weibull fit needs at least 2 distinct distances"
            )
        weibull.append(fit_weibull_counts(levels, n, k, guess, lapse, target))
    return weibull


def _warn_left_out(in_range, finite, include_out_of_range, target):
    """Warn (at :func:`validate_mocs`'s caller) about extrapolated Weibull
    thresholds and about conditions where the fit never reaches ``target``."""
    C = len(in_range)
    if (~in_range).any():
        bad = np.flatnonzero(~in_range).tolist()
        what = "included in" if include_out_of_range else "left out of"
        warnings.warn(
            f"validate_mocs: the Weibull threshold of {len(bad)} of {C} conditions lies "
            f"outside the tested levels (conditions {bad}); marked in_range = 0 and {what} "
            "slope and r",
            RuntimeWarning, stacklevel=3,
        )
    if (~finite).any():
        warnings.warn(
            f"validate_mocs: the fit's p(correct) never reaches {target:.4g} inside the "
            f"domain for {int((~finite).sum())} of {C} conditions "
            f"({np.flatnonzero(~finite).tolist()}); left out of slope and r",
            RuntimeWarning, stacklevel=3,
        )


def _agreement(w_thr, w_boot, f_thr, used, rng, *, num_bootstrap, level,
               propagate_trial_noise):
    """Slope and Pearson r of the ``used`` conditions, with their bootstrap.

    Conditions are resampled with replacement; with ``propagate_trial_noise``
    each replicate takes the Weibull thresholds from the same row of ``w_boot``
    (B, C). With fewer than 3 used conditions r is NaN, with none the slope
    too, and a ``RuntimeWarning`` goes to :func:`validate_mocs`'s caller.

    Returns
    -------
    slope, slope_interval, bootstrap_slope, r, r_interval, bootstrap_r
    """
    idx = np.flatnonzero(used)
    M = len(idx)
    nan2 = np.full(2, np.nan)
    slope = r = np.nan
    s_boot = r_boot = np.full(num_bootstrap, np.nan)
    s_int = r_int = nan2
    if M:
        slope, r = (float(v) for v in _slope_r(w_thr[idx], f_thr[idx]))
        pick = idx[rng.integers(0, M, size=(num_bootstrap, M))]  # (B, M)
        if propagate_trial_noise:
            x = w_boot[np.arange(num_bootstrap)[:, None], pick]
        else:
            x = w_thr[pick]
        s_boot, r_boot = _slope_r(x, f_thr[pick])
        s_int = _interval(s_boot, level)
        r_int = _interval(r_boot, level)
    if M < 3:
        r, r_int, r_boot = np.nan, nan2, np.full(num_bootstrap, np.nan)
        warnings.warn(
            f"validate_mocs: {M} usable condition(s); Pearson r needs at least 3"
            + ("" if M else " and the slope at least 1"),
            RuntimeWarning, stacklevel=3,
        )
    return slope, s_int, s_boot, r, r_int, r_boot


def validate_mocs(
    fit,
    mocs_data,
    *,
    num_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    target: float = 2.0 / 3.0,
    guess: float = 1.0 / 3.0,
    lapse: float = 0.0,
    ref_tol: float = 1e-6,
    direction_tol: float = 1e-4,
    include_out_of_range: bool = False,
    propagate_trial_noise: bool = True,
    key=0,
    num_samples: int | None = None,
    num_draws: int | None = None,
    max_distance: float | None = None,
) -> MOCSValidation:
    """Compare a WPPM fit's thresholds with Weibull fits to held-out MOCS trials.

    1. Group ``mocs_data`` into conditions (:func:`mocs_conditions`) and the
       trials of each condition into levels (equal distances up to round-off).
    2. Fit a Weibull function to each condition (:func:`~psyphy_numpyro.fit_weibull`) and
       read its ``target`` threshold; bootstrap it ``num_bootstrap`` times by
       resampling trials within each level.
    3. Read the fit's threshold along every condition's ray with
       :func:`~psyphy_numpyro.thresholds` (one call per distinct reference).
    4. Over the used conditions, regress fit thresholds on Weibull thresholds
       without intercept (``slope``) and correlate them (``pearson_r``).
       Their bootstrap intervals resample conditions with replacement; with
       ``propagate_trial_noise`` each replicate also takes every drawn
       condition's Weibull threshold from the same replicate of its
       within-level bootstrap, so the intervals reflect both which conditions
       were tested and the trial noise of each.

    A Weibull threshold outside its condition's tested levels is an
    extrapolation: it is reported with a ``RuntimeWarning``, marked
    ``in_range = 0`` in the table and, unless ``include_out_of_range``, left
    out of the slope and r. So are conditions where the fit's p(correct)
    never reaches ``target`` inside the domain (NaN fit threshold).

    Parameters
    ----------
    fit : MAPFit, LaplaceFit, MCMCFit, BootstrapFit or (WPPM, params) pair
    mocs_data : TrialData
        Held-out MOCS trials (not used to fit ``fit``).
    num_bootstrap : int
        Bootstrap replicates, for the Weibull thresholds and for slope and r.
    level : float
        Probability of every interval, in (0, 1).
    seed : int
        Seed of the bootstrap resampling.
    target : float
        p(correct) of the thresholds (default 2/3).
    guess, lapse : float
        Guess rate and fixed lapse rate of the Weibull fits.
    ref_tol, direction_tol : float
        Tolerances that decide which trials share a condition (:func:`mocs_conditions`).
    include_out_of_range : bool
        Use conditions whose Weibull threshold is outside the tested levels too.
    propagate_trial_noise : bool
        Resample each condition's trials as well as the conditions in the
        slope and r bootstrap (see above); ``False`` resamples conditions only.
    key, num_samples, num_draws, max_distance
        Passed to :func:`~psyphy_numpyro.thresholds`.

    Returns
    -------
    MOCSValidation
        With fewer than 3 used conditions ``pearson_r`` and its interval are
        NaN; with none, the slope too (both with a ``RuntimeWarning``).

    Raises
    ------
    ValueError
        A condition with fewer than 2 levels, data of another dimension than
        the fit, or bad settings.
    """
    model = fit_weights(fit)[0]  # checks the fit's type
    data = as_trial_data(mocs_data)
    if data.input_dim != model.input_dim:
        raise InvalidInput(
            f"mocs_data has {data.input_dim}-D stimuli but the fit's model has "
            f"input_dim={model.input_dim}"
        )
    num_bootstrap = check_int("num_bootstrap", num_bootstrap, 1)
    level = check_real("level", level, 0.0, 1.0)
    rng = np.random.default_rng(check_int("seed", seed, 0))
    guess, lapse, target = check_weibull_rates(guess, lapse, target)
    cond = mocs_conditions(data, ref_tol=ref_tol, direction_tol=direction_tol)
    C = len(cond.refs)
    f_thr, f_int = _fit_thresholds(
        fit, cond.refs, cond.directions, target=target, level=level, ref_tol=ref_tol,
        key=key, num_samples=num_samples, num_draws=num_draws, max_distance=max_distance,
    )

    weibull = _weibull_fits(cond, data.responses.astype(float), guess, lapse, target)
    w_thr = np.array([w.threshold for w in weibull])
    w_boot = np.stack([bootstrap_thresholds(w, num_bootstrap, rng) for w in weibull],
                      axis=1)  # (B, C)
    w_int = np.stack([_interval(w_boot[:, c], level) for c in range(C)], axis=1)
    in_range = np.array([w.in_range for w in weibull])

    finite = np.isfinite(f_thr)
    used = finite & (in_range | include_out_of_range)
    _warn_left_out(in_range, finite, include_out_of_range, target)
    slope, s_int, s_boot, r, r_int, r_boot = _agreement(
        w_thr, w_boot, f_thr, used, rng, num_bootstrap=num_bootstrap, level=level,
        propagate_trial_noise=propagate_trial_noise,
    )
    return MOCSValidation(
        refs=cond.refs, directions=cond.directions, weibull=weibull,
        weibull_threshold=w_thr, weibull_interval=w_int,
        fit_threshold=f_thr, fit_interval=f_int,
        in_range=in_range, used=used,
        slope=float(slope), slope_interval=s_int, pearson_r=float(r), r_interval=r_int,
        level=level, target=target, num_bootstrap=num_bootstrap,
        bootstrap_slope=s_boot, bootstrap_r=r_boot, weibull_bootstrap=w_boot,
    )
