"""Weighted MAP refits of several data sets as one batched program: the bootstrap's
resamples (trial weights = resampling counts) and the cross-validation folds (0/1
masks), each started from a MAP fit, on the compile-once engine
(:func:`~psyphy_numpyro.inference.engine.run_batch`).

Two routes: whitened Adam on fresh estimator noise, or chord-Newton steps
(:func:`~psyphy_numpyro.inference.optim.newton_chord`) on fixed noise with one
Hessian of each job's unweighted loss at its start
(:func:`~psyphy_numpyro.inference.newton.loss_hessian`).
"""

from __future__ import annotations

import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from .errors import FitDivergedError
from .inference import engine
from .inference.newton import chord_inverse, loss_hessian
from .inference.optim import newton_chord, set_preconditioner
from .inference.svi import (
    MAP,
    bucket_size,
    from_whitened,
    init_state,
    pad_trials,
    state_z,
    to_whitened,
)
from .inference.trials import Trials
from .noise import SharedNoise
from .progress import Progress

__all__ = ["refit_batch"]


def refit_batch(model, jobs, steps, learning_rate, batch_size, seed, show, timings=None,
                label="fit_bootstrap", route="adam"):
    """Weighted MAP refits of several data sets as one batched program (on
    :func:`~psyphy_numpyro.inference.engine.run_batch`): the bootstrap's refits and the
    cross-validation folds.

    Parameters
    ----------
    model : WPPM
    jobs : list of (TrialData, MAPFit, array (F_j, N_j))
        Each data set's trials get the rows of its ``counts`` as likelihood
        weights (bootstrap multiplicities, or 0/1 fold masks), all padded to
        the bucket size of the largest data set; each job's refits start from
        its MAPFit.
    steps, learning_rate, batch_size
        Steps, Adam's peak learning rate, minibatch size (None: every trial).
    seed : int
        Common random numbers: every refit draws the same noise at every step.
    route : "adam" or "newton"
        Whitened Adam on fresh noise, or chord-Newton steps
        (:func:`~psyphy_numpyro.inference.optim.newton_chord`) on fixed noise with
        the Hessian of each job's unweighted loss at its MAPFit.
    show : bool
        Progress bar.
    timings : dict, optional
        ``compile`` and ``steps`` seconds are added to it (and ``curvature``, the
        Newton route's Hessians with their compilation).
    label : str
        Names the caller in the progress bar and in errors.

    Returns
    -------
    list of (W (1, F_ok, ...), lapse (1, F_ok) or None, kept (F_j,) bool)
        One per job; refits that diverged are dropped (an error when more
        than a tenth of a job's do).
    """
    newton = route == "newton"
    problem = MAP(model, newton_chord() if newton else None, batch_size)
    size = bucket_size(max(len(d) for d, _, _ in jobs))
    # common random numbers: every refit draws the same Monte Carlo noise (and minibatch
    # indices) at every step, so refits differ only by their resampling counts (and their
    # data and start) and the optimiser's noise does not add spread between them
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 7)
    noise = model.fresh_noise(jax.random.fold_in(key, 1), (size,)) if newton else None
    timings = {"compile": 0.0, "steps": 0.0} if timings is None else timings
    # the Newton route's members see only their trials of non-zero weight (a bootstrap
    # resample holds about 63% of the trials, a training fold 80%), each with the fixed
    # noise its trial has in the full data: the same loss, a smaller program
    kept = _kept_size(jobs, size) if newton and isinstance(noise, SharedNoise) else None
    batches, starts, sizes, own_noise = [], [], [], []
    for data, init, counts in jobs:
        F = len(counts)
        trials = pad_trials(data, size)
        weights = np.concatenate([counts, np.zeros((F, size - len(data)), counts.dtype)], 1)
        if kept is None:
            b = jax.tree_util.tree_map(lambda x, F=F: jnp.broadcast_to(x, (F,) + x.shape),
                                       trials)
            batches.append(b._replace(weights=jnp.asarray(weights, trials.weights.dtype)))
        else:
            b, idx = _nonzero_trials(trials, weights, kept)
            batches.append(b)
            own_noise.append(noise.Q[idx])
        z0 = to_whitened(model, init.params)
        one = init_state(model, problem.optimizer, key, z0, learning_rate, steps,
                         problem.batch_size)
        if newton:
            one = _with_curvature(model, one, z0, trials, noise, timings)
        starts.append(jax.tree_util.tree_map(
            lambda x, F=F: jnp.broadcast_to(x, (F,) + jnp.shape(x)), one))
        sizes.append(F)
    total = sum(sizes)

    def cat(*xs):
        return jnp.concatenate(xs) if len(xs) > 1 else xs[0]

    batch = jax.tree_util.tree_map(cat, *batches)
    states = jax.tree_util.tree_map(cat, *starts)
    axes = None
    if kept is not None:
        noise, axes = SharedNoise(noise.z, engine.shard(cat(*own_noise))[0]), SharedNoise(None, 0)
    bar = Progress(show, total * steps, label)
    try:
        sharded_states, _ = engine.shard(states)
        sharded, _ = engine.shard(batch)
        out, losses = engine.run_batch(problem, sharded_states, sharded, steps, total, bar,
                                       timings, max(len(d) for d, _, _ in jobs), noise,
                                       noise_axes=axes)
    finally:
        bar.close()
    out = engine.unshard(out, total)
    bad_all = engine.first_bad(losses, state_z(out)) >= 0
    results, lo = [], 0
    for j, (F, (_, init, _)) in enumerate(zip(sizes, jobs, strict=True)):
        bad = bad_all[lo:lo + F]
        who = f"{label}: " if len(jobs) == 1 else f"{label}: data set {j}: "
        if bad.sum() > F // 10:
            raise FitDivergedError(
                f"{who}{int(bad.sum())} of {F} refits diverged (non-finite loss or weights); "
                f"try a smaller learning_rate (now {learning_rate:g})"
            )
        if bad.any():
            warnings.warn(f"{who}{int(bad.sum())} of {F} refits diverged and were dropped",
                          RuntimeWarning, stacklevel=3)
        z = jax.tree_util.tree_map(lambda a, lo=lo, F=F, bad=bad: jnp.asarray(a)[lo:lo + F][~bad],
                                   state_z(out))
        params = from_whitened(model, z)
        W = np.asarray(params["W"]).astype(np.asarray(init.params["W"]).dtype)
        lapse = params.get("lapse_rate")
        results.append((W[None], None if lapse is None else np.asarray(lapse)[None], ~bad))
        lo += F
    return results


