"""A session's stop rules and progress, in plain units (trials, seconds, % of a threshold).

One concept: when an adaptive session (:class:`~psyphy_numpyro.design.session.Experiment`)
has done enough, by rules a practitioner states and reads without knowing the design's
criterion. Three rules, any of which stops the session (``stop=`` of ``Experiment``):

``"trials"``
    The number of told trials reaches this count.
``"seconds"``
    The wall-clock time since the session's **first ask** reaches this many seconds. The
    moment of the first ask is stored in the session file (key ``started_at`` of its
    settings table, Unix seconds), so reopening the session keeps counting, and a pause
    (a break, the night between two openings) counts too.
``"precision"``
    The latest fit's precision (below) is at most this many percent.

The precision
-------------
For every reference point of the session's region (its points, a 5-per-axis grid over
its box, or a 5-per-axis grid over ``[-0.8, 0.8]^d`` for the whole domain) and each of a
few evenly spread directions (8 in 2-D and 3-D; ``+1`` and ``-1`` in 1-D), the latest
fit's threshold (:func:`~psyphy_numpyro.thresholds`, p(correct) = 2/3) has a posterior
90% credible interval ``[lo, hi]`` and median ``m``. Its relative width is
``100 * (hi - lo) / m`` percent of the threshold; **the precision is the median of these
widths over all the rays**. It is a ratio, so it is the same in the lab's units as in the
model's box. Rays without a crossing in the domain are left out.

:func:`fit_precision` computes it from a fit and references (a pure function);
:class:`Progress` caches it once per fit (in memory and in the file ``precision.json`` of
the folder ``<session>.fits``, which the command line's ``experiment status`` reads
without importing JAX) and builds the progress report (:func:`progress_report`).
:func:`stop_setting` checks the ``stop`` setting.

This module imports neither JAX nor NumPy at import time.
"""

from __future__ import annotations

import json
import math
import os
import time

__all__ = ["STOP_RULES", "LEVEL", "stop_setting", "precision_rays", "fit_precision",
           "progress_report", "mark_started", "read_cached", "cache_precision", "cached_progress",
           "Progress"]

STOP_RULES = ("trials", "seconds", "precision")
"""The keys of ``stop``: a trial count, a time budget (s), a target precision (%)."""

LEVEL = 0.9
"""The credible level of the threshold intervals the precision measures."""

CACHE_FILE = "precision.json"


def _now() -> float:
    """The wall clock (Unix seconds); a function so that tests can replace it."""
    return time.time()


def stop_setting(stop):
    """The ``stop`` rules checked, in the JSON form the session file stores.

    Parameters
    ----------
    stop : None or dict
        ``{"trials": int >= 1, "seconds": number > 0, "precision": number > 0}``, any of
        the keys (a key with the value ``None`` is left out).

    Returns
    -------
    None or dict
        ``None`` for no rule; else the given rules (``trials`` an int, the others floats).

    Raises
    ------
    TypeError
        ``stop`` is not a dict, or a value of the wrong type.
    ValueError
        An unknown key, or a value out of range.
    """
    from ..errors import InvalidInput, InvalidType
    from ..validation import check_int, check_real

    if stop is None:
        return None
    if not isinstance(stop, dict):
        raise InvalidType(f"stop must be a dict with any of the keys {list(STOP_RULES)} "
                          f"(e.g. {{'trials': 3000, 'seconds': 3600, 'precision': 10}}), got "
                          f"{type(stop).__name__} {stop!r}")
    unknown = sorted(str(k) for k in set(stop) - set(STOP_RULES))
    if unknown:
        raise InvalidInput(f"unknown stop rule(s) {unknown}; known: {list(STOP_RULES)} (a "
                           "trial count, a time budget in seconds, a target precision in %)")
    out = {}
    if stop.get("trials") is not None:
        out["trials"] = check_int("stop['trials'] (a trial count)", stop["trials"], 1)
    if stop.get("seconds") is not None:
        out["seconds"] = check_real("stop['seconds'] (a time budget in seconds)",
                                    stop["seconds"], 0.0)
    if stop.get("precision") is not None:
        out["precision"] = check_real("stop['precision'] (the target median width of the "
                                      "90% threshold intervals, in % of the threshold)",
                                      stop["precision"], 0.0)
    return out or None


def precision_rays(region, input_dim: int):
    """The references ``(R, d)`` (model's box) and directions ``(D, d)`` the precision
    is measured on (see the module), for a :class:`~.region.Region` or ``None``."""
    from ..rays import unit_directions
    from .acquisition import region_points

    refs = None if region is None else region.points()
    if refs is None:
        refs = region_points(None, input_dim)
    return refs, unit_directions(input_dim, 8)


