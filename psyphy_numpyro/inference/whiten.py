"""The unconstrained coordinates of a MAP fit: the weights whitened by their prior
(``z = (W - prior_mean) / prior_std``, the decentred site of
:func:`~psyphy_numpyro.inference.objective.map_model`), a learned lapse rate through its
logit; the isotropic start every fit begins from and the prior term of the loss."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import field
from ..errors import InvalidType
from ..wppm import WPPM

__all__ = ["isotropic_start", "to_whitened", "from_whitened", "negative_log_prior"]


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
    z = as_z(model, z)
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

    z = as_z(model, z)
    zw = np.asarray(z["W"], np.float64)
    k = len(model.weight_shape)
    axes = tuple(range(zw.ndim - k, zw.ndim))
    size = int(np.prod(model.weight_shape))
    out = 0.5 * np.sum(zw**2, axis=axes) + 0.5 * size * math.log(2 * math.pi)
    if model.learns_lapse:
        lam = 1.0 / (1.0 + np.exp(-np.asarray(z["lapse_rate"], np.float64)))
        out = out - beta.logpdf(lam, *model.lapse_prior)
    return np.asarray(out)


def as_z(model: WPPM, z) -> dict:
    """``z`` as a dict: a bare array is the whitened ``W`` of a model without a learned lapse."""
    if isinstance(z, dict):
        return z
    if model.learns_lapse:
        raise InvalidType('this model learns its lapse rate: z must be a dict with "W" and '
                          '"lapse_rate" (see to_whitened)')
    return {"W": z}
