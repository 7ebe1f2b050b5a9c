"""Full WPPM fit: simulate a 2-D observer, fit MAP, plot the ellipses.

The psyphy tutorial "Full WPPM fit", end to end with psyphy_numpyro:

1. a ground-truth 2-D WPPM (basis_degree 4, extra_dims 1, decay_rate 0.4,
   variance_scale 4e-3) drawn from the prior;
2. a 5 x 5 grid of references in [-1, 1]^2, comparisons at Mahalanobis
   radius 2.8 (under the truth) along random directions, clipped to the domain;
3. oddity responses simulated from the truth;
4. a MAP fit (diag_term 1e-4) with ``pn.fit_map``;
5. figures (300-dpi PNG, and PDF with ``--pdf``): truth, the starting point
   (0.3 x a prior draw) and the MAP field as ellipses on one axis
   (``wppm_ellipses``), the learning curve of every restart on log axes
   (``learning_curve``), and a posterior predictive check of the fit: observed
   against predicted proportion correct in ten equal-count bins (``wppm_ppc``).

The defaults run on a 2-core CPU in a few minutes. Scale up to the tutorial's
size on a GPU with e.g. ``--trials-per-ref 4000 --num-samples 1000 --steps 4000``.

Run:  python examples/full_wppm_fit_example.py --out-dir figures
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import psyphy_numpyro as pn  # noqa: E402
from psyphy_numpyro.plotting import (  # noqa: E402
    COLORS,
    auto_scale,
    grid_points,
    plot_field,
    plot_learning_curve,
    plot_ppc,
    save_figure,
)
from psyphy_numpyro.plotting.field import scale_text  # noqa: E402


def make_trials(truth_model, truth, trials_per_ref, radius, seed):
    """References on a 5x5 grid, comparisons at Mahalanobis ``radius`` in random directions."""
    ref = np.repeat(grid_points(5, -0.8, 0.8), trials_per_ref, axis=0)
    comparison = pn.comparisons_at_radius(truth_model, truth, ref, radius, key=seed)
    return ref, comparison


def field_error(model, params, truth, grid):
    """Mean relative Frobenius error of Sigma over ``grid``."""
    S_true = np.asarray(model.covariance(truth, grid))
    S_fit = np.asarray(model.covariance(params, grid))
    return float(
        np.mean(np.linalg.norm(S_fit - S_true, axis=(1, 2)) / np.linalg.norm(S_true, axis=(1, 2)))
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials-per-ref", type=int, default=80, help="trials per reference (25 refs)")
    ap.add_argument("--num-samples", type=int, default=128, help="Monte Carlo samples per trial")
    ap.add_argument("--steps", type=int, default=1500, help="SVI steps per restart")
    ap.add_argument("--restarts", type=int, default=2, help="MAP restarts")
    ap.add_argument("--radius", type=float, default=2.8, help="Mahalanobis radius of comparisons")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default="figures")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--pdf", action="store_true", help="also write every figure as PDF")
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)

    truth_model = pn.WPPM(input_dim=2, basis_degree=4, extra_dims=1,
                          variance_scale=4e-3, decay_rate=0.4, diag_term=1e-4)
    truth = truth_model.sample_prior(jax.random.PRNGKey(args.seed))
    ref, comparison = make_trials(truth_model, truth, args.trials_per_ref, args.radius, args.seed)
    data = pn.simulate_trials(truth_model, truth, ref, comparison, key=args.seed + 1)
    print(f"simulated {data}")

    model = truth_model.replace(num_samples=args.num_samples)
    t0 = time.perf_counter()
    fit = pn.fit_map(data, model, steps=args.steps, num_restarts=args.restarts,
                     seed=args.seed, progress=not args.no_progress)
    elapsed = time.perf_counter() - t0
    init = fit.init_params

    g7 = grid_points(7, -1.0, 1.0)
    err_fit = field_error(model, fit.params, truth, g7)
    err_init = field_error(model, init, truth, g7)
    print(f"fit_map: {elapsed:.1f} s; field error (7x7 grid, mean rel. Frobenius): "
          f"start (0.3 x prior draw) {err_init:.3f} -> MAP {err_fit:.3f}")

    grid = grid_points(5, -0.8, 0.8)
    S_true = np.asarray(model.covariance(truth, grid))
    # one scale for the three fields: the largest true ellipse fills 0.4 of the grid spacing
    scale = auto_scale(grid, S_true)
    fig, ax = plt.subplots(figsize=(8.2, 5.6), layout="constrained")
    plot_field(S_true, grid, ax=ax, scale=scale, color=COLORS["black"], lw=2.2,
               label="ground truth")
    plot_field(np.asarray(model.covariance(init, grid)), grid, ax=ax, scale=scale,
               color="0.55", ls="--", lw=1, label="start (0.3 x prior draw)")
    plot_field(np.asarray(fit.covariance(grid)), grid, ax=ax, scale=scale,
               color=COLORS["vermillion"], lw=1.5, label=f"MAP fit (error {err_fit:.2f})")
    ax.scatter(grid[:, 0], grid[:, 1], s=6, color="k")
    ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), xticks=[-1, -0.5, 0, 0.5, 1],
           yticks=[-1, -0.5, 0, 0.5, 1],
           title=f"WPPM covariance ellipses ({len(data)} trials)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False,
              title=scale_text(scale, model), title_fontsize=8, alignment="left")
    paths = _save(fig, args.out_dir, "wppm_ellipses", args.pdf)

    fig, ax = plt.subplots(figsize=(7.5, 3.8), layout="constrained")
    plot_learning_curve(fit, ax=ax)
    ax.set_title(f"fit_map learning curves ({args.restarts} restarts)")
    paths += _save(fig, args.out_dir, "learning_curve", args.pdf)

    fig = plot_ppc(fit, bins=10)
    paths += _save(fig, args.out_dir, "wppm_ppc", args.pdf)
    print("wrote " + ", ".join(paths))
    return fit, err_fit, err_init


def _save(fig, out_dir, stem, pdf):
    """300-dpi PNG (and PDF) of ``fig``; returns the paths."""
    paths = [os.path.join(out_dir, f"{stem}.{ext}") for ext in (("png", "pdf") if pdf else
                                                                ("png",))]
    for path in paths:
        save_figure(fig, path)
    plt.close(fig)
    return paths


if __name__ == "__main__":
    main()
