"""An adaptive experiment against a simulated observer, compared with a plain design.

A simulated 2-D observer (a WPPM drawn from the prior) sits an adaptive
session: ``pn.Experiment(live=False)`` hands out a space-filling start, then
batches chosen by expected information gain from the latest posterior, and
the observer's responses are told back. The same observer also answers a
plain design (uniform references, random directions, log-uniform distances).
At several trial counts the first ``n`` trials of each design are fitted the
same way (``pn.fit_map(data)``, hyperparameters from the data) and the
fitted 66.7% thresholds (8 directions at a 5 x 5 grid of references) are
compared with the observer's true ones. Writes to ``--out-dir``:

- ``adaptive_error.png``: median threshold error against trials, both designs
  (log-log axes);
- ``adaptive_trials.png``: where the trials went: each design's trials as
  arrows from reference to comparison (a random subset; the session's
  space-filling start and its posterior-chosen trials in two colours), and
  the observer's true
  p(correct) of the trials of each design (chance is 1/3);
- ``adaptive_session.sqlite``: the session file (reopen it with
  ``pn.Experiment(path)``; ``pn.load_fit`` reads its refits in
  ``adaptive_session.sqlite.fits/``).

A few minutes on a 2-core CPU with the defaults. Run:
    python examples/adaptive_experiment.py --out-dir figures
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import psyphy_numpyro as pn  # noqa: E402
from psyphy_numpyro.plotting import save_figure  # noqa: E402
from psyphy_numpyro.plotting._base import PALETTE  # noqa: E402

GRID = np.stack(np.meshgrid(*[np.linspace(-0.7, 0.7, 5)] * 2, indexing="ij"), -1).reshape(-1, 2)
DIRECTIONS = pn.readout.unit_directions(2, 8)
NUM_INITIAL = 300  # space-filling trials before the first refit
MAX_ARROWS = 250  # trials drawn per design and kind in the placement figure


def threshold_error(fit, truth):
    """Median relative error ``exp(median |log ratio|) - 1`` of the fit's thresholds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rays leaving the domain: NaN
        est = pn.thresholds(fit, GRID, directions=DIRECTIONS).lengths
    ok = np.isfinite(est) & np.isfinite(truth)
    return float(np.exp(np.median(np.abs(np.log(est[ok] / truth[ok])))) - 1)


