"""NUTS on the WPPM NumPyro model with a deterministic surrogate likelihood."""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS

from .errors import FitFailedError, InvalidInput, InvalidType
from .estimators import check_fixed_noise, surrogate_noise
from .estimators import surrogate_model as surrogate_model_of
from .fits import MAPFit
from .inference.svi import bucket_size, pad_trials
from .interop import as_params, is_psyphy_object
from .map_fit import fit_map
from .model import wppm_model
from .posterior import MCMCFit
from .progress import use_progress
from .resolve import resolve_model
from .validation import check_count, check_real, seed_from

__all__ = ["fit_mcmc", "surrogate_noise"]

_CHAIN_METHODS = ("sequential", "parallel", "vectorized")


def fit_mcmc(
    data,
    model=None,
    *,
    num_warmup: int = 500,
    num_draws: int = 500,
    num_chains: int = 2,
    init=None,
    seed: int = 0,
    rng_key=None,
    progress: bool | None = None,
    chain_method: str = "sequential",
    target_accept_prob: float = 0.8,
    dense_mass: bool = False,
    max_tree_depth: int = 8,
    surrogate_samples: int = 0,
    surrogate_bandwidth: float | None = None,
    init_jitter: float = 0.05,
    steps: int | None = None,
) -> MCMCFit:
    """Sample the WPPM posterior with NUTS.

    NUTS needs a deterministic, smooth log density, but p(correct) is a Monte
    Carlo estimate. The sampler therefore runs on a *surrogate* likelihood
    (the prior and everything else are the model's own):

    - ``surrogate_samples=0`` (default): the ``"table"`` estimator
      (:mod:`psyphy_numpyro.estimators`), whatever the model's own estimator:
      the tabulated equal-covariance p(correct) ``f(d')`` with ``d'`` the
      Mahalanobis distance under the pooled covariance ``S``. Deterministic
      and smooth; exact when ``Sigma(ref) == Sigma(comparison)``, and off by
      a few hundredths where the field changes a lot between the two stimuli.
    - ``surrogate_samples=M > 0``: the model's estimator with ``M`` fixed
      quasi-Monte Carlo draws per trial (scrambled Sobol, shifted per trial);
      it needs an estimator with a fixed-noise form (``"cv"``, ``"reparam"``).
      With ``"cv"`` (radius integrated in closed form) this density is
      piecewise smooth in ``W`` at the model's own bandwidth and more accurate
      than the table, at a higher cost per iteration; ``"reparam"`` on fixed
      draws is a sum of near-steps (NUTS takes tiny steps there), so its
      default bandwidth is wider. Measurements of both are in
      ``docs/performance.md`` and ``docs/validation.md``.

    The surrogate's error against a high-sample estimate of the exact
    p(correct) is measured at the starting point and reported in
    ``fit.surrogate["rms_error"]``.

    Parameters
    ----------
    data : TrialData (or psyphy data)
    model : WPPM or psyphy WPPM, optional
        Defaults to ``WPPM(input_dim=d)``; a psyphy model is converted
        (:meth:`WPPM.from_psyphy`).
    num_warmup, num_draws, num_chains : int
        NUTS warm-up iterations, kept draws per chain, number of chains.
    init : MAPFit, dict, psyphy MAPPosterior or None
        Starting point: a MAP fit, ``{"W": ...}`` (psyphy's parameters
        too), a psyphy ``MAPPosterior``, or ``None`` to run a
        :func:`fit_map` first (``steps`` optimiser steps, default its own;
        this ``seed``: the same MAP as ``fit_map``'s). Each chain starts from it
        plus ``init_jitter`` prior standard deviations of Gaussian jitter.
    seed : int or jax PRNG key
        Seeds the surrogate noise, jitter and NUTS: equal seeds, equal draws.
    rng_key : jax PRNG key, optional
        Used instead of ``seed`` (an integer seed is drawn from it).
    progress : bool, optional
        NumPyro progress bar (default on unless ``CI`` is set).
    chain_method : {"sequential", "parallel", "vectorized"}
        ``"parallel"`` runs one chain per device (GPUs, or CPU devices from
        ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` set before
        importing JAX); sequential is fastest on a 2-core CPU.
    target_accept_prob, dense_mass, max_tree_depth
        NUTS settings.
    surrogate_samples : int
        Fixed QMC draws per trial of the surrogate likelihood (0 = table).
    surrogate_bandwidth : float, optional
        Logistic bandwidth of the surrogate (default: the model's; 0.1 for
        fixed draws of ``"reparam"``, whose density is rough at small
        bandwidths).

    Returns
    -------
    MCMCFit

    Notes
    -----
    For the most precise sampling enable float64 before any JAX work:
    ``jax.config.update("jax_enable_x64", True)``.
    """
    given = model
    data, model = resolve_model(data, model)
    num_warmup = check_count("num_warmup", num_warmup, lo=1)
    num_draws = check_count("num_draws", num_draws)
    num_chains = check_count("num_chains", num_chains)
    given_seed = seed if rng_key is None else rng_key  # the MAP start: fit_map's stream
    seed = seed_from(seed, rng_key)
    surrogate_samples = check_count("surrogate_samples", surrogate_samples, lo=0)
    if chain_method not in _CHAIN_METHODS:
        raise InvalidInput(f"chain_method must be one of {_CHAIN_METHODS}, got {chain_method!r}")
    target_accept_prob = check_real("target_accept_prob", target_accept_prob, 0.0, 1.0)
    init_jitter = check_real("init_jitter", init_jitter, 0.0, lo_closed=True)
    max_tree_depth = check_count("max_tree_depth", max_tree_depth)
    if steps is not None:
        steps = check_count("steps", steps)
    check_fixed_noise(
        model, "fit_mcmc", "NUTS samples a smooth deterministic surrogate of p(correct)",
        "surrogate_samples", surrogate_samples,
    )
    _check_init(init, model)
    surrogate_bandwidth = _surrogate_bandwidth(model, surrogate_samples, surrogate_bandwidth)
    surrogate_model = surrogate_model_of(model, surrogate_samples, surrogate_bandwidth)
    noise = surrogate_noise(surrogate_model, bucket_size(len(data)), surrogate_samples, seed)

    show = use_progress(progress)
    init_fit, params0 = _start(init, data, model, given, steps, given_seed, show)
    W0 = params0["W"]
    trials = pad_trials(data, noise.shape[0])
    settings = (num_warmup, num_draws, num_chains, chain_method, target_accept_prob,
                dense_mass, max_tree_depth, show)
    mcmc, draws, lapse = _run_nuts(surrogate_model, settings, trials, noise, params0,
                                   init_jitter, seed)
    fit = MCMCFit(
        model=model,
        data=data,
        draws=draws,
        lapse=lapse,
        mcmc=mcmc,
        surrogate={
            "num_samples": surrogate_samples,
            "bandwidth": float(surrogate_bandwidth),
            "rms_error": _surrogate_error(model, surrogate_model, W0, trials, noise, seed),
        },
        init_fit=init_fit,
    )
    _warn_diagnostics(fit, num_chains)
    return fit


