"""Closed loop, honestly: the adaptive session against a *well-chosen* fixed design.

The question a lab asks: does an adaptive session measure the same thresholds
with fewer trials than the fixed design a careful experimenter would run?

Observers (none is a WPPM): a smooth anisotropic field of discrimination
ellipses, ``Sigma(x) = s(x)^2 R(theta(x)) diag(1, rho(x)^2) R(theta(x))'``,
whose thresholds (all locations and directions) span a factor ``ratio`` across
[-1, 1]^2 (``--observers 2 10 30``: about 2x, 10x, 30x) while its shape and
orientation vary as colour-difference ellipses do; median threshold about
0.04. It responds by a Weibull psychometric function of the Mahalanobis
distance, ``p = 1/3 + 2/3 (1 - exp(-(d / alpha)^2))``, ``alpha`` chosen so that
its 66.7% point is the oddity rule's.

Designs, every one fitted by the same default ``pn.fit_map(data)`` on its
first ``n`` trials:

- ``adaptive``: ``pn.Experiment(path, live=False)`` with its defaults (what a
  user gets), told the observer's responses in the blocks it asks for;
- ``good``: the fixed design a careful experimenter would choose, with an
  oracle advantage the session does not get: uniform references over the
  domain, uniform directions, distances log-uniform from 0.3x the observer's
  smallest to 2x its largest true 66.7% threshold
  (``pn.random_trials(distances=...)``);
- ``adaptive-global``: the session with ``fit_options={"criterion": "global"}``
  (the look-ahead reduction of the thresholds' posterior variance);
- ``wide``: the same with the session's own start-up range of distances
  (0.005 to 0.4, ``pn.random_trials`` defaults).

Error: median ``|log(fitted / true threshold)|`` along 16 directions at a 5 x 5
grid of references in [-0.8, 0.8]^2. Each observer runs ``--seeds`` seeds
(designs and responses differ); the table shows mean and standard deviation
over seeds, and the ratio that matters: the session at ``n`` trials against
the good design at ``2n``.

Usage: ``python benchmarks/adaptive.py [--observers 2 10 30] [--seeds 0 1 2]
[--trials 1000 3000 6000] [--designs adaptive good wide] [--out results.jsonl]``.
Results are appended to ``--out`` one JSON line per (observer, seed, design,
trials) as they come, so an interrupted run keeps what it measured and
``--table-only`` prints the table of a file. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import psyphy_numpyro as pn
from psyphy_numpyro.hyperparameters import threshold_constant

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_line  # noqa: E402

BETA = 2.0
MEDIAN_THRESHOLD = 0.04
GRID = np.stack(np.meshgrid(*[np.linspace(-0.8, 0.8, 5)] * 2, indexing="ij"), -1).reshape(-1, 2)
DIRS = np.stack([np.cos(a := np.linspace(0, np.pi, 16, endpoint=False)), np.sin(a)], -1)


def _shape(x):
    """The field's unscaled size pattern g(x) in [-1, 1], orientation and aspect ratio."""
    g = np.sin(1.3 * x[..., 0] + 0.4) * np.cos(1.1 * x[..., 1] - 0.3)
    rho = 0.45 + 0.35 * (x[..., 1] + 1) / 2
    theta = 0.9 * x[..., 0] + 0.6 * x[..., 1]
    return g, rho, theta


class FieldObserver:
    """An ellipse field whose size varies ``ratio``-fold, with a Weibull psychometric function."""

    def __init__(self, ratio: float):
        self.name = f"{ratio:g}x"
        fine = np.stack(np.meshgrid(*[np.linspace(-1, 1, 41)] * 2, indexing="ij"), -1)
        g = _shape(fine.reshape(-1, 2))[0]
        self._g_lo, self._g_hi = float(g.min()), float(g.max())
        self._scale = 1.0
        self.alpha = threshold_constant(2) / np.log(2.0) ** (1 / BETA)
        lo, hi = 0.0, float(np.log(ratio))  # size ratio so that all thresholds span `ratio`
        for _ in range(40):
            self._log_ratio = 0.5 * (lo + hi)
            th = self.thresholds_at(fine.reshape(-1, 2), DIRS)
            lo, hi = (self._log_ratio, hi) if th.max() / th.min() < ratio else (lo,
                                                                                  self._log_ratio)
        self._scale = MEDIAN_THRESHOLD / float(np.median(th))
        th = self.thresholds_at(fine.reshape(-1, 2), DIRS)
        self.smallest, self.largest = float(th.min()), float(th.max())

    def cov(self, x):
        x = np.asarray(x, np.float64)
        g, rho, theta = _shape(x)
        s = self._scale * np.exp(self._log_ratio * (g - self._g_lo) / (self._g_hi - self._g_lo))
        c, sn = np.cos(theta), np.sin(theta)
        R = np.stack([np.stack([c, -sn], -1), np.stack([sn, c], -1)], -2)
        D = np.stack([np.ones_like(rho), rho**2], -1)
        return np.einsum("...ij,...j,...kj->...ik", R, D, R) * s[..., None, None] ** 2

    def thresholds_at(self, refs, dirs):
        """True 66.7% thresholds ``(len(refs), len(dirs))``."""
        k = threshold_constant(2)
        S = self.cov(np.repeat(refs, len(dirs), 0))
        u = np.tile(dirs, (len(refs), 1))
        m = np.einsum("ni,nij,nj->n", u, np.linalg.inv(S), u)
        return (k / np.sqrt(m)).reshape(len(refs), len(dirs))

    def respond(self, ref, comp, seed):
        delta = np.asarray(comp, float) - np.asarray(ref, float)
        d = np.sqrt(np.einsum("ni,nij,nj->n", delta, np.linalg.inv(self.cov(ref)), delta))
        p = 1 / 3 + (2 / 3) * (1 - np.exp(-((d / self.alpha) ** BETA)))
        u = np.random.default_rng(seed).uniform(size=len(ref))
        return (u < p).astype(np.int32)


