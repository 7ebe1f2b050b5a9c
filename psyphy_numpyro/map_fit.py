"""MAP fits: AutoDelta guide + SVI + an optax optimiser."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoDelta
from numpyro.optim import optax_to_numpyro

from . import oddity
from .data import TrialData, as_trial_data
from .model import WPPM, wppm_model
from .validation import check_int, check_params, check_real

__all__ = ["MAPFit", "fit_map", "default_optimizer", "FitDivergedError", "resolve_model"]


class FitDivergedError(RuntimeError):
    """A fit produced a non-finite loss or parameters and could not recover."""


def default_optimizer(
    steps: int, learning_rate: float = 0.05, model: WPPM | None = None
) -> optax.GradientTransformation:
    """Adam in prior-whitened coordinates, with warm-up and cosine decay.

    Adam's step is about ``learning_rate`` in every coordinate whatever the
    gradient's size. Multiplying its updates by the prior standard deviation
    of each weight (when ``model`` is given) makes that step
    ``learning_rate`` prior standard deviations instead, which is the same as
    running Adam on ``W / prior_std``: high-degree weights, whose prior scale
    is ``decay_rate**degree`` times smaller, no longer take steps far larger
    than their own scale. The cosine decay to 1/50 of the peak removes most of
    the stochastic-gradient jitter from the final estimate.
    """
    warmup = max(1, min(100, steps // 10))
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=learning_rate / 10,
        peak_value=learning_rate,
        warmup_steps=warmup,
        decay_steps=max(steps, warmup + 1),
        end_value=learning_rate / 50,
    )
    adam = optax.adam(schedule)
    if model is None:
        return adam
    sd = jnp.asarray(model.prior_std())

    def update(updates, state, params=None):
        return jax.tree_util.tree_map(lambda u: u * sd.astype(u.dtype), updates), state

    precondition = optax.GradientTransformation(lambda params: optax.EmptyState(), update)
    return optax.chain(adam, precondition)


def resolve_model(data, model) -> tuple[TrialData, WPPM]:
    """Coerce data, default the model to ``WPPM(input_dim=data's d)``, check they agree."""
    data = as_trial_data(data)
    if model is None:
        model = WPPM(input_dim=data.input_dim)
    if not isinstance(model, WPPM):
        raise TypeError(f"model must be a psyphy_numpyro.WPPM, got {type(model).__name__}")
    if model.input_dim != data.input_dim:
        raise ValueError(
            f"data has stimulus dimension {data.input_dim} but the model has "
            f"input_dim={model.input_dim}"
        )
    return data, model


def _check_count(name, value, lo=1):
    return check_int(name, value, lo)


def _use_progress(progress) -> bool:
    if progress is None:
        return not os.environ.get("CI")
    return bool(progress)


@dataclass
class MAPFit:
    """Result of :func:`fit_map`.

    Attributes
    ----------
    params : dict
        ``{"W": array}`` in psyphy's layout.
    model : WPPM
    data : TrialData
    loss_history : numpy array (steps,)
        SVI loss (negative log joint, one noisy Monte Carlo evaluation per
        step) of the chosen restart.
    restart_histories : numpy array (num_restarts, steps)
    restart_losses : numpy array (num_restarts,)
        Low-noise negative log joint at the end of each restart (``inf`` for a
        restart that diverged); the smallest one was kept.
    best_restart : int
    init_params : dict
        The starting point (``{"W": ...}``) of the kept restart.
    """

    params: dict
    model: WPPM
    data: TrialData
    loss_history: np.ndarray
    restart_histories: np.ndarray = field(repr=False)
    restart_losses: np.ndarray
    best_restart: int
    init_params: dict = field(repr=False, default=None)
    seed: int = 0

    def covariance(self, x):
        """``Sigma(x)`` of the MAP field, shape ``(..., d, d)``."""
        return self.model.covariance(self.params, x)

    def sqrt_covariance(self, x):
        """``U(x)`` of the MAP field, shape ``(..., d, d+e)``."""
        return self.model.sqrt_covariance(self.params, x)

    def p_correct(self, ref, comparison, *, key=0, num_samples=None):
        """p(correct) of trials under the MAP field (``key`` fixes the noise)."""
        return self.model.p_correct(
            self.params, ref, comparison, key=key, num_samples=num_samples
        )

    def log_likelihood(self, *, key=0, num_samples=None):
        """Pointwise log-likelihood of the fitted data, shape ``(N,)``."""
        return self.model.log_likelihood(self.params, self.data, key=key, num_samples=num_samples)

    def weight_draws(self) -> np.ndarray:
        """``W`` as a single draw, shape ``(1, 1, *weight_shape)`` (chain, draw, ...)."""
        return np.asarray(self.params["W"])[None, None]

    def to_arviz(self, *, key=0, num_samples=None, grid=None):
        """ArviZ InferenceData with a one-chain, one-draw posterior.

        Groups: ``posterior`` (``W`` and ``Sigma`` on ``grid``),
        ``observed_data``, ``constant_data``, ``log_likelihood`` and
        ``sample_stats`` (final loss).
        """
        from .arviz_io import to_inference_data

        loglik = np.asarray(self.log_likelihood(key=key, num_samples=num_samples))
        return to_inference_data(
            self.model,
            self.data,
            self.weight_draws(),
            loglik[None, None],
            sample_stats={"loss": np.array([[self.restart_losses[self.best_restart]]])},
            grid=grid,
            attrs={"inference": "map", "steps": int(self.loss_history.shape[0])},
        )

    def save(self, path) -> None:
        """Save the fit to a NetCDF file, atomically; reload with :func:`~psyphy_numpyro.load_fit`.

        The file holds the exact ``W``, the model configuration, the data, the
        loss histories, restart losses, starting point and seed (see
        :mod:`psyphy_numpyro.persist`).

        Parameters
        ----------
        path : str or os.PathLike
            Target file (conventionally ``*.nc``); replaced if it exists.
        """
        from .persist import save_fit

        save_fit(self, path)


AUTO_FULL_BATCH = 16384
AUTO_BATCH_SIZE = 8192


def fit_map(
    data,
    model: WPPM | None = None,
    *,
    steps: int = 2000,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 0.05,
    num_restarts: int = 3,
    seed: int = 0,
    progress: bool | None = None,
    init_params: dict | None = None,
    batch_size: int | str | None = "auto",
    eval_samples: int | None = None,
    init_scale: float = 0.3,
) -> MAPFit:
    """Maximum a posteriori fit of a WPPM through NumPyro SVI with an AutoDelta guide.

    Parameters
    ----------
    data : TrialData (or psyphy TrialData/ResponseData)
    model : WPPM, optional
        Defaults to ``WPPM(input_dim=data.input_dim)``.
    steps : int
        SVI steps per restart.
    optimizer : optax.GradientTransformation, optional
        Defaults to :func:`default_optimizer`: Adam in prior-whitened
        coordinates with warm-up and cosine decay.
    learning_rate : float
        Peak learning rate of the default optimiser, in units of each weight's
        prior standard deviation (ignored if ``optimizer`` is given).
    num_restarts : int
        Independent starts from prior draws; the restart with the lowest
        low-noise final loss is returned.
    seed : int
        Seeds the initial draws and the Monte Carlo noise: equal seeds give
        bit-identical fits.
    progress : bool, optional
        tqdm progress bar with the current loss per trial. Default: on, unless
        the ``CI`` environment variable is set.
    init_params : dict, optional
        ``{"W": ...}`` to start the first restart from (e.g. psyphy params).
    batch_size : int, "auto" or None
        Minibatch size for the ``"trials"`` plate (stochastic subsampling,
        likelihood rescaled to the full data); ``None`` uses every trial every
        step. ``"auto"`` (default) uses every trial up to
        ``AUTO_FULL_BATCH`` (16 384) trials and minibatches of
        ``AUTO_BATCH_SIZE`` (8 192) above, so a step costs the same for
        10^4 or 10^6 trials (see docs/performance.md for the trade-off).
    eval_samples : int, optional
        Monte Carlo samples per trial for the final loss used to pick the best
        restart (default ``max(8 * model.num_samples, 1024)``).
    init_scale : float
        Restarts start from ``init_scale`` times a prior draw. Starting from a
        weaker, more isotropic field than a full prior draw reached better
        optima (measured on 3 000 simulated trials, 4 starts each: field error
        0.33-0.44 at 0.3 against 0.41-1.1 at 1.0).

    Returns
    -------
    MAPFit

    Raises
    ------
    FitDivergedError
        If every restart produced a non-finite loss, or ended with a loss above
        both its starting loss and the largest loss ``W = 0`` can have (an
        optimiser that blew up). The message names the step or the losses and
        says what to try. A restart that fails this way is dropped with a
        warning when another one succeeds.
    """
    data, model = resolve_model(data, model)
    steps = _check_count("steps", steps)
    num_restarts = _check_count("num_restarts", num_restarts)
    seed = _check_count("seed", seed, lo=0)
    if isinstance(batch_size, str):
        if batch_size != "auto":
            raise ValueError(f'batch_size must be an int, None or "auto", got {batch_size!r}')
        batch_size = AUTO_BATCH_SIZE if len(data) > AUTO_FULL_BATCH else None
    if batch_size is not None:
        batch_size = _check_count("batch_size", batch_size)
        if batch_size >= len(data):
            batch_size = None
    learning_rate = check_real("learning_rate", learning_rate, 0.0)
    custom_optimizer = optimizer is not None
    if custom_optimizer and not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}"
        )
    if eval_samples is None:
        eval_samples = max(8 * model.num_samples, 1024)
    eval_samples = _check_count("eval_samples", eval_samples)
    if check_real("init_scale", init_scale) <= 0:
        raise ValueError(f"init_scale must be > 0, got {init_scale!r}")
    if init_params is not None:  # last: the only check that builds a JAX array
        init_params = {"W": check_params(init_params, model.weight_shape, "init_params")}
    if optimizer is None:
        optimizer = default_optimizer(steps, learning_rate, model)

    n = len(data)
    stimuli = jnp.asarray(data.stimuli, dtype=jnp.result_type(float))
    responses = jnp.asarray(data.responses)
    model_fn = partial(wppm_model, config=model, subsample_size=batch_size)
    guide = AutoDelta(model_fn)
    svi = SVI(model_fn, guide, optax_to_numpyro(optimizer), Trace_ELBO())

    chunk = min(steps, 50)

    @partial(jax.jit, static_argnums=2)
    def run(state, args, length):
        def body(s, _):
            s, loss = svi.update(s, *args)
            return s, loss

        return jax.lax.scan(body, state, None, length=length)

    show = _use_progress(progress)
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps * num_restarts, desc="fit_map", unit="step")

    root = jax.random.PRNGKey(seed)
    eval_key = jax.random.fold_in(root, 10**6)
    histories = np.full((num_restarts, steps), np.nan)
    finals = np.full(num_restarts, np.inf)

    def low_noise_loss(W):
        ll = model.log_likelihood({"W": W}, data, key=eval_key, num_samples=eval_samples)
        return -float(jnp.sum(ll) + model.prior().log_prob(W))

    # Every p(correct) is clipped to [P_EPS, 1 - P_EPS], so W = 0 (the prior mode) has a
    # loss of at most -log prior(0) + n (-log P_EPS). A final loss above that, and above
    # the restart's own starting loss, means the optimiser made things worse: divergence.
    # (No ratio to the best loss: the loss can be negative.)
    loss_bound = -float(model.prior().log_prob(jnp.zeros(model.weight_shape))) + n * (
        0.1 - math.log(oddity.P_EPS)
    )
    results = []
    starts = []
    failures = []
    try:
        for r in range(num_restarts):
            k_init, k_svi = jax.random.split(jax.random.fold_in(root, r))
            if r == 0 and init_params is not None:
                W0 = init_params
            else:
                W0 = {"W": init_scale * model.sample_prior(k_init)["W"]}
            starts.append(W0)
            state = svi.init(
                k_svi, stimuli, responses, init_params={"W_auto_loc": jnp.asarray(W0["W"])}
            )
            done = 0
            failed = None
            while done < steps:
                length = min(chunk, steps - done)
                state, losses = run(state, (stimuli, responses), length)
                losses = np.asarray(losses)
                histories[r, done : done + length] = losses
                bad = ~np.isfinite(losses)
                if bad.any():
                    failed = done + int(np.argmax(bad))
                    break
                done += length
                if bar is not None:
                    bar.update(length)
                    bar.set_postfix(restart=r, loss_per_trial=f"{losses[-1] / n:.4f}")
            W = svi.get_params(state)["W_auto_loc"]
            if failed is None and not bool(jnp.all(jnp.isfinite(W))):
                failed = steps - 1
            if failed is not None:
                failures.append(f"restart {r} diverged at step {failed}")
                if bar is not None:
                    bar.update(steps - done)
                results.append(None)
                continue
            final = low_noise_loss(W)
            if not final <= loss_bound:  # also NaN
                start = low_noise_loss(jnp.asarray(W0["W"], W.dtype))
                if not final <= start:
                    failures.append(
                        f"restart {r} ended at loss {final:.4g}, above its starting loss "
                        f"{start:.4g} and above the loss W = 0 can have ({loss_bound:.4g})"
                    )
                    results.append(None)
                    continue
            finals[r] = final
            results.append(W)
    finally:
        if bar is not None:
            bar.close()

    if all(w is None for w in results):
        step_hint = (
            "a smaller step size in the optax optimizer you passed (or optimizer=None for the "
            "default)"
            if custom_optimizer
            else f"a smaller learning_rate (now {learning_rate:g})"
        )
        raise FitDivergedError(
            "fit_map diverged: the loss or the weights became NaN/Inf or blew up ("
            + "; ".join(failures)
            + f"). Try {step_hint} or a smaller init_scale; if it persists, a larger "
            f"model.diag_term (now {model.diag_term:g}) keeps Sigma(x) well conditioned."
        )
    if failures:
        warnings.warn(
            "fit_map: " + "; ".join(failures) + "; the best finite restart was kept",
            RuntimeWarning,
            stacklevel=2,
        )
    best = int(np.argmin(finals))
    if not math.isfinite(finals[best]):
        raise FitDivergedError(
            "fit_map: the optimisation ended but the final (low-noise) loss of every restart "
            "is NaN/Inf, so no estimate can be trusted. Try a smaller learning rate, more "
            f"steps, or a larger model.diag_term (now {model.diag_term:g})."
        )
    return MAPFit(
        params={"W": results[best]},
        model=model,
        data=data,
        loss_history=histories[best],
        restart_histories=histories,
        restart_losses=finals,
        best_restart=best,
        init_params=starts[best],
        seed=seed,
    )
