"""Closed loop: adaptive sessions against plain and Sobol designs at equal trial counts.

Two simulated observers:

- ``wppm``: a 2-D WPPM drawn from the default prior, responding by the
  model's own oddity rule;
- ``weibull``: not a WPPM. Its discrimination ellipses are a smooth
  anisotropic field (size varying ~4x, shape and orientation varying across
  the plane, as colour-difference ellipses do; the field of
  ``benchmarks/observer_scales.py`` at a median threshold of 0.05), and it
  responds by a Weibull psychometric function of the Mahalanobis distance,
  ``p = 1/3 + 2/3 (1 - exp(-(d / alpha)^beta))`` with ``beta = 2``.

Three designs:

- ``adaptive``: ``pn.Experiment(live=False)``, the documented default policy
  (300 Sobol trials, then batches of 200 proposed by expected information
  gain from the latest Laplace posterior);
- ``plain``: uniform references in [-1, 1]^2, random directions, log-uniform
  distances in [0.005, 0.4] (the same range as the session's start);
- ``sobol``: ``pn.design.space_filling_trials`` (Sobol references, the same
  directions and distances).

At every trial count the first ``n`` trials of each design are fitted the same
way (the default ``pn.fit_map(data)``, hyperparameters from the data) and the
fitted 66.7% thresholds along 8 directions at a 5 x 5 grid of references in
[-0.7, 0.7]^2 are compared with the truth: median relative error
``exp(median |log ratio|) - 1``.

Usage: ``python benchmarks/adaptive.py [--observers wppm weibull]
[--trials 1000 2000 3000 6000] [--refit-every 200]``.
Nothing is asserted; the table is printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import jax
import numpy as np

import psyphy_numpyro as pn
from psyphy_numpyro.design import space_filling_trials
from psyphy_numpyro.hyperparameters import threshold_constant

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_line  # noqa: E402
from observer_scales import observer  # noqa: E402

BETA = 2.0
GRID = np.stack(np.meshgrid(*[np.linspace(-0.7, 0.7, 5)] * 2, indexing="ij"), -1).reshape(-1, 2)
DIRS = pn.readout.unit_directions(2, 8)


class WPPMObserver:
    name = "wppm"

    def __init__(self, seed=0):
        self.model = pn.WPPM(input_dim=2)
        self.params = self.model.sample_prior(jax.random.PRNGKey(seed))

    def respond(self, ref, comp, key):
        return pn.simulate_trials(self.model, self.params, ref, comp, key=key).responses

    def thresholds(self):
        truth = pn.MAPFit.from_params(self.model, self.params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # rays past the domain: NaN
            return pn.thresholds(truth, GRID, directions=DIRS, num_samples=2048).lengths


class WeibullObserver:
    """Ellipse field + Weibull psychometric function of the Mahalanobis distance."""

    name = "weibull"

    def __init__(self, scale=0.05):
        self.cov = observer(scale)
        # alpha: the Mahalanobis distance of the 66.7% point equals the oddity rule's
        self.alpha = threshold_constant(2) / np.log(2.0) ** (1 / BETA)

    def p(self, ref, comp):
        delta = np.asarray(comp, float) - np.asarray(ref, float)
        S = self.cov(np.asarray(ref, float))
        d = np.sqrt(np.einsum("ni,nij,nj->n", delta, np.linalg.inv(S), delta))
        return 1 / 3 + (2 / 3) * (1 - np.exp(-((d / self.alpha) ** BETA)))

    def respond(self, ref, comp, key):
        u = np.random.default_rng(key).uniform(size=len(ref))
        return (u < self.p(ref, comp)).astype(np.int32)

    def thresholds(self):
        k = threshold_constant(2)
        S = self.cov(np.repeat(GRID, len(DIRS), 0))
        u = np.tile(DIRS, (len(GRID), 1))
        return (k / np.sqrt(np.einsum("ni,nij,nj->n", u, np.linalg.inv(S), u))).reshape(
            len(GRID), len(DIRS))


def error(fit, truth):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = pn.thresholds(fit, GRID, directions=DIRS).lengths
    ok = np.isfinite(est) & np.isfinite(truth)
    return float(np.exp(np.median(np.abs(np.log(est[ok] / truth[ok])))) - 1)


def run_session(obs, n_max, refit_every, seed, folder):
    path = Path(folder) / f"{obs.name}.sqlite"
    exp = pn.Experiment(path, seed=seed, live=False, num_initial=300, refit_every=refit_every)
    t0 = time.perf_counter()
    b = 0
    while exp.num_told < n_max:
        # blocks end where a refit is due, so the first refit sees exactly 300 responses
        # (the tabled runs before this asked plain blocks of 200: first refit at 400)
        gap = exp.status()["next_refit_at"] - exp.num_told
        ids, st = exp.ask(min(refit_every, n_max - exp.num_told,
                              gap if gap > 0 else refit_every))
        exp.tell(ids, obs.respond(st[:, 0], st[:, 1], key=seed * 1000 + b))
        b += 1
    secs = time.perf_counter() - t0
    data = exp.data
    exp.close()
    return data, secs


def fit_error(data, truth):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pn.fit_map(data, progress=False)
    return error(fit, truth)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--observers", nargs="+", default=["wppm", "weibull"])
    ap.add_argument("--trials", type=int, nargs="+", default=[1000, 2000, 3000, 6000])
    ap.add_argument("--refit-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(machine_line())
    print("| observer | trials | plain | sobol | adaptive | adaptive / plain |")
    print("|---|---:|---:|---:|---:|---:|")
    n_max = max(args.trials)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.observers:
            obs = WPPMObserver(args.seed) if name == "wppm" else WeibullObserver()
            truth = obs.thresholds()
            adaptive, secs = run_session(obs, n_max, args.refit_every, args.seed + 1, tmp)
            ref_p, comp_p = pn.random_trials(n_max, 2, seed=args.seed + 2)
            plain = pn.TrialData.from_arrays(ref_p, comp_p,
                                             obs.respond(ref_p, comp_p, key=args.seed + 3))
            ref_s, comp_s = space_filling_trials(n_max, 2, seed=args.seed + 4)
            sobol = pn.TrialData.from_arrays(ref_s, comp_s,
                                             obs.respond(ref_s, comp_s, key=args.seed + 5))
            for n in sorted(args.trials):
                e = [fit_error(d[:n], truth) for d in (plain, sobol, adaptive)]
                rows[name, n] = e
                print(f"| {name} | {n} | {e[0]:.1%} | {e[1]:.1%} | {e[2]:.1%} | "
                      f"{e[2] / e[0]:.2f} |", flush=True)
            print(f"# {name}: session of {n_max} trials took {secs:.0f} s "
                  f"(median true threshold {np.nanmedian(truth):.3g})", flush=True)


if __name__ == "__main__":
    main()
