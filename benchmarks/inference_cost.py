"""Wall time and field error of MAP, Laplace and NUTS on one simulated data set.

Prints a Markdown table. Data: 1 500 trials from a basis-degree-2 2-D WPPM
(the same set-up as examples/mcmc_example.py). Field error: mean relative
Frobenius error of the posterior-mean Sigma on a 7x7 grid over [-1, 1]^2;
coverage: fraction of true Sigma entries on that grid inside the 90%
posterior interval. NUTS runs twice: on the default table surrogate and on
the model's own "cv" estimator with 16 fixed QMC draws per trial.

Run:  python benchmarks/inference_cost.py
"""

from __future__ import annotations

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


def simulate(model, truth, n, seed):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-1, 1, (n, 2))
    comp = pn.comparisons_at_radius(model, truth, ref, rng.uniform(1, 4, n), key=seed)
    return pn.simulate_trials(model, truth, ref, comp, key=seed + 1)


def scores(S_draws, S_true):
    S_mean = S_draws.mean(0)
    err = np.mean(np.linalg.norm(S_mean - S_true, axis=(1, 2))
                  / np.linalg.norm(S_true, axis=(1, 2)))
    if S_draws.shape[0] == 1:
        return err, float("nan")
    lo, hi = np.percentile(S_draws, [5, 95], axis=0)
    return err, float(((S_true >= lo) & (S_true <= hi)).mean())


def main():
    model = pn.WPPM(input_dim=2, basis_degree=2, num_samples=64)
    truth = model.sample_prior(4)
    data = simulate(model, truth, 1500, seed=0)
    grid = grid_points(7, -1.0, 1.0)
    S_true = np.asarray(model.covariance(truth, grid))
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t = time.perf_counter()
        fit = pn.fit_map(data, model, steps=800, num_restarts=2)
        t_map = time.perf_counter() - t
        rows.append(("fit_map (800 steps x 2 restarts)", t_map,
                     *scores(np.asarray(fit.covariance(grid))[None], S_true)))
        t = time.perf_counter()
        lap = pn.fit_laplace(data, model, init=fit)
        t_lap = time.perf_counter() - t
        rows.append(("fit_laplace (after the MAP, 1000 draws)", t_lap,
                     *scores(np.asarray(lap.covariance(grid)), S_true)))
        t = time.perf_counter()
        post = pn.fit_mcmc(data, model, init=fit, num_warmup=300, num_draws=300, num_chains=2)
        t_nuts = time.perf_counter() - t
        rows.append(("fit_mcmc (after the MAP, 2 x (300 + 300), table surrogate)", t_nuts,
                     *scores(np.asarray(post.covariance(grid)), S_true)))
        t = time.perf_counter()
        post16 = pn.fit_mcmc(data, model, init=fit, num_warmup=300, num_draws=300,
                             num_chains=2, surrogate_samples=16)
        t_nuts16 = time.perf_counter() - t
        rows.append(("fit_mcmc (same, surrogate_samples=16)", t_nuts16,
                     *scores(np.asarray(post16.covariance(grid)), S_true)))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"jax {jax.__version__}, numpyro {numpyro.__version__}, {jax.default_backend()}")
    print("| method | wall time (s) | field error | 90% coverage |")
    print("|---|---|---|---|")
    for name, sec, err, cov in rows:
        print(f"| {name} | {sec:.1f} | {err:.3f} | {cov:.2f} |")
    for name, p in (("table", post), ("surrogate_samples=16", post16)):
        print(f"NUTS ({name}): {p.divergences} divergences, max r_hat(Sigma) "
              f"{p.surrogate['max_rhat_sigma']:.3f}, surrogate RMS error "
              f"{p.surrogate['rms_error']:.3f}")


if __name__ == "__main__":
    main()