def _check_init(init, model):
    if isinstance(init, dict) or is_psyphy_object(init, "params"):
        model.checked_params(init, "init", lapse_optional=True)
    elif isinstance(init, MAPFit):
        model.checked_params(init.params, "init.params")
    elif init is not None:
        raise InvalidType(
            "init must be a MAPFit, a dict {'W': ...}, a psyphy MAPPosterior or None, got "
            f"{type(init).__name__}"
        )


def _surrogate_bandwidth(model, surrogate_samples, bandwidth):
    if bandwidth is None:
        # fixed draws of "cv" are smooth at the model's bandwidth; "reparam"
        # draws are near-steps there and need a wider one
        rough = surrogate_samples > 0 and not model.estimator_object.smooth_when_fixed
        bandwidth = 0.1 if rough else model.bandwidth
    return check_real("surrogate_bandwidth", bandwidth, 0.0)


def _start(init, data, model, given, steps, seed, show):
    """``(init_fit, params0)``: the MAP fit the chains start from (made if needed; of the
    ``given`` model, None: chosen from the data) and its parameters (a learned lapse rate
    missing from a dict start: the prior mean)."""
    if init is None:
        init = fit_map(data, given, steps=steps, num_restarts=2, seed=seed, progress=show)
    fit, params = (init, init.params) if isinstance(init, MAPFit) else (None, as_params(init))
    params = model.checked_params(params, "init", lapse_optional=True)
    if model.learns_lapse and "lapse_rate" not in params:
        a, b = model.lapse_prior
        params["lapse_rate"] = jnp.asarray(a / (a + b))
    return fit, params


