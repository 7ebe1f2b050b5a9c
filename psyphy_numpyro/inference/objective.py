"""The objective of a MAP fit and its steps: :func:`map_model` (the WPPM with decentred
weights), the cached ``SVI`` of :func:`map_svi`, its loss (:func:`negative_log_posterior`)
and low-noise evaluation (:func:`evaluate`), and the pure, jittable ``init`` / ``update``
/ ``scan`` steps on a :data:`MAPState`. :class:`~psyphy_numpyro.inference.svi.MAP` is
the handle on them."""

from __future__ import annotations

import functools
from functools import partial

import jax
import jax.numpy as jnp
import optax
from numpyro.handlers import reparam
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoDelta
from numpyro.infer.reparam import LocScaleReparam
from numpyro.infer.svi import SVIState
from numpyro.infer.util import log_density

from ..model import pointwise_log_likelihood, wppm_model
from ..wppm import WPPM, as_wppm
from .optim import OptaxOptim, set_schedule, whitened_adam
from .trials import Trials
from .whiten import as_z, from_whitened

__all__ = [
    "MAPState",
    "PARAM_NAMES",
    "map_model",
    "map_svi",
    "state_z",
    "state_step",
    "negative_log_posterior",
    "evaluate",
    "init_state",
    "update",
    "scan_steps",
]


MAPState = SVIState
"""State of one MAP optimisation: NumPyro's ``SVIState`` (a JAX pytree).

``optim_state`` is ``(step, (z, optax_state))`` with ``z`` the unconstrained
AutoDelta parameters (:func:`state_z`), ``rng_key`` the key later steps consume
(fresh noise, minibatches)."""


def map_model(config: WPPM):
    """The model :func:`fit_map` optimises: :func:`~psyphy_numpyro.wppm_model` with its
    ``"W"`` site decentred by NumPyro's ``LocScaleReparam(centered=0)``.

    The weights become a site ``"W_decentered"`` with prior ``N(0, I)`` and ``W =
    prior_mean + prior_std * W_decentered`` is recorded as a deterministic site ``"W"``
    (``prior_mean`` is 0 unless the model has a ``weight_prior``): the same
    model (one log joint), in coordinates where every weight is measured in its own
    prior standard deviation, so one optimiser step means the same for a degree-0
    and a degree-8 weight. One object per configuration (cached), so programs built
    on it are reused.
    """
    return _map_model(as_wppm(config))


@functools.lru_cache(maxsize=64)
def _map_model(config: WPPM):
    return reparam(partial(wppm_model, config=config), config={"W": LocScaleReparam(0)})


#: the AutoDelta parameter of each unconstrained coordinate
PARAM_NAMES = {"W": "W_decentered_auto_loc", "lapse_rate": "lapse_rate_auto_loc"}


def map_svi(model: WPPM, optimizer: optax.GradientTransformation,
            batch_size: int | None = None) -> SVI:
    """The ``numpyro.infer.SVI`` of a MAP fit: an ``AutoDelta`` guide on :func:`map_model`,
    ``Trace_ELBO`` (for a point-mass guide, the negative log joint), ``optimizer``
    wrapped by :class:`OptaxOptim`; ``batch_size`` subsamples the ``"trials"`` plate.

    One object per ``(model, optimizer, batch_size)`` (cached), so the programs that
    step it compile once.
    """
    return _map_svi(as_wppm(model), optimizer, batch_size)


@functools.lru_cache(maxsize=64)
def _map_svi(model, optimizer, batch_size):
    fn = map_model(model)
    svi = SVI(fn, AutoDelta(fn), OptaxOptim(optimizer), Trace_ELBO(),
              subsample_size=batch_size)
    # SVI.init on a dummy data set sets up the guide (its sites and plates) and
    # svi.constrain_fn. Traced abstractly (jax.eval_shape): evaluated eagerly it would
    # compile every operation of the model one by one (~20 s); our states are built by
    # init_state, never by SVI.init, so the guide's traced default starts are replaced
    # by concrete zeros of their shapes
    n = max(8, batch_size or 0)
    d = model.input_dim
    jax.eval_shape(lambda key: svi.init(key, jnp.zeros((n, 2, d)), jnp.zeros(n, jnp.int32),
                                        weights=jnp.ones(n)), jax.random.PRNGKey(0))
    svi.guide._init_locs = {k: jnp.zeros(v.shape, v.dtype)
                            for k, v in svi.guide._init_locs.items()}
    return svi


def _svi_params(z: dict) -> dict:
    """Unconstrained ``z`` keyed by the AutoDelta parameter names."""
    return {PARAM_NAMES[k]: v for k, v in z.items()}


