"""Trials on the engine's trial axis: padded to a size bucket, with a weight per trial.

Data sets whose sizes fall in one bucket (:func:`bucket_size`) share one
compiled program; the weights are 0 on the padding and also carry bootstrap
multiplicities and cross-validation folds.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from ..data import as_trial_data
from ..errors import InvalidInput
from ..validation import check_int

__all__ = ["Trials", "bucket_size", "padded_size", "pad_trials"]


class Trials(NamedTuple):
    """Trials padded to a bucket size (a JAX pytree).

    Attributes
    ----------
    stimuli : array (n_pad, 2, d)
        Real trials first, then copies of trial 0 as padding.
    responses : int32 array (n_pad,)
    weights : array (n_pad,)
        Likelihood weight of each trial: 1 for a real trial, 0 for padding
        (bootstrap multiplicities or fold masks otherwise).
    num_trials : int32 scalar
        Number of real trials (the rows minibatches are drawn from).
    """

    stimuli: Any
    responses: Any
    weights: Any
    num_trials: Any


def bucket_size(n: int) -> int:
    """The padded trial count for ``n`` trials: the next ``m * 2**e`` with ``8 <= m < 16``.

    Padding wastes at most 1/8 of a step, and every data set whose size falls
    in one bucket (e.g. 1 921-2 048 trials) reuses one compiled program.
    """
    n = check_int("n", n, 1)
    if n <= 16:
        return n
    e = max(0, n.bit_length() - 4)
    return -(-n // 2**e) * 2**e


def padded_size(n: int, trial_capacity: int | None = None) -> int:
    """Padded trial count of a fit: :func:`bucket_size` of ``n``, raised to
    ``trial_capacity`` when that is given (a growing data set, such as an
    adaptive session's, padded to a fixed capacity reuses one program until
    it outgrows it)."""
    size = bucket_size(n)
    if trial_capacity is None:
        return size
    return max(size, check_int("trial_capacity", trial_capacity, 1))


def pad_trials(data, size: int | None = None, *, weights=None, dtype=None) -> Trials:
    """:class:`Trials` from data (TrialData or psyphy data), padded to ``size``.

    Parameters
    ----------
    data : TrialData
    size : int, optional
        Padded length (default :func:`bucket_size` of the trial count); must be
        at least the number of trials.
    weights : array (N,), optional
        Non-negative likelihood weight per real trial (default 1).
    dtype : float dtype, optional
        Of stimuli and weights (default JAX's default float).
    """
    data = as_trial_data(data)
    n = len(data)
    size = bucket_size(n) if size is None else check_int("size", size, n)
    dtype = dtype or jnp.result_type(float)
    stim = np.asarray(data.model_stimuli, dtype=np.float64)  # the box, whatever the space
    stim = np.concatenate([stim, np.broadcast_to(stim[:1], (size - n,) + stim.shape[1:])])
    y = np.concatenate([np.asarray(data.responses, np.int32), np.zeros(size - n, np.int32)])
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64).reshape(n)
    if not np.all(np.isfinite(w) & (w >= 0)):
        raise InvalidInput("weights must be finite and >= 0")
    w = np.concatenate([w, np.zeros(size - n)])
    return Trials(
        jnp.asarray(stim, dtype), jnp.asarray(y), jnp.asarray(w, dtype), jnp.asarray(n, jnp.int32)
    )
