"""``fit_map``: MAP fits of the WPPM (NumPyro SVI with an AutoDelta guide, :mod:`.inference`)."""

from __future__ import annotations

import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .data import as_trial_data
from .errors import FitDivergedError, InvalidInput, InvalidType
from .fits import MAPFit
from .inference.restarts import Run, fit_batch
from .inference.svi import MAP, from_whitened, negative_log_prior, padded_size
from .map_settings import (  # noqa: F401 - the limits re-exported (fit_map's docs name them)
    AUTO_BATCH_SIZE,
    AUTO_FULL_BATCH,
    AUTO_LBFGS_MAX,
    LBFGS_SCREEN,
    LBFGS_STEPS,
    check_settings,
)
from .progress import Progress, use_progress
from .resolve import resolve_model
from .validation import as_key, check_count
from .wppm import WPPM, as_wppm, model_with_prior

__all__ = ["MAPFit", "fit_map", "FitDivergedError"]


def _fit_many(datas, model, cfg_args, seed, rng_key, progress, init_params):
    """:func:`fit_map` of a list of observers' data sets (see its ``data`` parameter)."""
    from .hyperparameters import pooled_choice
    from .inference.svi import bucket_size

    if len(datas) == 0:
        raise InvalidInput("data is an empty list: pass at least one data set")
    datas = [as_trial_data(d) for d in datas]
    dims = {d.input_dim for d in datas}
    if len(dims) > 1:
        raise InvalidInput(f"the data sets have different stimulus dimensions {sorted(dims)}")
    choice = None
    if model is not None:
        model = as_wppm(model)
    if model is None:  # one model for every observer (one program): chosen from all the data
        choice = pooled_choice(datas, WPPM(input_dim=datas[0].input_dim))
        model = choice.model
    checked = [resolve_model(d, model, check=choice is None) for d in datas]
    datas = [d for d, _ in checked]
    cfg = check_settings(min(datas, key=len), model, *cfg_args)
    root, seed = _root_key(seed, rng_key)
    if init_params is not None:
        init_params = model.checked_params(init_params, "init", lapse_optional=True)
    problem = MAP(model, cfg.optimizer, cfg.batch_size)
    t_start = time.perf_counter()
    z0, keys = _restart_starts(problem, root, cfg, init_params)
    size = bucket_size(max(len(d) for d in datas))
    trials = [problem.trials(d, size) for d in datas]
    noise = _fixed_noise(model, cfg, root, size)
    timings = {"compile": 0.0, "steps": 0.0, "evaluation": 0.0}
    n_obs = len(datas)
    total = n_obs * (cfg.num_restarts * cfg.screen_steps + (cfg.steps - cfg.screen_steps))
    bar = Progress(use_progress(progress), total, f"fit_map x{n_obs} observers")
    try:
        runs = fit_batch(problem, trials, z0, keys, cfg, bar, timings,
                              jax.random.fold_in(root, 10**6), noise)
    finally:
        bar.close()
    timings["total"] = time.perf_counter() - t_start
    starts = _start_params(model, z0, init_params)
    fits = []
    for o, (run, data) in enumerate(zip(runs, datas, strict=True)):
        try:
            fit = _finish(run, problem, data, starts, cfg, seed, dict(timings))
        except FitDivergedError as exc:
            raise FitDivergedError(f"observer {o} (data[{o}]): {exc}") from None
        fit.hyperparameters = None if choice is None else choice.to_dict()
        fits.append(fit)
    return fits


def _restart_starts(problem, root, cfg, init_params):
    """``(z0, keys)``: each restart's unconstrained start (``init_params`` for the first,
    when given; else the prior's typical isotropic field plus ``init_scale`` x a prior draw)
    and the key its steps consume."""
    z0, keys = [], []
    for r in range(cfg.num_restarts):
        k_init, k_run = jax.random.split(jax.random.fold_in(root, r))
        z0.append(problem.init_z(k_init, init_params if r == 0 else None, cfg.init_scale))
        keys.append(k_run)
    return z0, keys


