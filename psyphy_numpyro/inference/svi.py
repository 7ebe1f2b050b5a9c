"""MAP as NumPyro ``SVI`` with an ``AutoDelta`` guide on the one WPPM model.

This is the layer :func:`~psyphy_numpyro.fit_map` is built on. The objective is
never written here: it is NumPyro's ``Trace_ELBO`` of an ``AutoDelta`` guide on
:func:`~psyphy_numpyro.wppm_model` (for a point mass, the negative log joint),
and a step is ``SVI.update``. :class:`MAP` exposes it the way NumPyro's ``SVI``
does (``init`` / ``update`` / ``run`` / ``get_params``), so a user can write
their own optimisation loop around it (see ``examples/custom_optimizer.py``).

Coordinates
-----------
The weights are decentred by NumPyro's ``LocScaleReparam(centered=0)``
(:func:`map_model`): the optimiser sees ``z = W / prior_std`` (every weight in
units of its own prior standard deviation; prior ``N(0, I)``), and a learned
lapse rate through its logit (NumPyro's unconstrained value of that site).

Two routes
----------
- *Deterministic* (the default of ``fit_map``): the estimator noise is one
  fixed draw passed to the model (``noise=...``), so the loss is a smooth
  deterministic function, minimised by ``optax.lbfgs`` with its zoom line
  search (:func:`lbfgs`).
- *Stochastic*: fresh noise (``noise=None``: the model draws it from
  NumPyro's ``prng_key``) and minibatches, with Adam (:func:`whitened_adam`).

Trials
------
Data enter as :class:`Trials`: the trial axis padded to a size *bucket*
(:func:`bucket_size`) with a per-trial weight that is 0 on the padding. Data
sets whose sizes fall in one bucket share one compiled program; the weights
also carry bootstrap multiplicities and cross-validation folds.
"""

from __future__ import annotations

import functools
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro.handlers import reparam
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoDelta
from numpyro.infer.reparam import LocScaleReparam
from numpyro.infer.svi import SVIState
from numpyro.infer.util import log_density

from .. import field
from ..errors import InvalidType
from ..model import pointwise_log_likelihood, wppm_model
from ..validation import as_key, check_int, check_real
from ..wppm import WPPM, as_wppm
from .optim import OptaxOptim, lbfgs, set_schedule, whitened_adam
from .trials import Trials, bucket_size, pad_trials, padded_size

