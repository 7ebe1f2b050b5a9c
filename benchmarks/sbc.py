"""Simulation-based calibration (SBC, Talts et al. 2018) of ``pn.fit_mcmc``.

Each replication draws ``W`` from the prior, simulates responses on a fixed
trial design, fits them with the public :func:`psyphy_numpyro.fit_mcmc`, and
records the rank of the true value of several scalar test quantities among
``L`` thinned posterior draws (ranks 0..L). If the sampler draws from the
exact posterior, every rank is uniform on {0, ..., L}; the script tests this
with a chi-square test over bins and a Kolmogorov-Smirnov test on randomised
normalised ranks, and prints one row per quantity.

``W`` is identified only up to rotations of its embedding columns, so raw W
entries are not tested. The test quantities are rotation invariant: at three
fixed points the log variances and the correlation of ``Sigma(x)``, the
p(correct) of a fixed probe trial, and the log-likelihood of the simulated
data set (a data-dependent quantity, Modrak et al. 2023).

Likelihood used to simulate (``--likelihood``):

- ``surrogate`` (default): Bernoulli(p) with p the deterministic
  equal-covariance surrogate ``f(d')`` that ``fit_mcmc`` conditions on by
  default (``surrogate_samples=0``), computed through the same code path
  (``model.p_correct_from_weights`` with the zero-sample noise of
  ``psyphy_numpyro.mcmc.surrogate_noise``). Then the sampler's target is the
  exact posterior of the simulated data and SBC tests the inference machinery.
- ``full``: Bernoulli(p) with p the model's Monte Carlo p(correct) at 4 096
  samples (the WPPM as specified). The sampler still uses the surrogate, so
  deviations measure the surrogate's bias, not a sampler bug.

Compilation: ``fit_mcmc`` now passes ``jit_model_args=True`` to NumPyro's
``MCMC`` itself (the data enter the compiled sampler as arguments, so one
compiled program serves every data set of the same shape; before, every
replication recompiled NUTS, about 8 s of a ~10 s replication). The script
still wraps ``MCMC`` to set it (a no-op now; kept so the script runs on older
checkouts), turns on JAX's persistent compilation cache in a temporary
directory (``--cache-dir`` to keep one), and clears JAX's in-memory caches
every 10 replications (each call used to leave ~50 MB and ~1000 memory maps
there; after ~60 calls LLVM failed with "Cannot allocate memory"). The
trial design is fixed across replications so that all shapes agree.

Run:  python benchmarks/sbc.py                  (default, about 10-15 min)
      python benchmarks/sbc.py --quick          (about 2-3 min)
      python benchmarks/sbc.py --plot ranks.png (rank histograms)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import time
import warnings
from functools import partial

os.environ.setdefault("CI", "1")  # no progress bars
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from numpyro.infer.util import log_likelihood  # noqa: E402
from scipy import stats  # noqa: E402

import psyphy_numpyro as pn  # noqa: E402
import psyphy_numpyro.mcmc as pn_mcmc  # noqa: E402
from psyphy_numpyro import field  # noqa: E402

# Fixed read-out points (2-D) for Sigma(x), and one probe trial for p(correct).
PROBE_POINTS = np.array([[-0.6, -0.6], [0.0, 0.0], [0.6, 0.3]])
PROBE_TRIAL = np.array([[0.0, 0.0], [0.12, 0.08]])  # (reference, comparison)


# ---------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------
def make_model(input_dim: int = 2, basis_degree: int = 1) -> pn.WPPM:
    """The SBC model: psyphy's default prior, a low-degree basis, few samples.

    ``num_samples`` only matters for the MAP start and the surrogate-error
    report inside ``fit_mcmc``, not for the NUTS target.
    """
    return pn.WPPM(input_dim=input_dim, basis_degree=basis_degree, num_samples=32)


def make_design(input_dim: int, num_trials: int, seed: int = 12345) -> np.ndarray:
    """Fixed trial design, independent of ``W``: stimuli ``(N, 2, d)``.

    References uniform in [-0.9, 0.9]^d; comparisons at a uniform random
    direction and a Euclidean distance uniform in [0.05, 0.5] (the prior's
    typical Sigma has standard deviations near 0.1, so this spans chance to
    near-ceiling performance), clipped to [-1, 1]. The design must not depend
    on the true W: the posterior conditions on the stimuli as fixed inputs.
    """
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-0.9, 0.9, (num_trials, input_dim))
    u = rng.standard_normal((num_trials, input_dim))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    comp = np.clip(ref + rng.uniform(0.05, 0.5, (num_trials, 1)) * u, -1.0, 1.0)
    return np.stack([ref, comp], axis=1)


def probes(input_dim: int):
    """Read-out points and the probe trial for ``input_dim``."""
    if input_dim == 2:
        return PROBE_POINTS, PROBE_TRIAL
    x = np.linspace(-0.6, 0.6, 3)[:, None] * np.ones((1, input_dim))
    trial = np.stack([np.zeros(input_dim), np.full(input_dim, 0.1)])
    return x, trial


def quantity_names(input_dim: int) -> list[str]:
    names = []
    for i in range(len(probes(input_dim)[0])):
        names += [f"log Sigma_{a}{a}(x{i})" for a in range(input_dim)]
        names += [f"corr_{a}{b}(x{i})" for a in range(input_dim) for b in range(a + 1, input_dim)]
    return names + ["p(correct) probe", "log-lik of data"]


@partial(jax.jit, static_argnums=0)
def _quantities(model, W, stimuli, responses, points, trial):
    """Test quantities for a batch of weights ``W (B, ...)`` -> ``(B, Q)``."""
    noise0 = pn_mcmc.surrogate_noise(model, stimuli.shape[0], 0, 0)
    d = model.input_dim
    iu = np.triu_indices(d, 1)

    def one(w):
        S = field.covariance_field(w, points, model.diag_term)  # (P, d, d)
        var = jnp.diagonal(S, axis1=-2, axis2=-1)  # (P, d)
        corr = S[:, iu[0], iu[1]] / jnp.sqrt(var[:, iu[0]] * var[:, iu[1]])
        per_point = jnp.concatenate([jnp.log(var), corr], axis=1).reshape(-1)
        p = model.p_correct_from_weights(w, trial[None, 0], trial[None, 1], noise0[:1])[0]
        ll = jnp.sum(log_likelihood(partial(pn.wppm_model, config=model, noise=noise0),
                                    {"W": w}, stimuli, responses, batch_ndims=0)["y"])
        return jnp.concatenate([per_point, p[None], ll[None]])

    return jax.lax.map(one, W)


def quantities(model, W, stimuli, responses) -> np.ndarray:
    """``(B, Q)`` test quantities in the order of :func:`quantity_names`."""
    points, trial = probes(model.input_dim)
    dt = jnp.result_type(float)
    out = _quantities(model, jnp.asarray(W, dt), jnp.asarray(stimuli, dt),
                      jnp.asarray(responses), jnp.asarray(points, dt), jnp.asarray(trial, dt))
    return np.asarray(out)


def simulate_responses(model, W, stimuli, key, likelihood: str) -> np.ndarray:
    """Responses ``(N,)`` of 0/1 from ``W`` on ``stimuli``."""
    k_p, k_y = jax.random.split(key)
    ref, comp = stimuli[:, 0], stimuli[:, 1]
    if likelihood == "surrogate":
        # exactly the likelihood fit_mcmc conditions on (surrogate_samples=0)
        noise = pn_mcmc.surrogate_noise(model, len(stimuli), 0, 0)
        dt = jnp.result_type(float)
        p = model.p_correct_from_weights(jnp.asarray(W), jnp.asarray(ref, dt),
                                         jnp.asarray(comp, dt), noise)
    elif likelihood == "full":
        p = model.p_correct({"W": W}, ref, comp, key=k_p, num_samples=4096)
    else:
        raise ValueError(f"likelihood must be 'surrogate' or 'full', got {likelihood!r}")
    return np.asarray(jax.random.bernoulli(k_y, p), dtype=np.int8)


# ---------------------------------------------------------------------------
# compilation helpers (they change how JAX caches programs, not what runs)
# ---------------------------------------------------------------------------
_CACHE_OPTIONS = {
    "jax_compilation_cache_dir": None,  # set to the directory
    "jax_persistent_cache_min_compile_time_secs": 0.0,
    "jax_persistent_cache_min_entry_size_bytes": -1,
}


@contextlib.contextmanager
def compilation_cache(path: str | None):
    """JAX persistent compilation cache in ``path`` (a temporary one if None).

    Restores the previous settings on exit.
    """
    from jax.experimental.compilation_cache import compilation_cache as cc

    with contextlib.ExitStack() as stack:
        if path is None:
            path = stack.enter_context(tempfile.TemporaryDirectory(prefix="sbc-jax-cache-"))
        old = {name: getattr(jax.config, name) for name in _CACHE_OPTIONS}
        for name, value in _CACHE_OPTIONS.items():
            jax.config.update(name, path if value is None else value)
        cc.reset_cache()
        try:
            yield path
        finally:
            for name, value in old.items():
                jax.config.update(name, value)
            cc.reset_cache()


@contextlib.contextmanager
def mcmc_jit_model_args(enabled: bool = True):
    """Make the ``numpyro.infer.MCMC`` objects built by ``fit_mcmc`` use
    ``jit_model_args=True`` (data as arguments of the compiled sampler rather
    than constants baked into it), so one compiled program serves every data
    set of the same shape. The sampler, its settings and its draws are
    otherwise unchanged. A no-op if ``enabled`` is False.
    """
    original = getattr(pn_mcmc, "MCMC", None)
    if not enabled or original is None:
        yield
        return

    class _MCMC(original):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("jit_model_args", True)
            super().__init__(*args, **kwargs)

    pn_mcmc.MCMC = _MCMC
    try:
        yield
    finally:
        pn_mcmc.MCMC = original


# ---------------------------------------------------------------------------
# SBC loop
# ---------------------------------------------------------------------------
def thin_indices(num_samples: int, per_chain: int) -> np.ndarray:
    """``per_chain`` evenly spaced draw indices out of ``num_samples``."""
    if per_chain > num_samples:
        raise ValueError(f"cannot keep {per_chain} of {num_samples} draws per chain")
    return np.round(np.linspace(0, num_samples - 1, per_chain)).astype(int)


def rank_of(truth: np.ndarray, draws: np.ndarray, rng) -> np.ndarray:
    """Rank of ``truth (Q,)`` among ``draws (L, Q)``, ties broken at random."""
    less = np.sum(draws < truth, axis=0)
    equal = np.sum(draws == truth, axis=0)
    return less + rng.integers(0, equal + 1)


def run_sbc(
    replications: int = 100,
    draws: int = 50,
    *,
    num_trials: int = 200,
    num_warmup: int = 200,
    num_samples: int = 150,
    num_chains: int = 2,
    map_steps: int = 200,
    seed: int = 0,
    likelihood: str = "surrogate",
    input_dim: int = 2,
    basis_degree: int = 1,
    jit_model_args: bool = True,
    cache_dir: str | None = None,
    use_cache: bool = True,
    clear_every: int = 10,
    verbose: bool = True,
) -> dict:
    """Run SBC; returns ranks ``(R, Q)`` and per-replication diagnostics.

    Replication ``r`` draws ``W`` from the prior with key ``(seed, r)``,
    simulates responses, and calls ``pn.fit_mcmc(data, model, seed=seed + r,
    ...)`` with its default MAP start (``map_steps`` steps) and default
    surrogate. ``draws`` (``L``) posterior draws are kept by thinning each
    chain evenly; ``L`` must be a multiple of ``num_chains``.
    """
    from numpyro.diagnostics import effective_sample_size

    if draws % num_chains:
        raise ValueError(f"draws ({draws}) must be a multiple of num_chains ({num_chains})")
    model = make_model(input_dim, basis_degree)
    stimuli = make_design(input_dim, num_trials)
    idx = thin_indices(num_samples, draws // num_chains)
    names = quantity_names(input_dim)
    rng = np.random.default_rng(seed)
    root = jax.random.PRNGKey(seed)
    ranks = np.zeros((replications, len(names)), dtype=int)
    ess = np.zeros((replications, len(names)))
    divergences = np.zeros(replications, dtype=int)
    rhat = np.full(replications, np.nan)
    fit_time = np.zeros(replications)
    truths = np.zeros((replications, len(names)))
    warn_count = 0
    start = time.perf_counter()
    cache = compilation_cache(cache_dir) if use_cache else contextlib.nullcontext()
    with cache, mcmc_jit_model_args(jit_model_args):
        for r in range(replications):
            k_w, k_y = jax.random.split(jax.random.fold_in(root, r))
            W = np.asarray(model.sample_prior(k_w)["W"])
            y = simulate_responses(model, W, stimuli, k_y, likelihood)
            data = pn.TrialData(stimuli, y)
            t = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RuntimeWarning)
                fit = pn.fit_mcmc(data, model, num_warmup=num_warmup, num_draws=num_samples,
                                  num_chains=num_chains, seed=seed + r, progress=False,
                                  steps=map_steps)
            fit_time[r] = time.perf_counter() - t
            warn_count += sum(issubclass(w.category, RuntimeWarning) for w in caught)
            chains = fit.draws  # (chains, num_samples, ...)
            q_all = quantities(model, chains.reshape((-1,) + chains.shape[2:]), stimuli, y)
            q_all = q_all.reshape(chains.shape[:2] + (-1,))
            ess[r] = np.asarray(effective_sample_size(q_all))
            q_thin = q_all[:, idx].reshape(-1, len(names))
            truths[r] = quantities(model, W[None], stimuli, y)[0]
            ranks[r] = rank_of(truths[r], q_thin, rng)
            divergences[r] = fit.divergences
            rhat[r] = fit.surrogate.get("max_rhat_sigma", np.nan)
            del fit
            if (r + 1) % clear_every == 0:
                # every fit_mcmc call leaves its compiled programs in JAX's
                # in-memory caches (~50 MB and ~1000 memory maps per call here);
                # after ~60 calls the process hits vm.max_map_count and LLVM
                # fails with "Cannot allocate memory". Dropping the in-memory
                # caches now and then keeps the process flat; the persistent
                # cache serves the programs again.
                jax.clear_caches()
            if verbose and (r < 3 or (r + 1) % 10 == 0 or r + 1 == replications):
                print(f"  replication {r + 1:4d}/{replications}: fit {fit_time[r]:5.1f} s, "
                      f"min ESS {ess[r].min():6.0f}, divergences {divergences[r]}, "
                      f"elapsed {time.perf_counter() - start:6.0f} s", flush=True)
    return {
        "names": names,
        "ranks": ranks,
        "L": draws,
        "ess": ess,
        "divergences": divergences,
        "rhat": rhat,
        "fit_time": fit_time,
        "truths": truths,
        "warnings": warn_count,
        "total_time": time.perf_counter() - start,
        "settings": {
            "replications": replications, "draws": draws, "num_trials": num_trials,
            "num_warmup": num_warmup, "num_samples": num_samples, "num_chains": num_chains,
            "map_steps": map_steps, "seed": seed, "likelihood": likelihood,
            "input_dim": input_dim, "basis_degree": basis_degree,
            "jit_model_args": jit_model_args, "use_cache": use_cache,
        },
    }


# ---------------------------------------------------------------------------
# uniformity tests and report
# ---------------------------------------------------------------------------
def default_bins(replications: int, L: int) -> int:
    """About 10 expected counts per bin, 4 to 20 bins, at most L + 1."""
    return int(min(L + 1, max(4, min(20, replications // 10))))


def uniformity_pvalues(ranks: np.ndarray, L: int, bins: int, seed: int = 0):
    """Chi-square and KS p-values of ranks ``(R,)`` in 0..L against uniform.

    Chi-square: ranks grouped into ``bins`` bins of (almost) equal width, with
    the exact expected count of each bin. KS: on ``(rank + U) / (L + 1)``,
    ``U ~ Uniform(0, 1)``, which is exactly Uniform(0, 1) under the null.
    """
    ranks = np.asarray(ranks)
    which = (np.arange(L + 1) * bins) // (L + 1)
    expected = np.bincount(which, minlength=bins) / (L + 1) * len(ranks)
    observed = np.bincount(which[ranks], minlength=bins)
    p_chi2 = stats.chisquare(observed, expected).pvalue
    u = (ranks + np.random.default_rng(seed).uniform(size=len(ranks))) / (L + 1)
    p_ks = stats.kstest(u, "uniform").pvalue
    return float(p_chi2), float(p_ks)


def verdict(p_chi2: float, p_ks: float, alpha: float) -> str:
    p = min(p_chi2, p_ks)
    if p < alpha / 10:
        return "FAIL"
    if p < alpha:
        return "suspect"
    return "ok"


def report(result: dict, bins: int | None = None, alpha: float = 0.01) -> tuple[str, list]:
    """Markdown table: quantity, n, chi2 p-value, KS p-value, verdict, ESS."""
    ranks, L = result["ranks"], result["L"]
    bins = bins or default_bins(len(ranks), L)
    rows = []
    lines = [
        f"| quantity | n | chi2 p ({bins} bins) | KS p | verdict | median ESS |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for j, name in enumerate(result["names"]):
        p_chi2, p_ks = uniformity_pvalues(ranks[:, j], L, bins, seed=j)
        v = verdict(p_chi2, p_ks, alpha)
        rows.append((name, len(ranks), p_chi2, p_ks, v))
        lines.append(f"| {name} | {len(ranks)} | {p_chi2:.3f} | {p_ks:.3f} | {v} | "
                     f"{np.median(result['ess'][:, j]):.0f} |")
    return "\n".join(lines), rows


def plot_ranks(result: dict, path: str, bins: int | None = None) -> None:
    """Rank histograms, one panel per quantity, with the 99% band of a uniform."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranks, L, names = result["ranks"], result["L"], result["names"]
    R = len(ranks)
    bins = bins or default_bins(R, L)
    which = (np.arange(L + 1) * bins) // (L + 1)
    probs = np.bincount(which, minlength=bins) / (L + 1)
    lo = stats.binom.ppf(0.005, R, probs)
    hi = stats.binom.ppf(0.995, R, probs)
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, j in zip(axes.flat, range(len(names)), strict=False):
        counts = np.bincount(which[ranks[:, j]], minlength=bins)
        x = np.arange(bins)
        ax.fill_between(np.r_[x - 0.5, bins - 0.5], np.r_[lo, lo[-1]], np.r_[hi, hi[-1]],
                        step="post", color="0.85", label="99% band (uniform)")
        ax.bar(x, counts, width=0.9, color="C0")
        ax.axhline(R * probs.mean(), color="0.4", lw=0.8)
        ax.set_title(names[j], fontsize=9)
        ax.set_xticks([])
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    s = result["settings"]
    fig.suptitle(f"SBC rank histograms: {R} replications, L = {L} draws, "
                 f"{s['likelihood']} likelihood", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replications", type=int, default=None,
                    help="number of simulated data sets (default 100; 20 with --quick)")
    ap.add_argument("--draws", type=int, default=50,
                    help="thinned posterior draws L per replication (ranks 0..L)")
    ap.add_argument("--trials", type=int, default=200, help="trials per data set")
    ap.add_argument("--num-warmup", type=int, default=200)
    ap.add_argument("--num-samples", type=int, default=150, help="NUTS draws per chain")
    ap.add_argument("--num-chains", type=int, default=2)
    ap.add_argument("--map-steps", type=int, default=200,
                    help="steps of the MAP fit that starts the chains")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--likelihood", choices=("surrogate", "full"), default="surrogate",
                    help="simulate from the sampler's surrogate (tests the sampler) or from "
                         "the full Monte Carlo model (measures the surrogate's bias)")
    ap.add_argument("--input-dim", type=int, default=2)
    ap.add_argument("--basis-degree", type=int, default=1)
    ap.add_argument("--bins", type=int, default=None, help="chi-square bins (default ~R/10)")
    ap.add_argument("--alpha", type=float, default=0.01,
                    help="'suspect' below alpha, 'FAIL' below alpha/10 (min of the two p)")
    ap.add_argument("--quick", action="store_true",
                    help="20 replications, 150 warm-up + 60 draws per chain, L = 30, "
                         "100 MAP steps")
    ap.add_argument("--plot", metavar="PATH", help="save rank histograms to this file")
    ap.add_argument("--save", metavar="PATH", help="save ranks and diagnostics (.npz)")
    ap.add_argument("--x64", action="store_true", help="run in float64")
    ap.add_argument("--cache-dir", default=None,
                    help="persistent JAX compilation cache (default: a temporary directory)")
    ap.add_argument("--no-cache", action="store_true", help="no persistent compilation cache")
    ap.add_argument("--no-jit-model-args", action="store_true",
                    help="leave MCMC's jit_model_args at False (recompiles every replication)")
    args = ap.parse_args(argv)
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    if args.quick:
        args.num_warmup, args.num_samples, args.draws, args.map_steps = 150, 60, 30, 100
    replications = args.replications or (20 if args.quick else 100)

    print(f"SBC of pn.fit_mcmc: {replications} replications, input_dim={args.input_dim}, "
          f"basis_degree={args.basis_degree}, {args.trials} trials, "
          f"{args.num_chains} chains x ({args.num_warmup} warm-up + {args.num_samples} draws), "
          f"L = {args.draws}, {args.likelihood} likelihood, "
          f"{'float64' if args.x64 else 'float32'}")
    print(f"python {platform.python_version()}, jax {jax.__version__}, "
          f"{os.cpu_count()} CPU cores, {platform.machine()}")
    result = run_sbc(
        replications, args.draws, num_trials=args.trials, num_warmup=args.num_warmup,
        num_samples=args.num_samples, num_chains=args.num_chains, map_steps=args.map_steps,
        seed=args.seed, likelihood=args.likelihood, input_dim=args.input_dim,
        basis_degree=args.basis_degree, jit_model_args=not args.no_jit_model_args,
        cache_dir=args.cache_dir, use_cache=not args.no_cache,
    )
    table, _ = report(result, args.bins, args.alpha)
    ft = result["fit_time"]
    thin = args.num_samples / (args.draws // args.num_chains)
    print()
    print(table)
    print()
    print(f"total {result['total_time']:.0f} s; fit_mcmc per replication: first "
          f"{ft[0]:.1f} s (includes compilation), median of the rest "
          f"{np.median(ft[1:]) if len(ft) > 1 else float('nan'):.1f} s")
    print(f"thinning: every {thin:.1f}th draw per chain; ESS (before thinning) per "
          f"quantity and replication: min {result['ess'].min():.0f}, median "
          f"{np.median(result['ess']):.0f} (L = {args.draws})")
    div = result["divergences"]
    print(f"divergent transitions: {div.sum()} in total, in {np.count_nonzero(div)} of "
          f"{replications} replications; max r_hat(Sigma) median "
          f"{np.nanmedian(result['rhat']):.3f}, max {np.nanmax(result['rhat']):.3f}; "
          f"fit_mcmc RuntimeWarnings: {result['warnings']}")
    if args.plot:
        plot_ranks(result, args.plot, args.bins)
        print(f"rank histograms written to {args.plot}")
    if args.save:
        np.savez(args.save, ranks=result["ranks"], ess=result["ess"],
                 divergences=div, rhat=result["rhat"], fit_time=ft, truths=result["truths"],
                 names=np.array(result["names"]))
        print(f"ranks saved to {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
