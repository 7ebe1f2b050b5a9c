"""MOCS designs: the conditions of a method-of-constant-stimuli experiment.

In the method of constant stimuli (MOCS) every *condition* is a fixed
reference, a fixed unit direction and a handful of comparison distances
("levels"), each tested many times. This module holds the design side, the
trials themselves; the comparison of a fit with Weibull fits to those trials is
:mod:`psyphy_numpyro.mocs` (which re-exports these names).

- :func:`mocs_conditions`: group trials into conditions (:class:`MOCSConditions`);
- :func:`simulate_mocs`: MOCS trials from a WPPM observer;
- :func:`cluster_rows`: the greedy clustering both use.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .contours import ray_extent
from .data import TrialData, as_trial_data
from .errors import InvalidInput
from .simulate import simulate_trials
from .spacecheck import SPACE_TOL
from .validation import (
    check_array,
    check_directions,
    check_int,
    check_real,
    check_refs,
)

__all__ = ["mocs_conditions", "MOCSConditions", "simulate_mocs", "cluster_rows"]


# ---------------------------------------------------------------------------
# conditions
# ---------------------------------------------------------------------------
class MOCSConditions(NamedTuple):
    """Trials grouped into MOCS conditions (:func:`mocs_conditions`).

    Attributes
    ----------
    refs : numpy array (C, d)
        Reference of each condition (mean over its trials).
    directions : numpy array (C, d)
        Unit direction of each condition (normalised mean over its trials).
    index : numpy array (N,) of int
        Condition of every trial.
    distances : numpy array (N,)
        ``|comparison - ref|`` of every trial.
    """

    refs: np.ndarray
    directions: np.ndarray
    index: np.ndarray
    distances: np.ndarray


def cluster_rows(points, tol):
    """Greedy clusters of rows within ``tol`` (max-norm) of each cluster's first row.

    Returns labels ``(N,)`` numbered in the order of each cluster's first row.
    One pass per cluster, so this is fast for the few conditions of a MOCS
    experiment.
    """
    labels = np.full(len(points), -1, dtype=np.int64)
    c = 0
    while True:
        free = np.flatnonzero(labels < 0)
        if free.size == 0:
            return labels
        near = np.max(np.abs(points[free] - points[free[0]]), axis=1) <= tol
        labels[free[near]] = c
        c += 1


def mocs_conditions(data, *, ref_tol: float = 1e-6, direction_tol: float = 1e-4
                    ) -> MOCSConditions:
    """Group trials into conditions by reference and unit direction of ``comparison - ref``.

    A condition collects the trials whose reference lies within ``ref_tol``
    and whose unit direction lies within ``direction_tol`` (largest
    coordinate difference) of its first trial. The tolerances absorb
    round-off (stimuli stored in float32 move a direction by about
    ``1e-7 / distance``) and are far below the differences between the
    conditions of a real design. Conditions are numbered in the order of
    their first trial (for :func:`simulate_mocs` data, the order of ``refs``).

    Parameters
    ----------
    data : TrialData
    ref_tol : float
        Tolerance on reference coordinates (> 0).
    direction_tol : float
        Tolerance on unit-direction coordinates (> 0).

    Returns
    -------
    MOCSConditions

    Raises
    ------
    ValueError
        A trial whose comparison equals its reference (no direction).
    """
    data = as_trial_data(data)
    ref_tol = check_real("ref_tol", ref_tol, 0.0)
    direction_tol = check_real("direction_tol", direction_tol, 0.0)
    ref, offset = data.ref, data.comparison - data.ref
    dist = np.linalg.norm(offset, axis=1)
    zero = dist == 0.0
    if zero.any():
        i = int(np.argmax(zero))
        raise InvalidInput(
            f"trial {i} has comparison == reference ({int(zero.sum())} of {len(dist)} trials): "
            "a MOCS trial needs a non-zero offset to define its direction"
        )
    u = offset / dist[:, None]
    index = cluster_rows(np.concatenate([ref / ref_tol, u / direction_tol], axis=1), 1.0)
    C = int(index.max()) + 1
    counts = np.bincount(index, minlength=C)[:, None]
    refs = np.zeros((C, ref.shape[1]))
    dirs = np.zeros_like(refs)
    np.add.at(refs, index, ref)
    np.add.at(dirs, index, u)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return MOCSConditions(refs / counts, dirs, index, dist)


def simulate_mocs(model, params, refs, directions, levels, num_repeats, *, key) -> TrialData:
    """Simulate MOCS trials from a WPPM observer.

    Condition ``c`` tests comparisons ``refs[c] + t * directions[c]`` at every
    level ``t`` of ``levels`` (or of ``levels[c]``), ``num_repeats`` times
    each; responses come from :func:`~psyphy_numpyro.simulate_trials`.

    Parameters
    ----------
    model : WPPM
    params : dict with ``"W"``
    refs : array (C, d) or (d,)
    directions : array (C, d) or (d,)
        Non-zero directions (normalised); broadcast against ``refs``.
    levels : array (L,) or (C, L)
        Distances (> 0), shared by every condition or one row per condition.
    num_repeats : int
        Trials per level.
    key : jax PRNG key or int seed

    Returns
    -------
    TrialData
        ``C * L * num_repeats`` trials, ordered by condition, then level.

    Raises
    ------
    ValueError
        Bad shapes, non-positive levels, or a level that puts a comparison
        outside ``[-1, 1]^d``.
    """
    d = model.input_dim
    refs = check_refs(refs, d)
    dirs = np.atleast_2d(check_array("directions", directions))
    if len(refs) == 1 and len(dirs) > 1:
        refs = np.repeat(refs, len(dirs), axis=0)
    if len(dirs) == 1 and len(refs) > 1:
        dirs = np.repeat(dirs, len(refs), axis=0)
    if dirs.shape != refs.shape:
        raise InvalidInput(
            f"directions must have shape ({len(refs)}, {d}) to match refs, got {dirs.shape}"
        )
    dirs = check_directions(dirs, d)
    C = len(refs)
    t = check_array("levels", levels)
    if t.ndim == 1:
        t = np.broadcast_to(t, (C, t.size))
    if t.ndim != 2 or t.shape[0] != C or t.shape[1] == 0:
        raise InvalidInput(f"levels must have shape (L,) or ({C}, L), got {np.shape(levels)}")
    if np.any(t <= 0):
        raise InvalidInput(f"levels must be > 0, got minimum {t.min():g}")
    num_repeats = check_int("num_repeats", num_repeats, 1)
    extent = np.asarray(ray_extent(refs, dirs), dtype=float)
    over = t.max(axis=1) > extent + SPACE_TOL
    if over.any():
        c = int(np.argmax(over))
        raise InvalidInput(
            f"levels of condition {c} reach outside the domain [-1, 1]^{d}: along direction "
            f"{np.round(dirs[c], 4).tolist()} from ref {np.round(refs[c], 4).tolist()} "
            f"distances must be <= {extent[c]:.4g}, got {t[c].max():.4g}"
        )
    step = np.repeat(t.reshape(-1), num_repeats)  # (C * L * R,)
    cond = np.repeat(np.arange(C), t.shape[1] * num_repeats)
    ref = refs[cond]
    comparison = np.clip(ref + step[:, None] * dirs[cond], -1.0, 1.0)
    return simulate_trials(model, params, ref, comparison, key=key)
