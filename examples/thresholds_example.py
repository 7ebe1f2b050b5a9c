"""Reading out thresholds: threshold ellipses and psychometric functions with uncertainty.

Simulates 2-D oddity trials from a known basis-degree-2 field, fits it with
``pn.fit_map`` and ``pn.fit_laplace``, and reads out the 2/3-correct
threshold contours around a 3x3 grid of references and the psychometric
functions along a few directions. Writes to ``--out-dir``:

- ``thresholds_trials.png``: the simulated trials (reference, comparison,
  correct/incorrect);
- ``thresholds_map.png``: MAP threshold ellipses over the ground truth;
- ``thresholds_posterior.png``: Laplace posterior (90% ribbon of the
  ellipses, median on top) over the ground truth;
- ``thresholds_psychometric.png``: psychometric functions at the centre
  reference along three directions (posterior 90% band, truth, and binned
  proportions of the observed trials near each ray);
- ``thresholds_ppc.png``: posterior predictive check of the Laplace fit,
  observed vs predicted proportion correct in bins of reference-comparison
  distance.

Every figure is a 300-dpi PNG (``save_figure``); ``--pdf`` adds PDFs.

About a minute on a 2-core CPU. Run:
    python examples/thresholds_example.py --out-dir figures
"""

from __future__ import annotations

import argparse
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import psyphy_numpyro as pn  # noqa: E402
from psyphy_numpyro.plotting import (  # noqa: E402
    COLORS,
    grid_points,
    plot_ppc,
    plot_psychometric,
    plot_thresholds,
    plot_trials,
    save_figure,
    threshold_scale,
)

TICKS = [-1, -0.5, 0, 0.5, 1]


def _save(fig, out_dir, stem, pdf):
    for ext in ("png", "pdf") if pdf else ("png",):
        save_figure(fig, os.path.join(out_dir, f"{stem}.{ext}"))
    plt.close(fig)


def _legend(ax, title=None):
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False,
              title=title, title_fontsize=8, alignment="left")


def simulate(model, truth, n, seed):
    """References uniform in the box, comparisons at Mahalanobis radius 1-4."""
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-0.9, 0.9, (n, 2))
    comp = pn.comparisons_at_radius(model, truth, ref, rng.uniform(1, 4, n), key=seed)
    return pn.simulate_trials(model, truth, ref, comp, key=seed + 1)