def _start_params(model, z0, init_params):
    """Each restart's start in ``params`` form; the first is ``init_params`` exactly as given
    (a learned lapse rate it lacks: the prior mean)."""
    starts = [from_whitened(model, z) for z in z0]
    if init_params is not None:
        starts[0] = {**starts[0], **init_params}
    return starts


def _fixed_noise(model, cfg, root, size):
    """The deterministic route's estimator noise: one draw for the ``size`` padded trials,
    fixed by the fit's key (None on the stochastic route)."""
    if not cfg.deterministic:
        return None
    return model.fresh_noise(jax.random.fold_in(root, 10**6 + 1), (size,))


def _root_key(seed, rng_key):
    """``(key, seed)``: an explicit ``rng_key`` wins (recorded as seed -1); a PRNG key as
    ``seed`` is the same stream as ``rng_key=`` (an int ``s`` is ``PRNGKey(s)``)."""
    if rng_key is None and not isinstance(seed, int | np.integer):
        if not isinstance(seed, jax.Array | np.ndarray):
            raise InvalidType(f"seed must be an integer or a jax PRNG key, got "
                              f"{type(seed).__name__} {seed!r}")
        rng_key = seed
    if rng_key is not None:
        return as_key(rng_key), -1
    seed = check_count("seed", seed, lo=0)
    return jax.random.PRNGKey(seed), seed


