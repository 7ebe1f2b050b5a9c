"""p(correct) estimators as objects: each knows its noise and its own p(correct).

A :class:`~psyphy_numpyro.WPPM` names its estimator by a string (saved in fit
files and accepted by the CLI); :func:`get` turns the name into one of the
objects below, and ``model.estimator_object`` is that object. Everything that
depends on the estimator asks the object instead of comparing strings:

- ``"cv"`` (:class:`ControlVariate`): noise ``(2, d, M)`` per trial; a
  fixed-noise (quasi-random) likelihood exists and is smooth.
- ``"reparam"`` (:class:`Reparam`): the same noise; its fixed-noise
  likelihood is a sum of near-steps at the model's bandwidth (not smooth).
- ``"mc"`` (:class:`PlainMC`): noise ``(3, 2d + e, M)``; no fixed-noise form.
- ``"table"`` (:class:`Table`): no noise at all (``M`` is ignored);
  deterministic and smooth.

``"table"`` is the equal-covariance surrogate ``f(d')`` of
:func:`~psyphy_numpyro.oddity.p_correct_table`: exact only where
``Sigma_r == Sigma_c``, deterministic, and the cheapest likelihood NUTS can
sample (``fit_mcmc(..., surrogate_samples=0)``).

The mathematics lives in :mod:`psyphy_numpyro.oddity` (estimators) and
:mod:`psyphy_numpyro.noise` (random numbers); this module only binds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp

from . import field, oddity
from .errors import InvalidInput
from .noise import draw_shared_noise, qmc_normals

__all__ = ["Estimator", "ControlVariate", "Reparam", "PlainMC", "Table", "NAMES", "get",
           "check_fixed_noise", "surrogate_model", "surrogate_noise"]


@dataclass(frozen=True)
class Estimator:
    """Base of the p(correct) estimators (hashable: a static argument of compiled code).

    Class attributes
    ----------------
    name : str
        The string a :class:`~psyphy_numpyro.WPPM` uses for it.
    has_fixed_form : bool
        Whether a deterministic likelihood on fixed (quasi-random) noise exists.
    smooth_when_fixed : bool
        Whether that fixed-noise likelihood is smooth in ``W`` at the model's
        bandwidth (NUTS and Hessians need a smooth likelihood).
    """

    name: ClassVar[str] = ""
    has_fixed_form: ClassVar[bool] = True
    smooth_when_fixed: ClassVar[bool] = True

    def noise_shape(self, num_samples: int, input_dim: int, extra_dims: int) -> tuple:
        """Per-trial shape of the standard-normal noise (samples on the last axis)."""
        return (2, input_dim, num_samples)

    def draw_noise(self, key, batch_shape, num_samples, input_dim, extra_dims, dtype=None):
        """IID standard normals ``batch_shape + noise_shape``, materialised."""
        return self.fresh_noise(key, batch_shape, num_samples, input_dim, extra_dims,
                                dtype).materialize()

    def fresh_noise(self, key, batch_shape, num_samples, input_dim, extra_dims, dtype=None):
        """Fresh noise in the fastest form :meth:`p_correct` accepts (what fits use):
        the factored :class:`~psyphy_numpyro.noise.SharedNoise` for the 4-normal
        estimators, equal to :meth:`draw_noise` once materialised."""
        return draw_shared_noise(key, tuple(batch_shape), num_samples, input_dim, dtype)

    def fixed_noise(self, seed, num_trials, num_samples, input_dim, extra_dims, dtype=None):
        """Quasi-random noise ``(num_trials,) + noise_shape`` fixed by ``seed``, for a
        deterministic likelihood."""
        shape = self.noise_shape(num_samples, input_dim, extra_dims)
        return jnp.asarray(qmc_normals(seed, num_trials, shape),
                           dtype=dtype or jnp.result_type(float))

    def p_correct(self, model, W, ref, comparison, noise):
        """p(correct) of trials ``(..., d)`` under weights ``W`` (jittable, unchecked)."""
        raise NotImplementedError

    @staticmethod
    def _covariances(model, W, ref, comparison):
        return (field.covariance_field(W, ref, model.diag_term),
                field.covariance_field(W, comparison, model.diag_term))


@dataclass(frozen=True)
class _FourNormal(Estimator):
    """The exact 4-normal reparameterisation (:func:`~psyphy_numpyro.oddity.p_correct_from_cov`)."""

    control_variate: ClassVar[bool] = True

    def p_correct(self, model, W, ref, comparison, noise):
        S_r, S_c = self._covariances(model, W, ref, comparison)
        return oddity.p_correct_from_cov(S_r, S_c, ref, comparison, noise, model.bandwidth,
                                         control_variate=self.control_variate)


@dataclass(frozen=True)
class ControlVariate(_FourNormal):
    """``"cv"`` (default): radial integration plus the equal-covariance control variate."""

    name: ClassVar[str] = "cv"


@dataclass(frozen=True)
class Reparam(_FourNormal):
    """``"reparam"``: the plain 4-normal average of ``sigmoid(delta / bandwidth)``."""

    name: ClassVar[str] = "reparam"
    smooth_when_fixed: ClassVar[bool] = False
    control_variate: ClassVar[bool] = False


@dataclass(frozen=True)
class PlainMC(Estimator):
    """``"mc"``: the three-sample rule on ``z = U n + m + sqrt(diag_term) n'``, as psyphy."""

    name: ClassVar[str] = "mc"
    has_fixed_form: ClassVar[bool] = False
    smooth_when_fixed: ClassVar[bool] = False

    def noise_shape(self, num_samples, input_dim, extra_dims):
        return (3, 2 * input_dim + extra_dims, num_samples)

    def draw_noise(self, key, batch_shape, num_samples, input_dim, extra_dims, dtype=None):
        shape = tuple(batch_shape) + self.noise_shape(num_samples, input_dim, extra_dims)
        return jax.random.normal(key, shape, dtype=dtype or jnp.result_type(float))

    def fresh_noise(self, key, batch_shape, num_samples, input_dim, extra_dims, dtype=None):
        return self.draw_noise(key, batch_shape, num_samples, input_dim, extra_dims, dtype)

    def fixed_noise(self, seed, num_trials, num_samples, input_dim, extra_dims, dtype=None):
        raise InvalidInput('estimator "mc" has no fixed-noise likelihood; use "cv" or "reparam"')

    def p_correct(self, model, W, ref, comparison, noise):
        U_r, U_c = field.sqrt_field(W, ref), field.sqrt_field(W, comparison)
        return oddity.p_correct_mc(U_r, U_c, ref, comparison, noise, model.diag_term,
                                   model.bandwidth)


