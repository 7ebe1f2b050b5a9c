"""psyphy interoperability: recognising the psyphy package's objects and reading a psyphy
``WPPM``'s settings and parameters as ours (without importing psyphy).

:meth:`WPPM.from_psyphy <psyphy_numpyro.WPPM.from_psyphy>` builds our model from
:func:`psyphy_settings`; :func:`~psyphy_numpyro.wppm.as_wppm` takes either model.
"""

from __future__ import annotations

import inspect
import warnings

from .errors import InvalidInput, InvalidType

__all__ = ["is_psyphy_object", "psyphy_settings", "as_params"]


def is_psyphy_object(obj, *attrs) -> bool:
    """Whether ``obj`` comes from the psyphy package and has ``attrs`` (no psyphy import)."""
    module = type(obj).__module__ or ""
    return (module == "psyphy" or module.startswith("psyphy.")) and all(
        hasattr(obj, a) for a in attrs)


def _psyphy_default(model, name):
    """The default of keyword ``name`` of the psyphy model's constructor (``None`` if none)."""
    try:
        default = inspect.signature(type(model).__init__).parameters[name].default
    except (KeyError, TypeError, ValueError):
        return None
    return None if default is inspect.Parameter.empty else float(default)


def psyphy_settings(model) -> dict:
    """Our :class:`~psyphy_numpyro.WPPM` settings of a psyphy ``WPPM`` (what
    :meth:`~psyphy_numpyro.WPPM.from_psyphy` converts; the errors it names)."""
    if not is_psyphy_object(model, "prior", "likelihood", "input_dim", "diag_term"):
        raise InvalidType(f"from_psyphy needs a psyphy WPPM, got {type(model).__name__}")
    prior = model.prior
    if getattr(prior, "basis_degree", None) is None:
        raise InvalidInput("the psyphy model has no basis_degree (prior.basis_degree is None); "
                           "only its Wishart (Chebyshev basis) form can be converted")
    extra = int(model.extra_dims)
    prior_extra = int(getattr(prior, "extra_embedding_dims", extra))
    if prior_extra != extra:
        raise InvalidInput(
            f"the psyphy model has extra_dims={extra} but its prior extra_embedding_dims="
            f"{prior_extra}, so its weights would not fit its field; make them equal")
    task = model.likelihood
    config = getattr(task, "config", None)
    if type(task).__name__ != "OddityTask" or config is None:
        raise InvalidInput(f"the psyphy model's task is {type(task).__name__}; only the oddity "
                           "task (psyphy.OddityTask) can be converted")
    noise = model.noise
    if noise is not None and type(noise).__name__ != "GaussianNoise":
        raise InvalidInput(f"the psyphy model has {type(noise).__name__}; psyphy_numpyro models "
                           "Gaussian noise only (psyphy.GaussianNoise)")
    for name in ("variance_scale", "decay_rate"):
        own = getattr(model, name, None)
        # psyphy's WPPM keeps copies nothing reads: worth a word only when set (not default)
        if own is not None and float(own) != float(getattr(prior, name)) \
                and float(own) != _psyphy_default(model, name):
            warnings.warn(
                f"the psyphy WPPM has {name}={float(own):g} but its Prior has "
                f"{float(getattr(prior, name)):g}; psyphy's prior (which samples and scores the "
                "weights) uses the Prior's value, and so does this conversion",
                UserWarning, stacklevel=4)
    return {"input_dim": int(model.input_dim), "basis_degree": int(prior.basis_degree),
            "extra_dims": extra, "variance_scale": float(prior.variance_scale),
            "decay_rate": float(prior.decay_rate), "diag_term": float(model.diag_term),
            "num_samples": int(config.num_samples), "bandwidth": float(config.bandwidth)}


def as_params(params):
    """A parameter dict from ours or psyphy's.

    A dict (ours, or psyphy's ``{"W": ...}``: the same layout) is returned
    as it is; an object with a ``params`` dict (psyphy's ``MAPPosterior``, a
    :class:`~psyphy_numpyro.MAPFit`) gives that dict. Anything else is
    returned unchanged for the caller's own type check.
    """
    if isinstance(params, dict):
        return params
    inner = getattr(params, "params", None)
    return inner if isinstance(inner, dict) else params
