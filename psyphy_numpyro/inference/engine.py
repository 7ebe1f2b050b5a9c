"""The compile-once engine: batched optimisation and evaluation programs.

Every program here is compiled ahead of time once per *configuration*
(model, optimiser, minibatch size, samples) and *shapes* (batch size, padded
trial count), and kept in a small cache, so a second fit of the same kind, or
a fit of a data set whose trial count falls in the same bucket
(:func:`~psyphy_numpyro.inference.svi.bucket_size`), runs without
compiling. Each compilation is counted (:func:`compile_stats`) and timed, so
the progress bar can show it as its own phase and tests can assert reuse.

A *batch* is any set of independent problems of one shape: restarts of one
fit, bootstrap refits (trial weights), cross-validation folds (0/1 weights),
several observers (different trials padded to one bucket). The programs are
``jax.vmap`` over the batch axis. When more than one device is visible (GPUs,
or CPU devices from ``XLA_FLAGS=--xla_force_host_platform_device_count=N``)
the batch axis is sharded across them with ``jax.sharding``; XLA partitions
the vmapped program, and results are gathered back. Beyond one machine the
same programs run under ``jax.distributed`` (see ``docs/inference.md``).
"""

from __future__ import annotations

import time
from collections import OrderedDict

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .objective import evaluate, scan_steps, state_step, state_z
from .whiten import negative_log_prior

__all__ = ["compile_stats", "clear_cache", "run_batch", "first_bad", "run_chunk", "evaluate_batch",
           "shard", "unshard"]

CHUNK = 50  # steps per compiled chunk (the progress bar and divergence checks run between)
LBFGS_CHUNK = 10  # steps per chunk of a deterministic run (the convergence check runs between)

_CACHE_SIZE = 16
_cache: OrderedDict = OrderedDict()
_stats = {"compiles": 0, "compile_seconds": 0.0, "hits": 0}


def compile_stats() -> dict:
    """Counts of this engine's compilations (``compiles``, ``compile_seconds``, ``hits``).

    A copy; the counters only grow (``clear_cache`` empties the cache, not them).
    """
    return dict(_stats)


def clear_cache() -> None:
    """Forget every compiled program (the next call of each kind recompiles)."""
    _cache.clear()


def _signature(tree):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple(
        (tuple(x.shape), str(x.dtype), str(getattr(x, "sharding", None))) for x in leaves
    )


def _compiled(fn, static: tuple, args: tuple):
    """The compiled ``fn(*static, *args)`` for these statics and argument signatures."""
    key = (fn, static, _signature(args))
    prog = _cache.get(key)
    if prog is not None:
        _cache.move_to_end(key)
        _stats["hits"] += 1
        return prog, 0.0
    t0 = time.perf_counter()
    jitted = jax.jit(fn, static_argnums=tuple(range(len(static))))
    prog = jitted.lower(*static, *args).compile()
    seconds = time.perf_counter() - t0
    _stats["compiles"] += 1
    _stats["compile_seconds"] += seconds
    _cache[key] = prog
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return prog, seconds


def _chunk_program(model, optimizer, batch_size, length, noise_axes, states, trials, num_steps,
                   noise):
    """``length`` masked steps for every batch member (vmapped scan). ``noise``: fixed
    estimator noise of the padded trials (None: fresh noise), shared by all members
    (``noise_axes=None``) or with its own batch axis where ``noise_axes`` (a pytree of
    ``vmap`` axes) says so."""
    return jax.vmap(
        lambda s, tr, nz: scan_steps(model, optimizer, batch_size, length, s, tr, num_steps, nz),
        in_axes=(0, 0, noise_axes),
    )(states, trials, noise)


def _eval_program(model, num_samples, z, trials, key):
    return jax.vmap(lambda zz, tr: evaluate(model, zz, tr, key, num_samples))(z, trials)


def prepare_chunk(model, optimizer, batch_size, length, states, trials, num_steps, noise=None,
                  noise_axes=None):
    """Compile (or fetch) the chunk program; returns ``(program, compile_seconds)``."""
    return _compiled(
        _chunk_program, (model, optimizer, batch_size, length, noise_axes),
        (states, trials, jnp.asarray(num_steps, jnp.int32), noise),
    )


def run_chunk(program, states, trials, num_steps, noise=None):
    """Run a prepared chunk: ``(states, losses (batch, length))``."""
    return program(states, trials, jnp.asarray(num_steps, jnp.int32), noise)


def evaluate_batch(model, num_samples: int, z, trials, key):
    """Low-noise objective of every batch member, ``(batch,)`` numpy float64."""
    z, n = shard(z)
    trials, _ = shard(trials)
    prog, _ = _compiled(_eval_program, (model, num_samples), (z, trials, key))
    return np.asarray(unshard(prog(z, trials, key), n), np.float64)


