"""Which posterior should drive the adaptive session's choice? Laplace against NUTS.

The session ranks candidate trials by a criterion computed on posterior draws
(``pn.propose_trials``); by default the draws come from a Laplace fit
(``fit_laplace``), the cheap posterior. This script asks two questions of it, on
the non-WPPM observers of ``benchmarks/adaptive.py`` (ellipse fields whose
thresholds span ``--observers`` fold, Weibull psychometric functions) with data
from the well-chosen fixed design of that benchmark (``n`` trials):

1. **Calibration.** How often does the 90% interval of each posterior cover the
   observer's true 66.7% threshold (16 directions on a 5 x 5 grid)? And how wide
   are the intervals (median width in % of the threshold)? The WPPM is not the
   observer's model, so neither needs to reach 90%; the question is how far apart
   the two posteriors are.
2. **Ranking.** On one set of candidates (``pn.design.candidate_trials`` of the
   Laplace fit), the Spearman rank correlation between the criterion's scores under
   Laplace draws and under NUTS draws, and the share of NUTS's best 10% of
   candidates that are also among Laplace's best 10% (``"info_gain"`` and
   ``"global"``). If the cheap posterior ranks as the better-calibrated one would,
   the session may keep using it. The yardstick: the same numbers between two NUTS
   runs of other seeds (the criteria's own Monte Carlo noise and the sampler's).

Usage: ``python benchmarks/acquisition_posterior.py [--observers 2 10] [--seeds 0]
[--trials 300 1000] [--warmup 300] [--draws 300]``. Prints one row per (observer,
seed, trials). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

import psyphy_numpyro as pn
from psyphy_numpyro.design.acquisition import candidate_trials, score_trials

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_line  # noqa: E402
from adaptive import DIRS, GRID, FieldObserver, fixed_design  # noqa: E402


def calibration(fit, truth, level=0.9):
    """Coverage of the true thresholds by the central ``level`` intervals, and their
    median width in % of the true threshold."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        th = pn.thresholds(fit, GRID, directions=DIRS, level=level)
    lo, hi = np.asarray(th.interval[0]), np.asarray(th.interval[1])
    ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(truth)
    cover = float(np.mean((lo[ok] <= truth[ok]) & (truth[ok] <= hi[ok])))
    width = float(np.median((hi[ok] - lo[ok]) / truth[ok])) * 100
    return cover, width


def ranking(first, second, candidates, criterion, seed):
    """Spearman correlation of two posteriors' scores on one candidate set, and the share
    of the second's best 10% that the first also puts in its best 10%."""
    ref, comp = candidates
    s_first = score_trials(first, ref, comp, criterion=criterion, seed=seed)
    s_second = score_trials(second, ref, comp, criterion=criterion, seed=seed + 1)
    k = max(1, len(ref) // 10)
    top_first = set(np.argsort(-s_first)[:k].tolist())
    top_second = set(np.argsort(-s_second)[:k].tolist())
    return float(spearmanr(s_first, s_second)[0]), len(top_first & top_second) / k


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--observers", type=float, nargs="+", default=[2.0, 10.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--trials", type=int, nargs="+", default=[300, 1000])
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--draws", type=int, default=300)
    args = ap.parse_args(argv)
    print(machine_line())
    print("# python benchmarks/acquisition_posterior.py " + " ".join(argv or sys.argv[1:]))
    print("| observer | seed | trials | coverage Laplace | coverage NUTS | width Laplace (%) "
          "| width NUTS (%) | Spearman info_gain | top-10% info_gain | Spearman global "
          "| top-10% global | NUTS vs NUTS: Spearman / top-10% info_gain | global "
          "| Laplace (s) | NUTS (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|")
    for ratio in args.observers:
        obs = FieldObserver(ratio)
        truth = obs.thresholds_at(GRID, DIRS)
        for seed in args.seeds:
            for n in args.trials:
                data = fixed_design(obs, n, seed, (0.3 * obs.smallest, 2.0 * obs.largest))
                t0 = time.perf_counter()
                lap = pn.fit_laplace(data, seed=seed, progress=False)
                t1 = time.perf_counter()
                nuts = pn.fit_mcmc(data, seed=seed, num_warmup=args.warmup,
                                   num_draws=args.draws, progress=False)
                t2 = time.perf_counter()
                again = pn.fit_mcmc(data, seed=seed + 100, num_warmup=args.warmup,
                                    num_draws=args.draws, progress=False)
                cov = [calibration(f, truth) for f in (lap, nuts)]
                cands = candidate_trials(lap, seed=seed)  # one set, of the Laplace fit
                rank = [ranking(lap, nuts, cands, c, seed) for c in ("info_gain", "global")]
                base = [ranking(again, nuts, cands, c, seed) for c in ("info_gain", "global")]
                print(f"| {obs.name} | {seed} | {n} | {cov[0][0]:.2f} | {cov[1][0]:.2f} "
                      f"| {cov[0][1]:.0f} | {cov[1][1]:.0f} | {rank[0][0]:.2f} "
                      f"| {rank[0][1]:.2f} | {rank[1][0]:.2f} | {rank[1][1]:.2f} "
                      f"| {base[0][0]:.2f} / {base[0][1]:.2f} | {base[1][0]:.2f} / "
                      f"{base[1][1]:.2f} | {t1 - t0:.0f} | {t2 - t1:.0f} |", flush=True)


if __name__ == "__main__":
    main()
