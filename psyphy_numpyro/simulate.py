"""Simulated trials: responses of a known observer (a WPPM or any covariance field) and
the random designs the examples, benchmarks and calibration scripts use."""

from __future__ import annotations

import jax
import numpy as np

from .data import TrialData
from .errors import InvalidInput
from .noise import draw_shared_noise
from .oddity import p_correct_from_cov
from .validation import as_key, check_array, check_int, check_points, check_real

__all__ = [
    "simulate_trials",
    "simulate_observer",
    "comparisons_at_radius",
    "simulate_experiment",
]


def simulate_trials(model, params, ref, comparison, *, key) -> TrialData:
    """Simulate oddity responses from a WPPM observer.

    Parameters
    ----------
    model : WPPM
    params : dict with ``"W"``
    ref, comparison : array (N, d)
    key : jax PRNG key or int seed

    Returns
    -------
    TrialData
        Responses drawn as ``Bernoulli((1 - lapse) p + lapse / 3)``, ``p`` the
        model's estimate of p(correct) and ``lapse`` its lapse rate (``params``'
        when the model learns it).
    """
    ref = np.asarray(check_points(ref, model.input_dim, "ref"))
    comparison = np.asarray(check_points(comparison, model.input_dim, "comparison"))
    try:
        ref, comparison = np.broadcast_arrays(ref, comparison)
    except ValueError:
        raise InvalidInput(
            f"ref {ref.shape} and comparison {comparison.shape} do not broadcast to one (N, d) "
            "shape"
        ) from None
    if ref.ndim != 2:
        raise InvalidInput(f"ref and comparison must be (N, d), got {ref.shape}")
    k_p, k_y = jax.random.split(as_key(key))
    p = model.p_correct(params, ref, comparison, key=k_p, include_lapse=True)
    y = jax.random.bernoulli(k_y, p)
    return TrialData(np.stack([ref, comparison], axis=1), np.asarray(y, dtype=np.int8))


def simulate_observer(covariance, ref, comparison, *, key, lapse_rate: float = 0.0,
                      bandwidth: float = 1e-2, num_samples: int = 1024) -> TrialData:
    """Simulate oddity responses of any observer given by its covariance field.

    For observers that are not WPPMs (a colour-difference metric, a
    hand-made field): ``p`` is the oddity p(correct) of ``Sigma(ref)`` and
    ``Sigma(comparison)`` (the ``"cv"`` estimator with ``num_samples`` fresh
    samples per trial) and responses are ``Bernoulli((1 - lapse) p + lapse / 3)``.

    Parameters
    ----------
    covariance : callable
        ``covariance(x)``: ``(N, d) -> (N, d, d)`` symmetric positive definite.
    ref, comparison : array (N, d)
    key : jax PRNG key or int seed
    lapse_rate : float
        In ``[0, 0.5)``.
    bandwidth : float
        Logistic smoothing of the decision variable (the WPPM's default).
    num_samples : int
    """
    ref = np.asarray(check_points(ref, np.shape(ref)[-1], "ref"), np.float64)
    comparison = np.asarray(check_points(comparison, ref.shape[-1], "comparison"), np.float64)
    if ref.ndim != 2 or comparison.shape != ref.shape:
        raise InvalidInput(f"ref and comparison must both be (N, d), got {ref.shape} and "
                           f"{comparison.shape}")
    lapse = check_real("lapse_rate", lapse_rate, 0.0, 0.5, lo_closed=True)
    num_samples = check_int("num_samples", num_samples, 1)
    S_r, S_c = np.asarray(covariance(ref)), np.asarray(covariance(comparison))
    n, d = ref.shape
    if S_r.shape != (n, d, d) or S_c.shape != (n, d, d):
        raise InvalidInput(f"covariance(x) must return (N, d, d) = {(n, d, d)}, got {S_r.shape}")
    k_n, k_y = jax.random.split(as_key(key))
    noise = draw_shared_noise(k_n, (n,), num_samples, d)
    p = p_correct_from_cov(S_r, S_c, ref, comparison, noise, check_real("bandwidth", bandwidth,
                                                                          0.0))
    p = (1 - lapse) * np.asarray(p, np.float64) + lapse / 3
    y = jax.random.bernoulli(k_y, p)
    return TrialData(np.stack([ref, comparison], axis=1), np.asarray(y, dtype=np.int8))