def _kept_size(jobs, size):
    """The padded trial count of the members' non-zero-weight trials (None: no smaller
    than ``size``, nothing to gain)."""
    most = max(int(np.count_nonzero(np.asarray(c), axis=1).max()) for _, _, c in jobs)
    kept = bucket_size(max(most, 1))
    return kept if kept < size else None


def _nonzero_trials(trials, weights, kept):
    """Each member's (row of ``weights``) trials of non-zero weight first, in their order,
    then zero-weight ones up to ``kept``; returns ``(Trials (F, kept, ...), indices)``."""
    idx = np.argsort(weights == 0, axis=1, kind="stable")[:, :kept]
    w = np.take_along_axis(weights, idx, axis=1)
    F = len(weights)
    return Trials(stimuli=jnp.asarray(trials.stimuli)[idx],
                  responses=jnp.asarray(trials.responses)[idx],
                  weights=jnp.asarray(w, trials.weights.dtype),
                  num_trials=jnp.broadcast_to(trials.num_trials, (F,))), idx


def _with_curvature(model, state, z0, trials, noise, timings):
    """A :func:`~psyphy_numpyro.inference.optim.newton_chord` state whose matrix is the
    floored inverse Hessian of the unweighted loss at ``z0`` (seconds: ``timings["curvature"]``)."""
    t0 = time.perf_counter()
    inverse = chord_inverse(loss_hessian(model, z0, trials, noise))
    timings["curvature"] = timings.get("curvature", 0.0) + time.perf_counter() - t0
    step, (params, opt_state) = state.optim_state
    return state._replace(optim_state=(step, (params, set_preconditioner(opt_state, inverse))))
