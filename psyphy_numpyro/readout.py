"""Read-outs of a fitted WPPM: discrimination thresholds (and :func:`field_error`).

:func:`psychometric` lives in :mod:`psyphy_numpyro.psychometric_curve` and what both
read-outs take from a fit in :mod:`psyphy_numpyro.readout_inputs`; both are
re-exported here.

Both read-outs evaluate the model's p(correct) with *fixed* estimator noise:
one block of standard normals (drawn once from ``key``) is shared by every
distance, every ray and every posterior draw. The curves are then smooth,
deterministic functions of the distance, root finding is well defined, and
differences between posterior draws reflect the posterior rather than Monte
Carlo noise.

The threshold along a ray ``ref + t u`` (``|u| = 1``) is the distance ``t``
at which p(correct) crosses ``target`` (default 2/3). It is found for all
rays at once by vectorised bisection on ``[0, t_max]``, ``t_max`` being the
largest distance that keeps the ray inside ``[-1, 1]^d`` (or
``max_distance``), followed by one linear-interpolation (regula falsi) step
inside the final bracket. Rays whose p(correct) at ``t_max`` is still below
``target`` have no crossing in the domain: their length is NaN and a warning
says how many there are.
"""

from __future__ import annotations

import math
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .contours import (
    Thresholds,
    fit_ellipse,
    intervals_1d,
    length_quantiles,
    ray_extent,
    unit_directions,
)
from .errors import InvalidInput
from .psychometric_curve import psychometric
from .readout_inputs import (  # noqa: F401 - re-exported: the read-outs' shared inputs
    DEFAULT_READOUT_SAMPLES,
    fit_space,
    fit_weights,
    fixed_noise,
    lab_refs,
    readout_samples,
)
from .validation import (
    as_key,
    check_directions,
    check_int,
    check_real,
    check_refs,
)

__all__ = [
    "DEFAULT_READOUT_SAMPLES",
    "Thresholds",
    "psychometric",
    "thresholds",
    "fit_ellipse",
    "unit_directions",
    "ray_extent",
    "field_error",
    "fit_weights",
]


# ---------------------------------------------------------------------------
# thresholds
# ---------------------------------------------------------------------------
def _bisect(model, W, origin, u, t_max, noise, target, num_iter):
    """Crossing of p(correct) = target on ``[0, t_max]`` for every ray (jittable).

    Parameters
    ----------
    origin, u : array (n, d)
        Ray origins and unit directions.
    t_max : array (n,)
    noise : array (*noise_shape)
        Shared by every ray.

    Returns
    -------
    array (n,)
        The crossing distance, NaN where ``p(t_max) < target`` or ``p(0) >= target``.
    """
    noise = jnp.broadcast_to(noise, origin.shape[:-1] + noise.shape)

    def p_at(t):
        comp = jnp.clip(origin + t[:, None] * u, -1.0, 1.0)
        return model.p_correct_from_weights(W, origin, comp, noise)

    lo = jnp.zeros_like(t_max)
    hi = t_max
    p_lo, p_hi = p_at(lo), p_at(hi)
    valid = (p_hi >= target) & (p_lo < target)

    def body(_, state):
        lo, hi, p_lo, p_hi = state
        mid = 0.5 * (lo + hi)
        p_mid = p_at(mid)
        up = p_mid >= target
        return (
            jnp.where(up, lo, mid),
            jnp.where(up, mid, hi),
            jnp.where(up, p_lo, p_mid),
            jnp.where(up, p_mid, p_hi),
        )

    lo, hi, p_lo, p_hi = jax.lax.fori_loop(0, num_iter, body, (lo, hi, p_lo, p_hi))
    # one regula falsi step inside the final bracket
    frac = jnp.clip((target - p_lo) / jnp.maximum(p_hi - p_lo, 1e-30), 0.0, 1.0)
    t = lo + frac * (hi - lo)
    return jnp.where(valid, t, jnp.nan)


@partial(jax.jit, static_argnums=(0, 7))
def _lengths_draws(model, Ws, origin, u, t_max, noise, targets, num_iter):
    """Crossing lengths per draw; ``targets`` (num_draws,) is each draw's perceptual target."""
    return jax.lax.map(
        lambda a: _bisect(model, a[0], origin, u, t_max, noise, a[1], num_iter), (Ws, targets)
    )


def _warn_missing(lengths, target, max_distance):
    n_bad = int(np.isnan(lengths).sum())
    if n_bad:
        where = "the domain edge" if max_distance is None else "max_distance/the domain edge"
        warnings.warn(
            f"thresholds: {n_bad} of {lengths.size} rays never reach p(correct) = "
            f"{target:.4g} before {where}; their lengths are NaN",
            RuntimeWarning,
            stacklevel=3,
        )


def _model_refs(space, refs, d):
    """The references in the model's box, and as given in the lab (``None`` without a space)."""
    if space is None:
        return check_refs(refs, d), None
    if space.input_dim != d:
        raise InvalidInput(f"the space is {space.input_dim}-D, the model {d}-D")
    refs_lab = lab_refs(space, refs, d)
    return np.clip(space.to_model(refs_lab, check=False), -1.0, 1.0), refs_lab


