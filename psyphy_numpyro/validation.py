"""Input checks shared by every public entry point.

All checks run eagerly on concrete arrays, before anything is compiled, and
raise ``ValueError``/``TypeError`` messages that name the offending input.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "as_key",
    "check_int",
    "check_params",
    "check_points",
    "check_responses",
    "DOMAIN_TOL",
]

DOMAIN_TOL = 1e-6


def as_key(key):
    """Accept a JAX PRNG key (raw or typed) or an integer seed."""
    if isinstance(key, bool):
        raise TypeError("a PRNG key or integer seed is required, got a bool")
    if isinstance(key, numbers.Integral):
        return jax.random.PRNGKey(int(key))
    if isinstance(key, (jax.Array, np.ndarray)):
        return key
    raise TypeError(f"expected a jax.random key or an integer seed, got {type(key).__name__}")


def check_int(name, value, lo, hi=None) -> int:
    """Return ``value`` as an int after checking it is an integer in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be {rng}, got {value}")
    return int(value)


def _concrete(x):
    return not isinstance(x, jax.core.Tracer)


def check_params(params, shape):
    """Return ``params["W"]`` after checking its presence, shape and finiteness."""
    if not isinstance(params, dict) or "W" not in params:
        raise TypeError('params must be a dict with key "W" (psyphy layout)')
    W = params["W"]
    if not hasattr(W, "shape"):
        W = np.asarray(W, dtype=float)
    if tuple(W.shape) != tuple(shape):
        raise ValueError(
            f"params['W'] has shape {tuple(W.shape)}, the model expects {tuple(shape)}"
        )
    if _concrete(W) and not bool(np.all(np.isfinite(np.asarray(W)))):
        raise ValueError("params['W'] contains NaN or Inf")
    return jnp.asarray(W)


def check_points(x, input_dim, name="x"):
    """Check a stimulus array of shape ``(..., input_dim)`` inside ``[-1, 1]``."""
    if not _concrete(x):
        return x
    arr = np.asarray(x)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 0 or arr.shape[-1] != input_dim:
        raise ValueError(
            f"{name} must have shape (..., {input_dim}) for input_dim={input_dim}, "
            f"got shape {arr.shape}"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} contains NaN or Inf (first at index {idx})")
    outside = np.abs(arr) > 1.0 + DOMAIN_TOL
    if outside.any():
        idx = tuple(int(i) for i in np.argwhere(outside)[0])
        raise ValueError(
            f"{name} has coordinates outside the domain [-1, 1] (first at index {idx}; "
            f"observed range [{arr.min():.4g}, {arr.max():.4g}]); rescale stimuli "
            "into [-1, 1] before fitting"
        )
    return jnp.asarray(x)


def check_responses(y, num_trials=None, name="responses"):
    """Return responses as an int8 numpy vector of 0/1; accepts (N,) or (N, 1)."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must have shape (N,) or (N, 1), got {np.asarray(y).shape}")
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be numeric 0/1, got dtype {arr.dtype}")
    if num_trials is not None and arr.shape[0] != num_trials:
        raise ValueError(f"{name} has {arr.shape[0]} entries but there are {num_trials} trials")
    if arr.dtype != bool:
        bad = ~np.isin(arr, (0, 1))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name} must be 0 or 1; entry {i} is {arr[i]!r}")
    return arr.astype(np.int8)
