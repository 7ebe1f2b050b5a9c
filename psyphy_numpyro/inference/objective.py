"""The MAP objective in prior-whitened coordinates, and its init / update / run.

This is the layer :func:`~psyphy_numpyro.fit_map` is built on, exposed the
way NumPyro's ``SVI`` exposes ``init``/``update``/``run`` and optax exposes
``init``/``update``: everything here is a pure function of explicit arrays,
so a user can write their own optimisation loop around it (see
``examples/custom_optimizer.py`` and ``docs/inference.md``).

Coordinates
-----------
The optimiser sees ``z = W / prior_std`` (every weight in units of its own
prior standard deviation), so the prior is ``N(0, I)`` in ``z`` and a step of
the same size is equally meaningful for a degree-0 and a degree-8 weight. The
objective is the negative log joint of the NumPyro model
(:func:`~psyphy_numpyro.wppm_model`) at ``W = prior_std * z``, normalising
constants included, so its values are those of ``-log p(W, y)``.

Trials
------
Data enter as :class:`Trials`: the trial axis padded to a size *bucket*
(:func:`bucket_size`) with a per-trial weight that is 0 on the padding. Data
sets whose sizes fall in one bucket share one compiled program; the weights
also carry bootstrap multiplicities and cross-validation folds.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..data import as_trial_data
from ..errors import InvalidInput, InvalidType
from ..model import WPPM, _chunked_loglik, as_wppm
from ..validation import as_key, check_int, check_real

__all__ = [
    "Trials",
    "MAPState",
    "MAP",
    "bucket_size",
    "padded_size",
    "pad_trials",
    "negative_log_posterior",
    "to_whitened",
    "from_whitened",
    "whitened_adam",
    "set_schedule",
]


class Trials(NamedTuple):
    """Trials padded to a bucket size (a JAX pytree).

    Attributes
    ----------
    stimuli : array (n_pad, 2, d)
        Real trials first, then copies of trial 0 as padding.
    responses : int32 array (n_pad,)
    weights : array (n_pad,)
        Likelihood weight of each trial: 1 for a real trial, 0 for padding
        (bootstrap multiplicities or fold masks otherwise).
    num_trials : int32 scalar
        Number of real trials (the rows minibatches are drawn from).
    """

    stimuli: Any
    responses: Any
    weights: Any
    num_trials: Any


class MAPState(NamedTuple):
    """State of one MAP optimisation (a JAX pytree).

    Attributes
    ----------
    z : dict
        The unconstrained parameters (see :func:`to_whitened`): ``"W"``, the
        whitened weights (``W = prior_std * z["W"]``), and, when the model
        learns its lapse rate, ``"lapse_rate"``, its logit.
    opt_state : optax state
    rng_key : PRNG key
        Consumed one split per step (Monte Carlo noise, minibatches).
    step : int32 scalar
        Steps taken so far.
    """

    z: Any
    opt_state: Any
    rng_key: Any
    step: Any


def bucket_size(n: int) -> int:
    """The padded trial count for ``n`` trials: the next ``m * 2**e`` with ``8 <= m < 16``.

    Padding wastes at most 1/8 of a step, and every data set whose size falls
    in one bucket (e.g. 1 921-2 048 trials) reuses one compiled program.
    """
    n = check_int("n", n, 1)
    if n <= 16:
        return n
    e = max(0, n.bit_length() - 4)
    return -(-n // 2**e) * 2**e


def padded_size(n: int, trial_capacity: int | None = None) -> int:
    """Padded trial count of a fit: :func:`bucket_size` of ``n``, raised to
    ``trial_capacity`` when that is given (a growing data set, such as an
    adaptive session's, padded to a fixed capacity reuses one program until
    it outgrows it)."""
    size = bucket_size(n)
    if trial_capacity is None:
        return size
    return max(size, check_int("trial_capacity", trial_capacity, 1))


def pad_trials(data, size: int | None = None, *, weights=None, dtype=None) -> Trials:
    """:class:`Trials` from data (TrialData or psyphy data), padded to ``size``.

    Parameters
    ----------
    data : TrialData
    size : int, optional
        Padded length (default :func:`bucket_size` of the trial count); must be
        at least the number of trials.
    weights : array (N,), optional
        Non-negative likelihood weight per real trial (default 1).
    dtype : float dtype, optional
        Of stimuli and weights (default JAX's default float).
    """
    data = as_trial_data(data)
    n = len(data)
    size = bucket_size(n) if size is None else check_int("size", size, n)
    dtype = dtype or jnp.result_type(float)
    stim = np.asarray(data.stimuli, dtype=np.float64)
    stim = np.concatenate([stim, np.broadcast_to(stim[:1], (size - n,) + stim.shape[1:])])
    y = np.concatenate([np.asarray(data.responses, np.int32), np.zeros(size - n, np.int32)])
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64).reshape(n)
    if not np.all(np.isfinite(w) & (w >= 0)):
        raise InvalidInput("weights must be finite and >= 0")
    w = np.concatenate([w, np.zeros(size - n)])
    return Trials(
        jnp.asarray(stim, dtype), jnp.asarray(y), jnp.asarray(w, dtype), jnp.asarray(n, jnp.int32)
    )


def _prior_std(model: WPPM, dtype):
    return jnp.asarray(model.prior_std(), dtype)


def to_whitened(model: WPPM, params: dict, dtype=None) -> dict:
    """The unconstrained coordinates ``z`` of (checked) params.

    ``z["W"] = W / prior_std`` (the prior is ``N(0, I)`` in it) and, for a
    learned lapse rate, ``z["lapse_rate"] = logit(lapse)`` (the prior mean of
    the lapse rate when ``params`` has none).
    """
    dtype = dtype or jnp.result_type(float)
    sd = np.asarray(model.prior_std(), np.float64)
    z = {"W": jnp.asarray(np.asarray(params["W"], np.float64) / sd, dtype)}
    if model.learns_lapse:
        a, b = model.lapse_prior
        lam = float(np.asarray(params.get("lapse_rate", a / (a + b))))
        lam = min(max(lam, 1e-6), 1 - 1e-6)
        z["lapse_rate"] = jnp.asarray(math.log(lam / (1 - lam)), dtype)
    return z


def from_whitened(model: WPPM, z: dict) -> dict:
    """``params`` (psyphy's layout, plus ``"lapse_rate"``) from unconstrained ``z`` (jittable;
    a batch of ``z`` gives a batch of params)."""
    W, lapse = _unwhiten(model, z)
    return {"W": W} if lapse is None else {"W": W, "lapse_rate": lapse}


def _as_z(model: WPPM, z) -> dict:
    """``z`` as a dict: a bare array is the whitened ``W`` of a model without a learned lapse."""
    if isinstance(z, dict):
        return z
    if model.learns_lapse:
        raise InvalidType('this model learns its lapse rate: z must be a dict with "W" and '
                          '"lapse_rate" (see to_whitened)')
    return {"W": z}


def _unwhiten(model: WPPM, z):
    """``(W, lapse or None)`` of ``z``."""
    z = _as_z(model, z)
    W = _prior_std(model, z["W"].dtype) * z["W"]
    return W, (jax.nn.sigmoid(z["lapse_rate"]) if model.learns_lapse else None)


def _log_prior(model: WPPM, z):
    """Log prior density at ``z``: ``N(W; 0, prior_std)`` (normalised, in W) and, when
    learned, ``Beta(lapse; *lapse_prior)`` (a density in the lapse rate, as in the
    NumPyro model: the objective's optimum is the MAP of ``(W, lapse)``)."""
    z = _as_z(model, z)
    zw = z["W"]
    sd = _prior_std(model, zw.dtype)
    out = jnp.sum(-0.5 * zw**2 - jnp.log(sd) - 0.5 * math.log(2 * math.pi))
    if model.learns_lapse:
        out = out + model.lapse_prior_dist().log_prob(jax.nn.sigmoid(z["lapse_rate"]))
    return out


def negative_log_posterior(model: WPPM, z, trials: Trials, rng_key, batch_size=None):
    """``-log p(W, y)`` at ``W = prior_std * z`` with fresh Monte Carlo noise (jittable).

    Parameters
    ----------
    model : WPPM
    z : dict
        Unconstrained parameters (:func:`to_whitened`); a bare array is read as
        the whitened ``W`` of a model without a learned lapse rate.
    trials : Trials
    rng_key : PRNG key
        Draws the estimator noise (and the minibatch).
    batch_size : int, optional
        Minibatch of trials drawn uniformly (with replacement) from the real
        trials; the likelihood is rescaled to the whole data set, so the value
        is an unbiased estimate of the full objective.

    Returns
    -------
    scalar
        One stochastic evaluation: ``log`` of a Monte Carlo mean, so slightly
        biased low in the likelihood at few samples.
    """
    W, lapse = _unwhiten(model, z)
    dt = W.dtype
    stim, y, w = trials.stimuli, trials.responses, trials.weights.astype(dt)
    k_noise, k_batch = jax.random.split(rng_key)
    if batch_size is not None:
        idx = jax.random.randint(k_batch, (batch_size,), 0, trials.num_trials)
        stim, y = stim[idx], y[idx]
        w = w[idx] * (trials.num_trials.astype(dt) / batch_size)
    noise = model.fresh_noise(k_noise, (stim.shape[0],), dtype=dt)
    ll = model.log_likelihood_from_weights(W, stim, y, noise, lapse)
    return -(jnp.sum(jnp.where(w > 0, w * ll, 0.0)) + _log_prior(model, z))


def evaluate(model: WPPM, z, trials: Trials, rng_key, num_samples: int):
    """Low-noise ``-log p(W, y)`` with ``num_samples`` per trial (jittable, chunked)."""
    W, lapse = _unwhiten(model, z)
    ll = _chunked_loglik(
        model, W, trials.stimuli.astype(W.dtype), trials.responses, rng_key, num_samples, 4096,
        lapse,
    )
    w = trials.weights.astype(W.dtype)
    return -(jnp.sum(jnp.where(w > 0, w * ll, 0.0)) + _log_prior(model, z))


# ---------------------------------------------------------------------------
# the default optimiser: Adam with warm-up and cosine decay, hyperparameters in the state
# ---------------------------------------------------------------------------
class ScheduleState(NamedTuple):
    """Count and schedule hyperparameters (arrays, so new values never recompile)."""

    count: Any
    peak: Any
    total: Any


def _scale_by_warmup_cosine() -> optax.GradientTransformation:
    """Multiply updates by ``-lr(count)``: linear warm-up from peak/10, cosine to peak/50."""

    def init(params):
        return ScheduleState(jnp.zeros((), jnp.int32), jnp.asarray(0.05), jnp.asarray(2000))

    def update(updates, state, params=None):
        c = state.count.astype(jnp.float32)
        total = state.total.astype(jnp.float32)
        warm = jnp.clip(jnp.floor(total / 10), 1.0, 100.0)
        decay = jnp.maximum(total, warm + 1) - warm
        frac = jnp.clip((c - warm) / decay, 0.0, 1.0)
        lo, peak = state.peak / 50, state.peak
        cosine = lo + (peak - lo) * 0.5 * (1 + jnp.cos(jnp.pi * frac))
        lr = jnp.where(c < warm, peak / 10 + (peak - peak / 10) * c / warm, cosine)
        new = jax.tree_util.tree_map(lambda u: (-lr).astype(u.dtype) * u, updates)
        return new, state._replace(count=state.count + 1)

    return optax.GradientTransformation(init, update)


_WHITENED_ADAM = optax.chain(optax.scale_by_adam(), _scale_by_warmup_cosine())


def whitened_adam() -> optax.GradientTransformation:
    """The default MAP optimiser (one shared object, so its program compiles once).

    Adam on the whitened weights ``z``: every step is about ``learning_rate``
    prior standard deviations in every coordinate. The learning rate warms up
    linearly from a tenth of its peak over ``min(100, steps // 10)`` steps,
    then decays along a cosine to a fiftieth of the peak at ``steps``. Peak and
    step count live in the optimiser state (set them with :func:`set_schedule`
    or :meth:`MAP.init`), so changing them never recompiles.
    """
    return _WHITENED_ADAM


def set_schedule(opt_state, learning_rate: float, num_steps: int):
    """Set the peak learning rate and step count of a :func:`whitened_adam` state."""
    adam_state, sched = opt_state
    sched = sched._replace(
        peak=jnp.asarray(learning_rate, jnp.float32), total=jnp.asarray(num_steps, jnp.int32)
    )
    return (adam_state, sched)


# ---------------------------------------------------------------------------
# init / update / run
# ---------------------------------------------------------------------------
def init_state(model, optimizer, rng_key, z0, learning_rate=0.05, num_steps=2000) -> MAPState:
    """A :class:`MAPState` at whitened weights ``z0`` (pure; jittable)."""
    opt_state = optimizer.init(z0)
    if optimizer is _WHITENED_ADAM:
        opt_state = set_schedule(opt_state, learning_rate, num_steps)
    return MAPState(z0, opt_state, rng_key, jnp.zeros((), jnp.int32))


def update(model, optimizer, batch_size, state: MAPState, trials: Trials, num_steps=None):
    """One optimiser step on :func:`negative_log_posterior` (pure; jittable).

    Returns ``(new_state, loss)`` where ``loss`` is the objective at the
    state's weights before the step. With ``num_steps`` given, a state that has
    already taken ``num_steps`` steps is returned unchanged (a fixed-length
    compiled loop can then serve any step count).
    """
    key, sub = jax.random.split(state.rng_key)
    loss, grad = jax.value_and_grad(negative_log_posterior, argnums=1)(
        model, state.z, trials, sub, batch_size
    )
    updates, opt_state = optimizer.update(grad, state.opt_state, state.z)
    new = MAPState(optax.apply_updates(state.z, updates), opt_state, key, state.step + 1)
    if num_steps is None:
        return new, loss
    live = state.step < num_steps
    new = jax.tree_util.tree_map(lambda a, b: jnp.where(live, a, b), new, state)
    return new, jnp.where(live, loss, jnp.nan)


class MAP:
    """MAP estimation of a WPPM as ``init`` / ``update`` / ``run`` (like NumPyro's ``SVI``).

    Parameters
    ----------
    model : WPPM
    optimizer : optax.GradientTransformation, optional
        Acts on the whitened weights ``z = W / prior_std``. Default
        :func:`whitened_adam`, whose peak ``learning_rate`` and ``num_steps``
        are set by :meth:`init`.
    batch_size : int, optional
        Minibatch size (``None``: every trial every step).

    Examples
    --------
    >>> problem = pn.MAP(model)                      # doctest: +SKIP
    >>> state = problem.init(jax.random.key(0), data, num_steps=500)
    >>> trials = problem.trials(data)
    >>> state, loss = problem.update(state, trials)  # jit it yourself, or use run()
    >>> params = problem.get_params(state)           # {"W": ...}
    """

    def __init__(self, model: WPPM, optimizer=None, batch_size: int | None = None):
        model = as_wppm(model)
        if optimizer is None:
            optimizer = whitened_adam()
        if not isinstance(optimizer, optax.GradientTransformation):
            raise InvalidType(
                "optimizer must be an optax.GradientTransformation, got "
                f"{type(optimizer).__name__}"
            )
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, 1)
        self.model, self.optimizer, self.batch_size = model, optimizer, batch_size

    def trials(self, data, size=None, *, weights=None) -> Trials:
        """The data as padded :class:`Trials` (see :func:`pad_trials`)."""
        return pad_trials(data, size, weights=weights)

    def init_z(self, rng_key, init_params=None, init_scale: float = 0.3):
        """Unconstrained start (:func:`to_whitened`): ``init_params`` if given, else
        ``init_scale`` x a prior draw of ``W`` (and the prior mean of a learned lapse rate)."""
        if init_params is not None:
            params = self.model.checked_params(init_params, "init_params", lapse_optional=True)
            return to_whitened(self.model, params)
        scale = check_real("init_scale", init_scale, 0.0)
        zw = scale * jax.random.normal(as_key(rng_key), self.model.weight_shape)
        return to_whitened(self.model, {"W": zw * self.model.prior_std()}) | {"W": zw}

    def init(self, rng_key, data=None, *, init_params=None, init_scale: float = 0.3,
             learning_rate: float = 0.05, num_steps: int = 2000) -> MAPState:
        """Initial :class:`MAPState` (``data`` is accepted for symmetry with ``SVI.init``).

        ``rng_key`` is split into the start's key (a prior draw, unless
        ``init_params`` is given) and the key the steps consume.
        """
        k_init, k_run = jax.random.split(as_key(rng_key))
        z0 = self.init_z(k_init, init_params, init_scale)
        learning_rate = check_real("learning_rate", learning_rate, 0.0)
        num_steps = check_int("num_steps", num_steps, 1)
        return init_state(self.model, self.optimizer, k_run, z0, learning_rate, num_steps)

    def loss(self, z, trials: Trials, rng_key):
        """:func:`negative_log_posterior` of this problem (pure; jittable)."""
        return negative_log_posterior(self.model, z, trials, rng_key, self.batch_size)

    def update(self, state: MAPState, trials: Trials):
        """One step: ``(new_state, loss)`` (compiled once per model, optimiser, shapes)."""
        return _update_jit(self.model, self.optimizer, self.batch_size, state, trials)

    def get_params(self, state: MAPState) -> dict:
        """``{"W": W}`` in psyphy's layout (plus ``"lapse_rate"`` when learned) from a
        state (or a batch of states)."""
        return from_whitened(self.model, state.z)

    def run(self, rng_key, data, num_steps: int, *, init_params=None, init_scale=0.3,
            learning_rate: float = 0.05):
        """``num_steps`` steps from a fresh :meth:`init`: ``(params, state, losses)``."""
        num_steps = check_int("num_steps", num_steps, 1)
        trials = self.trials(data)
        state = self.init(rng_key, init_params=init_params, init_scale=init_scale,
                          learning_rate=learning_rate, num_steps=num_steps)
        state, losses = _scan_jit(self.model, self.optimizer, self.batch_size, num_steps,
                                  state, trials)
        return self.get_params(state), state, np.asarray(losses)


_update_jit = jax.jit(update, static_argnums=(0, 1, 2))


def scan_steps(model, optimizer, batch_size, length, state, trials, num_steps=None):
    """``length`` :func:`update` steps in one ``lax.scan``: ``(state, losses (length,))``."""

    def body(s, _):
        return update(model, optimizer, batch_size, s, trials, num_steps)

    return jax.lax.scan(body, state, None, length=length)



_scan_jit = jax.jit(scan_steps, static_argnums=(0, 1, 2, 3))
