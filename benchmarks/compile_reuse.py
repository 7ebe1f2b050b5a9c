"""Compile reuse and end-to-end fit time: where a fit's seconds go.

Prints two tables:

1. Overheads (wall time minus the fit's own optimisation steps) of a first
   fit, a repeat fit on new data of the same shape, and a fit of a nearby
   trial count (2 013 instead of 2 000), for ``fit_map``, ``fit_laplace``
   (with ``init=None``: its MAP start plus the curvature) and ``fit_mcmc``'s
   start (its MAP start and sampler set-up: a tiny NUTS run of 2 + 2
   iterations, so the sampling itself is negligible).
2. The default ``pn.fit_map(data)`` of 6 000 trials (2-D default model), in
   a fresh process state, with its breakdown: compilation, screened restarts
   plus the kept restart's steps, low-noise evaluations.

Usage: ``python benchmarks/compile_reuse.py [--steps 300] [--skip-6000]``.
Every number is a wall time on the machine it runs on; nothing here is
asserted (the compile-reuse tests count compilations instead).
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import numpy as np

import psyphy_numpyro as pn
from psyphy_numpyro.inference import engine


def _data(model, truth, n, key):
    return pn.simulate_experiment(model, truth, n, key=key)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def overheads(steps: int):
    model = pn.WPPM(input_dim=2)
    truth = model.sample_prior(jax.random.PRNGKey(0))
    sets = {"first": _data(model, truth, 2000, 1),
            "repeat (new data)": _data(model, truth, 2000, 2),
            "2 013 trials": _data(model, truth, 2013, 3)}
    rows = []
    for label, data in sets.items():
        fit, wall = _timed(lambda d=data: pn.fit_map(d, model, steps=steps, progress=False))
        rows.append(("fit_map", label, wall, fit.timings["steps"], fit.timings["compile"]))
    for label, data in sets.items():
        lap, wall = _timed(lambda d=data: pn.fit_laplace(d, model, steps=steps,
                                                         progress=False))
        st = lap.map_fit.timings
        rows.append(("fit_laplace", label, wall, st["steps"], st["compile"]))
    for label, data in sets.items():
        post, wall = _timed(lambda d=data: pn.fit_mcmc(
            d, model, num_warmup=2, num_draws=2, num_chains=1, steps=steps,
            progress=False))
        st = post.init_fit.timings
        rows.append(("fit_mcmc start", label, wall, st["steps"], st["compile"]))
    print(f"\n### Compile reuse ({steps} MAP steps per fit, 3 restarts screened at "
          f"{max(1, steps // 4)})\n")
    print("| fit | call | wall (s) | own steps (s) | overhead (s) | engine compile (s) |")
    print("|---|---|---:|---:|---:|---:|")
    for fit, label, wall, own, comp in rows:
        print(f"| {fit} | {label} | {wall:.1f} | {own:.1f} | {wall - own:.2f} | {comp:.1f} |")


def end_to_end():
    engine.clear_cache()
    model = pn.WPPM(input_dim=2)
    truth = model.sample_prior(jax.random.PRNGKey(0))
    data = _data(model, truth, 6000, 1)
    fit, wall = _timed(lambda: pn.fit_map(data, progress=False))
    t = fit.timings
    err = pn.field_error(model, fit.params, truth)
    print("\n### Default fit_map, 6 000 trials (2-D default WPPM, compile cache cleared)\n")
    print("| wall (s) | compile (s) | steps (s) | evaluation (s) | other (s) | field error |")
    print("|---:|---:|---:|---:|---:|---:|")
    other = wall - t["compile"] - t["steps"] - t["evaluation"]
    print(f"| {wall:.1f} | {t['compile']:.1f} | {t['steps']:.1f} | {t['evaluation']:.1f} | "
          f"{other:.1f} | {err:.3f} |")
    print(f"\n(restarts: {len(fit.restart_losses)}, screened at "
          f"{int(np.isfinite(fit.restart_histories).sum(1).min())} steps, kept restart "
          f"{fit.best_restart}: {len(fit.loss_history)} steps; "
          f"{model.num_samples} samples per trial)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--skip-6000", action="store_true")
    args = ap.parse_args()
    print(f"jax {jax.__version__}, psyphy_numpyro {pn.__version__}, "
          f"{platform.processor() or platform.machine()}, devices: {jax.devices()}")
    if not args.skip_6000:
        end_to_end()
    overheads(args.steps)


if __name__ == "__main__":
    main()
