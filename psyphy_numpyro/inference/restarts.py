"""Restarts: screen the starts of every observer's MAP fit, finish the best, judge them.

The one orchestration of :func:`~psyphy_numpyro.fit_map` (a single data set
is a batch of one observer): every member runs through
:func:`~psyphy_numpyro.inference.engine.run_batch`.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import optax

from .. import oddity
from . import engine
from .objective import init_state, state_z

__all__ = ["Settings", "Run", "fit_batch"]


class Settings(NamedTuple):
    """A MAP fit's checked settings (``fit_map``'s arguments after defaults)."""

    steps: int
    num_restarts: int
    screen_steps: int
    learning_rate: float
    batch_size: int | None
    eval_samples: int
    init_scale: float
    custom_optimizer: bool
    optimizer: optax.GradientTransformation
    deterministic: bool
    tol: float | None


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

    The prior term is that of the loss the restarts minimise: the decentred
    weights' ``N(0, I)`` (``LocScaleReparam`` in :func:`~.svi.map_model`), not
    ``N(W; 0, prior_std)``, which differs by ``sum(log prior_std)``. Every
    p(correct) is clipped to ``[P_EPS, 1 - P_EPS]``; a final loss above this and
    above the restart's own start means the optimiser made things worse. (No
    ratio to the best loss: the loss can be negative.)
    """
    size = int(np.prod(model.weight_shape))
    return -size * float(dist.Normal(0.0, 1.0).log_prob(0.0)) + n * (
        0.1 - math.log(oddity.P_EPS)
    )


def _cpu() -> bool:
    """Whether the default JAX backend is the CPU."""
    return jax.default_backend() == "cpu"


def _stack(trees):
    return jax.tree_util.tree_map(lambda *x: jnp.stack(x), *trees)


def _take(tree, i):
    return jax.tree_util.tree_map(lambda x: x[i : i + 1], tree)


class Run(NamedTuple):
    """One observer's restarts after a fit."""

    z: dict  # unconstrained parameters per restart, leaves (R, ...)
    histories: np.ndarray  # (R, steps)
    losses: np.ndarray  # (R,) low-noise loss where the restart stopped (inf: failed)
    failures: list
    best: int | None  # the restart that ran all steps and was kept


def _scores(model, cfg, z, batch, eval_key, bar, timings, losses):
    """The loss that ranks restarts, per member: on the deterministic route the (exact)
    last loss of ``losses``; otherwise a low-noise evaluation with ``eval_samples``."""
    if cfg.deterministic:
        out = np.full(losses.shape[0], np.nan)
        for i, row in enumerate(losses):
            finite = row[np.isfinite(row)]
            out[i] = finite[-1] if finite.size else np.nan
        return out
    return _evaluate(model, cfg.eval_samples, z, batch, eval_key, bar, timings)


def _advance(problem, states, batch, target, members, bar, timings, n, noise, cfg):
    """:func:`engine.run_batch` on a batch of members: as one (sharded) program, or, on the
    deterministic route on a CPU, one member at a time through the one-member program (a
    line search vmapped over members cost 4.4x one member's time per step there, and the
    screening and the finishing then share one compiled program)."""
    if cfg.deterministic and _cpu():
        outs = [engine.run_batch(problem, _take(states, i), _take(batch, i), target, 1, bar,
                                 timings, n, noise, cfg.tol) for i in range(members)]
        states = jax.tree_util.tree_map(lambda *x: jnp.concatenate(x), *[o[0] for o in outs])
        width = max(o[1].shape[1] for o in outs)
        losses = np.full((members, width), np.nan)
        for i, (_, row) in enumerate(outs):  # a member that stopped earlier: its loss repeats
            losses[i] = row[0, 0] if row.size else np.nan
            losses[i, width - row.shape[1]:] = row[0]
        return states, losses
    sh_states, _ = engine.shard(states)
    sh_batch, _ = engine.shard(batch)  # padded to the device count; `batch` stays as it is
    sh_states, losses = engine.run_batch(problem, sh_states, sh_batch, target, members, bar,
                                         timings, n, noise, cfg.tol)
    return engine.unshard(sh_states, members), losses


