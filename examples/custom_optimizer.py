"""Build your own MAP optimiser: a from-scratch optax loop on the WPPM's SVI loss.

psyphy's documentation page "Build your own optimizer with jax" writes MAP
estimation as a short loop: a loss, ``jax.value_and_grad``, an optax
optimiser (SGD with momentum), ``jax.jit``, a loss history. This example runs
that loop on psyphy_numpyro's objective, :meth:`psyphy_numpyro.MAP.loss`:
NumPyro's ``Trace_ELBO`` of the ``AutoDelta`` guide on the WPPM model (its
negative log joint, weights decentred by ``LocScaleReparam``), the loss
``numpyro.infer.SVI`` steps on (``problem.svi``). It then checks the loop
against :func:`psyphy_numpyro.fit_map` run with the same optimiser and seed
(``SVI.update`` with that optax transformation): the two are the same
computation, so their loss histories and fields agree.

Run ``python examples/custom_optimizer.py --out-dir figures`` (about a minute
on a laptop CPU); it writes ``custom_optimizer_loss.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import numpy as np
import optax

import psyphy_numpyro as pn


def my_map_loop(problem, data, optimizer, steps, seed):
    """MAP by hand: returns ``({"W": ...}, loss history)``."""
    trials = problem.trials(data)  # padded trials, a pytree of arrays

    @jax.jit
    def step(z, opt_state, trials, key):
        loss, grad = jax.value_and_grad(problem.loss)(z, trials, key)
        updates, opt_state = optimizer.update(grad, opt_state, z)
        return optax.apply_updates(z, updates), opt_state, loss

    # the key layout fit_map uses for restart 0, so the two runs can be compared
    k_init, key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), 0))
    z = problem.init_z(k_init)  # 0.3 x a prior draw, in units of prior sd
    opt_state = optimizer.init(z)
    history = []
    for _ in range(steps):
        key, sub = jax.random.split(key)
        z, opt_state, loss = step(z, opt_state, trials, sub)
        history.append(float(loss))
    return problem.params(z), np.asarray(history)


def run(num_trials=2000, steps=500, seed=0, learning_rate=1e-3, out_dir=None):
    """Fit by hand and with ``fit_map``; returns a dict of the results."""
    model = pn.WPPM(input_dim=2, basis_degree=3, num_samples=32)
    truth = model.sample_prior(jax.random.PRNGKey(seed + 100))
    data = pn.simulate_experiment(model, truth, num_trials, key=seed + 1)

    # SGD with momentum on z = W / prior_sd; the loss is a sum over trials,
    # so the step size is per trial-sized gradient
    optimizer = optax.sgd(learning_rate, momentum=0.9)
    params, history = my_map_loop(pn.MAP(model), data, optimizer, steps, seed)

    fit = pn.fit_map(data, model, optimizer=optimizer, steps=steps, num_restarts=1,
                     seed=seed, progress=False)
    grid = np.stack(np.meshgrid(np.linspace(-0.9, 0.9, 7), np.linspace(-0.9, 0.9, 7)), -1)
    grid = grid.reshape(-1, 2)
    S_mine = np.asarray(model.covariance(params, grid))
    S_fit = np.asarray(fit.covariance(grid))
    out = {
        "history": history,
        "fit_history": fit.loss_history,
        "max_rel_diff_sigma": float(np.max(np.abs(S_mine - S_fit) / np.abs(S_fit).max())),
        "field_error_mine": pn.field_error(model, params, truth),
        "field_error_fit_map": pn.field_error(model, fit.params, truth),
        "field_error_default": pn.field_error(
            model, pn.fit_map(data, model, steps=steps, seed=seed, progress=False).params, truth
        ),
    }
    if out_dir is not None:
        _plot(out, Path(out_dir), num_trials)
    return out


def _plot(out, out_dir, n):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from psyphy_numpyro.plotting import COLORS, save_figure

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7.8, 3.6), constrained_layout=True)
    steps = np.arange(1, len(out["history"]) + 1)
    ax.plot(steps, out["history"] / n, lw=2.5, color=COLORS["blue"],
            label="my loop (optax SGD + momentum)")
    ax.plot(steps, out["fit_history"] / n, lw=1.2, ls="--", color=COLORS["orange"],
            label="fit_map, same optimiser and seed")
    ax.set_xscale("log")
    ax.set_xlabel("step (one stochastic evaluation each; log scale)")
    ax.set_ylabel("SVI loss (negative log joint) per trial")
    ax.set_title("A from-scratch MAP loop on the WPPM objective")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    path = out_dir / "custom_optimizer_loss.png"
    save_figure(fig, path)
    plt.close(fig)
    print(f"wrote {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default="figures")
    args = ap.parse_args()
    out = run(args.trials, args.steps, args.seed, out_dir=args.out_dir)
    print(f"max |Sigma_mine - Sigma_fit_map| / max |Sigma|: {out['max_rel_diff_sigma']:.2e}")
    print(f"field error: my loop {out['field_error_mine']:.3f}, fit_map with the same "
          f"optimiser {out['field_error_fit_map']:.3f}, fit_map defaults "
          f"{out['field_error_default']:.3f}")


if __name__ == "__main__":
    main()
