"""``fit_map``: MAP fits by optax on the whitened negative log posterior (:mod:`.inference`)."""

from __future__ import annotations

import math
import time
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import oddity
from .data import TrialData, as_trial_data
from .errors import FitDivergedError, InvalidInput, InvalidType
from .fits import MAPFit
from .inference import engine
from .inference.objective import MAP, from_whitened, init_state
from .model import WPPM
from .progress import Progress, use_progress
from .validation import as_key, check_int, check_real

__all__ = ["MAPFit", "fit_map", "FitDivergedError", "resolve_model"]


def resolve_model(data, model, *, check=True) -> tuple[TrialData, WPPM]:
    """Coerce data, default the model to one with hyperparameters from the data, check they
    agree.

    ``model=None`` gives :func:`~psyphy_numpyro.hyperparameters.choose_hyperparameters`'
    model (``WPPM.for_data``); a given model is kept as it is, with a warning when
    its ``diag_term`` floor is above the thresholds the data imply (``check``).
    """
    from .hyperparameters import check_floor, choose_hyperparameters

    data = as_trial_data(data)
    if model is None:
        return data, choose_hyperparameters(data).model
    if not isinstance(model, WPPM):
        raise InvalidType(f"model must be a psyphy_numpyro.WPPM, got {type(model).__name__}")
    if model.input_dim != data.input_dim:
        raise InvalidInput(
            f"data has stimulus dimension {data.input_dim} but the model has "
            f"input_dim={model.input_dim}"
        )
    if check:
        check_floor(data, model, stacklevel=4)
    return data, model


def _check_count(name, value, lo=1):
    return check_int(name, value, lo)


AUTO_FULL_BATCH = 16384
AUTO_BATCH_SIZE = 8192
CHUNK = 50  # steps per compiled chunk (the progress bar and divergence checks run between)


class _Settings(NamedTuple):
    steps: int
    num_restarts: int
    screen_steps: int
    learning_rate: float
    batch_size: int | None
    eval_samples: int
    init_scale: float
    custom_optimizer: bool


