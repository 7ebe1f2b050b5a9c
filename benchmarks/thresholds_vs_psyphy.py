"""Threshold read-out: vectorised bisection against psyphy-style brute-force grid search.

psyphy finds a threshold contour by evaluating p(correct) on a grid of
``num_directions x num_lengths`` comparison points around each reference and
taking, per direction, the grid length closest to the target. Here both
methods call the *same* jitted p(correct) (same model, same fixed estimator
noise), so the comparison isolates the root finder:

- ``pn.thresholds``: bisection on ``[0, t_max]`` to ``tol = 1e-4`` plus one
  regula falsi step (about 15 p(correct) evaluations per ray);
- grid search: 200 lengths per ray on ``[0, t_max]``, nearest point to the
  target (200 evaluations per ray), as psyphy does.

Accuracy is measured against a high-sample fine-grid reference (8 192
samples, 2 000 lengths per ray, linear interpolation at the crossing).
Prints a Markdown table. Run:
    python benchmarks/thresholds_vs_psyphy.py
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from functools import partial

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import psyphy_numpyro as pn  # noqa: E402
from psyphy_numpyro.plotting import grid_points  # noqa: E402
from psyphy_numpyro.readout import ray_extent, unit_directions  # noqa: E402


@partial(jax.jit, static_argnums=(0, 6))
def grid_search(model, W, origin, u, t_max, noise, num_lengths, target):
    """psyphy-style: p on num_lengths points per ray, nearest length to the target."""
    frac = jnp.linspace(0.0, 1.0, num_lengths)
    noise = jnp.broadcast_to(noise, origin.shape[:-1] + noise.shape)

    def one(f):
        t = f * t_max
        comp = jnp.clip(origin + t[:, None] * u, -1.0, 1.0)
        return model.p_correct_from_weights(W, origin, comp, noise)

    p = jax.lax.map(one, frac)  # (L, n)
    best = jnp.argmin(jnp.abs(p - target), axis=0)
    return frac[best] * t_max


@partial(jax.jit, static_argnums=(0, 6))
def fine_reference(model, W, origin, u, t_max, noise, num_lengths, target):
    """First crossing on a fine grid, linearly interpolated (NaN if none)."""
    frac = jnp.linspace(0.0, 1.0, num_lengths)
    noise = jnp.broadcast_to(noise, origin.shape[:-1] + noise.shape)

    def one(f):
        comp = jnp.clip(origin + (f * t_max)[:, None] * u, -1.0, 1.0)
        return model.p_correct_from_weights(W, origin, comp, noise)

    p = jax.lax.map(one, frac)  # (L, n)
    i = jnp.argmax(p >= target, axis=0)
    ok = (p[i, jnp.arange(p.shape[1])] >= target) & (i > 0)
    i = jnp.maximum(i, 1)
    cols = jnp.arange(p.shape[1])
    p0, p1 = p[i - 1, cols], p[i, cols]
    f = frac[i - 1] + (target - p0) / (p1 - p0) * (frac[i] - frac[i - 1])
    return jnp.where(ok, f * t_max, jnp.nan)


def timed(fn, repeats):
    jax.block_until_ready(fn())  # compile
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return np.asarray(out), float(np.median(ts))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-samples", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    model = pn.WPPM(input_dim=2, basis_degree=4)
    truth = model.sample_prior(args.seed + 3)
    W = jnp.asarray(truth["W"])
    refs = grid_points(5, -0.6, 0.6)  # 25 references
    dirs = unit_directions(2, 16)
    R, D = len(refs), len(dirs)
    origin = jnp.asarray(np.repeat(refs, D, 0), W.dtype)
    u = jnp.asarray(np.tile(dirs, (R, 1)), W.dtype)
    t_max = ray_extent(origin, u)
    target = jnp.asarray(2.0 / 3.0, W.dtype)
    key = jax.random.PRNGKey(args.seed)

    noise_hi = model.draw_noise(jax.random.fold_in(key, 99), 1, 8192)[0]
    t0 = time.perf_counter()
    ref_len = np.asarray(fine_reference(model, W, origin, u, t_max, noise_hi, 2000, target))
    t_ref = time.perf_counter() - t0

    rows = []
    for ns in (256, args.num_samples):
        noise = model.draw_noise(key, 1, ns)[0]

        def ours(ns=ns):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                th = pn.thresholds((model, truth), refs, directions=dirs, key=key,
                                   num_samples=ns)
            return jnp.asarray(th.lengths.reshape(-1))

        def grid(noise=noise):
            return grid_search(model, W, origin, u, t_max, noise, 200, target)

        for name, fn, evals in (("pn.thresholds (bisection)", ours, None),
                                ("grid search 16 x 200", grid, 200)):
            out, sec = timed(fn, args.repeats)
            ok = np.isfinite(ref_len) & np.isfinite(out)
            rel = np.abs(out[ok] / ref_len[ok] - 1)
            if evals is None:
                span = float(np.max(np.asarray(t_max)))
                evals = 2 + int(np.ceil(np.log2(span / 1e-4)))
            rows.append((name, ns, evals, sec, 100 * np.mean(rel), 100 * np.max(rel), ok.sum()))

    print(f"WPPM 2-D, basis_degree 4, estimator {model.estimator!r}; {R} references x {D} "
          f"directions = {R * D} rays; target 2/3; backend {jax.default_backend()}")
    print(f"reference: 8192 samples x 2000 lengths per ray ({t_ref:.1f} s incl. compile), "
          f"{int(np.isfinite(ref_len).sum())} rays with a crossing inside the domain\n")
    print("| method | samples | p evals / ray | time (ms) | mean rel. err (%) "
          "| max rel. err (%) | rays |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, ns, ev, sec, mean, mx, n in rows:
        print(f"| {name} | {ns} | {ev} | {1e3 * sec:.1f} | {mean:.2f} | {mx:.2f} | {n} |")


if __name__ == "__main__":
    main()
