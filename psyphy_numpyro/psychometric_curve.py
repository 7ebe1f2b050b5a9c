"""The psychometric read-out: p(correct) of a fit along one ray, as a function of distance.

One concept: :func:`psychometric`, evaluated with *fixed* estimator noise (one
block of standard normals drawn once from ``key``, shared by every distance and
every posterior draw), so that the curve is a smooth, deterministic function of
the distance. Re-exported by :mod:`psyphy_numpyro.readout`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .contours import ray_extent
from .errors import InvalidInput
from .readout_inputs import fit_space, fit_weights, fixed_noise, readout_samples
from .spacecheck import SPACE_TOL
from .validation import as_key, check_array, check_points

__all__ = ["psychometric"]


@partial(jax.jit, static_argnums=0)
def _curves(model, Ws, ref, comp, noise):
    """p(correct) at every point of ``comp`` for every draw (one shared noise block)."""
    noise = jnp.broadcast_to(noise, comp.shape[:-1] + noise.shape)
    ref = jnp.broadcast_to(ref, comp.shape)
    return jax.lax.map(lambda w: model.p_correct_from_weights(w, ref, comp, noise), Ws)


def psychometric(fit, ref, direction, distances, *, key=0, num_samples=None,
                 include_lapse: bool = False, space=None):
    """p(correct) along the ray ``ref + t * direction / |direction|``.

    ``ref``, ``direction`` and ``distances`` are in the lab's units when the
    fit's data have a stimulus space (or ``space`` is given), else in the
    model's box.

    Parameters
    ----------
    fit : MAPFit, PosteriorFit (MCMCFit, LaplaceFit) or (WPPM, params) pair
    ref : array (d,)
        Reference stimulus.
    direction : array (d,)
        Non-zero direction (normalised to unit length).
    distances : array (T,)
        Distances ``t`` from the reference; every point must stay in ``[-1, 1]^d``
        (in the box once mapped there, with a space).
    key : jax PRNG key or int seed
        Fixes the estimator noise, shared by every distance and every draw, so
        the curve is a smooth deterministic function of ``t``.
    num_samples : int, optional
        Estimator samples (default ``max(model.num_samples, 1024)``).
    include_lapse : bool
        ``False`` (default): the perceptual p(correct), what the field
        implies; ``True``: the response probability ``(1 - lapse) p + lapse / 3``
        with the fit's lapse rate (what the observer's responses follow).
    space : StimulusSpace, optional
        The units of ``ref``, ``direction`` and ``distances`` (default: the
        fit's data's space).

    Returns
    -------
    numpy array
        ``(T,)`` for a MAP fit, ``(num_draws, T)`` for a draw-based fit.

    Raises
    ------
    ValueError
        Bad shapes, a zero direction, or a point of the ray outside ``[-1, 1]^d``.
    """
    model, W, point, lapse = fit_weights(fit)
    space = fit_space(fit, space)
    d = model.input_dim
    if space is not None:
        ref = np.asarray(space.check(ref, "ref"), dtype=float)
    else:
        ref = np.asarray(check_points(ref, d, "ref"), dtype=float)
    if ref.shape != (d,):
        raise InvalidInput(f"ref must have shape ({d},), got {ref.shape}")
    u = check_array("direction", direction)
    if u.shape != (d,):
        raise InvalidInput(f"direction must be a finite array of shape ({d},), got {u.shape}")
    norm = float(np.linalg.norm(u))
    if norm == 0.0:
        raise InvalidInput("direction must be non-zero")
    u = u / norm
    t = check_array("distances", distances)
    if t.ndim != 1 or t.size == 0:
        raise InvalidInput(f"distances must be a non-empty finite 1-D array, got shape {t.shape}")
    if space is not None:  # the same ray in the box: t_model = t |A u|
        ref = np.clip(space.to_model(ref, check=False), -1.0, 1.0)
        u = space.vectors_to_model(u)
        stretch = float(np.linalg.norm(u))
        u, t = u / stretch, t * stretch
    num_samples = readout_samples(model, num_samples)
    key = as_key(key)
    pts = ref + t[:, None] * u
    outside = np.any(np.abs(pts) > 1.0 + SPACE_TOL, -1)
    if outside.any():
        hi = float(ray_extent(ref, u))
        lo = float(ray_extent(ref, -u))
        i = int(np.argmax(outside))
        raise InvalidInput(
            f"distances[{i}] = {t[i]:.4g} puts the point outside the domain [-1, 1]^{d}; "
            f"along this ray distances must lie in [{-lo:.4g}, {hi:.4g}]"
        )
    noise = fixed_noise(model, key, num_samples)
    comp = jnp.asarray(np.clip(pts, -1.0, 1.0), W.dtype)
    ref_j = jnp.asarray(ref, W.dtype)
    out = _curves(model, W, ref_j, comp, noise)
    if include_lapse:
        lam = jnp.reshape(jnp.asarray(lapse, W.dtype), (-1, 1))
        out = (1.0 - lam) * out + lam / 3.0
    out = np.asarray(out)
    return out[0] if point else out