def fit_batch(problem, trials_list, z0, keys, cfg, bar, timings, eval_key,
               noise=None) -> list:
    """The one MAP orchestration: every observer's restarts, one :class:`Run` per observer
    (one data set is a batch of one).

    Every observer's trials are padded to one size; the batch holds observers x
    restarts. All of them are screened (``screen_steps``); a restart that diverged,
    or ended worse than both its start and ``W = 0`` can be, is dropped. Then the
    best restart of every observer continues (the observers together) to
    ``steps``; an observer whose continued restart fails moves on to its next best.
    An observer with no restart left gets no fit (its ``Run.best`` is None).
    """
    model, n_obs, R = problem.model, len(trials_list), len(z0)
    one = [init_state(model, problem.optimizer, k, z, cfg.learning_rate, cfg.steps,
                      problem.batch_size) for k, z in zip(keys, z0, strict=True)]
    states = _stack(one * n_obs)
    batch = _stack([t for t in trials_list for _ in range(R)])
    sizes = [int(t.num_trials) for t in trials_list]
    n_min = min(sizes)
    states, losses = _advance(problem, states, batch, cfg.screen_steps, n_obs * R, bar,
                              timings, n_min, noise, cfg)
    histories = np.full((n_obs * R, cfg.steps), np.nan)
    histories[:, : losses.shape[1]] = losses
    bad = engine.first_bad(losses, state_z(states))
    failures = [[f"restart {r} diverged at step {bad[o * R + r]}" for r in range(R)
                 if bad[o * R + r] >= 0] for o in range(n_obs)]
    ev = _scores(model, cfg, state_z(states), batch, eval_key, bar, timings, losses)
    ev = np.where(bad >= 0, np.inf, ev)
    starts = None
    for i in range(n_obs * R):  # the screened restarts that blew up
        o, r = divmod(i, R)
        bound = _loss_bound(model, sizes[o])
        if bad[i] < 0 and not ev[i] <= bound:  # NaN too
            if starts is None:
                starts = _scores(model, cfg, _stack(z0 * n_obs), batch, eval_key, bar,
                                 timings, losses[:, :1])
            why = _judge(ev[i], starts[i], bound, r)
            if why is not None:
                failures[o].append(why)
                ev[i] = np.inf
    z = jax.tree_util.tree_map(np.array, state_z(states))
    grid = ev.reshape(n_obs, R)
    if cfg.screen_steps >= cfg.steps:
        best = [int(np.argmin(g)) if np.isfinite(g).any() else None for g in grid]
        return _runs(z, histories, ev, failures, best, n_obs, R)
    best = [None] * n_obs
    tried = np.zeros((n_obs, R), bool)
    while True:  # the best untried restart of every observer still without a fit continues
        idx = []
        for o in range(n_obs):
            if best[o] is None:
                left = np.where(~tried[o] & np.isfinite(grid[o]), grid[o], np.inf)
                if np.isfinite(left).any():
                    r = int(np.argmin(left))
                    tried[o, r] = True
                    idx.append(o * R + r)
        if not idx:
            break
        idx = np.asarray(idx)
        pick = jax.tree_util.tree_map(lambda a, idx=idx: a[idx], states)
        sub = jax.tree_util.tree_map(lambda a, idx=idx: a[idx], batch)
        pick, more = _advance(problem, pick, sub, cfg.steps, len(idx), bar, timings, n_min,
                              noise, cfg)
        zp = state_z(pick)
        offset = cfg.steps - more.shape[1]
        final = _scores(model, cfg, zp, sub, eval_key, bar, timings,
                        more if more.shape[1] else histories[idx])
        late = engine.first_bad(more, zp)
        for j, i in enumerate(idx):
            o, r = divmod(int(i), R)
            histories[i, offset:] = more[j]
            why = (f"restart {r} diverged at step {offset + late[j]}" if late[j] >= 0
                   else _judge(final[j], ev[i], _loss_bound(model, sizes[o]), r))
            if why is not None:
                failures[o].append(why)
                ev[i] = grid[o, r] = np.inf
                continue
            for name, leaf in zp.items():
                z[name][i] = np.asarray(leaf[j])
            ev[i], best[o] = final[j], r
    return _runs(z, histories, ev, failures, best, n_obs, R)


def _runs(z, histories, ev, failures, best, n_obs, R) -> list:
    """One :class:`Run` per observer from the batch's arrays."""
    out = []
    for o in range(n_obs):
        sl = slice(o * R, (o + 1) * R)
        out.append(Run({k: v[sl] for k, v in z.items()}, histories[sl], ev[sl], failures[o],
                        best[o]))
    return out