def _check_settings(data, model, steps, optimizer, learning_rate, num_restarts, batch_size,
                    eval_samples, init_scale, screen_steps) -> _Settings:
    """Every fit_map argument checked, before anything is compiled."""
    steps = _check_count("steps", steps)
    num_restarts = _check_count("num_restarts", num_restarts)
    if isinstance(batch_size, str):
        if batch_size != "auto":
            raise InvalidInput(f'batch_size must be an int, None or "auto", got {batch_size!r}')
        batch_size = AUTO_BATCH_SIZE if len(data) > AUTO_FULL_BATCH else None
    if batch_size is not None:
        batch_size = _check_count("batch_size", batch_size)
        if batch_size >= len(data):
            batch_size = None
    learning_rate = check_real("learning_rate", learning_rate, 0.0)
    if optimizer is not None and not isinstance(optimizer, optax.GradientTransformation):
        raise InvalidType(
            f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}"
        )
    if eval_samples is None:
        eval_samples = max(8 * model.num_samples, 1024)
    eval_samples = _check_count("eval_samples", eval_samples)
    if check_real("init_scale", init_scale) <= 0:
        raise InvalidInput(f"init_scale must be > 0, got {init_scale!r}")
    if screen_steps is None:
        screen_steps = steps if num_restarts == 1 else max(1, steps // 4)
    screen_steps = min(_check_count("screen_steps", screen_steps), steps)
    return _Settings(steps, num_restarts, screen_steps, learning_rate, batch_size, eval_samples,
                     float(init_scale), optimizer is not None)


def _run_phase(problem, states, trials, target, members, bar, timings, n):
    """Advance every batch member to ``target`` steps; ``(states, losses (members, k))``."""
    current = int(np.asarray(jax.device_get(states.step)).reshape(-1)[0])
    todo = target - current
    if todo <= 0:
        return states, np.zeros((members, 0))
    length = min(CHUNK, todo)
    bar.phase("compiling")
    prog, secs = engine.prepare_chunk(problem.model, problem.optimizer, problem.batch_size,
                                      length, states, trials, target)
    timings["compile"] += secs
    bar.compiled(secs)
    bar.phase(f"restarts x{members}" if members > 1 else "steps")
    out, done, t0 = [], 0, time.perf_counter()
    while done < todo:
        states, losses = engine.run_chunk(prog, states, trials, target)
        k = min(length, todo - done)
        losses = np.asarray(engine.unshard(losses, members))[:, :k]
        out.append(losses)
        done += k
        last = losses[:, -1][np.isfinite(losses[:, -1])]
        bar.update(members * k, loss_per_trial=f"{last.min() / n:.4f}" if last.size else "nan")
        if not np.isfinite(losses).all(axis=1).any():
            break  # every member diverged: nothing left to run
    timings["steps"] += time.perf_counter() - t0
    losses = np.concatenate(out, 1)
    if losses.shape[1] < todo:
        losses = np.concatenate([losses, np.full((members, todo - losses.shape[1]), np.nan)], 1)
    return states, losses


def _evaluate(model, num_samples, z, trials, key, bar, timings):
    """Low-noise losses of a batch, its compilation booked as compile time (not steps)."""
    c0, t0 = engine.compile_stats()["compile_seconds"], time.perf_counter()
    bar.phase("evaluating")
    out = engine.evaluate_batch(model, num_samples, z, trials, key)
    compiled = engine.compile_stats()["compile_seconds"] - c0
    bar.compiled(compiled)
    timings["compile"] += compiled
    timings["evaluation"] += time.perf_counter() - t0 - compiled
    return out


def _first_bad(losses, z):
    """Index of the first non-finite loss per member (or -1), non-finite parameters last."""
    bad = ~np.isfinite(losses)
    first = np.where(bad.any(1), np.argmax(bad, 1), -1)
    z_bad = np.zeros(len(first), bool)
    for leaf in jax.tree_util.tree_leaves(z):
        z_bad |= ~np.isfinite(np.asarray(leaf)).reshape(len(first), -1).all(1)
    return np.where((first < 0) & z_bad, losses.shape[1] - 1, first)


def _judge(final, start, bound, r):
    """``None`` if a finished restart is acceptable, else the reason it is not."""
    if final <= bound:
        return None
    if final <= start:  # above the W = 0 bound but still an improvement on its start
        return None
    return (f"restart {r} ended at loss {final:.4g}, above its starting loss {start:.4g} "
            f"and above the loss W = 0 can have ({bound:.4g})")


def _loss_bound(model, n):
    """Largest loss ``W = 0`` can have: -log prior(0) + n (-log P_EPS) (+ slack).

    Every p(correct) is clipped to ``[P_EPS, 1 - P_EPS]``; a final loss above
    this and above the restart's own start means the optimiser made things
    worse. (No ratio to the best loss: the loss can be negative.)
    """
    return -float(model.prior().log_prob(jnp.zeros(model.weight_shape))) + n * (
        0.1 - math.log(oddity.P_EPS)
    )


def _stack(trees):
    return jax.tree_util.tree_map(lambda *x: jnp.stack(x), *trees)


def _take(tree, i):
    return jax.tree_util.tree_map(lambda x: x[i : i + 1], tree)


class _Run(NamedTuple):
    z: dict  # unconstrained parameters per restart, leaves (R, ...)
    histories: np.ndarray  # (R, steps)
    losses: np.ndarray  # (R,) low-noise loss where the restart stopped (inf: failed)
    failures: list
    best: int | None  # the restart that ran all steps and was kept


def _fit_restarts(problem, trials, z0, keys, cfg, bar, timings, eval_key) -> _Run:
    """Screen every restart as one batched program, then finish the best ones alone."""
    model, R, n = problem.model, len(z0), int(trials.num_trials)
    states = _stack([init_state(model, problem.optimizer, k, z, cfg.learning_rate, cfg.steps)
                     for k, z in zip(keys, z0, strict=True)])
    batch = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (R,) + x.shape), trials)
    states, _ = engine.shard(states)
    sharded, _ = engine.shard(batch)  # padded to the device count; `batch` stays R long
    states, losses = _run_phase(problem, states, sharded, cfg.screen_steps, R, bar, timings, n)
    states = engine.unshard(states, R)
    histories = np.full((R, cfg.steps), np.nan)
    histories[:, : losses.shape[1]] = losses
    bad = _first_bad(losses, states.z)
    failures = [f"restart {r} diverged at step {bad[r]}" for r in range(R) if bad[r] >= 0]
    bound, starts = _loss_bound(model, n), None
    ev = _evaluate(model, cfg.eval_samples, states.z, batch, eval_key, bar, timings)
    ev = np.where(bad >= 0, np.inf, ev)
    for r in range(R):
        if bad[r] < 0 and not ev[r] <= bound:  # NaN too
            if starts is None:
                starts = _evaluate(model, cfg.eval_samples, _stack(z0), batch,
                                   eval_key, bar, timings)
            why = _judge(ev[r], starts[r], bound, r)
            if why is not None:
                failures.append(why)
                ev[r] = np.inf
    z = jax.tree_util.tree_map(np.array, states.z)
    if cfg.screen_steps >= cfg.steps:
        best = int(np.argmin(ev)) if np.isfinite(ev).any() else None
        return _Run(z, histories, ev, failures, best)
    for r in np.argsort(ev):  # the best screened restart continues; the next if it fails
        if not np.isfinite(ev[r]):
            break
        state, more = _run_phase(problem, _take(states, r), _take(batch, r), cfg.steps, 1,
                                 bar, timings, n)
        histories[r, cfg.screen_steps :] = more[0]
        # evaluated in the screening program's shape (R copies): no second compile
        final = _evaluate(model, cfg.eval_samples,
                          jax.tree_util.tree_map(
                              lambda a: jnp.broadcast_to(a, (R,) + a.shape[1:]), state.z),
                          batch, eval_key, bar, timings)[0]
        late = _first_bad(more, state.z)[0]
        why = (f"restart {r} diverged at step {cfg.screen_steps + late}" if late >= 0
               else _judge(final, ev[r], bound, r))
        if why is None:
            for name, leaf in state.z.items():
                z[name][r] = np.asarray(leaf[0])
            ev[r] = final
            return _Run(z, histories, ev, failures, int(r))
        failures.append(why)
        ev[r] = np.inf
    return _Run(z, histories, ev, failures, None)