def _model_directions(space, dirs):
    """Unit directions in the model's box, as given (``None`` without a space), and the
    stretch of each: model length per lab length along it (1 without a space)."""
    if space is None:
        return dirs, None, np.ones(len(dirs))
    model_dirs = space.vectors_to_model(dirs)
    stretch = np.linalg.norm(model_dirs, axis=-1)
    return model_dirs / stretch[:, None], dirs, stretch


def _solve(model, W, origin, u, t_max, noise, targets, num_iter):
    """Crossing lengths ``(num_draws, R*D)`` of every draw along every ray, in ``W``'s dtype."""
    dt = W.dtype
    args = (
        jnp.asarray(origin, dt),
        jnp.asarray(u, dt),
        jnp.asarray(t_max, dt),
        noise.astype(dt),
        jnp.asarray(targets, dt),
        num_iter,
    )
    return np.asarray(_lengths_draws(model, W, *args), dtype=float)


def _draw_targets(W, lapse, target, num_draws):
    """The draws to use (``num_draws`` evenly thinned) and each one's perceptual target.

    ``lapse`` (a rate or one per draw; 0 for the perceptual contour) turns the
    response-probability ``target`` into the perceptual level
    ``(target - lapse / 3) / (1 - lapse)`` of each draw.

    Returns
    -------
    W : array (num_draws, ...)
    targets : numpy array (num_draws,)

    Raises
    ------
    InvalidInput
        ``target`` above what a draw's lapse rate allows.
    """
    lapse = np.broadcast_to(np.asarray(lapse, float), W.shape[:1])
    if num_draws is not None and num_draws < W.shape[0]:
        keep = np.linspace(0, W.shape[0] - 1, num_draws).round().astype(int)
        W, lapse = W[keep], lapse[keep]
    targets = (target - lapse / 3.0) / (1.0 - lapse)  # the perceptual level of each draw
    if np.any(targets >= 1.0):
        raise InvalidInput(
            f"target={target:.4g} is above the highest response probability the fit's lapse "
            f"rate allows ({1 - lapse.max() * 2 / 3:.4g}); lower target or use "
            "include_lapse=False"
        )
    return W, targets


def _ray_brackets(refs, dirs, stretch, max_distance, tol):
    """Every ray (reference-major) with its bisection bracket ``[0, t_max]``.

    Returns
    -------
    origin, u : numpy arrays (R*D, d)
    t_max : numpy array (R*D,)
        The domain's extent along the ray, capped at ``max_distance`` (in lab
        units: times the ray's ``stretch``).
    num_iter : int
        Halvings that take the widest bracket below ``tol``.
    """
    R, D = len(refs), len(dirs)
    origin = np.repeat(refs, D, axis=0)  # (R*D, d), reference-major
    u = np.tile(dirs, (R, 1))
    t_max = np.asarray(ray_extent(origin, u), dtype=float)
    if max_distance is not None:
        t_max = np.minimum(t_max, max_distance * np.tile(stretch, R))
    span = float(t_max.max()) if t_max.size else 0.0
    num_iter = max(1, math.ceil(math.log2(max(span, tol) / tol)))
    return origin, u, t_max, num_iter


def _credible(lengths, level):
    """Posterior median and central ``level`` interval ``(2, ...)`` of draw-wise lengths."""
    q = 0.5 * (1.0 - level)
    median, lo, hi = length_quantiles(lengths, [0.5, q, 1.0 - q])
    return median, np.stack([lo, hi])


