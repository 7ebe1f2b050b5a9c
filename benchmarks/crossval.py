"""Cross-validation cost: ``cross_validate`` of 6 models x 5 folds against one default ``fit_map``.

Data: the bootstrap benchmark's observer (a 2-D default-model WPPM with 25
repeated references, trials spread evenly). The script times one default
``pn.fit_map(data)`` (first call: compilation included), then
``pn.cross_validate(data, models, num_folds=5)`` over a grid of six
candidates (``variance_scale`` x ``decay_rate``, as Hong et al. 2025 chose
them), compilation included, and prints the ratio with the winning model.

Usage: ``python benchmarks/crossval.py [--trials 4000] [--folds 5] [--steps 1000]``.
Every number is a wall time on the machine it runs on; nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psyphy_numpyro as pn

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_line  # noqa: E402
from bootstrap import observer_data  # noqa: E402


def candidates():
    base = pn.WPPM(input_dim=2)
    return [pn.WPPM(input_dim=2, variance_scale=v * base.variance_scale, decay_rate=d)
            for d in (base.decay_rate, 0.7) for v in (0.25, 1.0, 4.0)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, nargs="+", default=[4000])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args(argv)
    print(machine_line())
    models = candidates()
    print("| trials | fit_map (s) | models x folds x steps | cross_validate (s) | ratio "
          "| best |")
    print("|---:|---:|---|---:|---:|---|")
    for n in args.trials:
        data = observer_data(n)
        t0 = time.perf_counter()
        pn.fit_map(data, progress=False)
        t_map = time.perf_counter() - t0
        t0 = time.perf_counter()
        cv = pn.cross_validate(data, models, num_folds=args.folds, steps=args.steps,
                               progress=False)
        t_cv = time.perf_counter() - t0
        best = cv.table()[1][cv.best_index][0]
        print(f"| {n} | {t_map:.1f} | {len(models)} x {args.folds} x {args.steps} "
              f"| {t_cv:.1f} | {t_cv / t_map:.2f} | {best} |", flush=True)
    print()
    print(cv)


if __name__ == "__main__":
    main()
