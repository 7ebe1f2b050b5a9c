"""Scaling of a default MAP fit with the number of trials, up to 100 000 (time, accuracy, memory).

Each row is a fresh subprocess, so its peak resident memory (ru_maxrss) is
its own: simulate trials from a known 2-D field (default WPPM, basis_degree 4,
references uniform in the box, comparisons at Mahalanobis radius 1-4), then
``pn.fit_map(data)`` with every default (2 000 steps x 3 restarts, 128
samples, ``batch_size="auto"``: full batch up to 16 384 trials, minibatches of
8 192 above). Wall time includes JIT compilation and the final
high-sample evaluation that picks the restart.

A second table evaluates the full log-likelihood of 100 000 trials (chunked
``WPPM.log_likelihood``) at growing sample counts: its peak memory stays flat
while ``trials x samples`` grows 16-fold.

Run:  python benchmarks/scaling.py                 (1 000, 10 000, 100 000 trials)
      python benchmarks/scaling.py --trials 1000 100000 --steps 500
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import jax
import numpy as np
import numpyro

import psyphy_numpyro as pn


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def one_fit(n, steps, seed):
    model = pn.WPPM(input_dim=2)
    truth = model.sample_prior(seed)
    data = pn.simulate_experiment(model, truth, n, key=seed + 1)
    kw = {} if steps is None else {"steps": steps}
    t0 = time.perf_counter()
    fit = pn.fit_map(data, model, seed=seed, progress=False, **kw)
    wall = time.perf_counter() - t0
    steps_run = fit.restart_histories.shape[1]
    limits = pn.map_settings
    batch = "full" if n <= limits.AUTO_FULL_BATCH else str(limits.AUTO_BATCH_SIZE)
    return {
        "trials": n,
        "batch": batch,
        "steps": f"{steps_run} x {fit.restart_histories.shape[0]}",
        "wall_s": wall,
        "err_start": pn.field_error(model, fit.init_params, truth),
        "err_map": pn.field_error(model, fit.params, truth),
        "rss_mb": peak_rss_mb(),
    }


def one_eval(n, num_samples, seed):
    model = pn.WPPM(input_dim=2)
    truth = model.sample_prior(seed)
    data = pn.simulate_experiment(model, truth, n, key=seed + 1)
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    ll = model.log_likelihood(truth, data, key=0, num_samples=num_samples)
    total = float(np.sum(np.asarray(ll)))
    return {
        "trials": n,
        "samples": num_samples,
        "wall_s": time.perf_counter() - t0,
        "loglik": total,
        "rss_before_mb": rss0,
        "rss_mb": peak_rss_mb(),
    }


def child(args):
    if args.samples:
        out = one_eval(args.child, args.samples, args.seed)
    else:
        out = one_fit(args.child, args.steps, args.seed)
    print("RESULT " + json.dumps(out), flush=True)


def run_child(extra):
    cmd = [sys.executable, os.path.abspath(__file__)] + extra
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = [x for x in out.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--steps", type=int, default=None, help="override fit_map's default")
    ap.add_argument("--eval-samples", type=int, nargs="*", default=[128, 512, 2048])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--samples", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        return child(args)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, backend "
          f"{jax.default_backend()}; jax {jax.__version__}, numpyro {numpyro.__version__}, "
          f"psyphy_numpyro {pn.__version__}")
    print("\nfit_map with default settings (wall time includes compilation):\n")
    print("| trials | batch | steps x restarts | wall time (s) | field error start -> MAP "
          "| peak RSS (MB) |")
    print("|---:|---|---|---:|---|---:|")
    for n in args.trials:
        extra = ["--child", str(n), "--seed", str(args.seed)]
        if args.steps is not None:
            extra += ["--steps", str(args.steps)]
        r = run_child(extra)
        print(f"| {r['trials']} | {r['batch']} | {r['steps']} | {r['wall_s']:.1f} | "
              f"{r['err_start']:.3f} -> {r['err_map']:.3f} | {r['rss_mb']:.0f} |", flush=True)

    if args.eval_samples:
        n = max(args.trials)
        print(f"\nlog-likelihood of {n} trials, chunked (peak RSS of the whole process):\n")
        print("| samples | trials x samples | time (s) | peak RSS (MB) |")
        print("|---:|---:|---:|---:|")
        for m in args.eval_samples:
            r = run_child(["--child", str(n), "--samples", str(m), "--seed", str(args.seed)])
            print(f"| {m} | {n * m:.2e} | {r['wall_s']:.1f} | {r['rss_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