def fit_map(
    data,
    model: WPPM | None = None,
    *,
    steps: int | None = None,
    optimizer: optax.GradientTransformation | str | None = None,
    learning_rate: float = 0.05,
    num_restarts: int = 3,
    seed: int = 0,
    rng_key=None,
    progress: bool | None = None,
    init=None,
    batch_size: int | str | None = "auto",
    eval_samples: int | None = None,
    init_scale: float = 0.3,
    screen_steps: int | None = None,
    trial_capacity: int | None = None,
    tol: float = 0.05,
    prior=None,
) -> MAPFit | list[MAPFit]:
    """Maximum a posteriori fit of a WPPM: NumPyro ``SVI`` with an ``AutoDelta`` guide.

    The objective is the NumPyro model's own negative log joint (``Trace_ELBO``
    of an ``AutoDelta`` guide on :func:`~psyphy_numpyro.wppm_model`, its weights
    decentred by ``LocScaleReparam``; :class:`~psyphy_numpyro.MAP` exposes the
    steps). Two routes:

    - ``optimizer=None`` (default) or ``"lbfgs"``: the *deterministic* route. The
      estimator noise is one fixed draw (set by ``seed``), so the loss is a
      smooth deterministic function, and ``optax.lbfgs`` (backtracking line
      search) minimises it until the loss falls by less than ``tol`` over 10
      steps, or ``steps`` (default 150). Restarts are screened one after another
      on a CPU (a line search vmapped over starts costs more than the starts in
      turn there) and as one batched program on other devices.
    - ``"adam"`` (or any optax transformation): the *stochastic* route, fresh
      noise every step (and minibatches beyond ``AUTO_LBFGS_MAX`` = 65 536
      trials, where it is the default): whitened Adam with warm-up and cosine decay,
      ``steps`` default 2000; restarts run as one batched program.

    Every program is compiled once per model configuration and trial-count
    bucket and then reused (see :mod:`psyphy_numpyro.inference.engine`).

    Restarts are *screened*: all of them run ``screen_steps`` steps, the one
    with the lowest loss (the exact loss on the deterministic route, a
    low-noise evaluation with ``eval_samples`` draws on the stochastic one)
    then continues alone to ``steps`` (the next best, if it fails).
    ``screen_steps=steps`` runs every restart to the end.

    Parameters
    ----------
    data : TrialData (or psyphy TrialData/ResponseData), or a list of them
        A list fits several observers (one model) as one batched program:
        every data set is padded to the largest one's size bucket, all
        observers' restarts are screened together and the best restart of each
        continues together; returns a list of fits, one per observer, in order
        (each equal to its separate fit when the data sets share a size
        bucket). ``model=None`` then chooses one model from all the data.
    model : WPPM or psyphy WPPM, optional
        A psyphy model is converted (:meth:`WPPM.from_psyphy`). Default:
        ``WPPM.for_data(data)``, the default model with
        ``variance_scale`` and ``diag_term`` chosen from the data by a quick
        isotropic pre-fit (:mod:`psyphy_numpyro.hyperparameters`; what was
        chosen and why is in ``fit.hyperparameters``). A given model is used
        as it is; a ``RuntimeWarning`` says when its ``diag_term`` floor is
        above the thresholds the data imply.
    steps : int, optional
        Optimiser steps of the kept restart (the most, on the deterministic
        route): default 150 L-BFGS steps, or 2000 Adam steps.
    optimizer : None, "lbfgs", "adam" or optax.GradientTransformation
        The route (above). A transformation acts on the whitened weights
        ``z = W / prior_std`` with fresh noise every step; reusing one
        object across calls reuses its compiled program. ``"adam"`` is
        :func:`~psyphy_numpyro.inference.svi.whitened_adam`: Adam with
        warm-up and cosine decay, one step being about ``learning_rate``
        prior standard deviations.
    learning_rate : float
        Peak learning rate of ``"adam"`` (ignored otherwise).
    num_restarts : int
        Independent starts (see ``init_scale``).
    seed : int or jax PRNG key
        Seeds the initial draws and the Monte Carlo noise: equal seeds give
        bit-identical fits; an int ``s`` is ``PRNGKey(s)`` (the same fit).
    rng_key : jax PRNG key, optional
        Used instead of ``seed`` when given (``fit.seed`` is then -1).
    progress : bool, optional
        tqdm progress bar (compilation shown as its own phase). Default: on,
        unless the ``CI`` environment variable is set.
    init : dict, MAPFit or psyphy MAPPosterior, optional
        ``{"W": ...}`` to start the first restart from (psyphy's parameter
        dicts have this layout), with ``"lapse_rate"`` for a model that learns
        it (default: the prior mean of the lapse rate); an object with a
        ``params`` dict (psyphy's ``MAPPosterior``, a fit) starts from those.
    batch_size : int, "auto" or None
        Minibatch size (trials drawn uniformly each step, likelihood rescaled
        to the full data; Adam only); ``None`` uses every trial every step.
        ``"auto"`` (default) uses every trial up to ``AUTO_LBFGS_MAX`` (65 536)
        trials on the default route (a 3-D fit of 30 000 trials: 60 s at field
        error 0.319 against 145 s and 0.325 for minibatched Adam, 2-core CPU),
        up to ``AUTO_FULL_BATCH`` (16 384) with ``optimizer="adam"``, and
        minibatches of ``AUTO_BATCH_SIZE`` (8 192) above.
    eval_samples : int, optional
        Estimator draws per trial of the low-noise losses that pick the
        restart on the stochastic route (default ``max(8 * model.num_samples,
        1024)``).
    init_scale : float
        Restarts start from the prior's typical isotropic field
        (:func:`~psyphy_numpyro.inference.svi.isotropic_start`: where every
        trial of data taken near threshold has a gradient) plus
        ``init_scale`` times a prior draw (a weaker, more
        isotropic field than a full draw reached better optima; see
        docs/inference.md).
    screen_steps : int, optional
        Steps every restart runs before the best one continues alone
        (default 20 L-BFGS steps, or ``steps // 4`` Adam steps; ``steps`` with
        a single restart).
    trial_capacity : int, optional
        Pad the trial axis to at least this many trials (weight 0 on the
        padding), so data sets that grow, such as an adaptive session's,
        reuse one compiled program until they outgrow it (default: the size
        bucket of the trial count).
    tol : float
        Deterministic route: stop once the loss fell by at most ``tol`` nats
        over 10 steps (converged; the rest of the loss history repeats the
        last value). ``0`` runs every step.
    prior : PopulationFit or WeightPrior, optional
        An informative prior of the weights: a population fit
        (:func:`~psyphy_numpyro.fit_population`) fits a new observer of that
        population, ``W ~ N(W_mean, tau^2 / (1 + tau^2) prior_std^2)``. The model
        is then ``model.with_prior(prior)`` (default model: the population's),
        so the same prior is in the fit's ``model`` and in any Laplace or MCMC
        fit of it. See docs/population.md.

    Returns
    -------
    MAPFit (a list of them for a list of data sets)
        ``restart_histories`` has NaN after ``screen_steps`` for restarts that
        were screened out; ``restart_losses`` holds each restart's low-noise
        loss where it stopped (``inf`` if it failed).

    Raises
    ------
    FitDivergedError
        If every restart produced a non-finite loss, or ended with a loss above
        both its starting loss and the largest loss ``W = 0`` can have (an
        optimiser that blew up). The message names the step or the losses and
        says what to try. A restart that fails this way is dropped with a
        warning when another one succeeds.
    """
    init_params = init
    if prior is not None:
        model = model_with_prior(model, prior)
    if isinstance(data, list | tuple):
        if trial_capacity is not None:
            raise InvalidInput("trial_capacity applies to a single data set, not a list")
        return _fit_many(data, model, (steps, optimizer, learning_rate, num_restarts, batch_size,
                                       eval_samples, init_scale, screen_steps, tol),
                         seed, rng_key, progress, init_params)
    choice = None
    if model is None:
        from .hyperparameters import choose_hyperparameters

        data = as_trial_data(data)
        choice = choose_hyperparameters(data, WPPM(input_dim=data.input_dim))
        model = choice.model
    data, model = resolve_model(data, model, check=choice is None)
    cfg = check_settings(data, model, steps, optimizer, learning_rate, num_restarts,
                         batch_size, eval_samples, init_scale, screen_steps, tol)
    size = padded_size(len(data), trial_capacity)
    root, seed = _root_key(seed, rng_key)
    if init_params is not None:  # last: the only check that builds a JAX array
        init_params = model.checked_params(init_params, "init", lapse_optional=True)
    problem = MAP(model, cfg.optimizer, cfg.batch_size)
    t_start = time.perf_counter()
    z0, keys = _restart_starts(problem, root, cfg, init_params)
    trials = problem.trials(data, size)
    timings = {"compile": 0.0, "steps": 0.0, "evaluation": 0.0}
    total = cfg.num_restarts * cfg.screen_steps + (cfg.steps - cfg.screen_steps)
    bar = Progress(use_progress(progress), total, "fit_map")
    try:
        run = fit_batch(problem, [trials], z0, keys, cfg, bar, timings,
                         jax.random.fold_in(root, 10**6),
                         _fixed_noise(model, cfg, root, size))[0]
    finally:
        bar.close()
    timings["total"] = time.perf_counter() - t_start
    starts = _start_params(model, z0, init_params)
    fit = _finish(run, problem, data, starts, cfg, seed, timings)
    fit.hyperparameters = None if choice is None else choice.to_dict()
    return fit


