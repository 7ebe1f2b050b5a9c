"""What every read-out takes from a fit: its model, weight draws and lapse rates, the
stimulus space it speaks in, and one fixed block of estimator noise.

One concept: the inputs shared by :func:`~psyphy_numpyro.readout.thresholds` and
:func:`~psyphy_numpyro.psychometric_curve.psychometric` (and the read-outs built on
them), so that both read any fit (or a ``(model, params)`` pair) the same way.
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidInput, InvalidType
from .fits import Fit, MAPFit
from .validation import as_key, check_int

__all__ = ["DEFAULT_READOUT_SAMPLES", "fit_weights", "fit_space", "lab_refs",
           "readout_samples", "fixed_noise"]

DEFAULT_READOUT_SAMPLES = 1024
"""Estimator samples used by the read-outs when ``num_samples`` is not given
(at least the model's own ``num_samples``)."""


def fit_weights(fit):
    """The model, weight draws and lapse rate of any fit, its type checked.

    Parameters
    ----------
    fit : MAPFit, PosteriorFit (MCMCFit, LaplaceFit) or (WPPM, params) pair
        A ``(model, params)`` pair (e.g. a ground-truth field) is read as a
        point fit.

    Returns
    -------
    model : WPPM
    W : array (num_draws, *weight_shape)
        The draws of ``W`` (one for a point fit).
    point : bool
        Whether the fit is a point estimate (MAP or a pair).
    lapse : float or array (num_draws,)
        The lapse rate; one per draw when it is learned.

    Raises
    ------
    TypeError
        ``fit`` is neither a fit nor a ``(model, params)`` pair.
    """
    if isinstance(fit, tuple) and len(fit) == 2:
        fit = MAPFit.from_params(*fit)
    if not isinstance(fit, Fit):
        raise InvalidType(
            "fit must be a fit (MAPFit, MCMCFit, LaplaceFit, PosteriorFit) or a "
            f"(WPPM, params) pair, got {type(fit).__name__}"
        )
    return fit.model, fit.weights(), fit.point, fit.lapse_rates()


def fit_space(fit, space=None):
    """The stimulus space read-outs of ``fit`` speak in: ``space`` when given (a
    :class:`~psyphy_numpyro.StimulusSpace` or its dict), else that of the fit's data, else
    ``None`` (the model's box)."""
    from .data import as_space

    if space is not None:
        return as_space(space)
    return getattr(getattr(fit, "data", None), "space", None)


def lab_refs(space, refs, d, name="refs"):
    """References in lab units, ``(R, d)``, checked against the space's domain."""
    arr = np.asarray(space.check(refs, name), dtype=float)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or len(arr) == 0:
        raise InvalidInput(f"{name} must have shape (R, {d}) with R >= 1, got {arr.shape}")
    return arr


def readout_samples(model, num_samples):
    """The estimator samples of a read-out: ``num_samples`` checked, or by default
    ``max(model.num_samples, DEFAULT_READOUT_SAMPLES)``."""
    if num_samples is None:
        return max(int(model.num_samples), DEFAULT_READOUT_SAMPLES)
    return check_int("num_samples", num_samples, 1)


def fixed_noise(model, key, num_samples):
    """One block of estimator noise (``noise_shape``), shared by every evaluation."""
    return model.draw_noise(as_key(key), 1, num_samples)[0]