def run(num_trials=(500, 1000, 2000), *, refit_every=200, seed=0, out_dir="figures",
        progress=False):
    """Run both designs against one simulated observer; write the figures.

    Returns
    -------
    dict
        ``trials`` (the counts), ``plain`` and ``adaptive`` (threshold errors
        at each count), ``adaptive_data`` / ``plain_data`` (TrialData),
        ``truth`` (the observer's model and parameters), ``sources`` (how each
        session trial was chosen), ``p_true`` (the observer's p(correct) of
        the plain trials and of the session's posterior-chosen trials),
        ``seconds`` (the session's duration) and ``figures`` (paths written).
    """
    num_trials = sorted(int(n) for n in num_trials)
    n_max = num_trials[-1]
    os.makedirs(out_dir, exist_ok=True)
    model = pn.WPPM(input_dim=2)
    params = model.sample_prior(jax.random.PRNGKey(seed))
    observer = pn.MAPFit.from_params(model, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        truth = pn.thresholds(observer, GRID, directions=DIRECTIONS, num_samples=2048).lengths

    def respond(ref, comparison, key):
        return pn.simulate_trials(model, params, ref, comparison, key=key).responses

    # the adaptive session: the default policy, synchronous refits (bit-reproducible)
    path = os.path.join(out_dir, "adaptive_session.sqlite")
    for stale in (path, path + "-wal", path + "-shm"):
        if os.path.exists(stale):
            os.remove(stale)
    shutil.rmtree(path + ".fits", ignore_errors=True)  # an earlier run's refits
    t0 = time.perf_counter()
    with pn.Experiment(path, seed=seed + 1, live=False, num_initial=NUM_INITIAL,
                       refit_every=refit_every) as exp:
        block = 0
        while exp.num_told < n_max:
            # blocks end where a refit is due (it then runs inside the next ask), so the
            # first refit sees exactly NUM_INITIAL responses
            gap = exp.status()["next_refit_at"] - exp.num_told
            ids, stimuli = exp.ask(min(refit_every, n_max - exp.num_told,
                                       gap if gap > 0 else refit_every))
            exp.tell(ids, respond(stimuli[:, 0], stimuli[:, 1], key=1000 * seed + block))
            block += 1
            if progress:
                print(f"  session: {exp.num_told} trials told", flush=True)
        adaptive = exp.data
        sources = exp.sources(exp.trial_ids)
    seconds = time.perf_counter() - t0

    ref, comparison = pn.random_trials(n_max, 2, seed=seed + 2)  # the plain design
    plain = pn.TrialData.from_arrays(ref, comparison, respond(ref, comparison, key=seed + 3))

    errors = {"plain": [], "adaptive": []}
    for n in num_trials:
        for name, data in (("plain", plain), ("adaptive", adaptive)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                fit = pn.fit_map(data[:n], seed=seed, progress=False)
            errors[name].append(threshold_error(fit, truth))
        if progress:
            print(f"  {n} trials: plain {errors['plain'][-1]:.1%}, "
                  f"adaptive {errors['adaptive'][-1]:.1%}", flush=True)

    # the observer's own p(correct) of every trial: chance (1/3) and ceiling (1) trials
    # say little about the thresholds
    chosen = np.array([s != "space" for s in sources])
    p_true = {name: np.asarray(model.p_correct(params, d.ref, d.comparison, key=seed + 4,
                                               num_samples=512))
              for name, d in (("plain", plain), ("adaptive", adaptive[chosen]))}
    figures = [_plot_errors(num_trials, errors, out_dir, NUM_INITIAL),
               _plot_placement(plain, adaptive, sources, p_true, out_dir)]
    return {"trials": num_trials, **errors, "adaptive_data": adaptive, "plain_data": plain,
            "truth": (model, params), "sources": sources, "p_true": p_true,
            "seconds": seconds, "figures": figures}


def _plot_errors(trials, errors, out_dir, num_initial):
    fig, ax = plt.subplots(figsize=(4.8, 3.6), layout="constrained")
    if trials[0] <= num_initial:
        ax.axvline(num_initial, ls=":", color="grey", lw=1,
                   label=f"adaptive batches start ({num_initial})")
    for (name, label), color, marker in zip(
            (("plain", "plain design"), ("adaptive", "adaptive session")),
            PALETTE[:2], ("o", "s"), strict=True):
        ax.plot(trials, 100 * np.asarray(errors[name]), marker=marker, color=color, label=label)
    ax.set_xscale("log")
    ax.set_xticks(trials, [str(n) for n in trials])
    ax.minorticks_off()
    ax.set_ylim(0, None)
    ax.set_xlabel("trials (log scale)")
    ax.set_ylabel("median threshold error (%)")
    ax.set_title("Threshold error against trials (simulated WPPM observer)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    path = os.path.join(out_dir, "adaptive_error.png")
    save_figure(fig, path)
    plt.close(fig)
    return path


def _plot_placement(plain, adaptive, sources, p_true, out_dir):
    """References of both designs, and the observer's true p(correct) of their trials."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1, 1.1]})
    chosen = np.array([s != "space" for s in sources])
    panels = ((axes[0], plain, np.zeros(len(plain), bool), "plain design"),
              (axes[1], adaptive, chosen, "adaptive session"))
    rng = np.random.default_rng(0)
    for ax, data, adaptive_mask, title in panels:
        step = data.comparison - data.ref
        for mask, color, label in ((~adaptive_mask, PALETTE[4], "space-filling / plain"),
                                   (adaptive_mask, PALETTE[1], "chosen from the posterior")):
            idx = np.flatnonzero(mask)
            if len(idx) == 0:
                continue
            shown = np.sort(rng.choice(idx, min(len(idx), MAX_ARROWS), replace=False))
            ax.quiver(*data.ref[shown].T, *step[shown].T, angles="xy", scale_units="xy",
                      scale=1, width=0.003, color=color, alpha=0.7,
                      label=f"{label}: {len(shown)} of {len(idx)} shown")
        ax.set_xlim(-1, 1)
        ax.set_ylim(-1, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("stimulus x (model units, [-1, 1])")
        ax.set_ylabel("stimulus y (model units, [-1, 1])")
        ax.set_title(f"{title}: reference -> comparison", fontsize=9)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7, frameon=False)
    bins = np.linspace(1 / 3, 1, 21)
    ax = axes[2]
    ax.hist(p_true["plain"], bins=bins, color=PALETTE[0], alpha=0.6, label="plain design")
    ax.hist(p_true["adaptive"], bins=bins, histtype="step", lw=2, color=PALETTE[1],
            label="adaptive trials")
    ax.set_xlabel("observer's true p(correct) of the trial")
    ax.set_ylabel("trials")
    ax.set_title("Where the trials sit on the psychometric function", fontsize=9)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7, frameon=False)
    path = os.path.join(out_dir, "adaptive_trials.png")
    save_figure(fig, path)
    plt.close(fig)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default="figures")
    ap.add_argument("--trials", type=int, nargs="+", default=[500, 1000, 2000])
    ap.add_argument("--refit-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = run(args.trials, refit_every=args.refit_every, seed=args.seed,
              out_dir=args.out_dir, progress=True)
    print(f"session of {out['trials'][-1]} trials: {out['seconds']:.0f} s")
    print("| trials | plain | adaptive |")
    print("|---:|---:|---:|")
    for n, p, a in zip(out["trials"], out["plain"], out["adaptive"], strict=True):
        print(f"| {n} | {p:.1%} | {a:.1%} |")
    print("wrote " + ", ".join(out["figures"]))


if __name__ == "__main__":
    main()