def _finish(run: Run, problem, data, starts, cfg, seed, timings) -> MAPFit:
    """The MAPFit of a finished run, or the error that says what to try."""
    model = problem.model
    if run.best is None:
        step_hint = (
            "a smaller step size in the optax optimizer you passed (or optimizer=None for "
            "the default)" if cfg.custom_optimizer
            else f"a smaller learning_rate (now {cfg.learning_rate:g})"
        )
        raise FitDivergedError(
            "fit_map diverged: the loss or the weights became NaN/Inf or blew up ("
            + "; ".join(run.failures)
            + f"). Try {step_hint} or a smaller init_scale; if it persists, a larger "
            f"model.diag_term (now {model.diag_term:g}) keeps Sigma(x) well conditioned."
        )
    if run.failures:
        warnings.warn(
            "fit_map: " + "; ".join(run.failures) + "; the best finite restart was kept",
            RuntimeWarning,
            stacklevel=3,
        )
    best = run.best
    z_best = {k: jnp.asarray(v[best]) for k, v in run.z.items()}
    params = from_whitened(model, z_best)
    # the kept restart's low-noise loss less its prior term: the negative log-likelihood
    final_nll = float(run.losses[best]) - float(negative_log_prior(model, z_best))
    return MAPFit(
        params=params,
        model=model,
        data=data,
        loss_history=run.histories[best],
        restart_histories=run.histories,
        restart_losses=run.losses,
        best_restart=best,
        init_params=starts[best],
        seed=seed,
        timings=timings,
        final_nll=final_nll,
    )