def thresholds(
    fit,
    refs,
    *,
    target: float = 2.0 / 3.0,
    num_directions: int = 16,
    directions=None,
    max_distance: float | None = None,
    key=0,
    num_samples: int | None = None,
    tol: float = 1e-4,
    level: float = 0.9,
    num_draws: int | None = None,
    include_lapse: bool = False,
    space=None,
) -> Thresholds:
    """Threshold contours: where p(correct) crosses ``target`` around each reference.

    With a stimulus space (the fit's data's, or ``space``) the references,
    directions, ``max_distance`` and every result (lengths, points, ellipses,
    intervals) are in the lab's units: the rays are traced in the box and
    mapped back by the space's affine map, ellipses by its Jacobian
    (``E_lab = J E J^T``) exactly; :meth:`Thresholds.delta_e` then gives
    colour differences for colour spaces.

    For every reference ``r`` and unit direction ``u`` the length ``t`` with
    ``p(r, r + t u) = target`` is found by vectorised bisection over all rays
    (and draws) at once on the bracket ``[0, t_max]``, ``t_max`` being the
    largest distance that keeps ``r + t u`` in ``[-1, 1]^d`` (capped at
    ``max_distance``). ``ceil(log2(t_max / tol))`` halvings are followed by
    one linear-interpolation step. The estimator noise is fixed by ``key`` and
    shared by every ray and every draw.

    Parameters
    ----------
    fit : MAPFit, PosteriorFit (MCMCFit, LaplaceFit) or (WPPM, params) pair
    refs : array (R, d) or (d,)
        References, inside ``[-1, 1]^d``.
    target : float
        p(correct) level of the contour, in (1/3, 1) (default 2/3).
    num_directions : int
        Evenly spread directions (see :func:`unit_directions`; 1-D always
        uses ``+1`` and ``-1``).
    directions : array (D, d), optional
        Explicit directions (normalised); overrides ``num_directions``.
    max_distance : float, optional
        Search no farther than this from the reference.
    key : jax PRNG key or int seed
        Fixes the estimator noise.
    num_samples : int, optional
        Estimator samples (default ``max(model.num_samples, 1024)``).
    tol : float
        Bracket width at which bisection stops.
    level : float
        Central probability of the credible interval (draw-based fits).
    num_draws : int, optional
        Use only this many posterior draws (evenly thinned); default all.
    include_lapse : bool
        ``False`` (default): the contour of the perceptual p(correct) (the
        observer's thresholds, free of lapses); ``True``: of the response
        probability ``(1 - lapse) p + lapse / 3`` (each draw with its own lapse
        rate), i.e. the perceptual contour at ``(target - lapse / 3) / (1 - lapse)``.
    space : StimulusSpace, optional
        The units of the references and results (default: the fit's data's
        space; a ``(WPPM, params)`` pair has none unless given).

    Returns
    -------
    Thresholds
        Rays without a crossing inside the bracket have NaN length (with a
        ``RuntimeWarning``), and are left out of the ellipse fits.

    Raises
    ------
    ValueError
        References outside the domain, wrong shapes, or a bad ``target``,
        ``tol``, ``max_distance`` or ``level``.
    """
    model, W, point, lapse = fit_weights(fit)
    space = fit_space(fit, space)
    d = model.input_dim
    refs, refs_lab = _model_refs(space, refs, d)
    target = check_real("target", target, 1.0 / 3.0, 1.0)
    tol = check_real("tol", tol, 0.0)
    level = check_real("level", level, 0.0, 1.0)
    dirs = (unit_directions(d, num_directions) if directions is None
            else check_directions(directions, d))
    if max_distance is not None:
        max_distance = check_real("max_distance", max_distance, 0.0)
    dirs, dirs_lab, stretch = _model_directions(space, dirs)
    if num_draws is not None:
        num_draws = check_int("num_draws", num_draws, 1)
    num_samples = readout_samples(model, num_samples)
    key = as_key(key)
    W, targets = _draw_targets(W, lapse if include_lapse else 0.0, target, num_draws)

    R, D = len(refs), len(dirs)
    origin, u, t_max, num_iter = _ray_brackets(refs, dirs, stretch, max_distance, tol)

    noise = fixed_noise(model, key, num_samples)
    lengths = _solve(model, W, origin, u, t_max, noise, targets, num_iter).reshape(-1, R, D)
    if point:
        lengths = lengths[0]

    _warn_missing(lengths, target, max_distance)
    t_max = t_max.reshape(R, D)
    if space is not None:  # back to the lab's units: lengths along each ray scale by 1/stretch
        ellipses_model = None if d == 1 else fit_ellipse(lengths[..., None] * dirs)
        refs, dirs = refs_lab, dirs_lab
        lengths = lengths / stretch
        t_max = t_max / stretch
    points = refs[:, None, :] + lengths[..., None] * dirs[None]
    if d == 1:
        ellipses = intervals_1d(refs, lengths, dirs)
    elif space is not None:
        ellipses = space.covariance_to_lab(ellipses_model)
    else:
        ellipses = fit_ellipse(points - refs[:, None, :])
    median = interval = lvl = None
    if not point:
        median, interval = _credible(lengths, level)
        lvl = level
    return Thresholds(
        refs=refs,
        directions=dirs,
        lengths=lengths,
        points=points,
        ellipses=ellipses,
        max_lengths=t_max,
        target=target,
        median=median,
        interval=interval,
        level=lvl,
        space=space,
    )


def field_error(model, params, truth, grid=None) -> float:
    """Mean relative Frobenius error of ``Sigma(x)`` against a known field.

    ``mean_x |Sigma_params(x) - Sigma_truth(x)|_F / |Sigma_truth(x)|_F`` over
    ``grid`` (default: 7 points per axis over ``[-1, 1]^d``). Invariant to
    the rotation ambiguity of ``W``; the accuracy score of the examples,
    benchmarks and recovery tests.

    Parameters
    ----------
    model : WPPM
    params, truth : dict with ``"W"``
    grid : array (..., d), optional

    Returns
    -------
    float
    """
    if grid is None:
        axes = [np.linspace(-1.0, 1.0, 7)] * model.input_dim
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, model.input_dim)
    S = np.asarray(model.covariance(params, grid), dtype=np.float64)
    S_true = np.asarray(model.covariance(truth, grid), dtype=np.float64)
    err = np.linalg.norm(S - S_true, axis=(-2, -1)) / np.linalg.norm(S_true, axis=(-2, -1))
    return float(np.mean(err))