def trials_near_ray(data, ref, direction, *, radius=0.25, max_angle_deg=20.0):
    """(distance, response) of trials whose reference is near ``ref`` and whose
    comparison lies within ``max_angle_deg`` of ``direction``."""
    r, c, y = data.ref, data.comparison, data.responses
    step = c - r
    dist = np.linalg.norm(step, axis=1)
    cosang = step @ direction / np.maximum(dist, 1e-12)
    keep = (np.linalg.norm(r - ref, axis=1) < radius) & (cosang > np.cos(np.radians(max_angle_deg)))
    return dist[keep], y[keep]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1500)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--draws", type=int, default=100, help="Laplace draws used for read-outs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default="figures")
    ap.add_argument("--pdf", action="store_true", help="also write every figure as PDF")
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)

    model = pn.WPPM(input_dim=2, basis_degree=2, num_samples=64)
    truth = model.sample_prior(4)
    data = simulate(model, truth, args.trials, args.seed)
    print(f"simulated {data}")

    t0 = time.perf_counter()
    fit = pn.fit_map(data, model, steps=args.steps, num_restarts=2, seed=args.seed)
    t1 = time.perf_counter()
    post = pn.fit_laplace(data, model, init=fit, num_draws=args.draws, seed=args.seed)
    t2 = time.perf_counter()
    print(f"fit_map {t1 - t0:.1f} s, fit_laplace {t2 - t1:.1f} s")

    refs = grid_points(3, -0.5, 0.5)
    th_true = pn.thresholds((model, truth), refs)
    th_map = pn.thresholds(fit, refs)
    th_post = pn.thresholds(post, refs)
    t3 = time.perf_counter()
    print(f"thresholds (truth, MAP, {post.num_draws} draws) {t3 - t2:.1f} s")
    rel = np.abs(th_map.lengths / th_true.lengths - 1)
    inside = (th_post.interval[0] <= th_true.lengths) & (th_true.lengths <= th_post.interval[1])
    print(f"MAP threshold error vs truth: median {100 * np.nanmedian(rel):.1f}%, "
          f"90th percentile {100 * np.nanpercentile(rel, 90):.1f}%; "
          f"true length inside the 90% interval on {100 * np.mean(inside):.0f}% of rays")

    fig, ax = plt.subplots(figsize=(7.4, 6), layout="constrained")
    plot_trials(data, ax=ax, max_trials=400)
    ax.set(xticks=TICKS, yticks=TICKS)
    ax.set_title(f"{len(data)} simulated trials (400 shown)")
    _legend(ax)
    _save(fig, args.out_dir, "thresholds_trials", args.pdf)

    # one scale for truth and fit, chosen so that neighbouring ellipses do not overlap
    scale = threshold_scale(th_true)
    note = f"ellipses: 66.7%-correct thresholds, drawn at {scale:.3g} x true size"
    fig, ax = plt.subplots(figsize=(8, 6), layout="constrained")
    plot_thresholds(th_true, ax=ax, color=COLORS["black"], show_points=False, scale=scale,
                    label="ground truth")
    plot_thresholds(th_map, ax=ax, color=COLORS["vermillion"], ls="--", scale=scale,
                    show_refs=False, label="MAP")
    ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), xticks=TICKS, yticks=TICKS)
    ax.set_title("2/3-correct threshold ellipses: MAP")
    _legend(ax, note)
    _save(fig, args.out_dir, "thresholds_map", args.pdf)

    fig, ax = plt.subplots(figsize=(8, 6), layout="constrained")
    plot_thresholds(th_post, ax=ax, draws="ribbon", color=COLORS["blue"], show_points=False,
                    scale=scale, label="Laplace median")
    plot_thresholds(th_true, ax=ax, color=COLORS["black"], show_points=False, show_refs=False,
                    lw=1, scale=scale, label="ground truth")
    ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), xticks=TICKS, yticks=TICKS)
    ax.set_title("Threshold ellipses: Laplace posterior (90% ribbon)")
    _legend(ax, note)
    _save(fig, args.out_dir, "thresholds_posterior", args.pdf)

    ref = np.zeros(2)
    angles = np.radians([0.0, 60.0, 120.0])
    fig, axes = plt.subplots(1, len(angles), figsize=(12, 4.2), sharey=True,
                             layout="constrained")
    for ax, a in zip(axes, angles, strict=True):
        u = np.array([np.cos(a), np.sin(a)])
        t_edge = float(pn.readout.ray_extent(ref, u))
        t = np.linspace(0.0, min(0.5, t_edge), 60)
        p_post = pn.psychometric(post, ref, u, t)
        p_true = pn.psychometric((model, truth), ref, u, t)
        plot_psychometric(t, p_post, ax=ax, data=trials_near_ray(data, ref, u), bins=8,
                          target=2 / 3, label="Laplace median")
        ax.plot(t, p_true, color=COLORS["black"], lw=1, label="ground truth")
        ax.set_title(f"direction {np.degrees(a):.0f} deg from the x axis")
        if ax is not axes[0]:
            ax.set_ylabel("")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=9,
               frameon=False, title="dotted: 2/3 correct; observed: trials within 20 deg of "
               "the ray, references within 0.25", title_fontsize=9)
    _save(fig, args.out_dir, "thresholds_psychometric", args.pdf)

    fig = plot_ppc(post, by="distance", bins=10)
    _save(fig, args.out_dir, "thresholds_ppc", args.pdf)
    print(f"figures written to {args.out_dir}/ ({time.perf_counter() - t0:.1f} s total)")


if __name__ == "__main__":
    main()
