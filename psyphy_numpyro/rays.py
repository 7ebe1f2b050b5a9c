"""The geometry of the threshold read-out: rays around a reference, where they leave
the box, and the ellipses (or 1-D intervals) through their threshold points.

One concept: :func:`unit_directions` and :func:`ray_extent` lay out the rays
:func:`~psyphy_numpyro.thresholds` searches along; :func:`fit_ellipse`,
:func:`intervals_1d` and :func:`length_quantiles` summarise the threshold
lengths found on them. Re-exported by :mod:`psyphy_numpyro.contours` and
:mod:`psyphy_numpyro.readout`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .errors import InvalidInput
from .validation import check_int

__all__ = ["unit_directions", "ray_extent", "fit_ellipse", "length_quantiles", "intervals_1d"]


def unit_directions(input_dim: int, num_directions: int = 16) -> np.ndarray:
    """Evenly spread unit directions, shape ``(D, input_dim)``.

    - 1-D: the two directions ``+1`` and ``-1`` (``num_directions`` is ignored);
    - 2-D: angles ``2 pi k / D``, ``k = 0 .. D-1``;
    - 3-D: ``D`` points of a Fibonacci (golden-angle) lattice on the sphere.
    """
    check_int("num_directions", num_directions, 1)
    if input_dim == 1:
        return np.array([[1.0], [-1.0]])
    need = {2: 3, 3: 6}[input_dim]
    if num_directions < need:
        raise InvalidInput(
            f"num_directions must be >= {need} in {input_dim}-D (an ellipse has "
            f"{need} free parameters), got {num_directions}"
        )
    k = np.arange(num_directions)
    if input_dim == 2:
        a = 2 * np.pi * k / num_directions
        return np.stack([np.cos(a), np.sin(a)], -1)
    z = 1.0 - 2.0 * (k + 0.5) / num_directions
    r = np.sqrt(1.0 - z * z)
    phi = k * np.pi * (3.0 - np.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], -1)


def ray_extent(refs, directions):
    """Largest ``t >= 0`` with ``refs + t * directions`` inside ``[-1, 1]^d``.

    Parameters
    ----------
    refs : array (..., d)
    directions : array (..., d)
        Unit (or any non-zero) directions, broadcast against ``refs``.

    Returns
    -------
    array (...,)
    """
    refs = jnp.asarray(refs)
    u = jnp.asarray(directions)
    big = jnp.asarray(jnp.inf, refs.dtype)
    step = jnp.where(u > 0, (1.0 - refs) / jnp.where(u > 0, u, 1.0), big)
    step = jnp.where(u < 0, (-1.0 - refs) / jnp.where(u < 0, u, 1.0), step)
    return jnp.maximum(jnp.min(step, -1), 0.0)


def fit_ellipse(offsets):
    """Least-squares ellipse (centred at the origin) through boundary offsets.

    For offsets ``v_k`` (boundary point minus centre) solves
    ``min_A sum_k (v_k' A v_k - 1)^2`` over symmetric ``A`` and returns
    ``E = A^-1``, so the fitted boundary is ``{v : v' E^-1 v = 1}``. Noise-free
    points of an ellipse are recovered exactly.

    Parameters
    ----------
    offsets : array (..., K, d)
        Leading dimensions are batch dimensions. Rows containing NaN are left
        out of the fit.

    Returns
    -------
    numpy array (..., d, d)
        NaN where fewer than ``d (d + 1) / 2`` finite offsets remain or the
        fitted ``A`` is not positive definite.
    """
    v = jnp.asarray(offsets)
    if v.ndim < 2 or v.shape[-1] not in (1, 2, 3):
        raise InvalidInput(f"offsets must have shape (..., K, d) with d in 1..3, got {v.shape}")
    return np.asarray(_fit_ellipse(v))


@jax.jit
def _fit_ellipse(v):
    d = v.shape[-1]
    ok = jnp.all(jnp.isfinite(v), -1)
    v = jnp.where(ok[..., None], v, 0.0)
    # rescale for conditioning: fit A' for v / s, then A = A' / s^2
    n_ok = jnp.sum(ok, -1)
    s = jnp.sqrt(jnp.sum(v * v, (-1, -2)) / jnp.maximum(n_ok, 1))
    s = jnp.where(s > 0, s, 1.0)
    w = v / s[..., None, None]
    iu, ju = np.triu_indices(d)
    coef = np.where(iu == ju, 1.0, 2.0)
    X = w[..., iu] * w[..., ju] * coef  # (..., K, p)
    y = ok.astype(v.dtype)
    a = jnp.einsum("...pk,...k->...p", jnp.linalg.pinv(X), y)
    A = jnp.zeros(v.shape[:-2] + (d, d), v.dtype)
    A = A.at[..., iu, ju].set(a).at[..., ju, iu].set(a) / (s * s)[..., None, None]
    good = (n_ok >= len(iu)) & (jnp.linalg.eigvalsh(A)[..., 0] > 0)
    E = jnp.linalg.inv(jnp.where(good[..., None, None], A, jnp.eye(d, dtype=v.dtype)))
    return jnp.where(good[..., None, None], E, jnp.nan)


def length_quantiles(lengths, qs):
    """Quantiles of ray lengths over draws, treating NaN (no crossing inside the domain)
    as +inf.

    A ray without a crossing has a threshold beyond the domain edge, so it
    counts as larger than every finite length; a quantile that lands on such
    draws is reported as NaN.

    Parameters
    ----------
    lengths : numpy array (num_draws, ...)
        Ray lengths per draw, NaN where a ray has no crossing.
    qs : sequence of float
        Quantile levels in ``[0, 1]``.

    Returns
    -------
    numpy array (len(qs), ...)
        One quantile per level (linear interpolation), NaN where it lands on
        rays without a crossing.
    """
    big = 1e30  # stands for +inf without inf - inf in the interpolation
    x = np.where(np.isnan(lengths), big, lengths)
    out = np.quantile(x, qs, axis=0, method="linear")
    return np.where(out < 1e20, out, np.nan)


def intervals_1d(refs, lengths, directions=None):
    """1-D threshold intervals ``[r - t(-1), r + t(+1)]``.

    Parameters
    ----------
    refs : numpy array (R, 1)
        The references ``r``.
    lengths : numpy array (..., R, D)
        Ray lengths; ``t(+1)``/``t(-1)`` are those of the first ray with
        direction ``+1``/``-1``.
    directions : numpy array (D, 1), optional
        The rays' directions (default ``[+1, -1]``).

    Returns
    -------
    numpy array (..., R, 2)
        ``[lower, upper]`` per reference; NaN on a side without a ray (or
        without a crossing).
    """
    u = np.array([1.0, -1.0]) if directions is None else np.asarray(directions)[:, 0]
    nan = np.full(lengths.shape[:-1], np.nan)
    up = lengths[..., int(np.argmax(u > 0))] if np.any(u > 0) else nan
    down = lengths[..., int(np.argmax(u < 0))] if np.any(u < 0) else nan
    return np.stack([refs[:, 0] - down, refs[:, 0] + up], -1)
