"""The population model: a hierarchical WPPM over several observers, as one NumPyro model.

Observers of one population share most of their field. Observer ``i``'s weights are
the population's plus a deviation, scaled so that every observer's own prior is the
single-observer prior:

``W_i = (W_pop + delta_i) / sqrt(1 + tau^2)``,  ``W_pop ~ N(0, prior_std^2)``,
``delta_i ~ N(0, tau^2 prior_std^2)``,

so each ``W_i ~ N(0, prior_std^2)`` and two observers' weights have correlation
``1 / (1 + tau^2)``. ``tau`` is how far observers stray from the population in
units of the prior: ``tau -> 0`` is one shared field, ``tau -> infinity``
independent observers with the usual prior (the single-observer fits). The
population field (the observers' mean) is ``W_pop / sqrt(1 + tau^2)``, recorded as
the deterministic site ``"W_mean"``. ``tau`` is a parameter with a half-normal
prior (``tau_scale``) or a fixed number. A learned lapse rate is per observer.
Responses are the single-observer model's ``"y"`` site
(:func:`~psyphy_numpyro.model.observe_responses`) in an ``observers x trials``
plate: the likelihood is written once, in ``model.py``.

Observer scales
---------------
One ``tau`` for every observer lets one genuinely different observer (an
outlier field) inflate everyone's ``tau``, and pulls that observer towards the
population anyway. With ``observer_scales``, observer ``i`` strays by its own
``tau_i = tau kappa_i``, with a log-normal local scale: the site
``"log_kappa"`` ``~ N(0, kappa_sd^2)`` (``observers`` plate; ``"kappa"`` its
exponential, a deterministic site). The site is the logarithm so that a MAP
fit centres the ``kappa_i`` on 1 in log terms (the mode of a log-normal in
``kappa`` itself is ``exp(-kappa_sd^2)``), which keeps ``tau`` the typical
observer's scale (about the geometric mean of the ``tau_i``):

``W_i = (W_pop + delta_i) / sqrt(1 + tau_i^2)``,  ``delta_i ~ N(0, tau_i^2 prior_std^2)``,

so every ``W_i ~ N(0, prior_std^2)`` still, an observer with a large ``kappa_i``
is practically independent, and ``tau`` stays the typical observer's scale:
the population field ``"W_mean"`` is ``W_pop / sqrt(1 + tau^2)`` (a new
observer's mean, at ``kappa = 1``).

The rotation orbit
------------------
``U(x) R`` gives the same ``Sigma(x)`` for any orthogonal ``R``, so a single
observer's weights are identified only up to a rotation of ``U``'s columns. In
the pooled model every ``delta_i`` is penalised by its size: an observer whose
field equals the population's up to a rotation would need a large ``delta_i``
to sit on a rotated copy, while the unrotated copy costs nothing. Each observer
therefore takes the member of its orbit closest to the population's weights,
and observers cannot wander to rotations of their own; only the population
field's rotation is arbitrary (as for one observer), which no read-out sees.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from . import noise as _noise
from .errors import InvalidInput
from .model import observe_responses
from .wppm import WPPM

__all__ = ["population_model", "sample_tau", "sample_observer_scales", "check_tau"]


def _per_observer_noise(noise):
    """vmap axes of the estimator noise over observers (factored noise shares its block)."""
    if isinstance(noise, _noise.SharedNoise):
        return _noise.SharedNoise(None, 0)
    return 0


def population_model(stimuli, responses=None, *, config: WPPM, noise=None, weights=None,
                     tau=None, tau_scale: float = 0.5, kappa=None):
    """The hierarchical WPPM as a NumPyro model.

    Sample sites: ``"W_pop"`` (population weights, prior from ``config``),
    ``"tau"`` (when ``tau`` is None; ``HalfNormal(tau_scale)``), ``"delta"``
    (per-observer deviations, ``observers`` plate), ``"lapse_rate"`` (per
    observer, when ``config`` learns it) and ``"y"`` (the responses, in the
    ``observers x trials`` plates). ``"W"`` (``(W_pop + delta) / sqrt(1 + tau_i^2)``, one
    per observer) and ``"W_mean"`` (the population field, ``W_pop / sqrt(1 + tau^2)``) are
    recorded as deterministic sites.

    Parameters
    ----------
    stimuli : array (K, N, 2, d)
        Each observer's trials, padded to a common ``N`` (padding has weight 0).
    responses : array (K, N), optional
    config : WPPM
        The single-observer configuration every observer shares.
    noise : estimator noise for ``(K, N)`` trials, optional
        Fixed noise (``config.fresh_noise(key, (K, N))``); ``None`` draws it
        from ``numpyro.prng_key()`` (needs a seed handler, as SVI gives).
    weights : array (K, N), optional
        Likelihood weight of each trial (0 on padding).
    tau : float, optional
        Fix the deviation scale (``> 0``) instead of learning it.
    tau_scale : float
        Scale of ``tau``'s half-normal prior.
    kappa : array (K, 1), optional
        Each observer's local scale (``tau_i = tau kappa_i``; see the module), e.g.
        the ``"kappa"`` site of :func:`sample_observer_scales`. ``None``: one ``tau``.
    """
    K, N = stimuli.shape[0], stimuli.shape[1]
    W_pop = numpyro.sample("W_pop", config.prior())
    if tau is None:
        tau = sample_tau(tau_scale)
    sd = jnp.asarray(config.prior_std())
    event = len(config.weight_shape)
    # tau_i: (K, ...) against W's (K, *weight_shape); (K, 1, ...) against delta's
    tau_i = tau if kappa is None else tau * jnp.reshape(kappa, (K,) + (1,) * event)
    tau_d = tau if kappa is None else tau_i[:, None]
    with numpyro.plate("observers", K, dim=-2):
        delta = numpyro.sample("delta", dist.Normal(0.0, tau_d * sd).to_event(event))
        lapse = (numpyro.sample("lapse_rate", config.lapse_prior_dist())
                 if config.learns_lapse else None)
    numpyro.deterministic("W_mean", W_pop / jnp.sqrt(1.0 + jnp.square(tau)))
    shrink = 1.0 / jnp.sqrt(1.0 + jnp.square(tau_i))
    W = numpyro.deterministic("W", shrink * (W_pop + delta.reshape((K,) + config.weight_shape)))
    if noise is None:
        noise = config.fresh_noise(numpyro.prng_key(), (K, N), dtype=W.dtype)

    def probs(Wk, stim, eps, lam):
        p = config.p_correct_from_weights(Wk, stim[:, 0], stim[:, 1], eps)
        return config.response_p(p, lam)

    lam = None if lapse is None else lapse.reshape(K)
    p = jax.vmap(probs, in_axes=(0, 0, _per_observer_noise(noise), None if lam is None else 0))(
        W, stimuli.astype(W.dtype), noise, lam)
    with numpyro.plate("observers", K, dim=-2), numpyro.plate("trials", N, dim=-1):
        observe_responses(p, responses, weights)


def sample_tau(tau_scale: float):
    """The ``"tau"`` site: ``HalfNormal(tau_scale)``."""
    return numpyro.sample("tau", dist.HalfNormal(tau_scale))


def sample_observer_scales(num_observers: int, kappa_sd: float):
    """Each observer's local scale ``kappa``, shape ``(K, 1)``: the site ``"log_kappa" ~
    N(0, kappa_sd^2)`` (``observers`` plate) and its exponential, the deterministic site
    ``"kappa"``."""
    with numpyro.plate("observers", num_observers, dim=-2):
        log_kappa = numpyro.sample("log_kappa", dist.Normal(0.0, kappa_sd))
    return numpyro.deterministic("kappa", jnp.exp(log_kappa))


def check_tau(tau):
    """``None`` for a learned ``tau`` (``"learn"``), else a positive float."""
    if isinstance(tau, str):
        if tau != "learn":
            raise InvalidInput(f'tau must be "learn" or a positive number, got {tau!r}')
        return None
    try:
        value = float(tau)
    except (TypeError, ValueError):
        raise InvalidInput(f'tau must be "learn" or a positive number, got {tau!r}') from None
    if not value > 0 or value != value or value == float("inf"):
        raise InvalidInput(f"tau must be positive and finite, got {tau!r}")
    return value
