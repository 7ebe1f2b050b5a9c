"""Checks of a stimulus space: its affine map when it is built, and points against it.

One concept: what :class:`~psyphy_numpyro.space.StimulusSpace` accepts. Its
constructor's matrix, offset, bounds and axis labels (:func:`check_map`), and
stimuli given in its units: the shape (:func:`as_points`) and the domain
(:func:`check_domain`, whose message names the first point outside, its value and
the bounds in the space's units).

The checks take the space's public attributes (``input_dim``, ``matrix``,
``offset``, ``lo``, ``hi``, ``name``, ``axis_labels``, ``units``); this module does
not import :mod:`psyphy_numpyro.space`. It imports NumPy only.
"""

from __future__ import annotations

import numpy as np

from .colourspaces import as_vector
from .errors import InvalidInput, InvalidType

__all__ = ["SPACE_TOL", "check_map", "as_points", "check_domain"]

SPACE_TOL = 1e-6
"""Tolerance of every domain check (float round-off): a point may lie this fraction of
the space's width beyond its bounds and still count as inside; in the model's units
(the box ``[-1, 1]^d``, checked here and by :mod:`psyphy_numpyro.validation`,
:mod:`psyphy_numpyro.csvio`, ...) this far beyond +-1."""


def check_map(matrix, offset, lo, hi, axis_labels):
    """The checked parts of an affine space ``model = matrix @ x + offset``.

    Parameters
    ----------
    matrix : array (d, d)
        Finite and invertible, d in 1..3.
    offset : array (d,)
    lo, hi : arrays (d,) or None
        Both or neither; ``hi > lo`` on every axis, and the box they span must map
        inside ``[-1, 1]^d``.
    axis_labels : sequence of d str, or None
        ``None``: ``("x0", "x1", ...)``.

    Returns
    -------
    A, b : numpy arrays (d, d) and (d,)
    lo, hi : numpy arrays (d,) or None
    labels : tuple of str

    Raises
    ------
    ValueError
        The first check that fails, in the order above.
    """
    A = np.array(matrix, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] not in (1, 2, 3):
        raise InvalidInput(f"matrix must be a square (d, d) array, d in 1..3, got shape "
                           f"{A.shape}")
    d = A.shape[0]
    if not np.all(np.isfinite(A)):
        raise InvalidInput("matrix must be finite")
    cond = np.linalg.cond(A)
    if not np.isfinite(cond) or cond > 1e12:
        raise InvalidInput(f"matrix must be invertible, got condition number {cond:.3g}")
    b = as_vector("offset", offset, d)
    if (lo is None) != (hi is None):
        raise InvalidInput("give both lo and hi, or neither")
    if lo is not None:
        lo, hi = as_vector("lo", lo, d), as_vector("hi", hi, d)
        if np.any(hi <= lo):
            raise InvalidInput(f"hi must exceed lo on every axis, got lo={lo.tolist()}, "
                               f"hi={hi.tolist()}")
    labels = tuple(axis_labels) if axis_labels is not None else tuple(
        f"x{k}" for k in range(d))
    if len(labels) != d or not all(isinstance(s, str) for s in labels):
        raise InvalidInput(f"axis_labels must be {d} strings, got {axis_labels!r}")
    if lo is not None:  # the stated bounds must map inside the box
        corners = np.stack(np.meshgrid(*zip(lo, hi, strict=True), indexing="ij"),
                           -1).reshape(-1, d)
        m = corners @ A.T + b
        if np.any(np.abs(m) > 1.0 + 1e-9):
            raise InvalidInput(f"the bounds lo={lo.tolist()}, hi={hi.tolist()} do not map "
                               "inside the model's box [-1, 1]^d")
    return A, b, lo, hi, labels


def as_points(space, x, name) -> np.ndarray:
    """``x`` as a float64 array of ``space.input_dim``-D points (..., d), unchecked
    otherwise; a ``TypeError`` / ``ValueError`` naming ``name`` when it is not one."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidType(f"{name} must be a numeric array") from None
    d = space.input_dim
    if arr.ndim == 0 or arr.shape[-1] != d:
        raise InvalidInput(f"{name} must have shape (..., {d}) for this "
                           f"{d}-D space, got shape {arr.shape}")
    return arr


def check_domain(space, x, name, locate=None) -> np.ndarray:
    """``x`` (..., d) as a float64 array, after checking it lies in ``space``'s domain
    (see :meth:`StimulusSpace.check <psyphy_numpyro.space.StimulusSpace.check>`)."""
    arr = as_points(space, x, name)
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        where = locate(idx) if locate else f"index {idx}"
        raise InvalidInput(f"{name} has a non-finite value at {where}: {arr[idx]!r}")
    lo, hi, labels = space.lo, space.hi, space.axis_labels
    if lo is not None:
        tol = SPACE_TOL * (hi - lo)
        outside = (arr < lo - tol) | (arr > hi + tol)
    else:
        m = arr @ space.matrix.T + space.offset
        outside = np.abs(m) > 1.0 + SPACE_TOL
    if outside.any():
        idx = tuple(int(i) for i in np.argwhere(outside)[0])
        where = locate(idx) if locate else (
            f"row {idx[0]}" + (f", coordinate {idx[-1]}" if len(idx) > 1 else ""))
        axis = idx[-1]
        n_bad = int(outside.any(-1).sum())
        if lo is not None:
            bounds = f"[{lo[axis]:.6g}, {hi[axis]:.6g}] on {labels[axis]!r}"
        else:
            bounds = "the region that maps into [-1, 1]^d"
        raise InvalidInput(
            f"{name} outside the stimulus space ({space.name}, {space.units or 'lab units'}):"
            f" {where} ({labels[axis]}) = {arr[idx]:.6g}, the space allows {bounds} "
            f"({n_bad} points outside); widen the space's bounds or drop those trials")
    return arr
