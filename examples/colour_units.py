"""Stimuli in a colour lab's own units: CIE 1931 xy chromaticities, thresholds as ΔE2000.

A simulated observer discriminates chromaticities around (0.31, 0.33) at a
fixed luminance. Its covariance field is written directly in xy, with
MacAdam-like thresholds (0.003-0.01, ellipses tilted by 30-60 degrees and
elongated towards the yellow-blue direction); 2 000 oddity trials are stored
in xy, as a lab stores them (comparisons 0.002-0.02 away from their
reference). The trials are written to a CSV, read back with a colour space
(``pn.StimulusSpace.colour("xy", ...)``), fitted with ``pn.fit_map`` and the
thresholds read out in xy and as CIEDE2000 colour differences. Writes to
``--out-dir``:

- ``colour_units_trials.csv`` (+ ``.space.json``): the trials in xy;
- ``colour_units_thresholds.png``: fitted and true threshold ellipses in xy,
  over the trials;
- ``colour_units_field.png``: ``plot_fit`` of the fit (drawn in xy).

Prints a table of thresholds (semi-axes and angle in xy, ΔE2000 along the
major and minor axes) against the truth. A couple of minutes on a 2-core CPU:
    python examples/colour_units.py --out-dir figures
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
    plot_fit,
    plot_thresholds,
    save_figure,
)
from psyphy_numpyro.plotting.field import ellipse_points  # noqa: E402

CENTRE = np.array([0.31, 0.33])
LO, HI = np.array([0.24, 0.26]), np.array([0.38, 0.40])
Y = 0.4  # the stimuli's luminance relative to the D65 white (for ΔE)


def true_covariance(x):
    """The observer's noise covariance in xy: sd 0.0022-0.0055, orientation 30-60 deg."""
    x = np.atleast_2d(x)
    u = (x - CENTRE) / 0.07  # about [-1, 1] over the region
    major = 0.0038 + 0.0012 * u[:, 0] + 0.0005 * u[:, 1]
    minor = 0.0021 + 0.0004 * u[:, 1]
    theta = np.radians(45.0 + 15.0 * u[:, 0] - 5.0 * u[:, 1])
    c, s = np.cos(theta), np.sin(theta)
    R = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    D = np.stack([np.stack([major**2, 0 * major], -1), np.stack([0 * minor, minor**2], -1)], -2)
    return R @ D @ np.swapaxes(R, -1, -2)


def threshold_radius(target=2 / 3, n=50_000, seed=1):
    """Mahalanobis distance at which the oddity p(correct) of a locally constant field is
    ``target`` (the true threshold ellipse is radius**2 * Sigma)."""
    lo, hi = 0.2, 5.0
    for _ in range(16):
        mid = 0.5 * (lo + hi)
        d = pn.simulate_observer(lambda x: np.broadcast_to(np.eye(2) * 1e-4, x.shape + (2,)),
                                 np.zeros((n, 2)), np.tile([mid * 1e-2, 0.0], (n, 1)),
                                 key=seed, num_samples=1)
        if d.responses.mean() < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def ellipse_axes(E):
    lam, vec = np.linalg.eigh(E)
    angle = np.degrees(np.arctan2(vec[..., 1, 1], vec[..., 0, 1])) % 180
    return np.sqrt(lam[..., 1]), np.sqrt(lam[..., 0]), angle


