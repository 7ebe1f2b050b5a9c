"""Observers as a population: pool four observers, put intervals on every field.

Simulates four observers around one population field (basis degree 2,
deviation scale ``tau = 0.3`` prior standard deviations); the last has only
60 trials, the others 400. Fits them together with ``pn.fit_population``
(MAP, ``tau`` fixed at 0.3 here to keep the example quick), puts a Laplace
posterior on the pooled fit (``pn.fit_population_laplace``), compares the
sparse observer's interval widths with its own, unpooled Laplace fit, and
writes ``population.png`` (``plot_population``: the population's field and
every observer's with its 90% band).

About two to three minutes on a 2-core CPU. Run:
    python examples/population_example.py --out-dir figures
"""

from __future__ import annotations

import argparse
import os

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import numpy as np  # noqa: E402

import psyphy_numpyro as pn  # noqa: E402
from psyphy_numpyro.plotting import plot_population, save_figure  # noqa: E402

MODEL = pn.WPPM(input_dim=2, basis_degree=2, num_samples=16)
REFS = np.array([[-0.5, -0.5], [0.0, 0.0], [0.5, 0.5], [-0.5, 0.5]])


def simulate(sizes=(400, 400, 400, 60), tau=0.3, seed=0):
    """Observers drawn around one population field: ``(datas, true weights)``."""
    sd = MODEL.prior_std()
    W_pop = MODEL.sample_prior(seed)["W"]
    shrink = 1.0 / np.sqrt(1.0 + tau**2)
    Ws = [shrink * (W_pop + tau * sd * jax.random.normal(jax.random.PRNGKey(100 + i), sd.shape))
          for i in range(len(sizes))]
    datas = [pn.simulate_experiment(MODEL, {"W": W}, n, key=jax.random.PRNGKey(10 + i))
             for i, (W, n) in enumerate(zip(Ws, sizes, strict=True))]
    return datas, Ws


def interval_width(fit) -> float:
    """Median width of the 90% threshold intervals at REFS, in % of the threshold."""
    th = pn.thresholds(fit, REFS)
    lo, hi = th.interval
    return float(np.nanmedian(100 * (hi - lo) / th.median))


def run(sizes=(400, 400, 400, 60), seed=0, out_dir="."):
    datas, _ = simulate(sizes, seed=seed)
    pop = pn.fit_population(datas, MODEL, tau=0.3, seed=seed, progress=False)
    lap = pn.fit_population_laplace(init=pop, num_draws=500, seed=seed)
    sparse = len(datas) - 1
    alone = pn.fit_laplace(datas[sparse], MODEL, num_draws=500, seed=seed, progress=False)
    widths = {"pooled": interval_width(lap.observers[sparse]), "alone": interval_width(alone)}
    print(lap)
    print(f"observer {sparse} ({len(datas[sparse])} trials): median 90% threshold interval "
          f"{widths['pooled']:.0f}% of the threshold pooled, {widths['alone']:.0f}% alone")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "population.png")
    save_figure(plot_population(lap), path)
    print("wrote", path)
    return {"population": lap, "alone": alone, "widths": widths, "figure": path}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=".")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run(seed=args.seed, out_dir=args.out_dir)
