"""The WPPM configuration object and the NumPyro model function."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from . import estimators, field
from . import noise as _noise
from .errors import InvalidInput
from .validation import as_key, check_int, check_params, check_points, check_real

__all__ = ["WPPM", "wppm_model"]


def _check_pos(name, value, *, allow_zero=False):
    check_real(name, value, 0, lo_closed=allow_zero)


@dataclass(frozen=True)
class WPPM:
    """Wishart Process Psychophysical Model configuration (immutable).

    Parameters
    ----------
    input_dim : int
        Stimulus dimension ``d`` (1, 2 or 3). Stimuli live in ``[-1, 1]^d``.
    basis_degree : int
        Highest Chebyshev degree ``K`` per axis (``K + 1`` functions per axis).
    extra_dims : int
        Extra embedding dimensions ``e``: ``U(x)`` is ``d x (d + e)``.
    variance_scale : float
        Prior variance of the degree-0 weights.
    decay_rate : float
        Prior variance of a weight of total degree ``t`` is
        ``variance_scale * decay_rate**t``. Must be in (0, 1].
    diag_term : float
        Added to the diagonal of every ``Sigma(x)`` (>= 0).
    num_samples : int
        Monte Carlo samples per trial for p(correct).
    bandwidth : float
        Logistic smoothing of the oddity decision variable.
    estimator : {"cv", "reparam", "mc", "table"}
        p(correct) estimator (see :mod:`psyphy_numpyro.estimators`). The first
        three estimate the same expectation; ``"cv"`` is the most accurate per
        sample. ``"table"`` is the deterministic equal-covariance surrogate.

    Examples
    --------
    >>> import jax, psyphy_numpyro as pn
    >>> model = pn.WPPM(input_dim=2)
    >>> params = model.sample_prior(jax.random.PRNGKey(0))
    >>> params["W"].shape
    (5, 5, 2, 3)
    """

    input_dim: int = 2
    basis_degree: int = 4
    extra_dims: int = 1
    variance_scale: float = 4e-3
    decay_rate: float = 0.4
    diag_term: float = 1e-4
    num_samples: int = 64
    bandwidth: float = 1e-2
    estimator: str = "cv"

    def __post_init__(self):
        check_int("input_dim", self.input_dim, 1, 3)
        check_int("basis_degree", self.basis_degree, 0)
        check_int("extra_dims", self.extra_dims, 0)
        check_int("num_samples", self.num_samples, 1)
        _check_pos("variance_scale", self.variance_scale)
        check_real("decay_rate", self.decay_rate, 0, 1, hi_closed=True)
        _check_pos("diag_term", self.diag_term, allow_zero=True)
        _check_pos("bandwidth", self.bandwidth)
        estimators.get(self.estimator)  # a clear error for an unknown name

    # -- shapes and prior ----------------------------------------------------
    @property
    def embedding_dim(self) -> int:
        """``d + e``, the number of columns of ``U(x)``."""
        return self.input_dim + self.extra_dims

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """Shape of ``W``: ``(K+1,)*d + (d, d+e)``."""
        return field.weight_shape(self.input_dim, self.basis_degree, self.extra_dims)

    def replace(self, **changes) -> WPPM:
        """A copy with some settings changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def prior_std(self) -> np.ndarray:
        """Prior standard deviation of every entry of ``W`` (shape ``weight_shape``)."""
        return field.prior_std(
            self.input_dim,
            self.basis_degree,
            self.extra_dims,
            self.variance_scale,
            self.decay_rate,
        )

    def prior(self) -> dist.Distribution:
        """The prior of ``W`` as one NumPyro distribution (event shape ``weight_shape``)."""
        return dist.Normal(0.0, jnp.asarray(self.prior_std())).to_event(len(self.weight_shape))

    def sample_prior(self, key) -> dict:
        """Draw ``{"W": W}`` from the prior.

        Parameters
        ----------
        key : jax PRNG key or int seed
        """
        key = as_key(key)
        return {"W": jnp.asarray(self.prior_std()) * jax.random.normal(key, self.weight_shape)}

    @property
    def estimator_object(self) -> estimators.Estimator:
        """The :mod:`~psyphy_numpyro.estimators` object named by ``estimator``."""
        return estimators.get(self.estimator)

    def noise_shape(self, num_samples: int | None = None) -> tuple[int, ...]:
        """Per-trial shape of the standard-normal noise the estimator consumes."""
        return self.estimator_object.noise_shape(
            self._samples(num_samples), self.input_dim, self.extra_dims)

    def draw_noise(self, key, num_trials: int, num_samples: int | None = None):
        """IID noise for ``num_trials`` trials, shape ``(num_trials,) + noise_shape``."""
        return self.estimator_object.draw_noise(
            as_key(key), (num_trials,), self._samples(num_samples), self.input_dim,
            self.extra_dims)

    def _samples(self, num_samples) -> int:
        """``num_samples`` checked (>= 1), or the configured count when ``None``."""
        if num_samples is None:
            return self.num_samples
        return check_int("num_samples", num_samples, 1)

    def fresh_noise(self, key, batch_shape, num_samples: int | None = None, dtype=None):
        """Fresh estimator noise in the fastest form the estimator accepts.

        For ``"cv"``/``"reparam"`` this is :class:`~psyphy_numpyro.noise.SharedNoise`
        (per-trial noise never materialised; equal to :meth:`draw_noise` after
        ``.materialize()``), for ``"mc"`` an array. What fits use internally.
        """
        return self.estimator_object.fresh_noise(
            key, batch_shape, self._samples(num_samples), self.input_dim, self.extra_dims,
            dtype)

    def fixed_noise(self, seed: int, num_trials: int, num_samples: int | None = None,
                    dtype=None):
        """Quasi-random noise fixed by ``seed`` for a deterministic likelihood.

        Raises ``ValueError`` for an estimator without a fixed-noise form (``"mc"``).
        """
        return self.estimator_object.fixed_noise(
            seed, num_trials, self._samples(num_samples), self.input_dim, self.extra_dims,
            dtype)

    # -- read-outs (validated) ----------------------------------------------
    def sqrt_covariance(self, params, x) -> jnp.ndarray:
        """``U(x)``, shape ``(..., d, d+e)``, for ``x`` of shape ``(..., d)``."""
        W = check_params(params, self.weight_shape)
        x = check_points(x, self.input_dim, "x")
        return field.sqrt_field(W, x)

    def covariance(self, params, x) -> jnp.ndarray:
        """``Sigma(x)``, shape ``(..., d, d)``, for ``x`` of shape ``(..., d)``."""
        W = check_params(params, self.weight_shape)
        x = check_points(x, self.input_dim, "x")
        return field.covariance_field(W, x, self.diag_term)

    def p_correct(self, params, ref, comparison, *, key=None, noise=None, num_samples=None):
        """Estimated p(correct) of oddity trials.

        Parameters
        ----------
        params : dict with ``"W"``
        ref, comparison : array (..., d)
            Broadcast against each other.
        key : jax PRNG key or int seed
            Draws fresh estimator noise; required unless ``noise`` is given.
        noise : array (..., *noise_shape), optional
            Fixed standard normals (e.g. from :meth:`draw_noise`).
        num_samples : int, optional
            Overrides the configured sample count when drawing noise.

        Returns
        -------
        array (...,) in (0, 1)
        """
        W = check_params(params, self.weight_shape)
        ref = check_points(ref, self.input_dim, "ref")
        comparison = check_points(comparison, self.input_dim, "comparison")
        ref, comparison = jnp.broadcast_arrays(ref, comparison)
        if noise is None:
            if key is None:
                raise InvalidInput(
                    "p_correct needs a PRNG key (key=...) or fixed noise (noise=...)")
            noise = self.fresh_noise(as_key(key), ref.shape[:-1], num_samples)
        else:
            noise = jnp.asarray(noise)
        return _p_correct_jit(self, W, ref, comparison, noise)

    def log_likelihood(self, params, data, *, key=0, num_samples=None, chunk_size=4096):
        """Pointwise Bernoulli log-likelihood of every trial, shape ``(N,)``.

        Evaluated in chunks of ``chunk_size`` trials so that memory does not
        grow with ``N * num_samples``. ``key`` fixes the estimator noise, so
        repeated calls are identical.
        """
        from .data import as_trial_data

        data = as_trial_data(data)
        if data.input_dim != self.input_dim:
            raise InvalidInput(
                f"data has stimulus dimension {data.input_dim}, the model has "
                f"input_dim={self.input_dim}"
            )
        W = check_params(params, self.weight_shape)
        return _chunked_loglik(
            self,
            W,
            jnp.asarray(data.stimuli, dtype=W.dtype),
            jnp.asarray(data.responses),
            as_key(key),
            self._samples(num_samples),
            check_int("chunk_size", chunk_size, 1),
        )

    # -- unvalidated, jittable core -----------------------------------------
    def p_correct_from_weights(self, W, ref, comparison, noise):
        """Jittable p(correct) given ``W`` and explicit noise (no input checks)."""
        return self.estimator_object.p_correct(self, W, ref, comparison, noise)

    def log_likelihood_from_weights(self, W, stimuli, responses, noise):
        """Pointwise Bernoulli log-likelihood (jittable), shape ``(N,)``."""
        p = self.p_correct_from_weights(W, stimuli[:, 0], stimuli[:, 1], noise)
        y = responses.astype(p.dtype)
        return y * jnp.log(p) + (1.0 - y) * jnp.log1p(-p)


