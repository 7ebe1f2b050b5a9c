"""Where to put the next trials: candidates, information gain, diverse batches.

The posterior of a fit (its draws of ``W`` and of a learned lapse rate) gives
for every candidate trial a distribution of response probabilities ``p_s``
over draws ``s``. One Bernoulli response carries

    I = H[mean_s p_s] - mean_s H[p_s]

nats of information about the field (the mutual information between the
response and the posterior draws; ``H`` is the binary entropy). It is zero
where every draw agrees (a trial at chance or at ceiling with a tight
posterior) and largest where the draws disagree about a trial near
threshold. :func:`propose_trials` scores a candidate set by it and picks a
diverse batch greedily: after each pick, the scores of candidates whose
reference lies near the picked one are multiplied by
``1 - exp(-|ref - ref_picked|^2 / (2 l^2))``, so a batch spreads over the
stimulus space instead of repeating the single best trial.

A *global, look-ahead* criterion (``criterion="global"``) asks instead what a
user measures: how much one more response is expected to shrink the
posterior uncertainty of the thresholds over a region of interest. Each
posterior draw ``s`` gives log thresholds ``q_s`` (equal-covariance
66.7% thresholds along evenly spread directions at reference points of the
region); a response ``y`` to a candidate reweights the draws by its
likelihood (``p_s`` or ``1 - p_s``), and the score is

    sum_k Var_s[q_sk] - E_y[ sum_k Var_s[q_sk | y] ]

(the expected reduction of the summed posterior variance, in the spirit of
AEPsych's global look-ahead criteria), computed for every candidate at once
from the same draws.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInput, InvalidType
from ..validation import check_int, check_points, check_range, check_real, seed_from
from .nonadaptive import inside_domain, random_directions, sobol_points

__all__ = [
    "CRITERIA",
    "candidate_trials",
    "score_trials",
    "propose_trials",
    "region_points",
]

CRITERIA = ("info_gain", "global", "variance", "random")


def _posterior(fit, max_draws: int):
    """``(fit, num_draws)``, checking that the fit has posterior draws to disagree."""
    from ..fits import Fit

    if not isinstance(fit, Fit):
        raise InvalidType(f"fit must be a psyphy_numpyro fit, got {type(fit).__name__}")
    if fit.point or fit.num_draws < 2:
        raise InvalidInput(
            "propose_trials needs posterior draws (a fit from fit_laplace, fit_bootstrap or "
            "fit_mcmc); a MAP fit has one, so every trial would carry no information"
        )
    return fit, min(fit.num_draws, max_draws)


def _thin(fit, num: int):
    """The fit restricted to ``num`` evenly spaced draws (itself when it has no more)."""
    if fit.num_draws <= num:
        return fit
    from ..fits import PosteriorFit

    idx = np.linspace(0, fit.num_draws - 1, num).round().astype(int)
    W = np.asarray(fit.weights())[idx][None]
    lapse = None
    if fit.model.learns_lapse:
        lapse = np.asarray(fit.lapse_rates())[idx][None]
    return PosteriorFit(model=fit.model, data=fit.data, draws=W, lapse=lapse)


def candidate_trials(fit, *, seed: int = 0, num_refs: int = 256, per_ref: int = 12,
                     multipliers=(0.3, 3.0), place=None):
    """Candidate trials scaled to the fit's current thresholds.

    ``num_refs`` Sobol references; at each, ``per_ref`` comparisons along
    random directions ``u`` at distance ``m * k * sqrt(u' Sigma(ref) u)``,
    with ``Sigma`` the posterior-mean covariance, ``k`` the Mahalanobis
    distance of the 66.7% threshold and ``m`` log-uniform in
    ``multipliers``: the candidates span the psychometric range from near
    chance to near ceiling wherever the threshold is. ``place`` (optional) maps
    the Sobol points in ``[0, 1)^d`` to the references (as in
    :func:`~psyphy_numpyro.design.space_filling_trials`).

    Returns
    -------
    ref, comparison : numpy arrays ``(num_refs * per_ref, d)`` inside ``[-1, 1]^d``
    """
    from ..hyperparameters import threshold_constant

    model = fit.model
    d = model.input_dim
    num_refs = check_int("num_refs", num_refs, 1)
    per_ref = check_int("per_ref", per_ref, 1)
    m_lo, m_hi = check_range("multipliers", multipliers)
    u01 = sobol_points(num_refs, d, seed)
    refs = 2.0 * u01 - 1.0 if place is None else np.asarray(place(u01), np.float64)
    cov = np.asarray(fit.covariance(refs))
    if not fit.point:
        cov = cov.mean(0)
    rng = np.random.default_rng([seed, 303])
    ref = np.repeat(refs, per_ref, axis=0)
    u = random_directions(rng, len(ref), d)
    scale = np.sqrt(np.einsum("ni,nij,nj->n", u, np.repeat(cov, per_ref, axis=0), u))
    k = threshold_constant(d, model.bandwidth)
    m = np.exp(rng.uniform(np.log(m_lo), np.log(m_hi), len(ref)))
    return ref, inside_domain(ref, u * (m * k * scale)[:, None])


def _entropy(p):
    p = np.clip(p, 1e-12, 1.0 - 1e-12)
    return -(p * np.log(p) + (1.0 - p) * np.log1p(-p))


def region_points(region, d: int, points_per_axis: int = 5) -> np.ndarray:
    """The references a region of interest stands for, ``(R, d)`` inside ``[-1, 1]^d``.

    ``region``: ``None`` (the whole domain: a grid over ``[-0.8, 0.8]^d``), a box
    as a *tuple* ``(lo, hi)`` of two length-``d`` sequences (a grid over it), or
    an ``(R, d)`` array (or list) of reference points (used as given).
    """
    if region is not None and not (isinstance(region, tuple) and len(region) == 2):
        return check_points(np.asarray(region, np.float64).reshape(-1, d), d, "region")
    if region is None:
        lo, hi = np.full(d, -0.8), np.full(d, 0.8)
    else:
        lo = check_points(np.asarray(region[0], np.float64).reshape(d), d, "region lo")
        hi = check_points(np.asarray(region[1], np.float64).reshape(d), d, "region hi")
        if np.any(hi <= lo):
            raise InvalidInput(f"region: hi must exceed lo on every axis, got lo={lo}, hi={hi}")
    axes = [np.linspace(lo[i], hi[i], points_per_axis) for i in range(d)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)


def _log_thresholds(fit, region) -> np.ndarray:
    """Per-draw log equal-covariance thresholds ``(draws, R * D)`` at the region's points
    along evenly spread directions (the quantity the ``"global"`` criterion targets)."""
    from ..contours import unit_directions
    from ..hyperparameters import threshold_constant

    d = fit.model.input_dim
    dirs = unit_directions(d, 8)
    if d == 1:
        dirs = dirs[:1]
    S = np.asarray(fit.covariance(region), np.float64)  # (draws, R, d, d)
    prec = np.linalg.inv(S)
    m = np.einsum("ki,srij,kj->srk", dirs, prec, dirs)
    k = threshold_constant(d, fit.model.bandwidth)
    return np.log(k / np.sqrt(m)).reshape(S.shape[0], -1)


def _variance_reduction(p, q) -> np.ndarray:
    """``sum Var[q] - E_y sum Var[q | y]`` per candidate: ``p (draws, N)``, ``q (draws, K)``."""
    total = q.var(0).sum()
    out = np.zeros(p.shape[1])
    for like in (p, 1.0 - p):
        mass = like.mean(0)  # the predictive probability of this response
        w = (like / np.maximum(like.sum(0), 1e-300)).T  # (N, draws), rows sum to 1
        mean = w @ q
        var = (w @ (q * q) - mean * mean).sum(1)
        out += mass * var
    return total - out


def score_trials(fit, ref, comparison, *, criterion: str = "info_gain", seed: int = 0,
                 max_draws: int = 64, num_samples: int | None = None,
                 region=None) -> np.ndarray:
    """Score of every trial under a posterior fit: ``(n,)``, higher is more useful.

    Criteria
    --------
    ``"info_gain"``
        Expected information about the field from one response, in nats:
        ``H[mean p] - mean H[p]`` over the posterior draws (the module).
    ``"global"``
        Expected reduction of the posterior variance of the log thresholds
        over ``region`` from one response (the module): a look-ahead score of
        what the experiment measures, not of the trial's own uncertainty.
    ``"variance"``
        Posterior variance of the response probability.
    ``"random"``
        Uniform random scores (a baseline that keeps the candidate set).

    The response probabilities include a learned or fixed lapse rate; the same
    estimator noise (seeded by ``seed``) is used for every draw, so the spread
    between draws is posterior spread, not Monte Carlo noise. ``region`` (see
    :func:`region_points`) is what ``"global"`` integrates over.
    """
    if criterion not in CRITERIA:
        raise InvalidInput(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    fit, num = _posterior(fit, check_int("max_draws", max_draws, 2))
    d = fit.model.input_dim
    ref = check_points(ref, d, "ref")
    comparison = check_points(comparison, d, "comparison")
    if ref.shape != comparison.shape or ref.ndim != 2:
        raise InvalidInput(f"ref and comparison must both be (n, {d}), got {ref.shape} and "
                           f"{comparison.shape}")
    if criterion == "random":
        return np.random.default_rng([seed, 404]).uniform(size=len(ref))
    thin = _thin(fit, num)
    p = np.asarray(thin.p_correct(ref, comparison, key=seed, num_samples=num_samples,
                                  include_lapse=True), np.float64)
    if criterion == "global":
        return _variance_reduction(p, _log_thresholds(thin, region_points(region, d)))
    if criterion == "variance":
        return p.var(0)
    return _entropy(p.mean(0)) - _entropy(p).mean(0)


def _seed(key) -> int:
    """An integer seed from an integer or a JAX PRNG key."""
    if isinstance(key, bool):
        raise InvalidType("key must be an integer seed or a jax.random key, got a bool")
    if isinstance(key, int | np.integer):
        return check_int("key", int(key), 0)
    return seed_from(0, key)


def _greedy(scores, ref, num: int, length: float) -> np.ndarray:
    """Indices of ``num`` picks: best score first, nearby references penalised after each.
    Once every free candidate is penalised to nothing (candidates sharing few references,
    e.g. a region of reference points), a new round starts from the scores."""
    base = np.maximum(np.asarray(scores, np.float64), 0.0) + 1e-12
    score = base.copy()
    free = np.ones(len(score), bool)
    picks = np.empty(num, np.int64)
    for t in range(num):
        if not np.any(score[free] > 0.0):
            score = base.copy()
        j = int(np.argmax(np.where(free, score, -np.inf)))
        picks[t] = j
        free[j] = False
        d2 = np.sum((ref - ref[j]) ** 2, axis=1)
        score = score * (1.0 - np.exp(-d2 / (2.0 * length**2)))
    return picks


def propose_trials(fit, num_trials: int, *, key=0, candidates=None,
                   criterion: str = "info_gain", num_refs: int | None = None, per_ref: int = 12,
                   diversity: float = 0.5, max_draws: int = 64,
                   num_samples: int | None = None, region=None):
    """The next ``num_trials`` trials from a posterior fit.

    Parameters
    ----------
    fit : Fit with posterior draws
        From :func:`~psyphy_numpyro.fit_laplace` (cheapest),
        :func:`~psyphy_numpyro.fit_bootstrap` or
        :func:`~psyphy_numpyro.fit_mcmc`. A MAP fit is refused: with one draw
        every trial carries no information.
    num_trials : int
    key : int or jax PRNG key
        Seeds the candidates, the estimator noise and the random criterion.
    candidates : (ref, comparison), optional
        Your own candidate set, arrays ``(C, d)`` inside ``[-1, 1]^d`` with
        ``C >= num_trials``. Default: :func:`candidate_trials` (Sobol
        references crossed with threshold-scaled comparisons along random
        directions).
    criterion : {"info_gain", "variance", "random"}
        See :func:`score_trials`. ``"random"`` picks uniformly among the
        candidates (still diverse): the baseline to compare with.
    num_refs : int, optional
        Default candidate references (default ``max(256, 2 num_trials)``).
    per_ref : int
        Default candidate comparisons per reference.
    diversity : float
        Length ``l`` of the batch-diversity penalty as a fraction of the
        spacing ``2 / num_trials^(1/d)`` of ``num_trials`` evenly spread
        references; 0 turns the penalty off (pure top-``num_trials``).
    max_draws : int
        Posterior draws used (evenly thinned).
    num_samples : int, optional
        Estimator samples per trial (default: the model's).
    region : None, tuple (lo, hi) or array (R, d), optional
        The region of interest (:func:`region_points`): the default
        candidates' references are drawn inside a box region (or its points'
        bounding box), and ``"global"`` integrates over it. ``None``: the
        whole domain.

    Returns
    -------
    ref, comparison : numpy arrays ``(num_trials, d)`` inside ``[-1, 1]^d``
    """
    num_trials = check_int("num_trials", num_trials, 1)
    diversity = check_real("diversity", diversity, 0.0, lo_closed=True)
    seed = _seed(key)
    fit, _ = _posterior(fit, check_int("max_draws", max_draws, 2))
    d = fit.model.input_dim
    if candidates is None:
        n_refs = num_refs if num_refs is not None else max(256, 2 * num_trials)
        ref, comp = candidate_trials(fit, seed=seed, num_refs=n_refs, per_ref=per_ref)
        if region is not None:  # references moved into the region's bounding box
            pts = region_points(region, d)
            lo, hi = pts.min(0), pts.max(0)
            moved = lo + (ref + 1.0) / 2.0 * (hi - lo)
            ref, comp = moved, inside_domain(moved, comp - ref)
    else:
        try:
            ref, comp = candidates
        except (TypeError, ValueError):
            raise InvalidType("candidates must be a pair (ref, comparison) of (C, d) arrays"
                              ) from None
        check_points(ref, d, "candidates ref")
        check_points(comp, d, "candidates comparison")
        ref, comp = np.asarray(ref, np.float64), np.asarray(comp, np.float64)
        if ref.ndim != 2 or ref.shape != comp.shape:
            raise InvalidInput(f"candidates must be two (C, {d}) arrays, got {ref.shape} and "
                               f"{comp.shape}")
    if len(ref) < num_trials:
        raise InvalidInput(f"{len(ref)} candidates are fewer than num_trials={num_trials}")
    scores = score_trials(fit, ref, comp, criterion=criterion, seed=seed, max_draws=max_draws,
                          num_samples=num_samples, region=region)
    if diversity == 0.0:
        picks = np.argsort(-scores, kind="stable")[:num_trials]
    else:
        length = diversity * 2.0 / num_trials ** (1.0 / d)
        picks = _greedy(scores, np.asarray(ref, np.float64), num_trials, length)
    return np.asarray(ref, np.float64)[picks], np.asarray(comp, np.float64)[picks]
