"""Bootstrap cost: ``fit_bootstrap`` refits against one default ``fit_map``.

Data: a 2-D default-model observer with repeated references (25 references
on a 5 x 5 grid, trials spread evenly over them, the design ``strata="auto"``
resamples within). For each trial count the script times one default
``pn.fit_map(data)`` (first call: compilation included) and then
``pn.fit_bootstrap(data, init=that_fit, num_fits=F)`` (its refits only; the
MAP is the one just timed), and prints the ratio.

``--optimizer newton adam`` times both refit routes (default: the Newton
route); ``--steps`` overrides the routes' default step counts.

With ``--convergence [ROUTE:STEPS ...]`` it instead checks step counts: 12
refits of the same resamples by each route against 1 000 Adam steps, reporting
the mean per-refit difference of ``Sigma`` on a 5 x 5 grid relative to the
reference's bootstrap spread, and the ratio of the spreads.

Usage: ``python benchmarks/bootstrap.py [--trials 4000 6000] [--fits 60]
[--optimizer newton adam] [--steps N] [--convergence newton:15 adam:250]``.
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


def convergence(n, routes, fits=12, ref=("adam", 1000), seed=0):
    """Each route's refits against long refits of the same resamples: the mean per-refit
    difference of ``Sigma`` on a 5 x 5 grid relative to the reference's bootstrap spread,
    and the ratio of the spreads."""
    from psyphy_numpyro.plotting import grid_points

    data = observer_data(n, seed)
    fit = pn.fit_map(data, progress=False)
    grid = grid_points(5)

    def boot(optimizer, steps):
        t0 = time.perf_counter()
        b = pn.fit_bootstrap(data, init=fit, num_fits=fits, optimizer=optimizer, steps=steps,
                             seed=3, progress=False)
        return b.covariance(grid), time.perf_counter() - t0

    S_ref, _ = boot(*ref)
    spread = S_ref.std(0).mean()
    print(f"reference: {fits} refits of {ref[1]} {ref[0]} steps; {n} trials; observer seed {seed}")
    print("| route | steps | mean abs Sigma difference / spread | spread / reference spread "
          "| seconds |")
    print("|---|---:|---:|---:|---:|")
    for optimizer, steps in routes:
        S, sec = boot(optimizer, steps)
        print(f"| {optimizer} | {steps} | {np.abs(S - S_ref).mean() / spread:.3f} "
              f"| {S.std(0).mean() / spread:.3f} | {sec:.1f} |", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, nargs="+", default=[4000])
    ap.add_argument("--fits", type=int, default=60)
    ap.add_argument("--optimizer", nargs="+", default=["newton"], choices=["newton", "adam"])
    ap.add_argument("--steps", type=int, default=None, help="default: the route's default")
    ap.add_argument("--convergence", nargs="*", metavar="ROUTE:STEPS",
                    help="e.g. newton:15 newton:40 adam:250 (against adam:1000)")
    ap.add_argument("--seed", type=int, default=0,
                    help="the simulated observer (its field and trials)")
    args = ap.parse_args(argv)
    if args.convergence is not None:
        routes = [(r.split(":")[0], int(r.split(":")[1])) for r in args.convergence]
        return convergence(args.trials[0], routes or [("newton", 15), ("adam", 250)],
                           seed=args.seed)
    print(machine_line())
    print("| trials | fit_map (s) | route | refits x steps | bootstrap (s) | compile (s) "
          "| curvature (s) | steps (s) | ratio |")
    print("|---:|---:|---|---|---:|---:|---:|---:|---:|")
    for n in args.trials:
        data = observer_data(n, args.seed)
        t0 = time.perf_counter()
        fit = pn.fit_map(data, progress=False)
        t_map = time.perf_counter() - t0
        for optimizer in args.optimizer:
            t0 = time.perf_counter()
            boot = pn.fit_bootstrap(data, init=fit, num_fits=args.fits, optimizer=optimizer,
                                    steps=args.steps, progress=False)
            t_boot = time.perf_counter() - t0
            tm = boot.timings
            print(f"| {n} | {t_map:.1f} | {optimizer} | {boot.num_draws} x {boot.steps} "
                  f"| {t_boot:.1f} | {tm.get('compile', float('nan')):.1f} "
                  f"| {tm.get('curvature', 0.0):.1f} | {tm.get('steps', float('nan')):.1f} "
                  f"| {t_boot / t_map:.2f} |", flush=True)


if __name__ == "__main__":
    main()
