"""The WPPM as a NumPyro model (:func:`wppm_model`) and its likelihood: the one
``"y"`` statement (:func:`observe_responses`), the lapse mixture and the chunked
pointwise log-likelihood. The configuration it reads is :class:`~psyphy_numpyro.wppm.WPPM`."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from . import noise as _noise
from .errors import InvalidInput

__all__ = ["wppm_model", "with_lapse", "pointwise_log_likelihood"]


def with_lapse(p, lapse):
    """``(1 - lapse) p + lapse / 3`` (``p`` itself for a Python ``0``)."""
    if isinstance(lapse, float | int) and lapse == 0:
        return p
    lapse = jnp.asarray(lapse, p.dtype)
    return (1.0 - lapse) * p + lapse / 3.0


@partial(jax.jit, static_argnums=(0, 5, 6))
def pointwise_log_likelihood(config, W, stimuli, responses, key, num_samples, chunk_size,
                             lapse=None):
    """Pointwise log-likelihood of the ``"y"`` site of :func:`wppm_model` (jittable), shape
    ``(N,)``: NumPyro's ``log_likelihood`` of the model, chunk by chunk with ``lax.map`` so
    that memory does not grow with ``N * num_samples``; chunk ``i`` draws its estimator
    noise from ``fold_in(key, i)``.

    ``lapse``: the lapse rate when the model learns it (``None``: the fixed one).
    """
    from numpyro.infer.util import log_likelihood

    n = stimuli.shape[0]
    chunk = max(1, min(chunk_size, n))
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n
    stim = jnp.concatenate([stimuli, jnp.broadcast_to(stimuli[:1], (pad,) + stimuli.shape[1:])])
    y = jnp.concatenate([responses, jnp.zeros((pad,), responses.dtype)])
    stim = stim.reshape((n_chunks, chunk) + stimuli.shape[1:])
    y = y.reshape(n_chunks, chunk)
    sites = {"W": W} if lapse is None else {"W": W, "lapse_rate": lapse}

    def one(args):
        i, s, yy = args
        noise = config.fresh_noise(jax.random.fold_in(key, i), (chunk,), num_samples, W.dtype)
        fn = partial(wppm_model, config=config, noise=noise)
        return log_likelihood(fn, sites, s, yy, batch_ndims=0)["y"]

    out = jax.lax.map(one, (jnp.arange(n_chunks), stim, y))
    return out.reshape(-1)[:n]


def _has_seed_handler() -> bool:
    """Whether a ``numpyro.handlers.seed`` is active (so ``prng_key()`` is the user's key).

    Under ``numpyro.infer.MCMC`` the potential is traced without one, and a
    model asking for a key would get none (or a fixed substitute): fresh noise
    there would silently be one fixed draw.
    """
    from numpyro.handlers import seed
    from numpyro.primitives import _PYRO_STACK

    return any(isinstance(h, seed) for h in _PYRO_STACK)


def _take_trials(noise, idx):
    """Noise of the trials ``idx`` (arrays and factored SharedNoise alike)."""
    if isinstance(noise, _noise.SharedNoise):
        return _noise.SharedNoise(noise.z, noise.Q[idx])
    return noise[idx]


def wppm_model(stimuli, responses=None, *, config, noise=None, subsample_size=None,
               weights=None):
    """The WPPM as a NumPyro model.

    Sample sites: ``"W"`` (weights, prior from ``config``), ``"lapse_rate"``
    (only when ``config.lapse_rate == "learn"``; prior
    ``Beta(*config.lapse_prior)``) and ``"y"`` (Bernoulli responses with
    probability ``(1 - lapse) p + lapse / 3``, observed when ``responses`` is
    given) inside the ``"trials"`` plate.

    Parameters
    ----------
    stimuli : array (N, 2, d)
        ``[:, 0]`` references, ``[:, 1]`` comparisons (already validated).
    responses : array (N,) of 0/1, optional
        Observed responses; ``None`` samples them (prior/posterior predictive).
    config : WPPM
        Model configuration (keyword only, so the function can be partially
        applied).
    noise : array (N, *config.noise_shape()) or SharedNoise, optional
        Fixed estimator noise. ``None`` draws fresh normals from
        ``numpyro.prng_key()`` on every evaluation (stochastic-gradient SVI),
        which needs a ``numpyro.handlers.seed`` context (SVI provides one).
        NUTS and other samplers need fixed noise so that the log density is
        deterministic: without it this model raises ``ValueError`` rather
        than run on one silently fixed draw (see :func:`~psyphy_numpyro.fit_mcmc`).
    subsample_size : int, optional
        Minibatch size for the ``"trials"`` plate (likelihood rescaled by
        NumPyro).
    weights : array (N,), optional
        Non-negative likelihood weight per trial (0 drops a trial: padding,
        held-out folds; integers: bootstrap multiplicities).
    """
    n = stimuli.shape[0]
    W = numpyro.sample("W", config.prior())
    lapse = numpyro.sample("lapse_rate", config.lapse_prior_dist()) if config.learns_lapse \
        else None
    with numpyro.plate("trials", n, subsample_size=subsample_size) as idx:
        sub = subsample_size is not None
        stim = stimuli[idx] if sub else stimuli
        if noise is None:
            key = numpyro.prng_key() if _has_seed_handler() else None
            if key is None:
                raise InvalidInput(
                    "wppm_model was evaluated without fixed noise and outside a "
                    "numpyro.handlers.seed context (as inside numpyro.infer.MCMC), so its "
                    "Monte Carlo noise would be one silent fixed draw: pass noise=... (e.g. "
                    "config.draw_noise(key, N), or fixed QMC noise from "
                    "psyphy_numpyro.mcmc.surrogate_noise), or use pn.fit_mcmc, which "
                    "samples a documented deterministic surrogate"
                )
            eps = config.fresh_noise(key, (stim.shape[0],), dtype=W.dtype)
        else:
            eps = _take_trials(noise, idx) if sub else noise
        p = config.response_p(config.p_correct_from_weights(W, stim[:, 0], stim[:, 1], eps),
                              lapse)
        obs = None
        if responses is not None:
            obs = responses[idx] if sub else responses
        w = None if weights is None else (weights[idx] if sub else weights)
        observe_responses(p, obs, w)


def observe_responses(p, responses=None, weights=None):
    """The ``"y"`` site: Bernoulli responses with probabilities ``p`` (inside the caller's
    plates), observed when ``responses`` is given; ``weights`` (same shape as ``p``) scale
    each trial's log-likelihood, 0 dropping it. The one likelihood statement of every model
    here (:func:`wppm_model` and the population model)."""
    like = dist.Bernoulli(probs=p)
    if weights is None:
        numpyro.sample("y", like, obs=responses)
        return
    like = like.mask(weights > 0)
    with numpyro.handlers.scale(scale=jnp.where(weights > 0, weights, 1.0)):
        numpyro.sample("y", like, obs=responses)