def run_batch(problem, states, trials, target, members, bar, timings, n, noise=None,
               tol=None, noise_axes=None):
    """Advance every member of a batch of MAP problems to ``target`` steps: the one loop
    under every fit (restarts, observers, bootstrap replicates, CV folds).

    ``problem`` is a :class:`~psyphy_numpyro.MAP` (model, optimiser, minibatch),
    ``states`` and ``trials`` carry the batch axis (possibly sharded, see
    :func:`shard`), ``members`` is the batch size without sharding padding, ``n``
    the trial count shown per trial on the progress ``bar``; compile and step
    seconds are added to ``timings``. Returns ``(states, losses (members, k))``.

    ``noise``: the fixed estimator noise of the deterministic route (None: fresh), shared
    by every member, or each member's own along the axes ``noise_axes`` (a pytree of
    ``vmap`` axes, e.g. ``SharedNoise(None, 0)``: one shared block, per-member maps).
    ``tol``: stop early once no member's loss fell by more than ``tol`` over a chunk
    (a converged deterministic fit); the rest of the history repeats the last loss.
    """
    current = int(np.min(np.asarray(jax.device_get(state_step(states)))))
    todo = target - current
    if todo <= 0:
        return states, np.zeros((members, 0))
    length = min(LBFGS_CHUNK if tol is not None else CHUNK, todo)
    bar.phase("compiling")
    prog, secs = prepare_chunk(problem.model, problem.optimizer, problem.batch_size,
                                      length, states, trials, target, noise, noise_axes)
    timings["compile"] += secs
    bar.compiled(secs)
    bar.phase(f"restarts x{members}" if members > 1 else "steps")
    out, done, t0 = [], 0, time.perf_counter()
    while done < todo:
        states, losses = run_chunk(prog, states, trials, target, noise)
        k = min(length, todo - done)
        losses = np.asarray(unshard(losses, members))[:, :k]
        out.append(losses)
        done += k
        bar.update(members * k, nll_per_trial=_nll_text(problem.model, states, losses, members,
                                                        n, bar))
        if not np.isfinite(losses).all(axis=1).any():
            break  # every member diverged: nothing left to run
        if tol is not None and _converged(losses, tol):
            bar.update(members * (todo - done))
            break
    timings["steps"] += time.perf_counter() - t0
    losses = np.concatenate(out, 1)
    if losses.shape[1] < todo:
        fill = losses[:, -1:] if tol is not None else np.full((members, 1), np.nan)
        losses = np.concatenate([losses, np.repeat(fill, todo - losses.shape[1], 1)], 1)
    return states, losses


def _nll_text(model, states, losses, members, n, bar) -> str:
    """The progress bar's ``nll_per_trial``: the negative log-likelihood per trial of the
    member with the lowest loss (the SVI loss less its prior term, so positive; the loss is
    that before the chunk's last step, the prior term that of the weights after it)."""
    if getattr(bar, "bar", True) is None:
        return ""
    last = losses[:, -1]
    ok = np.isfinite(last)
    if not ok.any():
        return "nan"
    best = int(np.argmin(np.where(ok, last, np.inf)))
    z = unshard(state_z(states), members)
    prior = negative_log_prior(model, {k: v[best] for k, v in z.items()})
    return f"{(last[best] - float(prior)) / n:.4f}"


def _converged(losses, tol) -> bool:
    """Whether every finite member's loss fell by at most ``tol`` over this chunk."""
    first, last = losses[:, 0], losses[:, -1]
    ok = np.isfinite(first) & np.isfinite(last)
    return bool(np.all(first[ok] - last[ok] <= tol))


def first_bad(losses, z):
    """Index of the first non-finite loss per member (or -1), non-finite parameters last."""
    bad = ~np.isfinite(losses)
    first = np.where(bad.any(1), np.argmax(bad, 1), -1)
    z_bad = np.zeros(len(first), bool)
    for leaf in jax.tree_util.tree_leaves(z):
        z_bad |= ~np.isfinite(np.asarray(leaf)).reshape(len(first), -1).all(1)
    return np.where((first < 0) & z_bad, losses.shape[1] - 1, first)


# ---------------------------------------------------------------------------
# sharding over devices
# ---------------------------------------------------------------------------
def _mesh():
    devices = jax.devices()
    if len(devices) < 2:
        return None
    return Mesh(np.asarray(devices), ("batch",))


def shard(tree):
    """Put a batch (leading axis of every leaf) across the visible devices.

    With one device this returns the tree unchanged. Otherwise the batch is
    padded (by repeating its last member) to a multiple of the device count
    and placed with a ``NamedSharding`` along the batch axis. Returns
    ``(tree, batch_size)`` so :func:`unshard` can drop the padding.
    """
    leaves = jax.tree_util.tree_leaves(tree)
    n = int(leaves[0].shape[0])
    mesh = _mesh()
    if mesh is None:
        return tree, n
    ndev = mesh.devices.size
    pad = -n % ndev

    def place(x):
        x = jnp.asarray(x)
        if pad:
            x = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)])
        spec = PartitionSpec("batch", *([None] * (x.ndim - 1)))
        return jax.device_put(x, NamedSharding(mesh, spec))

    return jax.tree_util.tree_map(place, tree), n


def unshard(tree, n: int):
    """The first ``n`` batch members of a (possibly sharded) batch, on the default device."""
    return jax.tree_util.tree_map(lambda x: jax.device_get(x)[:n], tree)
