"""Time of one MAP gradient step, psyphy_numpyro vs psyphy 0.0.5, side by side.

Both sides time their real step on the same simulated 2-D data (default WPPM,
basis_degree 4): psyphy's jitted ``value_and_grad`` of the negative log
posterior plus the optax update (what ``MAPOptimizer.fit`` runs each step),
and ours the jitted NumPyro ``SVI.update`` that ``fit_map`` runs (fresh Monte
Carlo noise, AutoDelta guide, Adam). The median of ``--repeats`` timed steps
after one compiling call is reported, in milliseconds.

Run:  python benchmarks/step_time.py            (full grid, psyphy on the cheaper cells)
      python benchmarks/step_time.py --quick    (N = 4000, samples = 500 only)
      python benchmarks/step_time.py --trials 1000 --samples 500 2000   (some cells)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import optax
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoDelta
from numpyro.optim import optax_to_numpyro

import psyphy_numpyro as pn


def make_data(n, seed=0):
    model = pn.WPPM(input_dim=2)
    truth = model.sample_prior(seed)
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-0.9, 0.9, (n, 2))
    comp = np.clip(ref + rng.normal(0, 0.1, ref.shape), -1, 1)
    return truth, pn.simulate_trials(model, truth, ref, comp, key=seed)


def timed(fn, repeats):
    out = fn()
    jax.block_until_ready(out)  # compile + first run
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def ours_step(data, num_samples, estimator, repeats):
    model = pn.WPPM(input_dim=2, num_samples=num_samples, estimator=estimator)
    fn = partial(pn.wppm_model, config=model)
    svi = SVI(fn, AutoDelta(fn), optax_to_numpyro(optax.adam(1e-3)), Trace_ELBO())
    stim = jnp.asarray(data.stimuli, jnp.float32)
    y = jnp.asarray(data.responses)
    state = svi.init(jax.random.PRNGKey(0), stim, y)
    update = jax.jit(svi.update)
    holder = {"s": state}

    def step():
        holder["s"], loss = update(holder["s"], stim, y)
        return loss

    return timed(step, repeats)


def psyphy_step(data, params, num_samples, repeats):
    from psyphy import WPPM, GaussianNoise, OddityTask, Prior
    from psyphy.data.dataset import TrialData
    from psyphy.model.likelihood import OddityTaskConfig

    task = OddityTask(OddityTaskConfig(num_samples=num_samples, bandwidth=1e-2))
    model = WPPM(Prior(input_dim=2), task, GaussianNoise(), input_dim=2, diag_term=1e-4)
    td = TrialData(jnp.asarray(data.stimuli, jnp.float32), jnp.asarray(data.responses))
    opt = optax.sgd(5e-5, momentum=0.9)
    scale = 1.0 / len(data)

    @jax.jit
    def step(p, s, key):
        loss, g = jax.value_and_grad(
            lambda q: -scale * model.log_posterior_from_data(q, td, key=key)
        )(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    holder = {"p": {"W": jnp.asarray(params["W"])}, "k": jax.random.PRNGKey(0)}
    holder["s"] = opt.init(holder["p"])

    def run():
        holder["k"], sub = jax.random.split(holder["k"])
        holder["p"], holder["s"], loss = step(holder["p"], holder["s"], sub)
        return loss

    return timed(run, repeats)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--psyphy-max-work", type=float, default=4000 * 500,
                    help="skip psyphy where trials x samples exceeds this")
    ap.add_argument("--trials", type=int, nargs="+", default=[1000, 4000, 16000])
    ap.add_argument("--samples", type=int, nargs="+", default=[100, 500, 2000])
    args = ap.parse_args()
    grid = [(4000, 500)] if args.quick else [
        (n, m) for n in args.trials for m in args.samples
    ]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, backend "
          f"{jax.default_backend()}; jax {jax.__version__}, numpyro {numpyro.__version__}")
    print("| trials | samples | psyphy 0.0.5 (ms) | ours cv (ms) | ours reparam (ms) "
          "| speed-up (cv) |")
    print("|---|---|---|---|---|---|")
    for n, m in grid:
        truth, data = make_data(n)
        t_cv = ours_step(data, m, "cv", args.repeats)
        t_rp = ours_step(data, m, "reparam", args.repeats)
        if n * m <= args.psyphy_max_work:
            t_ps = psyphy_step(data, truth, m, max(2, args.repeats // 2))
            ratio = f"{t_ps / t_cv:.0f}x"
            ps = f"{t_ps:.0f}"
        else:
            ps, ratio = "not run", ""
        print(f"| {n} | {m} | {ps} | {t_cv:.1f} | {t_rp:.1f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
