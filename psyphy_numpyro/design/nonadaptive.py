"""Non-adaptive designs: the space-filling sequence and the plain random baseline.

One concept: trials placed without a fit. :func:`space_filling_trials` (Sobol
references, random directions, log-uniform distances; trial ``i`` depends on the seed
and ``i`` only, so a session continues it index by index) and :func:`random_trials`
(uniform references), with the geometry they share with the adaptive candidates of
:mod:`.acquisition`: scrambled Sobol points (:func:`sobol_points`), random unit
directions (:func:`random_directions`) and comparisons kept in the domain
(:func:`inside_domain`).
"""

from __future__ import annotations

import numpy as np

from ..validation import check_int, check_range

__all__ = [
    "space_filling_trials",
    "random_trials",
    "inside_domain",
    "sobol_points",
    "random_directions",
]


def sobol_points(num: int, d: int, seed: int, skip: int = 0) -> np.ndarray:
    """Points ``skip ... skip + num - 1`` of a scrambled Sobol sequence in ``[0, 1)^d``."""
    from scipy.stats import qmc

    total = skip + num
    m = max(1, int(np.ceil(np.log2(max(total, 2)))))
    pts = qmc.Sobol(d, scramble=True, seed=np.random.default_rng([seed, 101])).random_base2(m)
    return pts[skip:total]


def random_directions(rng, num: int, d: int) -> np.ndarray:
    """``num`` directions uniform on the unit sphere in ``d`` dimensions, drawn from
    ``rng`` (one normal vector each, normalised)."""
    u = rng.standard_normal((num, d))
    return u / np.linalg.norm(u, axis=1, keepdims=True)


def inside_domain(ref, step) -> np.ndarray:
    """``ref + step``, or ``ref - step`` where that leaves ``[-1, 1]^d``; clipped if both do."""
    ref, step = np.asarray(ref, float), np.asarray(step, float)
    plus = ref + step
    out = np.any(np.abs(plus) > 1.0, axis=-1, keepdims=True)
    comp = np.where(out, ref - step, plus)
    return np.clip(comp, -1.0, 1.0)


def space_filling_trials(num_trials: int, input_dim: int, *, seed: int = 0, start: int = 0,
                         distances=(0.005, 0.4), place=None):
    """A non-adaptive design: Sobol references, random directions, log-uniform distances.

    Trial ``i`` of the sequence depends only on ``seed`` and ``i``: trials
    ``start ... start + num_trials - 1`` are returned, so a design can be
    handed out in pieces and continued after a restart.

    Parameters
    ----------
    num_trials, input_dim : int
    seed : int
    start : int
        Index of the first trial of the sequence to return.
    distances : (float, float)
        Range of the ref-comparison distance (``[-1, 1]`` units), log-uniform.
        The default spans thresholds from ~0.005 to ~0.3, the range of human
        colour discrimination on the unit square.
    place : callable, optional
        Maps the Sobol points ``(n, d)`` in ``[0, 1)^d`` to references inside
        ``[-1, 1]^d`` (default ``2 u - 1``; a session's region:
        :meth:`~psyphy_numpyro.design.region.Region.place`).

    Returns
    -------
    ref, comparison : numpy arrays ``(num_trials, input_dim)`` inside ``[-1, 1]^d``
    """
    num_trials = check_int("num_trials", num_trials, 1)
    d = check_int("input_dim", input_dim, 1, 3)
    start = check_int("start", start, 0)
    lo, hi = check_range("distances", distances)
    u01 = sobol_points(num_trials, d, seed, start)
    ref = 2.0 * u01 - 1.0 if place is None else np.asarray(place(u01), np.float64)
    # directions and distances from two streams, so that trial i depends on i only (one
    # stream would make the distances depend on how many directions were drawn first)
    u = random_directions(np.random.default_rng([seed, 202]), start + num_trials, d)[start:]
    lengths = np.random.default_rng([seed, 203]).uniform(np.log(lo), np.log(hi),
                                                         start + num_trials)[start:]
    return ref, inside_domain(ref, u * np.exp(lengths)[:, None])


def random_trials(num_trials: int, input_dim: int, *, seed: int = 0, distances=(0.005, 0.4)):
    """The plain non-adaptive baseline: uniform references, random directions, log-uniform
    distances.

    References are uniform in ``[-1, 1]^d`` (not space-filling, unlike
    :func:`space_filling_trials`), directions uniform (in 2-D a uniform
    angle), distances log-uniform in ``distances``; a comparison that would
    leave the domain is mirrored (:func:`inside_domain`). Drawn with
    ``numpy.random.default_rng([seed, 11])``.

    Returns
    -------
    ref, comparison : numpy arrays ``(num_trials, input_dim)`` inside ``[-1, 1]^d``
    """
    num_trials = check_int("num_trials", num_trials, 1)
    d = check_int("input_dim", input_dim, 1, 3)
    lo, hi = check_range("distances", distances)
    rng = np.random.default_rng([seed, 11])
    ref = rng.uniform(-1, 1, (num_trials, d))
    if d == 2:
        angle = rng.uniform(0, 2 * np.pi, num_trials)
        u = np.stack([np.cos(angle), np.sin(angle)], -1)
    else:
        u = random_directions(rng, num_trials, d)
    dist = np.exp(rng.uniform(np.log(lo), np.log(hi), num_trials))
    return ref, inside_domain(ref, u * dist[:, None])
