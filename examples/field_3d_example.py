"""A 3-D observer (an RGB-like colour space): slices of the field, threshold slices, a PPC.

Simulates oddity trials from a known 3-D WPPM (basis degree 2), fits it with
``pn.fit_map`` and ``pn.fit_laplace``, and writes 300-dpi PNGs (``--pdf``
adds PDFs) to ``--out-dir``:

- ``field_3d.png``: ``plot_fit`` of the Laplace fit -- three orthogonal slices
  through the centre, each a 5 x 5 grid of covariance ellipses (sections of
  the ellipsoids by the slice, posterior median and 90% band) with the ground
  truth drawn at the same scale;
- ``thresholds_3d.png``: ``plot_thresholds`` of the 2/3-correct threshold
  ellipsoids around a 3 x 3 x 3 grid of references, cut by the three slices
  (Laplace 90% ribbon and median; ground truth in black), at a stated scale
  chosen so that neighbours do not overlap;
- ``ppc_3d.png``: ``plot_ppc`` of the Laplace fit, observed vs predicted
  proportion correct in ten equal-count bins of predicted p(correct).

About six minutes on a shared 2-core CPU (measured: fits 221 s, thresholds 134 s). Run:
    python examples/field_3d_example.py --out-dir figures
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import psyphy_numpyro as pn  # noqa: E402
from psyphy_numpyro.arviz_io import default_grid  # noqa: E402
from psyphy_numpyro.plotting import (  # noqa: E402
    COLORS,
    SLICE_PLANES,
    auto_scale,
    figure_legend,
    grid_points,
    plane_covariances,
    plot_field,
    plot_fit,
    plot_ppc,
    plot_thresholds,
    save_figure,
    threshold_scale,
)
from psyphy_numpyro.plotting.field import scale_text  # noqa: E402


def _save(fig, out_dir, stem, pdf):
    for ext in ("png", "pdf") if pdf else ("png",):
        save_figure(fig, os.path.join(out_dir, f"{stem}.{ext}"))
    plt.close(fig)


def slice_points(through, points_per_axis=5):
    """The grid of each of :data:`SLICE_PLANES` through ``through``: (3, G, 3)."""
    g2 = grid_points(points_per_axis)
    pts = np.repeat(np.asarray(through, float)[None, None], 3, 0).repeat(len(g2), 1)
    for p, plane in enumerate(SLICE_PLANES):
        pts[p][:, list(plane)] = g2
    return pts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=3000)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--draws", type=int, default=40, help="Laplace draws used for read-outs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default="figures")
    ap.add_argument("--pdf", action="store_true", help="also write every figure as PDF")
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)

    model = pn.WPPM(input_dim=3, basis_degree=2, num_samples=64)
    truth = model.sample_prior(args.seed + 7)
    data = pn.simulate_experiment(model, truth, args.trials, key=args.seed)
    print(f"simulated {data}")
    t0 = time.perf_counter()
    fit = pn.fit_map(data, model, steps=args.steps, num_restarts=2, seed=args.seed)
    post = pn.fit_laplace(data, model, init=fit, num_draws=args.draws, seed=args.seed)
    t1 = time.perf_counter()
    print(f"fit_map + fit_laplace {t1 - t0:.1f} s; field error (MAP) "
          f"{pn.field_error(model, fit.params, truth):.3f}")

    # the covariance field: three slices through the centre, the truth at the same scale
    pts = slice_points(np.zeros(3))
    S_true = np.asarray(model.covariance(truth, pts))  # (3, 25, 3, 3)
    sections = np.concatenate([plane_covariances(S_true[p], plane)
                               for p, plane in enumerate(SLICE_PLANES)])
    scale = auto_scale(grid_points(5), sections)
    fig = plot_fit(post, scale=scale)
    for p, (plane, ax) in enumerate(zip(SLICE_PLANES, fig.axes[:3], strict=True)):
        plot_field(S_true[p], pts[p], ax=ax, plane=plane, scale=scale, color=COLORS["black"],
                   lw=0.8, ls="--", label="ground truth" if p == 0 else None)
    fig.legends[0].remove()  # again, with the truth in it
    figure_legend(fig, fig.axes[:3], scale_text(scale, model))
    _save(fig, args.out_dir, "field_3d", args.pdf)

    # thresholds around a 3 x 3 x 3 grid, cut by the three slices through the centre
    refs = default_grid(3, 3) * 0.75
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rays leaving the domain
        th_post = pn.thresholds(post, refs, num_directions=24)
        th_true = pn.thresholds((model, truth), refs, num_directions=24)
    t2 = time.perf_counter()
    print(f"thresholds ({post.num_draws} draws + truth, {len(refs)} references) {t2 - t1:.1f} s")
    scale = threshold_scale(th_post)
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 5.2), layout="constrained")
    plot_thresholds(th_post, ax=axes, draws="ribbon", scale=scale, show_refs=False,
                    label="Laplace median")
    plot_thresholds(th_true, ax=axes, color=COLORS["black"], scale=scale, lw=0.9, ls="--",
                    label="ground truth")
    for ax in axes:
        ax.set(xlim=(-1, 1), ylim=(-1, 1), xticks=[-1, -0.5, 0, 0.5, 1],
               yticks=[-1, -0.5, 0, 0.5, 1])
    figure_legend(fig, axes, f"ellipses: 66.7%-correct thresholds, drawn at {scale:.3g} x "
                  "true size; "
                  "sections of the threshold ellipsoids by each slice")
    fig.suptitle(f"2/3-correct thresholds of a 3-D observer ({len(data)} trials, Laplace fit)")
    _save(fig, args.out_dir, "thresholds_3d", args.pdf)

    fig = plot_ppc(post, bins=10)
    _save(fig, args.out_dir, "ppc_3d", args.pdf)
    print(f"figures written to {args.out_dir}/ ({time.perf_counter() - t0:.1f} s total)")
    return post


if __name__ == "__main__":
    main()
