"""``fit_bootstrap``: uncertainty from refits of resampled data, run as one batched program.

Each refit sees the observed trials with multinomial resampling counts as
trial weights (:class:`~psyphy_numpyro.Trials` carries a weight per trial), so
every refit has the same array shapes and all of them run as one vmapped
program on the compile-once engine (sharded over devices when several are
visible). Every refit starts from the MAP fit of the full data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .errors import InvalidInput, InvalidType
from .fits import MAPFit, PosteriorFit
from .map_fit import fit_map
from .progress import use_progress
from .refits import refit_batch
from .resolve import resolve_model
from .validation import check_count, check_real, seed_from

__all__ = ["fit_bootstrap", "BootstrapFit", "resample_counts", "default_strata"]


@dataclass
class BootstrapFit(PosteriorFit):
    """Result of :func:`fit_bootstrap`: one chain of ``num_fits`` refits of resampled data.

    Attributes
    ----------
    draws : numpy array (1, num_fits, *weight_shape)
        The refits' ``W``.
    lapse : numpy array (1, num_fits) or None
        The refits' lapse rates, when the model learns it.
    map_fit : MAPFit
        The fit of the full data every refit started from.
    counts : numpy array (num_fits, N)
        How often each trial appears in each refit's resampled data.
    strata : numpy array (N,)
        Stratum label (0 .. S-1) of each trial; resampling keeps every
        stratum's trial count.
    steps : int
        Optimiser steps per refit.
    optimizer : str
        The refits' optimiser: ``"newton"`` (chord-Newton on fixed noise) or
        ``"adam"`` (files written before the Newton route: ``"adam"``).
    seed : int
        The integer seed (-1 when a PRNG key was passed as ``rng_key``).
    timings : dict
        Seconds spent compiling and stepping the refits (``compile``, ``steps``).
    """

    kind: ClassVar[str] = "bootstrap"

    map_fit: MAPFit | None = field(default=None, repr=False)
    counts: np.ndarray = field(default=None, repr=False)
    strata: np.ndarray = field(default=None, repr=False)
    steps: int = 0
    optimizer: str = "adam"
    seed: int = 0
    timings: dict = field(repr=False, default_factory=dict)

    def describe(self):
        lines = super().describe()
        n_strata = 0 if self.strata is None else int(np.max(self.strata)) + 1
        lines.append(f"bootstrap: {self.num_draws} refits of {self.steps} {self.optimizer} "
                     f"steps, resampled "
                     f"within {n_strata} strata; seed {self.seed}")
        return lines

    def _attrs(self):
        return {"inference": "bootstrap", "steps": int(self.steps)}

    def _save_extras(self, out, attrs):
        if self.counts is not None:
            out["bootstrap_counts"] = (["refit", "trial"], np.asarray(self.counts, np.int32))
        if self.strata is not None:
            out["bootstrap_strata"] = (["trial"], np.asarray(self.strata, np.int32))
        attrs["bootstrap_steps"] = int(self.steps)
        attrs["bootstrap_optimizer"] = str(self.optimizer)
        attrs["bootstrap_seed"] = int(self.seed)
        for name, seconds in (self.timings or {}).items():
            out[f"bootstrap_timing_{name}"] = ((), np.float64(seconds))
        if self.map_fit is not None:
            self.map_fit.save_nested("map_", self, out, attrs)

    @classmethod
    def _restore(cls, src):
        ex = src.extra
        return cls(
            model=src.model, data=src.data, draws=src.draws, lapse=src.lapse,
            map_fit=MAPFit.restore_nested(src, "map_"),
            counts=ex["bootstrap_counts"].values if "bootstrap_counts" in ex else None,
            strata=ex["bootstrap_strata"].values if "bootstrap_strata" in ex else None,
            steps=int(ex.attrs.get("bootstrap_steps", 0)),
            optimizer=str(ex.attrs.get("bootstrap_optimizer", "adam")),
            seed=int(ex.attrs.get("bootstrap_seed", 0)),
            timings={k[len("bootstrap_timing_"):]: float(ex[k].values) for k in ex.data_vars
                     if k.startswith("bootstrap_timing_")},
        )


def default_strata(data) -> np.ndarray:
    """Stratum labels ``(N,)``: one per reference location when references repeat.

    Hong et al. resample within each reference. That needs repeated
    references: when at least half of the trials share their reference with
    four or more others, each distinct reference is a stratum; otherwise
    (references drawn anew for every trial) all trials form one stratum and
    the bootstrap is the ordinary one.
    """
    _, labels, sizes = np.unique(data.ref, axis=0, return_inverse=True, return_counts=True)
    labels = labels.reshape(-1)
    if np.mean(sizes[labels] >= 5) >= 0.5:
        return labels.astype(np.int64)
    return np.zeros(len(data), np.int64)


def _check_strata(strata, data) -> np.ndarray:
    if isinstance(strata, str):
        if strata == "auto":
            return default_strata(data)
        if strata == "reference":
            return np.unique(data.ref, axis=0, return_inverse=True)[1].reshape(-1)
        if strata == "none":
            return np.zeros(len(data), np.int64)
        raise InvalidInput(f'strata must be "auto", "reference", "none" or one label per '
                           f"trial, got {strata!r}")
    if strata is None:
        return np.zeros(len(data), np.int64)
    labels = np.asarray(strata)
    if labels.shape != (len(data),):
        raise InvalidInput(f"strata must have one label per trial ({len(data)},), got shape "
                           f"{labels.shape}")
    return np.unique(labels, return_inverse=True)[1].reshape(-1)


def resample_counts(strata, num_fits: int, seed: int) -> np.ndarray:
    """Multinomial resampling counts ``(num_fits, N)`` that keep every stratum's size.

    Within each stratum of ``n`` trials, each refit draws ``n`` trials with
    replacement, uniformly (``numpy.random.default_rng(seed)``).
    """
    rng = np.random.default_rng(seed)
    strata = np.asarray(strata)
    counts = np.zeros((num_fits, len(strata)), np.int64)
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        counts[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)),
                                         size=num_fits)
    return counts


def fit_bootstrap(
    data,
    model=None,
    *,
    num_fits: int = 120,
    seed: int = 0,
    rng_key=None,
    strata="auto",
    init: MAPFit | None = None,
    optimizer: str | None = None,
    steps: int | None = None,
    learning_rate: float = 0.02,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> BootstrapFit | list[BootstrapFit]:
    """Bootstrap uncertainty: ``num_fits`` MAP refits of resampled data, as one program.

    The trials are resampled with replacement within each stratum (by default
    each reference location, see :func:`default_strata`), and every refit
    starts from the MAP fit of the full data (``init``, or one made here with
    :func:`~psyphy_numpyro.fit_map` defaults). All refits run together as one
    batched program, by one of two routes:

    - ``optimizer="newton"`` (the default from 2 000 trials): ``steps``
      chord-Newton steps on the deterministic loss (fixed estimator noise).
      The exact Hessian of the full data's loss at the MAP fit
      (:func:`~psyphy_numpyro.inference.newton.loss_hessian`, eigenvalues
      floored at the prior's curvature) preconditions every step, and a step
      is kept only if it lowers the refit's loss. 3.9x faster than Adam at
      6 000 trials with the same bootstrap spread (docs/performance.md).
    - ``optimizer="adam"`` (the default below 2 000 trials, and with a
      ``batch_size``): ``steps`` steps of whitened Adam (warm-up and cosine
      decay to ``learning_rate`` prior standard deviations per step) on fresh
      noise. With few trials the loss is far from quadratic over the
      bootstrap's spread and the chord steps converge slowly (at 300 trials, 60
      of them leave the spread 10% short), so Adam is the default there.

    Parameters
    ----------
    data : TrialData (or psyphy data), or a list of them
        A list bootstraps several observers (one model) as one batched
        program and returns one fit per observer, in order; each observer's
        refits are those of its separate call with the same ``seed`` (same
        resampling counts) and the same ``init``, up to floating-point
        rounding of the batched sums (with ``batch_size`` below the largest
        data set, every observer is minibatched, as in a separate call only
        when ``batch_size`` is below its own trial count). ``init`` is then a
        list of MAPFits (or None: one :func:`~psyphy_numpyro.fit_map` of the
        list), and ``strata`` a string or a list with one entry per observer.
    model : WPPM or psyphy WPPM, optional
        A psyphy model is converted (:meth:`WPPM.from_psyphy`). Default: the
        model of ``init`` when given, else :func:`~psyphy_numpyro.fit_map`'s
        default (hyperparameters chosen from the data); must equal
        ``init.model`` when ``init`` is given.
    num_fits : int
        Number of refits (the draws of the result).
    seed : int
        Seeds the resampling and the Monte Carlo noise.
    rng_key : jax PRNG key, optional
        Used instead of ``seed`` when given.
    strata : "auto", "reference", "none", None or array (N,)
        Resampling strata: ``"auto"`` (default, :func:`default_strata`),
        ``"reference"`` (every distinct reference), ``"none"``/``None`` (all
        trials together), or one label per trial (e.g. Sobol vs adaptive
        blocks).
    init : MAPFit, optional
        The fit of the full data to start from.
    optimizer : "newton", "adam" or None
        The refits' optimiser; None: ``"newton"`` for data sets of 2 000 trials
        or more (every data set of a list), else ``"adam"`` (always with a
        ``batch_size``).
    steps : int, optional
        Optimiser steps per refit (default 30 chord-Newton or 250 Adam steps;
        docs/performance.md measures both against long Adam refits).
    learning_rate : float
        Peak learning rate of the Adam route (prior standard deviations per step).
    batch_size : int, optional
        Minibatch of trials per step (weighted by the resampling counts);
        default every trial.
    progress : bool, optional
        Progress bar (default: on unless ``CI`` is set).

    Returns
    -------
    BootstrapFit
        A draw-based fit (one chain, ``num_fits`` draws) with every read-out,
        ``to_arviz()``, ``save()``; ``pn.thresholds`` gives bootstrap
        intervals.

    Raises
    ------
    FitDivergedError
        If more than a tenth of the refits diverge (fewer are dropped with a
        warning); try a smaller ``learning_rate``.
    """
    if isinstance(data, list | tuple):
        return _bootstrap_many(data, model, num_fits=num_fits, seed=seed, rng_key=rng_key,
                               strata=strata, init=init, optimizer=optimizer, steps=steps,
                               learning_rate=learning_rate, batch_size=batch_size,
                               progress=progress)
    given = model
    if model is None and isinstance(init, MAPFit):
        model = init.model
    data, model = resolve_model(data, model)
    num_fits, route, steps, learning_rate, batch_size = _check_refits(
        num_fits, optimizer, steps, learning_rate, batch_size, len(data))
    labels = _check_strata(strata, data)
    if init is not None:
        if not isinstance(init, MAPFit):
            raise InvalidType(f"init must be a MAPFit or None, got {type(init).__name__}")
        model.checked_params(init.params, "init.params")
        if init.model != model:
            raise InvalidInput("init.model differs from model: pass the model init was fit with")
    seed = seed_from(seed, rng_key)
    show = use_progress(progress)
    if init is None:
        init = fit_map(data, given, seed=seed, progress=show)
    counts = resample_counts(labels, num_fits, seed)
    timings = {"compile": 0.0, "steps": 0.0}
    draws, lapse, kept = refit_batch(model, [(data, init, counts)], steps, learning_rate,
                                     batch_size, seed, show, timings, route=route)[0]
    return BootstrapFit(model=model, data=data, draws=draws, lapse=lapse, map_fit=init,
                        counts=counts[kept], strata=labels, steps=steps, optimizer=route,
                        seed=seed if rng_key is None else -1,
                        timings=timings)


NEWTON_STEPS = 30  # default chord-Newton steps per refit
ADAM_STEPS = 250  # default Adam steps per refit
NEWTON_MIN_TRIALS = 2000  # the default route is Newton's from this many trials (see fit_bootstrap)


def _check_refits(num_fits, optimizer, steps, learning_rate, batch_size, num_trials):
    """Checked refit settings ``(num_fits, route, steps, learning_rate, batch_size)``; a
    ``batch_size`` of ``num_trials`` or more is full batch."""
    num_fits = check_count("num_fits", num_fits, lo=2)
    learning_rate = check_real("learning_rate", learning_rate, 0.0)
    if batch_size is not None:
        batch_size = check_count("batch_size", batch_size)
        batch_size = None if batch_size >= num_trials else batch_size
    if optimizer is None:
        few = num_trials < NEWTON_MIN_TRIALS
        optimizer = "adam" if batch_size is not None or few else "newton"
    if optimizer not in ("newton", "adam"):
        raise InvalidInput(f'optimizer must be "newton", "adam" or None, got {optimizer!r}')
    if optimizer == "newton" and batch_size is not None:
        raise InvalidInput('optimizer="newton" needs every trial every step (a deterministic '
                           'loss): use batch_size=None, or optimizer="adam" for minibatches')
    if steps is None:
        steps = NEWTON_STEPS if optimizer == "newton" else ADAM_STEPS
    steps = check_count("steps", steps)
    return num_fits, optimizer, steps, learning_rate, batch_size


def _bootstrap_many(datas, model, *, num_fits, seed, rng_key, strata, init, optimizer, steps,
                    learning_rate, batch_size, progress):
    """:func:`fit_bootstrap` of a list of observers' data sets (see its ``data`` parameter)."""
    from .data import as_trial_data

    if len(datas) == 0:
        raise InvalidInput("data is an empty list: pass at least one data set")
    datas = [as_trial_data(d) for d in datas]
    num_fits, route, steps, learning_rate, batch_size = _check_refits(
        num_fits, optimizer, steps, learning_rate, batch_size, min(len(d) for d in datas))
    if isinstance(strata, str) or strata is None:
        strata = [strata] * len(datas)
    elif not isinstance(strata, list | tuple) or len(strata) != len(datas):
        raise InvalidInput(f"strata for {len(datas)} data sets must be a string or a list of "
                           f"{len(datas)} label arrays")
    labels = [_check_strata(s, d) for s, d in zip(strata, datas, strict=True)]
    if init is not None:
        if not isinstance(init, list | tuple) or len(init) != len(datas):
            raise InvalidType(f"init for {len(datas)} data sets must be a list of "
                              f"{len(datas)} MAPFits or None")
        for i, f in enumerate(init):
            if not isinstance(f, MAPFit):
                raise InvalidType(f"init[{i}] must be a MAPFit, got {type(f).__name__}")
            if f.model != init[0].model:
                raise InvalidInput(f"init[{i}].model differs from init[0].model: one model "
                                   "serves every observer")
        if model is None:
            model = init[0].model
    seed = seed_from(seed, rng_key)
    show = use_progress(progress)
    if model is not None:
        checked = [resolve_model(d, model) for d in datas]
        datas, model = [d for d, _ in checked], checked[0][1]
    if init is None:
        init = fit_map(datas, model, seed=seed, progress=show)
        model = init[0].model
    elif init[0].model != model:
        raise InvalidInput("init.model differs from model: pass the model init was fit with")
    for i, f in enumerate(init):
        model.checked_params(f.params, f"init[{i}].params")
    counts = [resample_counts(lab, num_fits, seed) for lab in labels]
    timings = {"compile": 0.0, "steps": 0.0}
    jobs = list(zip(datas, init, counts, strict=True))
    results = refit_batch(model, jobs, steps, learning_rate, batch_size, seed, show, timings,
                          label=f"fit_bootstrap x{len(datas)} observers", route=route)
    fits = []
    for (draws, lapse, kept), d, f, c, lab in zip(results, datas, init, counts, labels,
                                                   strict=True):
        fits.append(BootstrapFit(model=model, data=d, draws=draws, lapse=lapse, map_fit=f,
                                 counts=c[kept], strata=lab, steps=steps, optimizer=route,
                                 seed=seed if rng_key is None else -1, timings=dict(timings)))
    return fits