__all__ = [
    "Trials",
    "MAPState",
    "MAP",
    "OptaxOptim",
    "bucket_size",
    "padded_size",
    "pad_trials",
    "map_model",
    "map_svi",
    "negative_log_posterior",
    "negative_log_prior",
    "to_whitened",
    "from_whitened",
    "whitened_adam",
    "lbfgs",
    "set_schedule",
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


def isotropic_start(model: WPPM) -> np.ndarray:
    """``W`` of the isotropic field of the prior's typical size: ``Sigma(x) = s^2 I +
    diag_term I`` with ``s^2`` the prior mean of ``Sigma_ii(x) - diag_term`` over the domain.

    Every fit_map restart starts here plus ``init_scale`` x a prior draw. A start
    near ``W = 0`` (the noise floor alone) predicts thresholds far below the
    observer's wherever the data were chosen near threshold (an adaptive
    session's trials), so every trial sits at the ceiling of p(correct), its
    gradient vanishes and the optimiser stalls; the prior's typical scale is
    the observer's own when the hyperparameters come from the data.

    A model with an informative ``weight_prior`` (a population's) starts at its
    prior mean instead: this returns zeros.
    """
    if model.weight_prior is not None:
        return np.zeros(model.weight_shape)
    s = math.sqrt(model.prior_mean_variance())
    return field.isotropic_weights(model.input_dim, model.basis_degree, model.extra_dims, s)


def to_whitened(model: WPPM, params: dict, dtype=None) -> dict:
    """The unconstrained coordinates ``z`` of (checked) params.

    ``z["W"] = (W - prior_mean) / prior_std`` (the decentred site of :func:`map_model`, prior
    ``N(0, I)``) and, for a learned lapse rate, ``z["lapse_rate"] = logit(lapse)``
    (NumPyro's unconstrained value of that site; the prior mean of the lapse
    rate when ``params`` has none).
    """
    dtype = dtype or jnp.result_type(float)
    sd = np.asarray(model.prior_std(), np.float64)
    W = np.asarray(params["W"], np.float64)
    if model.weight_prior is not None:
        W = W - model.prior_mean()
    z = {"W": jnp.asarray(W / sd, dtype)}
    if model.learns_lapse:
        a, b = model.lapse_prior
        lam = float(np.asarray(params.get("lapse_rate", a / (a + b))))
        lam = min(max(lam, 1e-6), 1 - 1e-6)
        z["lapse_rate"] = jnp.asarray(math.log(lam / (1 - lam)), dtype)
    return z


def from_whitened(model: WPPM, z: dict) -> dict:
    """``params`` (psyphy's layout, plus ``"lapse_rate"``) from unconstrained ``z`` (jittable;
    a batch of ``z`` gives a batch of params)."""
    z = _as_z(model, z)
    W = jnp.asarray(model.prior_std(), z["W"].dtype) * z["W"]
    if model.weight_prior is not None:
        W = jnp.asarray(model.prior_mean(), W.dtype) + W
    if not model.learns_lapse:
        return {"W": W}
    return {"W": W, "lapse_rate": jax.nn.sigmoid(z["lapse_rate"])}


def negative_log_prior(model: WPPM, z) -> np.ndarray:
    """The prior term of the SVI loss at unconstrained ``z`` (numpy, float64).

    The loss :func:`negative_log_posterior` is ``-log p(z, lapse, y)``: the
    negative log-likelihood plus ``-log N(z_W; 0, I)`` of the decentred weights
    (``LocScaleReparam``) and, for a learned lapse rate, ``-log Beta(lapse)``.
    This is that prior part, so ``loss - negative_log_prior`` is the negative
    log-likelihood, which is positive (a loss can be negative where the prior
    density exceeds 1).

    Parameters
    ----------
    model : WPPM
    z : dict or array
        :func:`to_whitened` coordinates; leaves may carry leading batch axes
        (e.g. one per restart).

    Returns
    -------
    numpy array
        One value per batch member (a 0-d array without batch axes).
    """
    from scipy.stats import beta

    z = _as_z(model, z)
    zw = np.asarray(z["W"], np.float64)
    k = len(model.weight_shape)
    axes = tuple(range(zw.ndim - k, zw.ndim))
    size = int(np.prod(model.weight_shape))
    out = 0.5 * np.sum(zw**2, axis=axes) + 0.5 * size * math.log(2 * math.pi)
    if model.learns_lapse:
        lam = 1.0 / (1.0 + np.exp(-np.asarray(z["lapse_rate"], np.float64)))
        out = out - beta.logpdf(lam, *model.lapse_prior)
    return np.asarray(out)


def _as_z(model: WPPM, z) -> dict:
    """``z`` as a dict: a bare array is the whitened ``W`` of a model without a learned lapse."""
    if isinstance(z, dict):
        return z
    if model.learns_lapse:
        raise InvalidType('this model learns its lapse rate: z must be a dict with "W" and '
                          '"lapse_rate" (see to_whitened)')
    return {"W": z}


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
    params = svi.constrain_fn(_svi_params(_as_z(model, z)))
    args, kwargs = _model_args(trials, noise)
    return svi.loss.loss(rng_key, params, svi.model, svi.guide, *args, **kwargs,
                         **svi.static_kwargs)


def evaluate(model: WPPM, z, trials: Trials, rng_key, num_samples: int):
    """Low-noise ``-log p(W, y)`` of :func:`map_model` with ``num_samples`` estimator draws
    per trial (jittable): the model's pointwise log-likelihood chunk by chunk (memory does
    not grow with trials x samples) plus its log prior (the model on a weightless trial)."""
    z = _as_z(model, z)
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
    step, (params, opt_state) = svi.optim.init(_svi_params(_as_z(model, z0)))
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


class MAP:
    """MAP estimation of a WPPM as ``init`` / ``update`` / ``run`` (NumPyro's ``SVI``).

    A thin handle on :func:`map_svi`: ``SVI`` with an ``AutoDelta`` guide on the
    decentred model :func:`map_model`.

    Parameters
    ----------
    model : WPPM
    optimizer : optax.GradientTransformation, optional
        Acts on the unconstrained coordinates ``z`` (whitened weights). Default
        :func:`whitened_adam`, whose peak ``learning_rate`` and ``num_steps``
        are set by :meth:`init`; :func:`lbfgs` for a fixed-noise (deterministic)
        loss.
    batch_size : int, optional
        Minibatch size of the ``"trials"`` plate (``None``: every trial every step).

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

    @property
    def svi(self) -> SVI:
        """The ``numpyro.infer.SVI`` object (:func:`map_svi`)."""
        return map_svi(self.model, self.optimizer, self.batch_size)

    def trials(self, data, size=None, *, weights=None) -> Trials:
        """The data as padded :class:`Trials` (see :func:`pad_trials`)."""
        return pad_trials(data, size, weights=weights)

    def init_z(self, rng_key, init_params=None, init_scale: float = 0.3):
        """Unconstrained start (:func:`to_whitened`): ``init_params`` if given, else
        :func:`isotropic_start` plus ``init_scale`` x a prior draw of ``W`` (and the prior
        mean of a learned lapse rate)."""
        if init_params is not None:
            params = self.model.checked_params(init_params, "init_params", lapse_optional=True)
            return to_whitened(self.model, params)
        scale = check_real("init_scale", init_scale, 0.0)
        zw = scale * jax.random.normal(as_key(rng_key), self.model.weight_shape)
        zw = zw + jnp.asarray(isotropic_start(self.model) / self.model.prior_std(), zw.dtype)
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
        return init_state(self.model, self.optimizer, k_run, z0, learning_rate, num_steps,
                          self.batch_size)

    def loss(self, z, trials: Trials, rng_key, noise=None):
        """The SVI loss at ``z`` (:func:`negative_log_posterior`; pure, jittable)."""
        return negative_log_posterior(self.model, z, trials, rng_key, self.batch_size, noise)

    def update(self, state: MAPState, trials: Trials, noise=None):
        """One step: ``(new_state, loss)`` (compiled once per model, optimiser, shapes)."""
        return _update_jit(self.model, self.optimizer, self.batch_size, state, trials, None,
                           noise)

    def params(self, z) -> dict:
        """``{"W": W}`` (plus ``"lapse_rate"``) of unconstrained coordinates ``z``."""
        return from_whitened(self.model, z)

    def get_params(self, state: MAPState) -> dict:
        """``{"W": W}`` in psyphy's layout (plus ``"lapse_rate"`` when learned) from a
        state (or a batch of states)."""
        return from_whitened(self.model, state_z(state))

    def run(self, rng_key, data, num_steps: int, *, init_params=None, init_scale=0.3,
            learning_rate: float = 0.05, noise=None):
        """``num_steps`` steps from a fresh :meth:`init`: ``(params, state, losses)``."""
        num_steps = check_int("num_steps", num_steps, 1)
        trials = self.trials(data)
        state = self.init(rng_key, init_params=init_params, init_scale=init_scale,
                          learning_rate=learning_rate, num_steps=num_steps)
        state, losses = _scan_jit(self.model, self.optimizer, self.batch_size, num_steps,
                                  state, trials, None, noise)
        return self.get_params(state), state, np.asarray(losses)


_update_jit = jax.jit(update, static_argnums=(0, 1, 2))


def scan_steps(model, optimizer, batch_size, length, state, trials, num_steps=None,
               noise=None):
    """``length`` :func:`update` steps in one ``lax.scan``: ``(state, losses (length,))``."""

    def body(s, _):
        return update(model, optimizer, batch_size, s, trials, num_steps, noise)

    return jax.lax.scan(body, state, None, length=length)


_scan_jit = jax.jit(scan_steps, static_argnums=(0, 1, 2, 3))
