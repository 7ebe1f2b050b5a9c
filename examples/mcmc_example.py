"""NUTS on a small 2-D WPPM: posterior ellipse bands, trace and rank plots.

Simulates 1 500 oddity trials from a known basis-degree-2 field, fits it with
``pn.fit_mcmc`` (2 chains, started from a MAP fit), prints an ArviZ summary of
the identifiable covariances, and writes

- ``mcmc_ellipses.png``: 90% posterior bands of the covariance ellipses over
  the true ellipses and the MAP;
- ``mcmc_ppc.png``: posterior predictive check drawn from the ArviZ data
  (``to_arviz(posterior_predictive=True)``): observed vs predicted proportion
  correct in ten equal-count bins of predicted p, with the 90% interval of
  replicated data;
- ``mcmc_trace.png`` and ``mcmc_rank.png``: trace and rank plots of Sigma at
  the grid centre (ArviZ).

Figures are 300-dpi PNGs (``save_figure``).

About two minutes on a 2-core CPU. Run:
    python examples/mcmc_example.py --out-dir figures
"""

from __future__ import annotations

import argparse
import os
import time

import matplotlib

matplotlib.use("Agg")
import arviz as az  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import psyphy_numpyro as pn  # noqa: E402
from psyphy_numpyro.plotting import (  # noqa: E402
    COLORS,
    auto_scale,
    grid_points,
    plot_field,
    plot_field_band,
    plot_ppc,
    save_figure,
)
from psyphy_numpyro.plotting.field import scale_text  # noqa: E402


def simulate(model, truth, n, seed):
    """References uniform in the box, comparisons at Mahalanobis radius 1-4."""
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-1, 1, (n, 2))
    comp = pn.comparisons_at_radius(model, truth, ref, rng.uniform(1, 4, n), key=seed)
    return pn.simulate_trials(model, truth, ref, comp, key=seed + 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1500)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default="figures")
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)

    model = pn.WPPM(input_dim=2, basis_degree=2, num_samples=64)
    truth = model.sample_prior(4)
    data = simulate(model, truth, args.trials, args.seed)
    print(f"simulated {data}")

    t0 = time.perf_counter()
    map_fit = pn.fit_map(data, model, steps=800, num_restarts=2, seed=args.seed)
    t1 = time.perf_counter()
    post = pn.fit_mcmc(data, model, init=map_fit, num_warmup=args.warmup,
                       num_draws=args.samples, num_chains=args.chains, seed=args.seed)
    t2 = time.perf_counter()
    print(f"fit_map {t1 - t0:.1f} s, fit_mcmc {t2 - t1:.1f} s, "
          f"{post.divergences} divergences, surrogate {post.surrogate}")

    idata = post.to_arviz(log_likelihood=False, posterior_predictive=True)
    print(az.summary(idata, var_names=["Sigma"], coords={"grid_point": [0, 12, 24]}))

    grid = grid_points(5, -0.8, 0.8)
    S_true = np.asarray(model.covariance(truth, grid))
    scale = auto_scale(grid, S_true)
    fig, ax = plt.subplots(figsize=(8, 5.6), layout="constrained")
    plot_field_band(np.asarray(post.covariance(grid)), grid, ax=ax, scale=scale,
                    color=COLORS["blue"], label="NUTS 90% band")
    plot_field(S_true, grid, ax=ax, scale=scale, color=COLORS["black"], lw=1.5,
               label="ground truth")
    plot_field(np.asarray(map_fit.covariance(grid)), grid, ax=ax, scale=scale,
               color=COLORS["vermillion"], lw=1, ls="--", label="MAP")
    ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), xticks=[-1, -0.5, 0, 0.5, 1],
           yticks=[-1, -0.5, 0, 0.5, 1],
           title=f"Posterior covariance ellipses ({len(data)} trials)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False,
              title=scale_text(scale, model), title_fontsize=8, alignment="left")
    save_figure(fig, os.path.join(args.out_dir, "mcmc_ellipses.png"))
    plt.close(fig)

    fig = plot_ppc(idata, bins=10)  # from the ArviZ data: its posterior_predictive group
    save_figure(fig, os.path.join(args.out_dir, "mcmc_ppc.png"))
    plt.close(fig)

    centre = {"grid_point": [12]}
    az.plot_trace(idata, var_names=["Sigma"], coords=centre)
    plt.gcf().tight_layout()
    save_figure(plt.gcf(), os.path.join(args.out_dir, "mcmc_trace.png"))
    plt.close("all")
    az.plot_rank(idata, var_names=["Sigma"], coords=centre)
    plt.gcf().tight_layout()
    save_figure(plt.gcf(), os.path.join(args.out_dir, "mcmc_rank.png"))
    plt.close("all")
    print(f"wrote {args.out_dir}/mcmc_ellipses.png, mcmc_ppc.png, mcmc_trace.png, "
          "mcmc_rank.png")
    return post


if __name__ == "__main__":
    main()
