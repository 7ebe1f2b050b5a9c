"""Input checks shared by every public entry point.

All checks run eagerly on concrete arrays, before anything is compiled, and
raise ``ValueError``/``TypeError`` messages that name the offending input.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from .errors import InvalidInput, InvalidType
from .spacecheck import SPACE_TOL

__all__ = [
    "as_key",
    "seed_from",
    "check_int",
    "check_real",
    "check_range",
    "check_array",
    "check_params",
    "check_points",
    "check_refs",
    "check_directions",
    "check_responses",
    "is_concrete",
]

_RESCALE_HINT = (
    "rescale the stimuli into [-1, 1] (e.g. x' = 2 (x - lo) / (hi - lo) - 1 per axis) "
    "before fitting"
)


def as_key(key):
    """Accept a JAX PRNG key (raw ``uint32`` pair or typed) or an integer seed."""
    if isinstance(key, bool):
        raise InvalidType("a PRNG key or integer seed is required, got a bool")
    if isinstance(key, numbers.Integral):
        return jax.random.PRNGKey(int(key))
    if isinstance(key, (jax.Array, np.ndarray)):
        if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            return key
        if key.dtype == np.uint32 and key.ndim >= 1 and key.shape[-1] == 2:
            return key
        if key.ndim == 0 and np.issubdtype(key.dtype, np.integer) and is_concrete(key):
            return jax.random.PRNGKey(int(key))
        raise InvalidType(
            "key must be a jax.random key (e.g. jax.random.PRNGKey(0)) or an integer seed, "
            f"got an array of shape {tuple(key.shape)} and dtype {key.dtype}"
        )
    raise InvalidType(f"expected a jax.random key or an integer seed, got {type(key).__name__}")


def seed_from(seed, rng_key=None) -> int:
    """An integer seed: ``seed`` checked, or one drawn from a PRNG key (``rng_key``, or a key
    passed as ``seed``).

    Lets functions whose randomness includes numpy (QMC point sets) take a
    JAX PRNG key as NumPyro's do; equal keys give equal seeds.
    """
    if rng_key is None and (isinstance(seed, bool) or isinstance(seed, numbers.Integral)):
        return check_int("seed", seed, 0)
    if rng_key is None:  # a PRNG key given as the seed
        rng_key = seed
    bits = jax.random.bits(as_key(rng_key), (), dtype=jnp.uint32)
    return int(bits) & 0x7FFFFFFF


def check_count(name, value, lo=1) -> int:
    """``value`` as an int after checking it is an integer ``>= lo`` (default 1): a count of
    steps, draws, restarts, folds..."""
    return check_int(name, value, lo)


def check_int(name, value, lo, hi=None) -> int:
    """Return ``value`` as an int after checking it is an integer in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidType(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise InvalidInput(f"{name} must be {rng}, got {value}")
    return int(value)


def check_real(name, value, lo=None, hi=None, *, lo_closed=False, hi_closed=False) -> float:
    """Return ``value`` as a float after checking it is a finite real number in range.

    ``lo``/``hi`` are open bounds unless ``lo_closed``/``hi_closed``; ``None``
    leaves that side unbounded. Messages read ``"{name} must be finite and > 0"``
    (one bound) or ``"{name} must be in (0, 1]"`` (two bounds).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidType(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    ok = math.isfinite(v)
    if lo is not None:
        ok = ok and (v >= lo if lo_closed else v > lo)
    if hi is not None:
        ok = ok and (v <= hi if hi_closed else v < hi)
    if not ok:
        if lo is not None and hi is not None:
            cond = (
                f"in {'[' if lo_closed else '('}{lo:.4g}, {hi:.4g}{']' if hi_closed else ')'}"
            )
        elif lo is not None:
            cond = f"finite and {'>=' if lo_closed else '>'} {lo:.4g}"
        elif hi is not None:
            cond = f"finite and {'<=' if hi_closed else '<'} {hi:.4g}"
        else:
            cond = "finite"
        raise InvalidInput(f"{name} must be {cond}, got {value!r}")
    return v


def is_concrete(x) -> bool:
    """Whether ``x`` holds concrete values (not a JAX tracer inside ``jit`` or ``grad``).

    Parameters
    ----------
    x : object
        An array, a number or any other value.

    Returns
    -------
    bool
        ``False`` for a :class:`jax.core.Tracer`, whose values cannot be checked
        eagerly; ``True`` otherwise.
    """
    return not isinstance(x, jax.core.Tracer)


def check_range(name, value) -> tuple[float, float]:
    """A pair ``(low, high)`` with ``0 < low <= high``, as two floats.

    Parameters
    ----------
    name : str
        The input's name in the messages (e.g. ``"distances"``).
    value : pair of real numbers
        The range to check.

    Returns
    -------
    (float, float)
        ``(low, high)``.

    Raises
    ------
    TypeError
        ``value`` is not a pair of numbers.
    ValueError
        ``low`` is not positive or exceeds ``high``.
    """
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidType(f"{name} must be a pair (low, high), got {value!r}") from None
    if not 0.0 < lo <= hi:
        raise InvalidInput(f"{name} must satisfy 0 < low <= high, got {value!r}")
    return lo, hi


def _where(idx, locate):
    idx = tuple(int(i) for i in idx)
    if locate is not None:
        return locate(idx)
    return f"index {idx[0]}" if len(idx) == 1 else f"index {idx}"


def check_array(name, x, *, locate=None) -> np.ndarray:
    """Return ``x`` as a float64 numpy array after checking it is real, numeric and finite.

    ``locate`` (optional) turns the index tuple of the first bad entry into
    words for the message (e.g. ``"trial 5 (comparison, coordinate 0)"``).
    """
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged nested sequences
        raise InvalidInput(f"{name} must be a rectangular numeric array ({exc})") from None
    if arr.dtype == object or arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise InvalidType(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise InvalidType(f"{name} must be real, got complex dtype {arr.dtype}")
    bad = ~np.isfinite(arr)
    if bad.any() and arr.ndim == 0:
        raise InvalidInput(f"{name} must be finite, got {arr.item()!r}")
    if bad.any():
        idx = np.argwhere(bad)[0]
        raise InvalidInput(
            f"{name} contains NaN or Inf ({int(bad.sum())} of {arr.size} values; first at "
            f"{_where(idx, locate)}: {arr[tuple(idx)].item()!r})"
        )
    return arr.astype(np.float64, copy=False)


def check_params(params, shape, name="params"):
    """Return ``params["W"]`` after checking its presence, shape and finiteness."""
    if not isinstance(params, dict) or "W" not in params:
        raise InvalidType(
            f'{name} must be a dict with key "W" (psyphy layout), got {type(params).__name__}'
        )
    W = params["W"]
    if not hasattr(W, "shape"):
        W = np.asarray(W, dtype=float)
    if tuple(W.shape) != tuple(shape):
        raise InvalidInput(
            f"{name}['W'] has shape {tuple(W.shape)}, the model expects {tuple(shape)} "
            "(basis_degree + 1 per axis, then input_dim x (input_dim + extra_dims))"
        )
    if is_concrete(W):
        check_array(f"{name}['W']", W)
    return jnp.asarray(W)


def check_points(x, input_dim, name="x", *, locate=None):
    """Check a stimulus array of shape ``(..., input_dim)`` inside ``[-1, 1]``.

    ``locate`` (optional) describes an index tuple in words for the messages.
    Returns ``x`` as a JAX array; traced arrays pass through unchecked.
    """
    if not is_concrete(x):
        return x
    arr = check_array(name, x, locate=locate)
    if arr.ndim == 0 or arr.shape[-1] != input_dim:
        raise InvalidInput(
            f"{name} must have shape (..., {input_dim}) for input_dim={input_dim}, "
            f"got shape {arr.shape}"
        )
    outside = np.abs(arr) > 1.0 + SPACE_TOL
    if outside.any():
        idx = np.argwhere(outside)[0]
        n_bad = int(outside.any(-1).sum())
        n_pts = int(np.prod(arr.shape[:-1]))
        raise InvalidInput(
            f"{name} has coordinates outside the domain [-1, 1]: first at {_where(idx, locate)} "
            f"= {arr[tuple(idx)]:.6g} ({n_bad} of {n_pts} points outside; observed range "
            f"[{arr.min():.4g}, {arr.max():.4g}]); {_RESCALE_HINT}"
        )
    return jnp.asarray(x)


def check_refs(refs, input_dim) -> np.ndarray:
    """Reference stimuli as a float64 array ``(R, input_dim)``, each inside ``[-1, 1]^d``.

    Parameters
    ----------
    refs : array (R, input_dim) or (input_dim,)
        One or more references; a single one is read as ``R = 1``.
    input_dim : int
        The stimulus dimension ``d``.

    Returns
    -------
    numpy array (R, input_dim)

    Raises
    ------
    ValueError
        A wrong shape, no reference at all, or a coordinate outside the domain.
    TypeError
        A non-numeric array.
    """
    refs = np.asarray(check_points(refs, input_dim, "refs"), dtype=float)
    if refs.ndim == 1:
        refs = refs[None]
    if refs.ndim != 2:
        raise InvalidInput(f"refs must have shape (R, {input_dim}), got {refs.shape}")
    if len(refs) == 0:
        raise InvalidInput(f"refs is empty: pass at least one reference of shape ({input_dim},)")
    return refs


def check_directions(directions, input_dim) -> np.ndarray:
    """Ray directions normalised to unit length, a float64 array ``(D, input_dim)``.

    Parameters
    ----------
    directions : array (D, input_dim)
        Non-zero directions, at least one.
    input_dim : int
        The stimulus dimension ``d``.

    Returns
    -------
    numpy array (D, input_dim)
        Each row divided by its length.

    Raises
    ------
    ValueError
        A wrong shape, no direction at all, a zero row or a non-finite entry.
    TypeError
        A non-numeric array.
    """
    dirs = check_array("directions", directions)
    if dirs.ndim != 2 or dirs.shape[1] != input_dim or len(dirs) == 0:
        raise InvalidInput(f"directions must have shape (D, {input_dim}), got {dirs.shape}")
    norms = np.linalg.norm(dirs, axis=1)
    if np.any(norms == 0):
        raise InvalidInput(f"directions must be non-zero; row {int(np.argmin(norms))} is zero")
    return dirs / norms[:, None]


def check_responses(y, num_trials=None, name="responses"):
    """Return responses as an int8 numpy vector of 0/1; accepts (N,) or (N, 1)."""
    try:
        arr = np.asarray(y)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{name} must be a vector of 0/1 ({exc})") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInput(f"{name} must have shape (N,) or (N, 1), got {np.asarray(y).shape}")
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InvalidType(f"{name} must be numeric 0/1, got dtype {arr.dtype}")
    if num_trials is not None and arr.shape[0] != num_trials:
        raise InvalidInput(f"{name} has {arr.shape[0]} entries but there are {num_trials} trials")
    if arr.dtype != bool:
        bad = ~np.isin(arr, (0, 1))
        if bad.any():
            i = int(np.argmax(bad))
            raise InvalidInput(
                f"{name} must be 0 or 1; entry {i} is {arr[i].item()!r} ({int(bad.sum())} of "
                f"{arr.size} entries are not 0/1; 1 = correct, 0 = incorrect)"
            )
    return arr.astype(np.int8)
