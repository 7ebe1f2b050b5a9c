"""Threshold error of the default route on observers of very different scales (not WPPMs).

Each observer is a smooth, anisotropic covariance field that is not a draw
from the WPPM prior: ``Sigma(x) = s(x)^2 R(theta(x)) diag(1, rho(x)^2) R'``,
its size varying about 4x and its shape and orientation across the plane,
scaled so that the median 66.7% threshold is 0.005, 0.05 or 0.3 in
``[-1, 1]`` units. Trials: uniform references in [-0.8, 0.8]^2, comparisons
at a Mahalanobis radius uniform in (1, 4) under the true field along a random
direction (the psychometric range), simulated with
``pn.simulate_observer``. Fits: ``fit_map(data)`` (hyperparameters from the
data) and ``fit_map(data, WPPM())`` (the fixed defaults). Errors: fitted vs
true thresholds along 8 directions at a 5 x 5 grid of references.

Run: ``python benchmarks/observer_scales.py [--trials 3000] [--steps 2000]``
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import jax
import numpy as np

import psyphy_numpyro as pn
from psyphy_numpyro.hyperparameters import threshold_constant


def observer(scale):
    """The covariance function of an observer whose median threshold is about ``scale``."""
    k = threshold_constant(2)

    def cov(x):
        x = np.asarray(x, np.float64)
        s = np.exp(0.7 * np.sin(1.3 * x[..., 0] + 0.4) * np.cos(1.1 * x[..., 1] - 0.3))
        rho = 0.45 + 0.35 * (x[..., 1] + 1) / 2
        th = 0.9 * x[..., 0] + 0.6 * x[..., 1]
        c, sn = np.cos(th), np.sin(th)
        R = np.stack([np.stack([c, -sn], -1), np.stack([sn, c], -1)], -2)
        D = np.stack([np.ones_like(rho), rho**2], -1)
        S = np.einsum("...ij,...j,...kj->...ik", R, D, R) * s[..., None, None] ** 2
        return S * (scale / (k * 0.75)) ** 2

    return cov


def true_thresholds(cov, refs, dirs, iters=8):
    """Equal-covariance thresholds in the pooled metric (fixed point in the length)."""
    k = threshold_constant(2)
    R, D = len(refs), len(dirs)
    r = np.repeat(refs, D, 0)
    u = np.tile(dirs, (R, 1))
    t = k / np.sqrt(np.einsum("ni,nij,nj->n", u, np.linalg.inv(cov(r)), u))
    for _ in range(iters):
        S = (2 / 3) * cov(r) + (1 / 3) * cov(np.clip(r + t[:, None] * u, -1, 1))
        t = k / np.sqrt(np.einsum("ni,nij,nj->n", u, np.linalg.inv(S), u))
    return t.reshape(R, D)


def simulate(cov, n, key):
    k_r, k_d, k_m, k_y = jax.random.split(jax.random.PRNGKey(key), 4)
    ref = np.asarray(jax.random.uniform(k_r, (n, 2), minval=-0.8, maxval=0.8), np.float64)
    ang = np.asarray(jax.random.uniform(k_d, (n,), maxval=2 * np.pi), np.float64)
    u = np.stack([np.cos(ang), np.sin(ang)], -1)
    rad = np.asarray(jax.random.uniform(k_m, (n,), minval=1.0, maxval=4.0), np.float64)
    m = np.sqrt(np.einsum("ni,nij,nj->n", u, np.linalg.inv(cov(ref)), u))
    comp = np.clip(ref + (rad / m)[:, None] * u, -1, 1)
    return pn.simulate_observer(cov, ref, comp, key=k_y)


def errors(fit, truth, refs, dirs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        est = pn.thresholds(fit, refs, directions=dirs).lengths
    ok = np.isfinite(est)
    lr = np.log(est[ok] / truth[ok])
    r = np.corrcoef(np.log(est[ok]), np.log(truth[ok]))[0, 1]
    return float(np.exp(np.median(np.abs(lr))) - 1), float(r), float(np.mean(lr))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=3000)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--scales", type=float, nargs="+", default=[0.005, 0.05, 0.3])
    args = ap.parse_args(argv)
    g = np.linspace(-0.6, 0.6, 5)
    refs = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    dirs = pn.readout.unit_directions(2, 8)
    cpu = platform.processor() or platform.machine()
    print(f"# {args.trials} trials, {args.steps} steps; {cpu}, jax {jax.__version__}, "
          f"psyphy_numpyro {pn.__version__}")
    print("| median threshold | route | variance_scale | diag_term | median error | r(log) | "
          "mean log ratio | fit s |")
    print("|---|---|---|---|---|---|---|---|")
    for i, scale in enumerate(args.scales):
        cov = observer(scale)
        truth = true_thresholds(cov, refs, dirs)
        data = simulate(cov, args.trials, 100 + i)
        for route, model in (("fit_map(data)", None), ("fit_map(data, WPPM())", pn.WPPM())):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # the diag_term floor warning
                fit = pn.fit_map(data, model, steps=args.steps, progress=False)
            secs = time.perf_counter() - t0
            med, r, bias = errors(fit, truth, refs, dirs)
            m = fit.model
            print(f"| {np.median(truth):.3g} | {route} | {m.variance_scale:.3g} | "
                  f"{m.diag_term:.3g} | {med:.1%} | {r:.3f} | {bias:+.3f} | {secs:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
