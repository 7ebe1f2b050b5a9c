"""``cross_validate``: held-out log-likelihood of candidate models, folds run as one batch.

The folds of one model are trial weights (1 on the training trials, 0 on the
held-out fold), so all folds of a model have the same array shapes and run as
one vmapped program on the compile-once engine (the bootstrap's refit
program, :func:`psyphy_numpyro.bootstrap.fit_bootstrap`, with 0/1 counts).
Every fold starts from the same point, the prior's typical isotropic field plus a
weak prior draw (not from a fit of all the data, which has seen the held-out
trials). The held-out trials are then
scored with a high-sample estimate of the log-likelihood.

Folds are stratified by reference location: trials sharing a reference (when
references repeat) or a cell of reference space (otherwise) are shuffled and
dealt round-robin to the folds, so every fold covers the stimulus space.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import numpy as np

from .bootstrap import default_strata
from .errors import InvalidInput
from .fits import MAPFit
from .inference.svi import MAP, bucket_size, from_whitened
from .progress import use_progress
from .refits import refit_batch
from .resolve import resolve_model
from .validation import check_count, check_real, seed_from
from .wppm import WPPM, as_wppm

__all__ = ["cross_validate", "CrossValidation", "fold_labels"]


def fold_labels(data, num_folds: int, seed: int = 0) -> np.ndarray:
    """Fold index ``(N,)`` of every trial, stratified by reference location (see the module)."""
    from .hyperparameters import reference_cells

    strata = default_strata(data)
    if strata.max() == 0:  # references do not repeat: cells of reference space
        refs = np.asarray(data.model_stimuli[:, 0])
        strata, _, _ = reference_cells(refs, max(20, 10 * num_folds))
    rng = np.random.default_rng(seed)
    folds = np.empty(len(data), np.int64)
    offset = 0
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        rng.shuffle(idx)
        folds[idx] = (np.arange(len(idx)) + offset) % num_folds
        offset += len(idx)  # the next stratum continues the deal: folds stay balanced
    return folds


@dataclass
class CrossValidation:
    """Result of :func:`cross_validate`.

    Attributes
    ----------
    models : list of WPPM
    scores : numpy array (num_models, num_folds)
        Held-out log-likelihood per trial of every model on every fold.
    folds : numpy array (N,)
        Fold of every trial.
    num_samples : int
        Estimator samples per trial of the held-out scores.
    """

    models: list
    scores: np.ndarray
    folds: np.ndarray = field(repr=False)
    num_samples: int = 0

    @property
    def mean(self) -> np.ndarray:
        """Mean held-out log-likelihood per trial of every model ``(num_models,)``."""
        return self.scores.mean(1)

    @property
    def standard_error(self) -> np.ndarray:
        """Standard error of :attr:`mean` over folds."""
        k = self.scores.shape[1]
        return self.scores.std(1, ddof=1) / np.sqrt(k)

    @property
    def best_index(self) -> int:
        return int(np.argmax(self.mean))

    @property
    def best(self) -> WPPM:
        """The model with the highest mean held-out log-likelihood."""
        return self.models[self.best_index]

    def table(self) -> tuple[list[str], list[list]]:
        """``(header, rows)``: each model's varying settings, mean, standard error, and the
        difference to the best in standard errors of the difference."""
        names = _varying(self.models)
        best = self.scores[self.best_index]
        rows = []
        for i, m in enumerate(self.models):
            diff = self.scores[i] - best
            se = diff.std(ddof=1) / np.sqrt(len(diff)) if i != self.best_index else 0.0
            rows.append([", ".join(f"{n}={getattr(m, n)!r}" for n in names) or repr(m),
                         float(self.mean[i]), float(self.standard_error[i]),
                         float(diff.mean()), float(se)])
        header = ["model", "mean held-out log-lik/trial", "se", "minus best", "se of difference"]
        return header, rows

    def __str__(self) -> str:
        header, rows = self.table()
        lines = [" | ".join(header)]
        for r in rows:
            lines.append(f"{r[0]} | {r[1]:.5f} | {r[2]:.5f} | {r[3]:+.5f} | {r[4]:.5f}")
        return "\n".join(lines)

    def plot(self, ax=None):
        """Mean held-out log-likelihood per trial with standard-error bars; returns the Figure."""
        from .plotting._base import PALETTE, _plt

        plt = _plt()
        if ax is None:
            fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(self.models) + 2), 3.4),
                                   layout="constrained")
        else:
            fig = ax.figure
        x = np.arange(len(self.models))
        colors = [PALETTE[0]] * len(x)
        colors[self.best_index] = PALETTE[1]
        for i in x:
            ax.errorbar(i, self.mean[i], yerr=self.standard_error[i], fmt="o", color=colors[i],
                        capsize=3)
        header, rows = self.table()
        ax.set_xticks(x, [r[0].replace(", ", "\n") for r in rows], fontsize=7, rotation=25,
                      ha="right", rotation_mode="anchor")
        ax.set_ylabel("held-out log-likelihood / trial")
        ax.set_title(f"{self.scores.shape[1]}-fold cross-validation (best in orange)",
                     fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        return fig


def _varying(models) -> list[str]:
    import dataclasses

    names = [f.name for f in dataclasses.fields(WPPM)]
    return [n for n in names if len({repr(getattr(m, n)) for m in models}) > 1]


def _held_out_score(model, params, test, seed, num_samples) -> float:
    """Mean log-likelihood per trial of ``test``, its trials padded to the engine's bucket
    size (repeats of the first, dropped again) so folds of nearby sizes share one program."""
    n = len(test)
    idx = np.concatenate([np.arange(n), np.zeros(bucket_size(n) - n, np.int64)])
    ll = model.log_likelihood(params, test[idx], key=seed, num_samples=num_samples)
    return float(np.mean(np.asarray(ll)[:n]))


def cross_validate(data, models, *, num_folds: int = 5, seed: int = 0, rng_key=None,
                   steps: int = 1000, learning_rate: float = 0.05, init_scale: float = 0.3,
                   eval_samples: int | None = None, progress: bool | None = None
                   ) -> CrossValidation | list[CrossValidation]:
    """K-fold cross-validation of candidate models by held-out log-likelihood.

    Parameters
    ----------
    data : TrialData, or a list of them
        A list cross-validates several observers: each model's folds of every
        observer run as one batched program, and one ``CrossValidation`` per
        observer is returned, in order (each equal to its separate call up to
        floating-point rounding of the batched sums).
    models : list of WPPM
        Candidates (e.g. a grid over ``variance_scale`` and ``decay_rate``, as
        Hong et al. 2025 chose them).
    num_folds : int
        Folds, stratified by reference location (:func:`fold_labels`).
    seed : int
        Seeds the folds, the start and the optimiser's noise.
    rng_key : jax PRNG key, optional
        Used instead of ``seed`` (an integer seed is drawn from it).
    steps, learning_rate, init_scale
        MAP fit of every training set: ``steps`` whitened-Adam steps from the
        prior's typical isotropic field plus ``init_scale`` times one prior draw
        (the same start for every fold).
    eval_samples : int, optional
        Estimator samples per held-out trial (default
        ``max(1024, 8 * model.num_samples)``): a high-sample estimate.
    progress : bool, optional

    Returns
    -------
    CrossValidation (a list of them for a list of data sets)
        ``.table()``, ``.best``, ``.plot()``, per-fold ``.scores``.
    """
    if not isinstance(models, list | tuple) or len(models) == 0:
        raise InvalidInput("models must be a non-empty list of psyphy_numpyro.WPPM")
    models = [as_wppm(m, f"models[{i}]") for i, m in enumerate(models)]
    num_folds = check_count("num_folds", num_folds, lo=2)
    steps = check_count("steps", steps)
    learning_rate = check_real("learning_rate", learning_rate, 0.0)
    init_scale = check_real("init_scale", init_scale, 0.0)
    if eval_samples is not None:
        eval_samples = check_count("eval_samples", eval_samples)
    many = isinstance(data, list | tuple)
    datas = list(data) if many else [data]
    if len(datas) == 0:
        raise InvalidInput("data is an empty list: pass at least one data set")
    for j, d in enumerate(datas):
        checked = [resolve_model(d, m, check=False) for m in models]
        datas[j] = checked[0][0]
        if len(datas[j]) < 2 * num_folds:
            where = f"data[{j}]: " if many else ""
            raise InvalidInput(f"{where}{len(datas[j])} trials are too few for {num_folds} "
                               "folds")
    seed = seed_from(seed, rng_key)
    folds = [fold_labels(d, num_folds, seed) for d in datas]
    train = [np.stack([(f != k).astype(np.int64) for k in range(num_folds)]) for f in folds]
    show = use_progress(progress)
    scores = np.zeros((len(datas), len(models), num_folds))
    used = 0
    for i, model in enumerate(models):
        z0 = MAP(model).init_z(jax.random.PRNGKey(seed), None, init_scale)
        start = MAPFit.from_params(model, from_whitened(model, z0))
        jobs = [(d, start, t) for d, t in zip(datas, train, strict=True)]
        results = refit_batch(model, jobs, steps, learning_rate, None, seed, show,
                              label="cross_validate" if not many
                              else f"cross_validate x{len(datas)} observers")
        ns = eval_samples or max(1024, 8 * model.num_samples)
        used = max(used, ns)
        for o, ((W, lapse, kept), d, f) in enumerate(zip(results, datas, folds, strict=True)):
            j = 0
            for k in range(num_folds):
                if not kept[k]:
                    scores[o, i, k] = -np.inf
                    continue
                params = {"W": W[0, j]}
                if lapse is not None:
                    params["lapse_rate"] = lapse[0, j]
                j += 1
                scores[o, i, k] = _held_out_score(model, params, d[f == k], seed + k, ns)
    out = [CrossValidation(models=list(models), scores=scores[o], folds=folds[o],
                           num_samples=used) for o in range(len(datas))]
    return out if many else out[0]