def comparisons_at_radius(model, params, ref, radius, *, key) -> np.ndarray:
    """Comparisons at Mahalanobis ``radius`` from ``ref`` along random directions.

    ``comparison = ref + radius * L u`` with ``L L^T = Sigma(ref)`` under
    ``params`` and ``u`` a uniformly random unit vector, clipped to
    ``[-1, 1]`` (the usual design for simulated oddity experiments).

    Parameters
    ----------
    model : WPPM
    params : dict with ``"W"``
    ref : array (N, d)
    radius : float or array (N,)
    key : jax PRNG key or int seed

    Returns
    -------
    numpy array (N, d)
    """
    ref = np.asarray(check_points(ref, model.input_dim, "ref"), dtype=np.float64)
    if ref.ndim != 2:
        raise InvalidInput(f"ref must be (N, d), got {ref.shape}")
    radius = check_array("radius", radius)
    if np.any(radius < 0):
        raise InvalidInput(f"radius must be >= 0, got minimum {radius.min():g}")
    try:
        step = np.broadcast_to(radius, (len(ref),))[:, None]
    except ValueError:
        raise InvalidInput(
            f"radius must be a number or have shape ({len(ref)},), got shape {radius.shape}"
        ) from None
    u = np.asarray(jax.random.normal(as_key(key), ref.shape), dtype=np.float64)
    u = u / np.linalg.norm(u, axis=1, keepdims=True)  # u may be a read-only view
    L = np.linalg.cholesky(np.asarray(model.covariance(params, ref), dtype=np.float64))
    return np.clip(ref + step * np.einsum("nij,nj->ni", L, u), -1.0, 1.0)


def simulate_experiment(
    model, params, num_trials, *, key, radius=(1.0, 4.0), ref_range=(-1.0, 1.0)
) -> TrialData:
    """Simulate a random-design oddity experiment from a WPPM observer.

    References are uniform in ``[ref_range]^d``; each comparison lies at a
    Mahalanobis radius (under ``params``) drawn uniformly from ``radius``
    along a uniformly random direction (:func:`comparisons_at_radius`,
    clipped to the domain); responses are drawn with :func:`simulate_trials`.
    Radii 1-4 span chance to near-ceiling performance, which is the design
    used by the examples, benchmarks and calibration scripts.

    Parameters
    ----------
    model : WPPM
    params : dict with ``"W"``
    num_trials : int
    key : jax PRNG key or int seed
    radius : (low, high)
        Range of Mahalanobis radii.
    ref_range : (low, high)
        Range of every reference coordinate, inside ``[-1, 1]``.

    Returns
    -------
    TrialData
    """
    num_trials = check_int("num_trials", num_trials, 1)
    r_lo, r_hi = (float(v) for v in radius)
    x_lo, x_hi = (float(v) for v in ref_range)
    if not 0 <= r_lo <= r_hi:
        raise InvalidInput(f"radius must be (low, high) with 0 <= low <= high, got {radius}")
    if not -1 <= x_lo <= x_hi <= 1:
        raise InvalidInput(f"ref_range must lie inside [-1, 1] with low <= high, got {ref_range}")
    k_ref, k_rad, k_dir, k_y = jax.random.split(as_key(key), 4)
    d = model.input_dim
    ref = np.asarray(jax.random.uniform(k_ref, (num_trials, d), minval=x_lo, maxval=x_hi))
    rad = np.asarray(jax.random.uniform(k_rad, (num_trials,), minval=r_lo, maxval=r_hi))
    ref = np.clip(ref.astype(np.float64), -1.0, 1.0)
    comparison = comparisons_at_radius(model, params, ref, rad, key=k_dir)
    return simulate_trials(model, params, ref, comparison, key=k_y)