def fit_precision(fit, refs, directions=None, *, level: float = LEVEL):
    """The precision of a posterior fit: the median over the rays (references x
    directions) of the ``level`` credible interval's width of the threshold, in percent
    of its posterior median: ``median(100 * (hi - lo) / median)``.

    Parameters
    ----------
    fit : PosteriorFit (LaplaceFit, MCMCFit)
        A fit with posterior draws.
    refs : array (R, d)
        References, in the fit's units (as :func:`~psyphy_numpyro.thresholds` takes them).
    directions : array (D, d), optional
        Directions (default: :func:`~psyphy_numpyro.thresholds`'s 16).
    level : float
        The intervals' credible level (default 0.9).

    Returns
    -------
    float or None
        The precision in %; ``None`` for a fit without draws or without any crossing.
    """
    import warnings

    import numpy as np

    from ..readout import thresholds

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rays without a crossing: left out
        th = thresholds(fit, refs, directions=directions, level=level)
        if th.interval is None or th.median is None:
            return None
        lo, hi = np.asarray(th.interval[0], float), np.asarray(th.interval[1], float)
        med = np.asarray(th.median, float)
        width = 100.0 * (hi - lo) / med
        width = width[np.isfinite(width)]
    return None if width.size == 0 else float(np.median(width))


def mark_started(db) -> None:
    """Store the moment of the session's first ask (inside the ask's transaction ``db``);
    later calls leave it as it is."""
    db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('started_at', ?)",
               (json.dumps(_now()),))


def _stored_start(store):
    with store.lock:
        row = store.db.execute("SELECT value FROM meta WHERE key='started_at'").fetchone()
    return None if row is None else float(json.loads(row[0]))


def read_cached(fits_dir, seq):
    """The cached precision record of fit ``seq`` (``{"fit", "num_trials", "precision",
    "rays"}``) from ``<fits_dir>/precision.json``, or None (missing, another fit)."""
    if seq is None:
        return None
    try:
        with open(os.path.join(fits_dir, CACHE_FILE), encoding="utf-8") as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("fit") == seq else None


def cache_precision(fits_dir, info: dict, fit, region, input_dim: int) -> dict:
    """Compute the precision record of the fit ``info`` (``seq``, ``num_trials``) over
    ``region`` (a :class:`~.region.Region` or None) and cache it in ``fits_dir``, where
    :func:`read_cached` (of any process) finds it; returns the record."""
    refs, dirs = precision_rays(region, input_dim)
    rec = {"fit": info["seq"], "num_trials": info["num_trials"],
           "precision": fit_precision(fit, refs, dirs), "rays": len(refs) * len(dirs)}
    _write_cached(fits_dir, rec)
    return rec