def main(out_dir=".", num_trials=2000, seed=0):
    t0 = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    # -- the lab's trials, in xy --------------------------------------------------------
    ref = CENTRE + rng.uniform(-0.05, 0.05, (num_trials, 2))
    angle = rng.uniform(0, np.pi, num_trials)
    dist = np.exp(rng.uniform(np.log(0.002), np.log(0.02), num_trials))
    comp = ref + dist[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
    sim = pn.simulate_observer(true_covariance, ref, comp, key=seed)
    space = pn.StimulusSpace.colour("xy", lo=LO, hi=HI, Y=Y)
    lab_data = pn.TrialData(sim.stimuli, sim.responses, space=space)
    csv = os.path.join(out_dir, "colour_units_trials.csv")
    lab_data.to_csv(csv)  # xy in the file, the space in colour_units_trials.csv.space.json
    data = pn.TrialData.from_csv(csv, space=space)
    print(f"{len(data)} trials in xy, {data.responses.mean():.3f} correct; space: {space!r}")

    # -- fit in the box, read out in xy -----------------------------------------------
    fit = pn.fit_map(data, seed=seed, progress=False)
    refs = CENTRE + 0.035 * np.array([[i, j] for j in (1, 0, -1) for i in (-1, 0, 1)])
    th = pn.thresholds(fit, refs, num_directions=24)
    k = threshold_radius()
    E_true = k**2 * true_covariance(refs)
    fa, fb, fang = ellipse_axes(th.ellipses)
    ta, tb, tang = ellipse_axes(E_true)
    # ΔE2000 of the threshold along each fitted ellipse's major and minor axes
    lam, vec = np.linalg.eigh(th.ellipses)
    de_major = space.delta_e(refs, refs + np.sqrt(lam[:, 1:]) * vec[:, :, 1])
    de_minor = space.delta_e(refs, refs + np.sqrt(lam[:, :1]) * vec[:, :, 0])
    de_rays = th.delta_e("CIE 2000")
    print(f"\nthresholds at p(correct) = 2/3 (true: Mahalanobis radius {k:.3f} of Sigma)")
    print("   ref x   ref y | semi-axes (xy) fit      true      | angle fit true | "
          "ΔE2000 major minor  (rays: min-max)")
    for r in range(len(refs)):
        print(f"  {refs[r, 0]:.4f} {refs[r, 1]:.4f} | {fa[r]:.4f} {fb[r]:.4f}   "
              f"{ta[r]:.4f} {tb[r]:.4f} | {fang[r]:5.1f} {tang[r]:5.1f}   | "
              f"{de_major[r]:.3f} {de_minor[r]:.3f}  ({np.nanmin(de_rays[r]):.3f}-"
              f"{np.nanmax(de_rays[r]):.3f})")
    rel = np.abs(np.concatenate([fa / ta, fb / tb]) - 1)
    print(f"semi-axes: median relative error {np.median(rel):.2f}; angles: median |error| "
          f"{np.median(np.abs((fang - tang + 90) % 180 - 90)):.1f} deg")

    # -- figures, in xy ------------------------------------------------------------------
    fig, ax = plt.subplots(figsize=(8.6, 6.4), layout="constrained")
    s = data.stimuli
    ax.scatter(s[:, 1, 0], s[:, 1, 1], s=2, color="0.8", label="comparisons", zorder=1)
    for i, E in enumerate(E_true):
        p = ellipse_points(refs[i], E)
        ax.plot(p[:, 0], p[:, 1], color=COLORS["vermillion"], lw=1.2, ls="--",
                label="observer (truth)" if i == 0 else None)
    plot_thresholds(th, ax=ax, label="fit_map", show_points=False)
    ax.set_xlim(LO[0] + 0.02, HI[0] - 0.02)
    ax.set_ylim(LO[1] + 0.02, HI[1] - 0.02)
    ax.set_aspect("equal")
    ax.set_title("66.7%-correct thresholds in CIE 1931 xy (true size)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    save_figure(fig, os.path.join(out_dir, "colour_units_thresholds.png"), dpi=150)
    plt.close(fig)
    fig = plot_fit(fit)
    save_figure(fig, os.path.join(out_dir, "colour_units_field.png"), dpi=150)
    plt.close(fig)
    print(f"\nfigures in {out_dir}; {time.perf_counter() - t0:.0f} s")
    return {"fit": fit, "thresholds": th, "truth": E_true, "delta_e": de_rays}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default=".")
    parser.add_argument("--num-trials", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    a = parser.parse_args()
    main(a.out_dir, a.num_trials, a.seed)