def _root_key(seed, rng_key):
    """``(key, seed)``: an explicit ``rng_key`` wins (recorded as seed -1)."""
    if rng_key is not None:
        return as_key(rng_key), -1
    seed = _check_count("seed", seed, lo=0)
    return jax.random.PRNGKey(seed), seed


def fit_map(
    data,
    model: WPPM | None = None,
    *,
    steps: int = 2000,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 0.05,
    num_restarts: int = 3,
    seed: int = 0,
    rng_key=None,
    progress: bool | None = None,
    init_params: dict | None = None,
    batch_size: int | str | None = "auto",
    eval_samples: int | None = None,
    init_scale: float = 0.3,
    screen_steps: int | None = None,
) -> MAPFit:
    """Maximum a posteriori fit of a WPPM: whitened Adam on the model's log joint.

    The objective is the NumPyro model's negative log joint in prior-whitened
    coordinates (:class:`~psyphy_numpyro.MAP`, which this function drives).
    Restarts run as one batched (vmapped) program, sharded across devices when
    several are visible, and every program is compiled once per model
    configuration and trial-count bucket and then reused (see
    :mod:`psyphy_numpyro.inference.engine`).

    Restarts are *screened*: all of them run ``screen_steps`` steps together,
    the one with the lowest low-noise loss then continues alone to ``steps``
    (the next best, if it fails). ``screen_steps=steps`` runs every restart to
    the end.

    Parameters
    ----------
    data : TrialData (or psyphy TrialData/ResponseData)
    model : WPPM, optional
        Default: ``WPPM.for_data(data)``, the default model with
        ``variance_scale`` and ``diag_term`` chosen from the data by a quick
        isotropic pre-fit (:mod:`psyphy_numpyro.hyperparameters`; what was
        chosen and why is in ``fit.hyperparameters``). A given model is used
        as it is; a ``RuntimeWarning`` says when its ``diag_term`` floor is
        above the thresholds the data imply.
    steps : int
        Optimiser steps of the kept restart.
    optimizer : optax.GradientTransformation, optional
        Acts on the whitened weights ``z = W / prior_std``. Default
        :func:`~psyphy_numpyro.inference.objective.whitened_adam`: Adam with
        warm-up and cosine decay, one step being about ``learning_rate``
        prior standard deviations. Reusing one optimizer object across calls
        reuses its compiled program.
    learning_rate : float
        Peak learning rate of the default optimiser (ignored if ``optimizer``
        is given).
    num_restarts : int
        Independent starts from prior draws.
    seed : int
        Seeds the initial draws and the Monte Carlo noise: equal seeds give
        bit-identical fits.
    rng_key : jax PRNG key, optional
        Used instead of ``seed`` when given (``fit.seed`` is then -1).
    progress : bool, optional
        tqdm progress bar (compilation shown as its own phase). Default: on,
        unless the ``CI`` environment variable is set.
    init_params : dict, optional
        ``{"W": ...}`` to start the first restart from (e.g. psyphy params),
        with ``"lapse_rate"`` for a model that learns it (default: the prior
        mean of the lapse rate).
    batch_size : int, "auto" or None
        Minibatch size (trials drawn uniformly each step, likelihood rescaled
        to the full data); ``None`` uses every trial every step. ``"auto"``
        (default) uses every trial up to ``AUTO_FULL_BATCH`` (16 384) trials
        and minibatches of ``AUTO_BATCH_SIZE`` (8 192) above.
    eval_samples : int, optional
        Monte Carlo samples per trial of the low-noise losses that pick the
        restart (default ``max(8 * model.num_samples, 1024)``).
    init_scale : float
        Restarts start from ``init_scale`` times a prior draw (a weaker, more
        isotropic field than a full draw reached better optima; see
        docs/inference.md).
    screen_steps : int, optional
        Steps every restart runs before the best one continues alone
        (default ``steps // 4``; ``steps`` with a single restart).

    Returns
    -------
    MAPFit
        ``restart_histories`` has NaN after ``screen_steps`` for restarts that
        were screened out; ``restart_losses`` holds each restart's low-noise
        loss where it stopped (``inf`` if it failed).

    Raises
    ------
    FitDivergedError
        If every restart produced a non-finite loss, or ended with a loss above
        both its starting loss and the largest loss ``W = 0`` can have (an
        optimiser that blew up). The message names the step or the losses and
        says what to try. A restart that fails this way is dropped with a
        warning when another one succeeds.
    """
    choice = None
    if model is None:
        from .hyperparameters import choose_hyperparameters

        choice = choose_hyperparameters(data)
        model = choice.model
    data, model = resolve_model(data, model, check=choice is None)
    cfg = _check_settings(data, model, steps, optimizer, learning_rate, num_restarts,
                          batch_size, eval_samples, init_scale, screen_steps)
    root, seed = _root_key(seed, rng_key)
    if init_params is not None:  # last: the only check that builds a JAX array
        init_params = model.checked_params(init_params, "init_params", lapse_optional=True)
    problem = MAP(model, optimizer, cfg.batch_size)
    t_start = time.perf_counter()
    z0, keys = [], []
    for r in range(cfg.num_restarts):
        k_init, k_run = jax.random.split(jax.random.fold_in(root, r))
        z0.append(problem.init_z(k_init, init_params if r == 0 else None, cfg.init_scale))
        keys.append(k_run)
    trials = problem.trials(data)
    timings = {"compile": 0.0, "steps": 0.0, "evaluation": 0.0}
    total = cfg.num_restarts * cfg.screen_steps + (cfg.steps - cfg.screen_steps)
    bar = Progress(use_progress(progress), total, "fit_map")
    try:
        run = _fit_restarts(problem, trials, z0, keys, cfg, bar, timings,
                            jax.random.fold_in(root, 10**6))
    finally:
        bar.close()
    timings["total"] = time.perf_counter() - t_start
    starts = [from_whitened(model, z) for z in z0]
    if init_params is not None:  # exactly as given (a lapse rate it lacks: the prior mean)
        starts[0] = {**starts[0], **init_params}
    fit = _finish(run, problem, data, starts, cfg, seed, timings)
    fit.hyperparameters = None if choice is None else choice.to_dict()
    return fit