def _run_nuts(surrogate_model, settings, trials, noise, params0, init_jitter, seed):
    """Run the (cached) sampler from jittered copies of ``params0``;
    ``(mcmc, W draws, lapse draws or None)``."""
    num_chains = settings[2]
    W0 = params0["W"]
    k_jit, k_run = jax.random.split(jax.random.PRNGKey(seed))
    sd = jnp.asarray(surrogate_model.prior_std(), dtype=W0.dtype)
    jitter = init_jitter * sd * jax.random.normal(k_jit, (num_chains,) + W0.shape, W0.dtype)
    W_init = W0[None] + jitter
    init_params = {"W": W_init if num_chains > 1 else W_init[0]}
    if surrogate_model.learns_lapse:  # NUTS starts in unconstrained space: the logit
        lam = jnp.clip(jnp.asarray(params0["lapse_rate"], W0.dtype), 1e-4, 1 - 1e-4)
        u = jnp.log(lam / (1 - lam)) + init_jitter * jax.random.normal(
            jax.random.fold_in(k_jit, 1), (num_chains,), W0.dtype)
        init_params["lapse_rate"] = u if num_chains > 1 else u[0]
    mcmc = _sampler(surrogate_model, settings)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="There are not enough devices")
        mcmc.run(
            k_run,
            trials.stimuli,
            trials.responses,
            noise=noise,
            weights=trials.weights,
            init_params=init_params,
            extra_fields=("num_steps", "accept_prob", "energy", "adapt_state.step_size",
                          "potential_energy"),
        )
    mcmc = copy.copy(mcmc)  # this run's draws and fields; the cached sampler moves on
    samples = mcmc.get_samples(group_by_chain=True)
    draws = np.asarray(samples["W"])
    lapse = np.asarray(samples["lapse_rate"]) if "lapse_rate" in samples else None
    if not np.all(np.isfinite(draws)) or (lapse is not None and not np.isfinite(lapse).all()):
        raise FitFailedError(
            "fit_mcmc: NUTS produced non-finite draws of W; try init=fit_map(...) as the "
            "starting point, a higher target_accept_prob (e.g. 0.95), or a larger "
            "model.diag_term"
        )
    return mcmc, draws, lapse


def _surrogate_error(model, surrogate_model, W0, trials, noise, seed) -> float:
    """RMS error of the surrogate's perceptual p(correct) against a high-sample estimate at
    ``W0``."""
    ref, comp = trials.stimuli[:, 0], trials.stimuli[:, 1]
    p_ref = model.replace(lapse_rate=0.0).p_correct({"W": W0}, ref, comp, key=seed + 1,
                            num_samples=max(2048, 8 * model.num_samples))
    return float(_rms_error(surrogate_model, W0, ref, comp, noise, p_ref, trials.weights))


_SAMPLERS: OrderedDict = OrderedDict()
_SAMPLER_CACHE_SIZE = 8


def _sampler(surrogate_model, settings) -> MCMC:
    """The NumPyro MCMC object for a surrogate model and NUTS settings (built once).

    ``jit_model_args=True`` makes data, noise and trial weights arguments of
    the compiled sampler rather than constants baked into it, so a later fit
    with the same settings and padded trial count reuses the compilation.
    """
    key = (surrogate_model, settings)
    if key in _SAMPLERS:
        _SAMPLERS.move_to_end(key)
        return _SAMPLERS[key]
    num_warmup, num_draws, num_chains, chain_method, accept, dense, depth, show = settings
    kernel = NUTS(partial(wppm_model, config=surrogate_model), target_accept_prob=accept,
                  dense_mass=dense, max_tree_depth=depth)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_draws, num_chains=num_chains,
                chain_method=chain_method, progress_bar=show, jit_model_args=True)
    _SAMPLERS[key] = mcmc
    if len(_SAMPLERS) > _SAMPLER_CACHE_SIZE:
        _SAMPLERS.popitem(last=False)
    return mcmc


@partial(jax.jit, static_argnums=0)
def _rms_error(model, W, ref, comparison, noise, p_ref, weights):
    """RMS of surrogate minus reference p(correct) over the real (weight > 0) trials."""
    err = model.p_correct_from_weights(W, ref, comparison, noise) - p_ref
    real = weights > 0
    return jnp.sqrt(jnp.sum(jnp.where(real, err**2, 0.0)) / jnp.sum(real))


def _warn_diagnostics(fit: MCMCFit, num_chains: int) -> None:
    """Warn about divergences and non-convergence of identifiable quantities."""
    n_div = fit.divergences
    total = fit.num_draws
    if n_div > 0.02 * total:
        warnings.warn(
            f"fit_mcmc: {n_div} of {total} transitions diverged ({n_div / total:.1%}); "
            "raise target_accept_prob (e.g. 0.95) or surrogate_bandwidth",
            RuntimeWarning,
            stacklevel=3,
        )
    if num_chains > 1 and fit.draws.shape[1] >= 4:  # split r_hat needs >= 4 draws per chain
        from numpyro.diagnostics import split_gelman_rubin

        from .arviz_io import default_grid

        grid = default_grid(fit.model.input_dim)
        S = np.asarray(fit.covariance(grid)).reshape(fit.draws.shape[:2] + (-1,))
        rhat = float(np.nanmax(split_gelman_rubin(S)))
        fit.surrogate["max_rhat_sigma"] = rhat
        if rhat > 1.05:
            warnings.warn(
                f"fit_mcmc: max r_hat of Sigma on the grid is {rhat:.3f} (> 1.05); the chains "
                "have not mixed: run more warm-up and samples",
                RuntimeWarning,
                stacklevel=3,
            )
