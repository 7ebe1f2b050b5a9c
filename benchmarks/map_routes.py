"""MAP routes side by side: deterministic L-BFGS (the default) against stochastic Adam.

Data: default-model (2-D) observers drawn from the prior, ``simulate_experiment``
designs (uniform references, Mahalanobis radii 1-4). For every seed and route
the script times a first ``pn.fit_map`` (compilation included; hyperparameters
chosen from the data by the default ``model=None``) and a repeat on new data
of the same size (the compiled programs reused), and reports the field error
(mean relative Frobenius error of Sigma on a 7 x 7 grid) of both fits.

Routes:

- ``lbfgs``: ``fit_map(data)``, the default: fixed estimator noise,
  ``optax.lbfgs`` through ``SVI``, 3 starts screened one after another.
- ``lbfgs-1``: the same with one start (``num_restarts=1``).
- ``adam``: ``fit_map(data, optimizer="adam")``: fresh noise, 2 000 whitened
  Adam steps, 3 restarts screened in one batched program (the default before
  wave 3).

With ``--samples`` it instead measures the bias of one fixed draw set: for
each estimator-draw count M, the MAP of the deterministic route and the
negative log-likelihood per trial of that MAP under its own M fixed draws and
under a 4 096-draw evaluation, with the field error and the fit time.

Usage: ``python benchmarks/map_routes.py [--trials 6000] [--seeds 0 1 2]
[--routes lbfgs lbfgs-1 adam] [--dim 2] [--samples 16 32 64 128]``.
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

ROUTES = {
    "lbfgs": {},
    "lbfgs-1": {"num_restarts": 1},
    "adam": {"optimizer": "adam"},
}


def observer(dim, trials, seed):
    """Truth, a data set, and a second data set of the same size (the repeat)."""
    model = pn.WPPM(input_dim=dim)
    truth = model.sample_prior(jax.random.PRNGKey(seed))
    first = pn.simulate_experiment(model, truth, trials, key=10 * seed + 1)
    again = pn.simulate_experiment(model, truth, trials, key=10 * seed + 2)
    return truth, first, again


def timed_fit(data, model, **kw):
    t0 = time.perf_counter()
    fit = pn.fit_map(data, model, progress=False, **kw)
    return fit, time.perf_counter() - t0


def routes_table(args):
    print(machine_line())
    print(f"# {args.trials} trials, {args.dim}-D; first fit: compilation and the "
          "hyperparameter choice included; repeat: new data, same size")
    print("| route | seed | first (s) | repeat (s) | field error (first) | "
          "field error (repeat) | steps run (repeat) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for route in args.routes:
        kw = ROUTES[route]
        for seed in args.seeds:
            truth, first, again = observer(args.dim, args.trials, seed)
            fit, t_first = timed_fit(first, None, seed=seed, **kw)
            rep, t_rep = timed_fit(again, fit.model, seed=seed, **kw)
            e1 = pn.field_error(fit.model, fit.params, truth)
            e2 = pn.field_error(rep.model, rep.params, truth)
            hist = rep.loss_history
            ran = int(np.argmax(hist == hist[-1])) + 1 if route != "adam" else len(hist)
            summary.setdefault(route, []).append((t_first, t_rep, e1, e2))
            print(f"| {route} | {seed} | {t_first:.1f} | {t_rep:.1f} | {e1:.3f} | {e2:.3f} | "
                  f"{ran} |", flush=True)
    print()
    print("| route | first (s), mean ± sd | repeat (s), mean ± sd | field error, mean ± sd |")
    print("|---|---:|---:|---:|")
    for route, rows in summary.items():
        a = np.asarray(rows)
        errs = a[:, 2:].ravel()
        print(f"| {route} | {a[:, 0].mean():.1f} ± {a[:, 0].std():.1f} | "
              f"{a[:, 1].mean():.1f} ± {a[:, 1].std():.1f} | "
              f"{errs.mean():.3f} ± {errs.std():.3f} |")


def samples_table(args):
    print(machine_line())
    print(f"# deterministic route, {args.trials} trials, {args.dim}-D: one fixed draw set of "
          "M estimator draws per trial; NLL per trial of its MAP under fixed M-draw sets "
          "and under 4 096 draws")
    print("| M | seed | fit (s) | NLL/trial, M draws (4 sets) | NLL/trial, 4 096 draws | "
          "bias (nats/trial) | field error |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for seed in args.seeds:
        truth, data, _ = observer(args.dim, args.trials, seed)
        base = pn.WPPM.for_data(data)
        for m in args.samples:
            model = base.replace(num_samples=m)
            fit, t = timed_fit(data, model, seed=seed)
            nll = [-float(np.sum(model.log_likelihood(fit.params, data, key=k,
                                                      num_samples=m))) / len(data)
                   for k in range(4)]  # four fixed M-draw sets
            nll_own = float(np.mean(nll))
            nll_ref = -float(np.sum(model.log_likelihood(fit.params, data, key=99,
                                                         num_samples=4096))) / len(data)
            err = pn.field_error(model, fit.params, truth)
            print(f"| {m} | {seed} | {t:.1f} | {nll_own:.4f} | {nll_ref:.4f} | "
                  f"{nll_own - nll_ref:+.4f} | {err:.3f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6000)
    parser.add_argument("--dim", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--routes", nargs="+", default=list(ROUTES), choices=list(ROUTES))
    parser.add_argument("--samples", type=int, nargs="*", default=None)
    args = parser.parse_args()
    if args.samples:
        samples_table(args)
    else:
        routes_table(args)


if __name__ == "__main__":
    main()