def state_z(state: MAPState) -> dict:
    """The unconstrained coordinates ``z`` of a state (or a batch of states)."""
    params = state.optim_state[1][0]
    return {k: params[name] for k, name in PARAM_NAMES.items() if name in params}


def state_step(state: MAPState):
    """Steps a state (or each of a batch of states) has taken."""
    return state.optim_state[0]


def _model_args(trials: Trials, noise):
    kwargs = {"weights": trials.weights}
    if noise is not None:
        kwargs["noise"] = noise
    return (trials.stimuli, trials.responses), kwargs


def negative_log_posterior(model: WPPM, z, trials: Trials, rng_key, batch_size=None,
                           noise=None):
    """The SVI loss at ``z``: ``-log p(W, y)`` of :func:`map_model` (jittable).

    NumPyro's ``Trace_ELBO`` of the ``AutoDelta`` guide at ``z``, i.e. the
    negative log joint of the model in decentred coordinates (its prior term is
    ``N(z; 0, I)``). ``noise=None`` draws fresh estimator noise from
    ``rng_key`` (and the minibatch, with ``batch_size``); fixed ``noise`` makes
    it deterministic.
    """
    svi = map_svi(model, whitened_adam(), batch_size)
    params = svi.constrain_fn(_svi_params(as_z(model, z)))
    args, kwargs = _model_args(trials, noise)
    return svi.loss.loss(rng_key, params, svi.model, svi.guide, *args, **kwargs,
                         **svi.static_kwargs)


def evaluate(model: WPPM, z, trials: Trials, rng_key, num_samples: int):
    """Low-noise ``-log p(W, y)`` of :func:`map_model` with ``num_samples`` estimator draws
    per trial (jittable): the model's pointwise log-likelihood chunk by chunk (memory does
    not grow with trials x samples) plus its log prior (the model on a weightless trial)."""
    z = as_z(model, z)
    params = from_whitened(model, z)
    lapse = params.get("lapse_rate")
    stim = trials.stimuli.astype(z["W"].dtype)
    ll = pointwise_log_likelihood(model, params["W"], stim, trials.responses, rng_key,
                                  num_samples, 4096, lapse)
    w = trials.weights.astype(ll.dtype)
    sites = {"W_decentered": z["W"]}
    if lapse is not None:
        sites["lapse_rate"] = lapse
    # the log prior: the model on one trial of weight 0 (a plate cannot be empty)
    one = model.fresh_noise(rng_key, (1,), 1, dtype=stim.dtype)
    prior = log_density(map_model(model), (stim[:1], trials.responses[:1]),
                        {"noise": one, "weights": jnp.zeros(1, stim.dtype)}, sites)[0]
    return -(jnp.sum(jnp.where(w > 0, w * ll, 0.0)) + prior)


# ---------------------------------------------------------------------------
# init / update / run
# ---------------------------------------------------------------------------
def init_state(model, optimizer, rng_key, z0, learning_rate=0.05, num_steps=2000,
               batch_size=None) -> MAPState:
    """A :class:`MAPState` at unconstrained ``z0`` (pure; jittable)."""
    svi = map_svi(model, optimizer, batch_size)
    step, (params, opt_state) = svi.optim.init(_svi_params(as_z(model, z0)))
    if optimizer is whitened_adam():
        opt_state = set_schedule(opt_state, learning_rate, num_steps)
    return SVIState((step, (params, opt_state)), None, rng_key)


def update(model, optimizer, batch_size, state: MAPState, trials: Trials, num_steps=None,
           noise=None):
    """One ``SVI.update`` step (pure; jittable).

    Returns ``(new_state, loss)`` where ``loss`` is the objective at the
    state's weights before the step. ``noise``: fixed estimator noise for the
    padded trials (the deterministic route), or ``None`` for fresh noise. With
    ``num_steps`` given, a state that has already taken ``num_steps`` steps is
    returned unchanged, with its loss (a fixed-length compiled loop can then serve
    any step count).
    """
    svi = map_svi(model, optimizer, batch_size)
    args, kwargs = _model_args(trials, noise)
    new, loss = svi.update(state, *args, **kwargs)
    if num_steps is None:
        return new, loss
    live = state_step(state) < num_steps
    return jax.tree_util.tree_map(lambda a, b: jnp.where(live, a, b), new, state), loss


def scan_steps(model, optimizer, batch_size, length, state, trials, num_steps=None,
               noise=None):
    """``length`` :func:`update` steps in one ``lax.scan``: ``(state, losses (length,))``."""

    def body(s, _):
        return update(model, optimizer, batch_size, s, trials, num_steps, noise)

    return jax.lax.scan(body, state, None, length=length)