def _finish(run: _Run, problem, data, starts, cfg, seed, timings) -> MAPFit:
    """The MAPFit of a finished run, or the error that says what to try."""
    model = problem.model
    if run.best is None:
        step_hint = (
            "a smaller step size in the optax optimizer you passed (or optimizer=None for "
            "the default)" if cfg.custom_optimizer
            else f"a smaller learning_rate (now {cfg.learning_rate:g})"
        )
        raise FitDivergedError(
            "fit_map diverged: the loss or the weights became NaN/Inf or blew up ("
            + "; ".join(run.failures)
            + f"). Try {step_hint} or a smaller init_scale; if it persists, a larger "
            f"model.diag_term (now {model.diag_term:g}) keeps Sigma(x) well conditioned."
        )
    if run.failures:
        warnings.warn(
            "fit_map: " + "; ".join(run.failures) + "; the best finite restart was kept",
            RuntimeWarning,
            stacklevel=3,
        )
    best = run.best
    params = from_whitened(model, {k: jnp.asarray(v[best]) for k, v in run.z.items()})
    return MAPFit(
        params=params,
        model=model,
        data=data,
        loss_history=run.histories[best],
        restart_histories=run.histories,
        restart_losses=run.losses,
        best_restart=best,
        init_params=starts[best],
        seed=seed,
        timings=timings,
    )
