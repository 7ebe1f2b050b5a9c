"""Issue 24's targets: pooled against independent fits, a population-warm-started new observer.

A population of ``--observers`` (default 8) simulated observers is drawn from the
population model itself: ``W_i = (W_pop + delta_i) / sqrt(1 + tau^2)``,
``delta_i ~ N(0, tau^2 prior_std^2)`` at ``--tau`` (default 0.3), ``W_pop`` a
prior draw; with ``--outlier`` the last observer is instead an independent
prior draw (a different field). Each observer answers ``--trials`` random
trials (``pn.simulate_experiment``, radii 1-4).

Rows:

- *pooled vs independent* (one row per trial count): ``pn.fit_population``
  against ``pn.fit_map(list)`` (independent fits, one model), the mean field
  error of the observers (``pn.field_error``: mean relative Frobenius error of
  ``Sigma`` on a 7 x 7 grid), the outlier's separately, wall times; below the
  table each fit's per-observer scales ``tau_i`` and the pooled fit's timings.
  ``--one-tau`` fits one ``tau`` for all observers (``observer_scales=False``).
- *new observer, fit_map*: an observer drawn from the population (or, for the
  outlier row, an independent prior draw) with ``--new-trials`` random trials,
  fitted with the population prior (``pn.fit_map(data, prior=pop)``, the pop
  fitted at the first trial count) and blank (``pn.fit_map(data, model)``).
- *new observer, session*: ``pn.Experiment(prior=pop)`` against a blank
  ``pn.Experiment(model=...)`` run to ``--session-trials`` simulated
  responses (``live=False``; ``0`` skips it), the field error of the session's
  fit after its first refit and at the end.

Usage: ``python benchmarks/population.py [--observers 8] [--trials 1500 3000]
[--tau 0.3] [--outlier] [--new-trials 100 300] [--session-trials 300]
[--basis-degree 4] [--seed 0] [--one-tau]``. Every number is measured on the machine it
runs on; nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import jax
import numpy as np

import psyphy_numpyro as pn

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_line  # noqa: E402


def draw_population(model, k, tau, seed, outlier):
    """``(W_pop_mean, [W_i])``: observers of the population model at ``tau`` (the last an
    independent prior draw with ``outlier``)."""
    sd = model.prior_std()
    W_pop = np.asarray(model.sample_prior(jax.random.PRNGKey(seed))["W"])
    c = 1.0 / np.sqrt(1.0 + tau**2)
    Ws = [c * (W_pop + tau * sd * np.asarray(jax.random.normal(
        jax.random.PRNGKey(seed * 1000 + 100 + i), sd.shape))) for i in range(k)]
    if outlier:
        Ws[-1] = np.asarray(model.sample_prior(jax.random.PRNGKey(seed * 1000 + 99))["W"])
    return c * W_pop, Ws


def simulate(model, W, n, key):
    return pn.simulate_experiment(model, {"W": W}, n, key=jax.random.PRNGKey(key))


def err(fit, W):
    """Field error of a fit's point estimate (a Laplace fit's: its MAP)."""
    from psyphy_numpyro.design.refit import posterior_mode

    params = fit.params if hasattr(fit, "params") else posterior_mode(fit)
    return pn.field_error(fit.model, params, {"W": W})


def session(model, W, n, seed, prior=None, num_initial=60, refit_every=60):
    """Run a simulated session to ``n`` responses: field errors (first refit, end), seconds."""
    opts = {"map_steps": 150, "warm_steps": 60, "num_draws": 32}
    kw = {"prior": prior} if prior is not None else {"model": model}
    t0 = time.perf_counter()
    first = None
    with TemporaryDirectory() as tmp:
        exp = pn.Experiment(Path(tmp) / "s.db", seed=seed, live=False, fit_options=opts,
                            num_initial=num_initial, refit_every=refit_every, **kw)
        key = jax.random.PRNGKey(seed + 7)
        while len(exp.data) < n:
            ids, stim = exp.ask(min(20, n - len(exp.data)))
            key, k1, k2 = jax.random.split(key, 3)
            p = np.asarray(model.p_correct({"W": W}, stim[:, 0], stim[:, 1], key=k1))
            exp.tell(ids, (np.asarray(jax.random.uniform(k2, p.shape)) < p).astype(int))
            if first is None and exp.fit is not None:
                first = err(exp.fit, W)
        exp.refit()
        last = err(exp.fit, W)
        exp.close()
    return first, last, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--observers", type=int, default=8)
    ap.add_argument("--trials", type=int, nargs="+", default=[1500, 3000])
    ap.add_argument("--tau", type=float, default=0.3)
    ap.add_argument("--outlier", action="store_true")
    ap.add_argument("--new-trials", type=int, nargs="+", default=[100, 300])
    ap.add_argument("--session-trials", type=int, default=300)
    ap.add_argument("--basis-degree", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--one-tau", action="store_true")
    args = ap.parse_args(argv)
    print(machine_line())
    print("# python benchmarks/population.py " + " ".join(sys.argv[1:] if argv is None
                                                            else argv))
    model = pn.WPPM(input_dim=2, basis_degree=args.basis_degree)
    W_mean, Ws = draw_population(model, args.observers, args.tau, args.seed, args.outlier)
    k = args.observers
    print()
    print("| trials / observer | pooled error (mean) | independent error (mean) | "
          "pooled outlier | independent outlier | tau fitted | pooled (s) | independent (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    pop_first, notes = None, []
    for n in args.trials:
        datas = [simulate(model, W, n, args.seed * 1000 + 10 + i) for i, W in enumerate(Ws)]
        t0 = time.perf_counter()
        pop = pn.fit_population(datas, model, seed=args.seed, progress=False,
                                observer_scales=not args.one_tau)
        t_pop = time.perf_counter() - t0
        t0 = time.perf_counter()
        ind = pn.fit_map(datas, model, seed=args.seed, progress=False)
        t_ind = time.perf_counter() - t0
        e_pop = [err(f, W) for f, W in zip(pop.observers, Ws, strict=True)]
        e_ind = [err(f, W) for f, W in zip(ind, Ws, strict=True)]
        n_reg = k - 1 if args.outlier else k
        out = (f"{e_pop[-1]:.3f} | {e_ind[-1]:.3f}" if args.outlier else "- | -")
        print(f"| {n} | {np.mean(e_pop[:n_reg]):.3f} | {np.mean(e_ind[:n_reg]):.3f} | {out} "
              f"| {pop.tau:.3f} | {t_pop:.1f} | {t_ind:.1f} |", flush=True)
        pop_first = pop_first or pop
        notes.append(f"{n} trials: tau_i = {', '.join(f'{t:.3f}' for t in pop.observer_taus)}; "
                     "pooled fit seconds: " + ", ".join(f"{k} {v:.1f}"
                                                        for k, v in pop.timings.items()))
    print("\n" + "\n".join(notes))
    pop = pop_first
    print(f"\n(new observers: population fitted at {args.trials[0]} trials per observer; "
          f"field error of the population mean {err(pop.population, W_mean):.3f})\n")
    sd = model.prior_std()
    c = 1.0 / np.sqrt(1.0 + args.tau**2)
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(args.seed * 1000 + 555), sd.shape))
    new = {"from the population": W_mean + c * args.tau * sd * z,
           "outlier (independent prior draw)":
               np.asarray(model.sample_prior(jax.random.PRNGKey(args.seed * 1000 + 556))["W"])}
    print("| new observer | trials | warm (prior=pop) error | blank error | warm (s) | "
          "blank (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, W in new.items():
        for n in args.new_trials:
            data = simulate(model, W, n, args.seed * 1000 + 777)
            t0 = time.perf_counter()
            warm = pn.fit_map(data, prior=pop, seed=args.seed, progress=False)
            t_w = time.perf_counter() - t0
            t0 = time.perf_counter()
            blank = pn.fit_map(data, model, seed=args.seed, progress=False)
            t_b = time.perf_counter() - t0
            print(f"| {name} | {n} | {err(warm, W):.3f} | {err(blank, W):.3f} | {t_w:.1f} "
                  f"| {t_b:.1f} |", flush=True)
    if args.session_trials:
        print("\n| session (new observer from the population) | first refit error | "
              f"error at {args.session_trials} trials | wall (s) |")
        print("|---|---:|---:|---:|")
        W = new["from the population"]
        for name, prior in (("warm: Experiment(prior=pop)", pop), ("blank", None)):
            first, last, secs = session(model, W, args.session_trials, args.seed, prior)
            print(f"| {name} | {first:.3f} | {last:.3f} | {secs:.1f} |", flush=True)


if __name__ == "__main__":
    main()
