"""The Weibull psychometric function and its maximum-likelihood fit to constant-stimuli trials.

A Weibull psychometric function with the task's guess rate (1/3 for the
3-alternative oddity task)

    p(t) = guess + (1 - guess - lapse) * (1 - exp(-(t / alpha) ** beta))

is fitted by maximum likelihood (:mod:`psyphy_numpyro.weibull_mle`) to binomial
counts per distance ("level"),
and its ``target`` threshold read in closed form. Used by the MOCS
validation (:mod:`psyphy_numpyro.mocs`), one fit per condition.

- :func:`weibull_p`, :func:`weibull_threshold`: the function and its closed-form inverse;
- :func:`fit_weibull`: one maximum-likelihood fit (:class:`WeibullFit`);
- :func:`level_counts`, :func:`fit_weibull_counts`, :func:`bootstrap_thresholds`:
  the same fit from counts per level, and refits of resampled counts, for callers
  that group trials themselves (:func:`~psyphy_numpyro.validate_mocs`);
- :func:`check_weibull_rates`: the checks of ``guess``, ``lapse`` and ``target``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .errors import InvalidInput
from .validation import check_array, check_int, check_real, check_responses
from .weibull_mle import fit_counts

__all__ = [
    "weibull_p",
    "weibull_threshold",
    "fit_weibull",
    "WeibullFit",
    "level_counts",
    "fit_weibull_counts",
    "bootstrap_thresholds",
    "check_weibull_rates",
]
_LEVEL_TOL = 1e-6


# ---------------------------------------------------------------------------
# the Weibull psychometric function
# ---------------------------------------------------------------------------
def check_weibull_rates(guess, lapse, target=None):
    """``(guess, lapse)``, or ``(guess, lapse, target)`` when ``target`` is given, checked:
    ``0 < guess < 1``, ``0 <= lapse < 1 - guess``, ``guess < target < 1 - lapse``
    (``ValueError`` outside, ``TypeError`` for non-numbers)."""
    guess = check_real("guess", guess, 0.0, 1.0)
    lapse = check_real("lapse", lapse, 0.0, 1.0 - guess, lo_closed=True)
    if target is None:
        return guess, lapse
    return guess, lapse, check_real("target", target, guess, 1.0 - lapse)


def weibull_p(t, alpha, beta, guess=1.0 / 3.0, lapse=0.0):
    """The Weibull psychometric function ``guess + (1 - guess - lapse) (1 - exp(-(t/alpha)^beta))``.

    Parameters
    ----------
    t : array_like
        Distances from the reference (>= 0).
    alpha, beta : float or array_like
        Scale (> 0) and slope (> 0); broadcast against ``t``.
    guess : float
        p(correct) at ``t = 0`` (1/3 in the oddity task), in (0, 1).
    lapse : float
        Lapse rate: the function saturates at ``1 - lapse``; in ``[0, 1 - guess)``.

    Returns
    -------
    numpy array
        p(correct), the broadcast shape of ``t``, ``alpha`` and ``beta``.
    """
    guess, lapse = check_weibull_rates(guess, lapse)
    t = np.asarray(t, dtype=float)
    z = (t / np.asarray(alpha, dtype=float)) ** np.asarray(beta, dtype=float)
    return guess + (1.0 - guess - lapse) * -np.expm1(-z)


def weibull_threshold(alpha, beta, target=2.0 / 3.0, guess=1.0 / 3.0, lapse=0.0):
    """The distance at which :func:`weibull_p` reaches ``target`` (closed form).

    ``alpha * (-log(1 - (target - guess) / (1 - guess - lapse))) ** (1 / beta)``;
    with the defaults (guess 1/3, target 2/3) this is ``alpha * log(2) ** (1 / beta)``.

    Parameters
    ----------
    alpha, beta : float or array_like
    target : float
        In ``(guess, 1 - lapse)``.
    guess, lapse : float
        As in :func:`weibull_p`.

    Returns
    -------
    numpy array (broadcast shape of ``alpha`` and ``beta``)
    """
    guess, lapse, target = check_weibull_rates(guess, lapse, target)
    return _threshold(np.asarray(alpha, float), np.asarray(beta, float), target, guess, lapse)


def _threshold(alpha, beta, target, guess, lapse):
    frac = (target - guess) / (1.0 - guess - lapse)
    return alpha * (-math.log1p(-frac)) ** (1.0 / beta)


@dataclass(frozen=True)
class WeibullFit:
    """Result of :func:`fit_weibull`: a maximum-likelihood Weibull psychometric function.

    Attributes
    ----------
    alpha, beta : float
        Scale and slope of :func:`weibull_p`.
    threshold : float
        Distance at which the fitted function reaches ``target``.
    nll : float
        Binomial negative log-likelihood at the optimum (without the
        binomial coefficients, so it equals the Bernoulli one of the trials).
    levels : numpy array (L,)
        The distinct distances tested, ascending.
    num_trials, num_correct : numpy arrays (L,)
        Trials and correct responses at each level.
    guess, lapse, target : float
    converged : bool
        Whether the optimiser reported convergence.
    """

    alpha: float
    beta: float
    threshold: float
    nll: float
    levels: np.ndarray = field(repr=False)
    num_trials: np.ndarray = field(repr=False)
    num_correct: np.ndarray = field(repr=False)
    guess: float = 1.0 / 3.0
    lapse: float = 0.0
    target: float = 2.0 / 3.0
    converged: bool = True

    @property
    def in_range(self) -> bool:
        """True when the threshold lies within the tested levels ``[min, max]``."""
        return bool(self.levels.min() <= self.threshold <= self.levels.max())

    def p(self, t) -> np.ndarray:
        """The fitted p(correct) at distances ``t``."""
        return weibull_p(t, self.alpha, self.beta, self.guess, self.lapse)

    def bootstrap(self, num_bootstrap: int = 1000, *, seed: int = 0) -> np.ndarray:
        """Thresholds of refits to data resampled within each level.

        Resampling the trials of a level with replacement gives a binomial
        count with the level's observed proportion correct, so each
        replicate draws ``Binomial(num_trials, num_correct / num_trials)`` per
        level and refits.

        Parameters
        ----------
        num_bootstrap : int
        seed : int

        Returns
        -------
        numpy array (num_bootstrap,)
        """
        num_bootstrap = check_int("num_bootstrap", num_bootstrap, 1)
        rng = np.random.default_rng(check_int("seed", seed, 0))
        return bootstrap_thresholds(self, num_bootstrap, rng)


def bootstrap_thresholds(fit: WeibullFit, num_bootstrap: int, rng) -> np.ndarray:
    """:meth:`WeibullFit.bootstrap` drawing from the caller's ``numpy.random.Generator``
    ``rng``, so several fits can share one random stream (as
    :func:`~psyphy_numpyro.validate_mocs` does); ``num_bootstrap`` is not checked.
    Returns the ``(num_bootstrap,)`` thresholds."""
    n = fit.num_trials
    k = rng.binomial(n, fit.num_correct / n, size=(num_bootstrap, len(n)))
    start = np.log([[fit.alpha, fit.beta]])
    alpha, beta, _, _ = fit_counts(fit.levels, n, k, fit.guess, fit.lapse, start)
    return _threshold(alpha, beta, fit.target, fit.guess, fit.lapse)


def level_counts(distances, responses):
    """``(levels, num_trials, num_correct)``, arrays ``(L,)``, of trials' ``distances`` and
    0/1 ``responses`` (numpy arrays, not checked); a level is the mean distance of its group.

    Distances closer than ``_LEVEL_TOL`` times the largest one (gaps in the
    sorted distances) are one level, so float32 round-off never splits a level.
    """
    order = np.argsort(distances, kind="stable")
    gaps = np.diff(distances[order]) > _LEVEL_TOL * float(np.max(np.abs(distances)))
    inv = np.empty(len(distances), dtype=np.int64)
    inv[order] = np.concatenate([[0], np.cumsum(gaps)])
    n = np.bincount(inv)
    k = np.rint(np.bincount(inv, weights=responses)).astype(np.int64)
    return np.bincount(inv, weights=distances) / n, n, k


def fit_weibull_counts(levels, n, k, guess, lapse, target) -> WeibullFit:
    """:func:`fit_weibull` from counts: ``n`` trials and ``k`` correct at each of the
    (at least 2) ``levels`` (:func:`level_counts`), rates already checked
    (:func:`check_weibull_rates`); nothing is checked or warned here."""
    alpha, beta, nll, ok = fit_counts(levels, n, k[None], guess, lapse)
    thr = float(_threshold(alpha[0], beta[0], target, guess, lapse))
    return WeibullFit(alpha=float(alpha[0]), beta=float(beta[0]), threshold=thr,
                      nll=float(nll[0]), levels=levels, num_trials=n, num_correct=k,
                      guess=guess, lapse=lapse, target=target, converged=bool(ok[0]))


def fit_weibull(distances, responses, *, guess=1.0 / 3.0, lapse=0.0,
                target=2.0 / 3.0) -> WeibullFit:
    """Maximum-likelihood Weibull psychometric function of constant-stimuli trials.

    The trials are pooled into binomial counts per distinct distance, and the
    negative log-likelihood is minimised over ``(log alpha, log beta)``
    within ``alpha`` in ``[min level / 10, max level * 10]`` and ``beta`` in
    ``[0.25, 25]``: a grid (24 values of ``alpha`` spanning the levels times
    ``beta`` in {0.5, 1, 2, 4, 8}) gives three starting points (the best
    ``alpha`` of the three best ``beta``), each refined by projected Newton
    steps with the analytic gradient and Hessian, and the best optimum is
    kept. The same vectorised solver refits all bootstrap replicates at once
    (:meth:`WeibullFit.bootstrap`). The threshold is the closed-form inverse
    at ``target`` (:func:`weibull_threshold`).

    Parameters
    ----------
    distances : array (N,)
        Comparison distance of every trial, >= 0, at least 2 distinct values.
    responses : array (N,) of 0/1
        1 = correct.
    guess : float
        Guess rate (p at distance 0), in (0, 1); 1/3 for the oddity task.
    lapse : float
        Fixed lapse rate, in ``[0, 1 - guess)``.
    target : float
        p(correct) of the threshold, in ``(guess, 1 - lapse)``.

    Returns
    -------
    WeibullFit
        A ``RuntimeWarning`` says when the threshold lies outside the tested
        distances (an extrapolation; see :attr:`WeibullFit.in_range`).

    Raises
    ------
    ValueError
        Responses other than 0/1, negative or non-finite distances, lengths
        that differ, fewer than 2 distinct distances, or a bad ``guess``,
        ``lapse`` or ``target``.
    TypeError
        Non-numeric input.
    """
    guess, lapse, target = check_weibull_rates(guess, lapse, target)
    t = check_array("distances", distances)
    if t.ndim != 1 or t.size == 0:
        raise InvalidInput(f"distances must be a non-empty 1-D array, got shape {t.shape}")
    y = check_responses(responses, len(t))
    if np.any(t < 0):
        i = int(np.argmax(t < 0))
        raise InvalidInput(f"distances must be >= 0; entry {i} is {t[i]:g}")
    levels, n, k = level_counts(t, y.astype(float))
    if len(levels) < 2:
        raise InvalidInput(
            f"fit_weibull needs at least 2 distinct distances (levels), got {len(levels)}"
        )
    wf = fit_weibull_counts(levels, n, k, guess, lapse, target)
    if not wf.in_range:
        warnings.warn(
            f"fit_weibull: the threshold {wf.threshold:.4g} lies outside the tested distances "
            f"[{levels.min():.4g}, {levels.max():.4g}] (an extrapolation)",
            RuntimeWarning, stacklevel=2,
        )
    return wf