@dataclass(frozen=True)
class Table(Estimator):
    """``"table"``: the deterministic equal-covariance surrogate ``f(d')``; no noise."""

    name: ClassVar[str] = "table"

    def noise_shape(self, num_samples, input_dim, extra_dims):
        return (2, input_dim, 0)

    def draw_noise(self, key, batch_shape, num_samples, input_dim, extra_dims, dtype=None):
        return jnp.zeros(tuple(batch_shape) + (2, input_dim, 0),
                         dtype=dtype or jnp.result_type(float))

    fresh_noise = draw_noise

    def fixed_noise(self, seed, num_trials, num_samples, input_dim, extra_dims, dtype=None):
        return self.draw_noise(None, (num_trials,), 0, input_dim, extra_dims, dtype)

    def p_correct(self, model, W, ref, comparison, noise):
        S_r, S_c = self._covariances(model, W, ref, comparison)
        return oddity.p_correct_table(S_r, S_c, ref, comparison, model.bandwidth)


_ALL = {cls.name: cls() for cls in (ControlVariate, Reparam, PlainMC, Table)}

NAMES = tuple(_ALL)
"""Every estimator name a :class:`~psyphy_numpyro.WPPM` accepts."""


def get(name: str) -> Estimator:
    """The estimator object of a name in :data:`NAMES`."""
    try:
        return _ALL[name]
    except (KeyError, TypeError):
        raise InvalidInput(f"estimator must be one of {NAMES}, got {name!r}") from None


def check_fixed_noise(model, caller: str, reason: str, samples_name: str, num_samples: int):
    """Reject an estimator a deterministic (fixed-noise or table) likelihood cannot use.

    Shared by :func:`~psyphy_numpyro.fit_mcmc` and :func:`~psyphy_numpyro.fit_laplace`;
    ``num_samples = 0`` selects the table (any estimator may ask for it).
    """
    est = model.estimator_object
    if num_samples != 0 and not est.has_fixed_form:
        raise InvalidInput(
            f'{caller} needs estimator "cv" or "reparam" ({reason}), not "{est.name}": '
            'pass model.replace(estimator="cv")'
        )


def surrogate_noise(model, num_trials: int, num_samples: int, seed: int):
    """Fixed quasi-Monte Carlo noise of a deterministic likelihood.

    ``(num_trials,) + noise_shape`` from the model's estimator;
    ``num_samples = 0`` gives an empty ``(num_trials, 2, d, 0)`` array, which
    every 4-normal estimator reads as the ``"table"`` surrogate.
    """
    if num_samples == 0:
        return _ALL["table"].fixed_noise(seed, num_trials, 0, model.input_dim, model.extra_dims)
    return model.fixed_noise(seed, num_trials, num_samples)


def surrogate_model(model, num_samples: int, bandwidth: float | None = None):
    """The model of a deterministic likelihood: ``estimator="table"`` when
    ``num_samples == 0``, and ``bandwidth`` replaced when given."""
    changes = {} if bandwidth is None else {"bandwidth": float(bandwidth)}
    if num_samples == 0:
        changes["estimator"] = "table"
    return model.replace(**changes) if changes else model