def error(fit, truth) -> float:
    """Median |log(fitted / true)| over the grid and directions (rays leaving the domain
    are left out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = pn.thresholds(fit, GRID, directions=DIRS).lengths
    ok = np.isfinite(est) & np.isfinite(truth)
    return float(np.median(np.abs(np.log(est[ok] / truth[ok]))))


def run_session(obs, n_max, seed, folder, criterion=None):
    """The adaptive session with its defaults (or another ``criterion``), told in the blocks
    a rig would ask for."""
    path = Path(folder) / f"{obs.name}-{seed}-{criterion}.sqlite"
    opts = None if criterion is None else {"criterion": criterion}
    exp = pn.Experiment(path, seed=seed, live=False, fit_options=opts)
    t0, b = time.perf_counter(), 0
    while exp.num_told < n_max:
        gap = exp.status()["next_refit_at"] - exp.num_told
        ids, st = exp.ask(max(1, min(50, n_max - exp.num_told, gap if gap > 0 else 50)))
        exp.tell(ids, obs.respond(st[:, 0], st[:, 1], seed=[seed, 1000 + b]))
        b += 1
    data, secs = exp.data, time.perf_counter() - t0
    exp.close()
    return data, secs


def fixed_design(obs, n, seed, distances):
    ref, comp = pn.random_trials(n, 2, seed=seed, distances=distances)
    return pn.TrialData.from_arrays(ref, comp, obs.respond(ref, comp, seed=[seed, 7]))


def measure(obs, seed, designs, trials, out, folder):
    truth = obs.thresholds_at(GRID, DIRS)
    n_max = max(trials)
    for design in designs:
        extra = {}
        if design.startswith("adaptive"):
            data, secs = run_session(obs, n_max, seed, folder,
                                     "global" if design == "adaptive-global" else None)
            extra["session_seconds"] = round(secs, 1)
        elif design == "good":
            data = fixed_design(obs, n_max, seed + 100,
                                (0.3 * obs.smallest, 2.0 * obs.largest))
        else:
            data = fixed_design(obs, n_max, seed + 200, (0.005, 0.4))
        for n in sorted(trials):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = pn.fit_map(data[:n], seed=seed, progress=False)
            row = {"observer": obs.name, "seed": seed, "design": design, "trials": n,
                   "error": error(fit, truth), "fit_seconds": round(time.perf_counter() - t0, 1),
                   **extra}
            print(json.dumps(row), flush=True)
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")


def table(path) -> str:
    rows = [json.loads(line) for line in open(path) if line.strip()]
    cell = {}
    for r in rows:
        cell.setdefault((r["observer"], r["design"], r["trials"]), []).append(r["error"])
    observers = sorted({k[0] for k in cell}, key=lambda s: float(s.rstrip("x")))
    designs = [d for d in ("adaptive", "adaptive-global", "good", "wide")
               if any(k[1] == d for k in cell)]
    ns = sorted({k[2] for k in cell})
    lines = ["| observer | trials | " + " | ".join(designs) + " | adaptive(n) / good(2n) |",
             "|---|---:|" + "---:|" * len(designs) + "---:|"]
    for o in observers:
        for n in ns:
            vals = []
            for d in designs:
                e = cell.get((o, d, n))
                vals.append("" if not e else
                            f"{np.mean(e):.3f} ± {np.std(e):.3f} ({len(e)})")
            a, g = cell.get((o, "adaptive", n)), cell.get((o, "good", 2 * n))
            ratio = f"{np.mean(a) / np.mean(g):.2f}" if a and g else ""
            lines.append(f"| {o} | {n} | " + " | ".join(vals) + f" | {ratio} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--observers", type=float, nargs="+", default=[2, 10, 30])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, nargs="+", default=[1000, 3000, 6000])
    ap.add_argument("--designs", nargs="+", default=["adaptive", "good", "wide"],
                    choices=["adaptive", "adaptive-global", "good", "wide"])
    ap.add_argument("--out", default="adaptive_results.jsonl")
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args(argv)
    if not args.table_only:
        print(machine_line(), flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            for ratio in args.observers:
                obs = FieldObserver(ratio)
                print(f"# observer {obs.name}: thresholds {obs.smallest:.4f} .. "
                      f"{obs.largest:.4f}", flush=True)
                for seed in args.seeds:
                    measure(obs, seed, args.designs, args.trials, args.out, tmp)
    print(table(args.out))


if __name__ == "__main__":
    main()