_p_correct_jit = jax.jit(WPPM.p_correct_from_weights, static_argnums=0)


@partial(jax.jit, static_argnums=(0, 5, 6))
def _chunked_loglik(config, W, stimuli, responses, key, num_samples, chunk_size):
    """Pointwise log-likelihood, chunk by chunk with ``lax.map`` (jittable)."""
    n = stimuli.shape[0]
    chunk = min(chunk_size, n)
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n
    stim = jnp.concatenate([stimuli, jnp.broadcast_to(stimuli[:1], (pad,) + stimuli.shape[1:])])
    y = jnp.concatenate([responses, jnp.zeros((pad,), responses.dtype)])
    stim = stim.reshape((n_chunks, chunk) + stimuli.shape[1:])
    y = y.reshape(n_chunks, chunk)

    def one(args):
        i, s, yy = args
        noise = config.fresh_noise(jax.random.fold_in(key, i), (chunk,), num_samples, W.dtype)
        return config.log_likelihood_from_weights(W, s, yy, noise)

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


def wppm_model(stimuli, responses=None, *, config: WPPM, noise=None, subsample_size=None,
               weights=None):
    """The WPPM as a NumPyro model.

    Sample sites: ``"W"`` (weights, prior from ``config``) and ``"y"``
    (Bernoulli responses, observed when ``responses`` is given) inside the
    ``"trials"`` plate.

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
        p = config.p_correct_from_weights(W, stim[:, 0], stim[:, 1], eps)
        obs = None
        if responses is not None:
            obs = responses[idx] if sub else responses
        like = dist.Bernoulli(probs=p)
        if weights is not None:
            w = weights[idx] if sub else weights
            like = like.mask(w > 0)
            with numpyro.handlers.scale(scale=jnp.where(w > 0, w, 1.0)):
                numpyro.sample("y", like, obs=obs)
        else:
            numpyro.sample("y", like, obs=obs)
