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

Where it lives
--------------
This module holds :class:`MAP` and re-exports the names it is built on:
:mod:`.objective` (the decentred model, the cached ``SVI``, the loss and the
``init`` / ``update`` / ``scan`` steps on a :data:`MAPState`), :mod:`.whiten`
(the unconstrained coordinates ``z``, the isotropic start, the prior term),
:mod:`.optim` (the optimisers) and :mod:`.trials` (the padded trial axis).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro.infer import SVI

from ..errors import InvalidType
from ..validation import as_key, check_int, check_real
from ..wppm import WPPM, as_wppm
from .objective import (  # noqa: F401 - evaluate, state_step, PARAM_NAMES re-exported
    PARAM_NAMES,
    MAPState,
    evaluate,
    init_state,
    map_model,
    map_svi,
    negative_log_posterior,
    scan_steps,
    state_step,
    state_z,
    update,
)
from .optim import OptaxOptim, lbfgs, set_schedule, whitened_adam
from .trials import Trials, bucket_size, pad_trials, padded_size
from .whiten import from_whitened, isotropic_start, negative_log_prior, to_whitened

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


_scan_jit = jax.jit(scan_steps, static_argnums=(0, 1, 2, 3))