def _write_cached(fits_dir, rec) -> None:
    """Write the cache atomically; a folder that cannot be written is left as it is."""
    path = os.path.join(fits_dir, CACHE_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(fits_dir, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(rec, f)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _fmt(x) -> str:
    return f"{x:.3g}"


def progress_report(*, told: int, refits: int, stop, precision=None, precision_trials=None,
                    rays=None, started_at=None, now=None) -> dict:
    """The progress of a session (JSON-ready), from its counts and its stop rules.

    Parameters
    ----------
    told, refits : int
        Trials told; refits done (the session's fits).
    stop : None or dict
        The stop rules (:func:`stop_setting`'s form).
    precision : float, optional
        The latest fit's precision (%), None when not known (yet).
    precision_trials : int, optional
        The told trials the fit that gave ``precision`` saw.
    rays : int, optional
        The number of rays (references x directions) the precision is a median over.
    started_at, now : float, optional
        The first ask and now (Unix seconds).

    Returns
    -------
    dict
        ``told``, ``refits``, ``precision`` (%, or None), ``precision_fit_trials``,
        ``precision_means`` (the definition, in words), ``target`` (the target
        precision, %, or None), ``max_trials``, ``max_seconds``, ``elapsed_s`` (since
        the first ask; None before it), ``trials_left_estimate`` (None when unknown),
        ``stop`` (whether a rule is met) and ``reason`` (the met rules in words; None
        when none is met).

    Notes
    -----
    ``trials_left_estimate``: 0 once a rule is met; else, with a target precision
    and a precision, the trials for the interval widths to shrink as ``1/sqrt(n)``
    from the fit's ``precision_trials`` to the target,
    ``ceil(precision_trials * (precision / target)^2) - told`` (at least 0), capped by
    the trials left to the trial-count rule; else the trials left to that rule;
    else None. The time rule is not part of the estimate.
    """
    stop = stop or {}
    told, refits = int(told), int(refits)
    target, max_trials, max_s = stop.get("precision"), stop.get("trials"), stop.get("seconds")
    elapsed = None
    if started_at is not None:
        elapsed = max(0.0, float(_now() if now is None else now) - float(started_at))
    reasons = []
    if max_trials is not None and told >= max_trials:
        reasons.append(f"{told} trials told (limit {max_trials})")
    if max_s is not None and elapsed is not None and elapsed >= max_s:
        reasons.append(f"{elapsed:.0f} s since the first trial (limit {_fmt(max_s)} s)")
    if target is not None and precision is not None and precision <= target:
        reasons.append(f"median 90% threshold interval {_fmt(precision)}% of the threshold "
                       f"<= target {_fmt(target)}%")
    done = bool(reasons)
    left = None
    if done:
        left = 0
    else:
        if target is not None and precision is not None and precision_trials:
            need = math.ceil(precision_trials * (precision / target) ** 2)
            left = max(0, need - told)
        if max_trials is not None:
            cap = max(0, max_trials - told)
            left = cap if left is None else min(left, cap)
    means = (f"median over {rays} threshold rays of the 90% credible interval's width, in % "
             "of the threshold" if rays else "median over the region's threshold rays of "
             "the 90% credible interval's width, in % of the threshold")
    return {"told": told, "refits": refits,
            "precision": None if precision is None else round(float(precision), 3),
            "precision_fit_trials": precision_trials, "precision_means": means,
            "target": target, "max_trials": max_trials, "max_seconds": max_s,
            "elapsed_s": None if elapsed is None else round(elapsed, 3),
            "trials_left_estimate": left, "stop": done,
            "reason": "; ".join(reasons) if done else None}


class Progress:
    """A session's progress: its stop rules, and the precision computed once per fit.

    Parameters
    ----------
    store : SessionStore
        The session file.
    settings : dict
        The session's settings (``stop``).
    region : Region
        The session's region (where the precision is measured).
    """

    def __init__(self, store, settings: dict, region):
        self._store, self._settings, self._region = store, settings, region
        self._cached = (None, None)  # (fit number, its precision record); one assignment

    def _precision(self, info, load_fit, compute: bool):
        """The cached precision record of the latest fit ``info``; computed (and cached)
        when missing and ``compute``."""
        if info is None:
            return None
        seq = info["seq"]
        have, rec = self._cached
        if have == seq:
            return rec
        rec = read_cached(self._store.fits_dir, seq)
        if rec is None and compute:
            rec = cache_precision(self._store.fits_dir, info, load_fit(), self._region,
                                  self._settings["input_dim"])
        if rec is not None:
            self._cached = (seq, rec)
        return rec

    @classmethod
    def for_store(cls, store, settings: dict | None = None) -> Progress:
        """The progress of the session in ``store`` (its stored settings and region)."""
        from .region import Region

        settings = store.settings() if settings is None else settings
        return cls(store, settings, Region(settings.get("region"), settings["input_dim"],
                                           settings.get("space")))

    def report(self, load_fit, *, compute: bool = True) -> dict:
        """The progress (:func:`progress_report`); ``load_fit()`` gives the latest fit
        when its precision must be computed (``compute=False``: only a cached one)."""
        info = self._store.latest_fit()
        rec = self._precision(info, load_fit, compute)
        return _report(self._store, self._settings.get("stop"), rec, _stored_start(self._store))


def _report(store, stop, rec, started_at) -> dict:
    return progress_report(
        told=store.num_told(), refits=store.next_fit_seq(), stop=stop,
        precision=None if rec is None else rec["precision"],
        precision_trials=None if rec is None else rec["num_trials"],
        rays=None if rec is None else rec.get("rays"), started_at=started_at)


def cached_progress(store, settings: dict | None = None) -> dict:
    """The progress of the session in ``store`` with the precision cached by the process
    that computed it (None when none did yet): what the command line's ``experiment
    status`` reports, reading the session file only (no JAX, no NumPy)."""
    settings = store.settings() if settings is None else settings
    info = store.latest_fit()
    rec = read_cached(store.fits_dir, None if info is None else info["seq"])
    return _report(store, settings.get("stop"), rec, settings.get("started_at"))
