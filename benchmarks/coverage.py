"""Coverage of every interval method: Laplace, bootstrap and NUTS against the truth.

For each of ``--datasets`` simulated data sets (a basis-degree-2 2-D WPPM drawn
from its prior, 1 500 random-design trials, the set-up of
``benchmarks/inference_cost.py``) the script fits the MAP once and then every
interval method from it, and records how often the 90% intervals contain the
truth:

- Sigma: the three unique entries of Sigma(x) on a 7 x 7 grid over [-1, 1]^2;
- thresholds: 66.7% thresholds along 8 directions at a 4 x 4 grid of
  references (central 90% interval of the draws).

A calibrated method covers 90% on average over data sets. Prints a Markdown
table (mean and range over data sets, and the mean wall time after the MAP).

Run:  python benchmarks/coverage.py [--datasets 4] [--trials 1500]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

os.environ.setdefault("CI", "1")  # no progress bars

import jax  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402

import psyphy_numpyro as pn  # noqa: E402
from psyphy_numpyro.plotting import grid_points  # noqa: E402

METHODS = {
    "fit_laplace (1000 draws)": lambda data, model, fit: pn.fit_laplace(
        data, model, init=fit, num_draws=1000),
    "fit_bootstrap (120 refits, default route)": lambda data, model, fit: pn.fit_bootstrap(
        data, model, init=fit, num_fits=120),
    "fit_mcmc (2 x (300 + 300), table surrogate)": lambda data, model, fit: pn.fit_mcmc(
        data, model, init=fit, num_warmup=300, num_samples=300, num_chains=2),
}


def unique_entries(S):
    return np.stack([S[..., 0, 0], S[..., 0, 1], S[..., 1, 1]], -1)


def inside(draws, truth, axis=0):
    lo, hi = np.nanpercentile(draws, [5, 95], axis=axis)
    ok = np.isfinite(truth) & np.isfinite(lo) & np.isfinite(hi)
    return float(((truth >= lo) & (truth <= hi))[ok].mean())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=4)
    ap.add_argument("--trials", type=int, default=1500)
    args = ap.parse_args(argv)
    model = pn.WPPM(input_dim=2, basis_degree=2, num_samples=64)
    grid = grid_points(7, -1.0, 1.0)
    g = np.linspace(-0.6, 0.6, 4)
    refs = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    dirs = pn.readout.unit_directions(2, 8)
    results = {name: {"sigma": [], "thresholds": [], "seconds": []} for name in METHODS}
    for s in range(args.datasets):
        truth = model.sample_prior(100 + s)
        data = pn.simulate_experiment(model, truth, args.trials, key=200 + s)
        S_true = unique_entries(np.asarray(model.covariance(truth, grid)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            t_true = pn.thresholds((model, truth), refs, directions=dirs).lengths
            fit = pn.fit_map(data, model, steps=800, num_restarts=2, seed=s)
            for name, run in METHODS.items():
                t0 = time.perf_counter()
                post = run(data, model, fit)
                results[name]["seconds"].append(time.perf_counter() - t0)
                S = unique_entries(np.asarray(post.covariance(grid)))
                results[name]["sigma"].append(inside(S, S_true))
                th = pn.thresholds(post, refs, directions=dirs, num_draws=200).lengths
                results[name]["thresholds"].append(inside(th, t_true))
        print(f"data set {s}: " + ", ".join(
            f"{n.split(' ')[0]} {r['sigma'][-1]:.2f}/{r['thresholds'][-1]:.2f}"
            for n, r in results.items()), flush=True)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"jax {jax.__version__}, numpyro {numpyro.__version__}, {jax.default_backend()}; "
          f"{args.datasets} data sets x {args.trials} trials")
    print("| method | Sigma 90% coverage (mean, range) | threshold 90% coverage (mean, range) | "
          "seconds after the MAP |")
    print("|---|---|---|---|")
    for name, r in results.items():
        sg, th = np.array(r["sigma"]), np.array(r["thresholds"])
        print(f"| {name} | {sg.mean():.2f} ({sg.min():.2f}-{sg.max():.2f}) | {th.mean():.2f} "
              f"({th.min():.2f}-{th.max():.2f}) | {np.mean(r['seconds']):.1f} |")


if __name__ == "__main__":
    main()
