"""RMS error of p(correct) against samples per trial, for every estimator, vs psyphy 0.0.5.

A fixed set of oddity trials (default WPPM, basis_degree 4, W drawn from the
prior with ``--seed`` and ``--variance-scale``, default psyphy's 4e-3;
``--trials`` references uniform in [-0.7, 0.7]^d, comparisons at Mahalanobis
radii evenly spread over 0.5-5 with ``pn.comparisons_at_radius``, i.e. from
near chance through threshold to near ceiling) is evaluated with

- ours ``"mc"``: plain Monte Carlo with psyphy's three-sample rule,
- ours ``"reparam"``: the exact 4-normal reparameterisation,
- ours ``"cv"`` (default estimator): ``"reparam"`` with the radius of the
  ``a`` normals integrated in closed form, plus the equal-covariance control
  variate,
- psyphy 0.0.5's own estimator: ``OddityTask(OddityTaskConfig(num_samples=M)).predict``
  vmapped over the trials with one split key per trial (exactly what its
  ``loglik`` does), on a psyphy ``WPPM`` holding the same ``W`` (psyphy's
  layout equals ours),

at ``--samples`` samples per trial, each with ``--keys`` independent noise
keys. The error of one trial is the estimate minus a high-sample reference;
RMS is over trials and keys.

Reference: our ``"reparam"`` estimator with ``--ref-samples`` (default 2**22)
samples per trial, accumulated in chunks of 2**15 with independent keys (its
own standard error, from the spread of the chunk means, is printed; it is
about 0.0002, small against every RMS in the table). ``"reparam"`` is used
rather than ``"cv"`` so the reference does not share the control variate's
tabulated f(d'), and rather than plain ``"mc"`` because it is ~300x cheaper
per sample on a CPU. Independence check: plain ``"mc"`` with ``--check-samples``
(default 2**16) samples is compared with the reference (its RMS difference
should match the plain-MC standard error, and the mean difference should be
~0).

Cost: the median wall time of one jitted batched evaluation of all trials
(after compilation) is printed next to each RMS.

Run:  python benchmarks/estimator_accuracy.py                   (2-D, about 2 minutes)
      python benchmarks/estimator_accuracy.py --dims 1 2 3
      python benchmarks/estimator_accuracy.py --variance-scale 3e-4   (paper-scale field)
      python benchmarks/estimator_accuracy.py --keys 2 --ref-samples 1048576 --check-samples 0
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro

import psyphy_numpyro as pn

OURS = ("mc", "reparam", "cv")
BANDS = (("near chance (p < 0.45)", 0.0, 0.45), ("threshold (0.45-0.85)", 0.45, 0.85),
         ("easy (p >= 0.85)", 0.85, 1.01))


def make_trials(d, n, seed, variance_scale=4e-3):
    model = pn.WPPM(input_dim=d, variance_scale=variance_scale)
    W = model.sample_prior(seed)
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-0.7, 0.7, (n, d))
    radius = rng.permutation(np.linspace(0.5, 5.0, n))
    comp = pn.comparisons_at_radius(model, W, ref, radius, key=seed + 1)
    return model, W, ref, comp


def reference(model, W, ref, comp, estimator, total, chunk, seed):
    """Mean of ``total // chunk`` independent chunk estimates, and its standard error."""
    m = model.replace(estimator=estimator)
    chunk = min(chunk, total)
    n_chunks = max(1, total // chunk)
    root = jax.random.PRNGKey(10_000 + seed)
    est = np.stack([
        np.asarray(m.p_correct(W, ref, comp, key=jax.random.fold_in(root, i), num_samples=chunk),
                   dtype=np.float64)
        for i in range(n_chunks)
    ])
    se = est.std(0, ddof=1) / np.sqrt(n_chunks) if n_chunks > 1 else np.full(est.shape[1], np.nan)
    return est.mean(0), se, n_chunks * chunk


def psyphy_predictor(d, num_samples, bandwidth, diag_term, stimuli):
    """Jitted ``(W, key) -> p`` through psyphy's OddityTask on a psyphy WPPM."""
    from psyphy import WPPM, GaussianNoise, OddityTask, Prior
    from psyphy.model.likelihood import OddityTaskConfig

    task = OddityTask(OddityTaskConfig(num_samples=num_samples, bandwidth=bandwidth))
    model = WPPM(Prior(input_dim=d), task, GaussianNoise(), input_dim=d, diag_term=diag_term)
    n = stimuli.shape[0]

    @jax.jit
    def predict(W, key):
        keys = jax.random.split(key, n)  # as psyphy's BernoulliTaskLikelihood.loglik
        return jax.vmap(lambda s, k: task.predict({"W": W}, s, model, key=k)[0])(stimuli, keys)

    return predict


def timed_estimates(fn, keys):
    """Estimates for every key, and the median time of one call (after a compiling call)."""
    jax.block_until_ready(fn(jax.random.PRNGKey(987_654)))
    out, times = [], []
    for k in keys:
        t = time.perf_counter()
        p = jax.block_until_ready(fn(k))
        times.append(time.perf_counter() - t)
        out.append(np.asarray(p, dtype=np.float64))
    return np.stack(out), 1e3 * statistics.median(times)


def run_dim(d, args):
    model, W, ref, comp = make_trials(d, args.trials, args.seed, args.variance_scale)
    t0 = time.perf_counter()
    p_ref, se_ref, n_ref = reference(model, W, ref, comp, "reparam", args.ref_samples,
                                     2**15, args.seed)
    t_ref = time.perf_counter() - t0
    print(f"\n### input_dim = {d}: {args.trials} trials, {args.keys} noise keys per cell, "
          f"W from the prior with variance_scale {args.variance_scale:g}\n")
    print(f"reference: ours 'reparam' with {n_ref} samples per trial ({t_ref:.1f} s); "
          f"its standard error: RMS over trials {np.sqrt(np.mean(se_ref**2)):.5f}; "
          f"reference p spans {p_ref.min():.3f}-{p_ref.max():.3f}")
    if args.check_samples:
        p_chk, se_chk, n_chk = reference(model, W, ref, comp, "mc", args.check_samples,
                                         min(8192, args.check_samples), args.seed + 1)
        diff = p_chk - p_ref
        expect = np.sqrt(np.mean(se_chk**2 + se_ref**2))
        print(f"check: plain 'mc' with {n_chk} samples minus reference: mean {diff.mean():+.5f} "
              f"(standard error {diff.std(ddof=1) / np.sqrt(len(diff)):.5f}), "
              f"RMS {np.sqrt(np.mean(diff**2)):.5f} (expected from noise alone: {expect:.5f})")

    stimuli = jnp.asarray(np.stack([ref, comp], 1), jnp.float32)
    refj, compj = jnp.asarray(ref, jnp.float32), jnp.asarray(comp, jnp.float32)
    Wj = jnp.asarray(W["W"])
    root = jax.random.PRNGKey(args.seed)
    rows, bands = [], {}
    for M in args.samples:
        keys = [jax.random.fold_in(jax.random.fold_in(root, M), r) for r in range(args.keys)]
        res = {}
        for est in OURS:
            m = model.replace(estimator=est)

            def fn(k, m=m, M=M):
                return m.p_correct(W, refj, compj, key=k, num_samples=M)

            res[est] = timed_estimates(fn, keys)
        if not args.skip_psyphy:
            pred = psyphy_predictor(d, M, model.bandwidth, model.diag_term, stimuli)
            res["psyphy"] = timed_estimates(lambda k, pred=pred: pred(Wj, k), keys)
        err = {k: v[0] - p_ref[None] for k, v in res.items()}
        rms = {k: float(np.sqrt(np.mean(e**2))) for k, e in err.items()}
        ms = {k: v[1] for k, v in res.items()}
        rows.append((M, rms, ms))
        if M == args.band_samples:
            for name, lo, hi in BANDS:
                sel = (p_ref >= lo) & (p_ref < hi)
                bands[name] = (int(sel.sum()), {
                    k: float(np.sqrt(np.mean(e[:, sel] ** 2))) if sel.any() else float("nan")
                    for k, e in err.items()
                })

    cols = list(OURS) + ([] if args.skip_psyphy else ["psyphy"])
    names = {"mc": "ours mc", "reparam": "ours reparam", "cv": "ours cv",
             "psyphy": "psyphy 0.0.5"}
    print("\nRMS error of p(correct) (ms = one jitted evaluation of all trials):\n")
    head = " | ".join(f"{names[c]} RMS (ms)" for c in cols)
    extra = " | psyphy / cv" if "psyphy" in cols else ""
    print(f"| samples | {head} | mc / cv{extra} |")
    print("|---:|" + "---:|" * (len(cols) + 1 + bool(extra)))
    for M, rms, ms in rows:
        cells = " | ".join(f"{rms[c]:.4f} ({ms[c]:.1f})" for c in cols)
        ratio = f"{rms['mc'] / rms['cv']:.1f}x"
        pr = f" | {rms['psyphy'] / rms['cv']:.1f}x" if extra else ""
        print(f"| {M} | {cells} | {ratio}{pr} |")
    fails = [str(M) for M, r, _ in rows if not r["cv"] <= 0.5 * r["mc"]]
    verdict = f"NOT met at {', '.join(fails)} samples" if fails else "met at every sample count"
    print(f"\nSPEC target (cv RMS <= half of plain MC at equal samples): {verdict}.")
    if bands:
        print(f"\nRMS error by difficulty (reference p) at {args.band_samples} samples:\n")
        print("| trials | n | " + " | ".join(names[c] for c in cols) + " | mc / cv |")
        print("|---|---:|" + "---:|" * (len(cols) + 1))
        for name, (n, r) in bands.items():
            cells = " | ".join(f"{r[c]:.4f}" for c in cols)
            ratio = f"{r['mc'] / r['cv']:.1f}x" if n else ""
            print(f"| {name} | {n} | {cells} | {ratio} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[2], choices=[1, 2, 3])
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--samples", type=int, nargs="+", default=[16, 64, 128, 256, 1024, 2048])
    ap.add_argument("--keys", type=int, default=5, help="independent noise keys per cell")
    ap.add_argument("--ref-samples", type=int, default=2**22,
                    help="reference ('reparam') samples per trial")
    ap.add_argument("--check-samples", type=int, default=2**16,
                    help="plain-MC cross-check of the reference (0 = skip)")
    ap.add_argument("--band-samples", type=int, default=128,
                    help="sample count of the by-difficulty table")
    ap.add_argument("--variance-scale", type=float, default=4e-3,
                    help="prior scale of the field W is drawn from (psyphy 4e-3, paper 3e-4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-psyphy", action="store_true")
    args = ap.parse_args()
    try:
        ps_version = importlib.metadata.version("psyphy")
    except importlib.metadata.PackageNotFoundError:
        ps_version = "not installed"
        args.skip_psyphy = True
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, backend "
          f"{jax.default_backend()}; jax {jax.__version__}, numpyro {numpyro.__version__}, "
          f"psyphy {ps_version}, psyphy_numpyro {pn.__version__}; float32")
    for d in args.dims:
        run_dim(d, args)


if __name__ == "__main__":
    main()
