"""Bootstrap cost: ``fit_bootstrap`` refits against one default ``fit_map``.

Data: a 2-D default-model observer with repeated references (25 references
on a 5 x 5 grid, trials spread evenly over them, the design ``strata="auto"``
resamples within). For each trial count the script times one default
``pn.fit_map(data)`` (first call: compilation included) and then
``pn.fit_bootstrap(data, init=that_fit, num_fits=F)`` (its refits only; the
MAP is the one just timed), and prints the ratio.

With ``--convergence`` it instead checks that the default step count is
enough: 12 refits of the same resamples at 250 and at 600 steps, reporting
the mean per-refit difference of ``Sigma`` on a 5 x 5 grid relative to the
bootstrap spread, and the ratio of the two spreads.

Usage: ``python benchmarks/bootstrap.py [--trials 4000 6000] [--fits 60] [--steps 250]
[--convergence]``.
Every number is a wall time on the machine it runs on; nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

import psyphy_numpyro as pn

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_line  # noqa: E402


def observer_data(n, seed=0):
    model = pn.WPPM(input_dim=2)
    truth = model.sample_prior(jax.random.PRNGKey(seed))
    g = np.linspace(-0.7, 0.7, 5)
    refs = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    rng = np.random.default_rng(seed)
    ref = refs[np.arange(n) % len(refs)]
    comp = pn.comparisons_at_radius(model, truth, ref, rng.uniform(0.5, 3.0, n), key=seed)
    return pn.simulate_trials(model, truth, ref, comp, key=seed + 1)


def convergence(n, short=250, long=600, fits=12):
    from psyphy_numpyro.plotting import grid_points

    data = observer_data(n)
    fit = pn.fit_map(data, progress=False)
    grid = grid_points(5)
    S = {st: pn.fit_bootstrap(data, init=fit, num_fits=fits, steps=st, seed=3,
                              progress=False).covariance(grid) for st in (short, long)}
    spread = S[long].std(0).mean()
    print(f"{n} trials, {fits} refits: mean |Sigma({short}) - Sigma({long})| per refit = "
          f"{np.abs(S[short] - S[long]).mean() / spread:.3f} x the bootstrap spread; "
          f"spread({short}) / spread({long}) = {S[short].std(0).mean() / spread:.3f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, nargs="+", default=[4000])
    ap.add_argument("--fits", type=int, default=60)
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--convergence", action="store_true")
    args = ap.parse_args(argv)
    if args.convergence:
        return convergence(args.trials[0])
    print(machine_line())
    print("| trials | fit_map (s) | fit_bootstrap refits | bootstrap (s) | compile (s) "
          "| ratio |")
    print("|---:|---:|---|---:|---:|---:|")
    for n in args.trials:
        data = observer_data(n)
        t0 = time.perf_counter()
        fit = pn.fit_map(data, progress=False)
        t_map = time.perf_counter() - t0
        t0 = time.perf_counter()
        boot = pn.fit_bootstrap(data, init=fit, num_fits=args.fits, steps=args.steps,
                                progress=False)
        t_boot = time.perf_counter() - t0
        comp = boot.timings.get("compile", float("nan"))
        print(f"| {n} | {t_map:.1f} | {boot.num_draws} x {args.steps} steps | {t_boot:.1f} "
              f"| {comp:.1f} | {t_boot / t_map:.2f} |", flush=True)


if __name__ == "__main__":
    main()
