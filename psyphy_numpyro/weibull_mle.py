"""The maximum-likelihood fit of a Weibull psychometric function to binomial counts.

One concept: the numerical solver behind :func:`~psyphy_numpyro.weibull.fit_weibull`
(:func:`fit_counts`): a grid over ``(log alpha, log beta)`` picks starting points,
then a damped Newton method with box bounds finishes each, for many data sets at
once (the bootstrap refits). The function itself, its threshold and the fit's
result are :mod:`psyphy_numpyro.weibull`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit

__all__ = ["fit_counts"]

_BETA_RANGE = (0.25, 25.0)
"""Bounds of the Weibull slope ``beta`` in the fits."""
_ALPHA_MARGIN = 10.0
"""``alpha`` is searched within ``[min level / margin, max level * margin]``."""
_GRID_ALPHA = 24
_GRID_BETA = (0.5, 1.0, 2.0, 4.0, 8.0)
_NUM_STARTS = 3
"""Newton starts per data set (the best grid points of different ``beta``)."""


def _nll(theta, t, n, k, guess, lapse):
    """Binomial negative log-likelihood with its gradient and Hessian in ``(log a, log b)``.

    ``theta`` is ``(..., 2)``; ``t``, ``n`` and ``k`` broadcast to ``(..., L)``.
    ``log(1 - p)`` is evaluated as ``logaddexp(log lapse, log(span) - z)`` so a
    miss at a level far above threshold never takes the log of zero.

    Returns
    -------
    f : array (...,)
    grad : array (..., 2)
    hess : array (..., 3)
        Upper triangle ``(H_aa, H_ab, H_bb)`` of the Hessian where it is
        positive definite, else of the (positive semi-definite) expected
        information, so that a Newton step is always a descent direction.
    """
    la, lb = theta[..., 0:1], theta[..., 1:2]
    beta = np.exp(lb)
    pos = t > 0
    with np.errstate(divide="ignore"):
        s = np.where(pos, np.log(np.where(pos, t, 1.0)) - la, 0.0)
        log_lapse = math.log(lapse) if lapse > 0 else -np.inf
    z = np.where(pos, np.exp(beta * s), 0.0)  # (t / alpha) ** beta, 0 at t = 0
    span = 1.0 - guess - lapse
    log_p = np.log(guess + span * -np.expm1(-z))
    log_q = np.logaddexp(log_lapse, math.log(span) - z)
    miss = n - k
    f = -np.sum(k * log_p + miss * log_q, axis=-1)
    dlogp = span * np.exp(-z - log_p)  # (dp/dz) / p
    dlogq = expit(math.log(span) - z - log_lapse)  # -(d(1-p)/dz) / (1-p)
    f_z = miss * dlogq - k * dlogp
    f_zz = k * dlogp * (1.0 + dlogp) - miss * dlogq * (1.0 - dlogq)
    bs = beta * s
    z_a, z_b = -beta * z, bs * z  # dz / dlog(alpha), dz / dlog(beta)
    grad = np.stack([np.sum(f_z * z_a, -1), np.sum(f_z * z_b, -1)], -1)
    hess = np.stack([
        np.sum(f_zz * z_a * z_a + f_z * beta * beta * z, -1),
        np.sum(f_zz * z_a * z_b - f_z * beta * z * (1.0 + bs), -1),
        np.sum(f_zz * z_b * z_b + f_z * bs * z * (1.0 + bs), -1),
    ], -1)
    w = n * dlogp * dlogq  # n (dp/dz)^2 / (p (1 - p))
    info = np.stack([np.sum(w * z_a * z_a, -1), np.sum(w * z_a * z_b, -1),
                     np.sum(w * z_b * z_b, -1)], -1)
    pd = (hess[..., 0] > 0) & (hess[..., 0] * hess[..., 2] > hess[..., 1] ** 2)
    return f, grad, np.where(pd[..., None], hess, info)


def _held(x, g, lo, hi, tol=1e-9):
    """Parameters at a bound of the box with the gradient pushing outwards."""
    return ((x <= lo + tol) & (g > 0)) | ((x >= hi - tol) & (g < 0))


def fit_counts(t, n, k, guess, lapse, starts=None, max_iter=100):
    """Maximum-likelihood ``(alpha, beta)`` for every row of ``k``, all rows at once.

    A grid (24 values of ``log alpha`` across the levels times 5 of ``beta``)
    gives, for each ``beta``, the best ``alpha``; the ``_NUM_STARTS`` best of
    these (plus ``starts``) each start a vectorised Newton iteration
    (:func:`_newton`), and the best end point is kept. Several starts matter:
    with steep psychometric functions the likelihood can have two basins
    (a moderate and a near-step ``beta``).

    Parameters
    ----------
    t, n : array (L,)
        Levels (at least one > 0) and trials per level.
    k : array (B, L)
        Correct responses per level, one data set per row.
    starts : array (S, 2), optional
        Extra starting points ``(log alpha, log beta)`` for every row.

    Returns
    -------
    alpha, beta, nll : arrays (B,)
    converged : bool array (B,)
        The projected gradient of the kept end point vanished (relative to
        the trial count).
    """
    B = len(k)
    t_pos = t[t > 0]
    lo_t, hi_t = float(t_pos.min()), float(t.max())
    lo = np.array([math.log(lo_t / _ALPHA_MARGIN), math.log(_BETA_RANGE[0])])
    hi = np.array([math.log(hi_t * _ALPHA_MARGIN), math.log(_BETA_RANGE[1])])
    la = np.linspace(math.log(lo_t / 3.0), math.log(hi_t * 3.0), _GRID_ALPHA)
    grid = np.stack(np.meshgrid(la, np.log(_GRID_BETA), indexing="ij"), -1)  # (A, G, 2)
    f_grid = _nll(grid[None], t, n, k[:, None, None, :], guess, lapse)[0]  # (B, A, G)
    best_a = np.argmin(f_grid, axis=1)  # (B, G): best alpha for every beta
    cols = np.argsort(np.take_along_axis(f_grid, best_a[:, None], 1)[:, 0], axis=1)
    cols = cols[:, :_NUM_STARTS]
    x0 = grid[np.take_along_axis(best_a, cols, 1), cols]  # (B, S, 2)
    if starts is not None:
        extra = np.broadcast_to(np.clip(starts, lo, hi), (B,) + np.shape(starts))
        x0 = np.concatenate([x0, extra], axis=1)
    S = x0.shape[1]
    x, f, ok = _newton(x0.reshape(-1, 2), t, n, np.repeat(k, S, axis=0), guess, lapse,
                       lo, hi, max_iter)
    pick = np.argmin(f.reshape(B, S), axis=1)
    x = x.reshape(B, S, 2)[np.arange(B), pick]
    f = f.reshape(B, S)[np.arange(B), pick]
    ok = ok.reshape(B, S)[np.arange(B), pick]
    return np.exp(x[:, 0]), np.exp(x[:, 1]), f, ok


def _newton(x, t, n, k, guess, lapse, lo, hi, max_iter):
    """Projected Newton iteration in ``(log alpha, log beta)`` for every row at once.

    Steps use the Hessian (the expected information where the Hessian is not
    positive definite), are halved until the likelihood does not increase,
    and are projected onto the box ``[lo, hi]``; a parameter held at a bound
    by the gradient is left out of the step.

    Returns
    -------
    x : array (R, 2)
    f : array (R,)
    converged : bool array (R,)
    """
    x = np.array(x, dtype=float)
    f, g, hess = _nll(x, t, n, k, guess, lapse)
    gtol = 1e-8 * float(n.sum())
    done = np.zeros(len(k), dtype=bool)
    for _ in range(max_iter):
        fixed = _held(x, g, lo, hi)
        done |= np.max(np.abs(np.where(fixed, 0.0, g)), axis=1) <= gtol
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        a, b, c = hess[act].T
        ridge = 1e-9 * (a + c) + 1e-12
        a, c = a + ridge, c + ridge
        fa, fb = fixed[act].T
        b = np.where(fa | fb, 0.0, b)  # Newton step in the free parameter(s) only
        ga, gb = np.where(fixed[act], 0.0, g[act]).T
        det = a * c - b * b
        step = np.stack([c * ga - b * gb, a * gb - b * ga], -1) / det[:, None]
        scale = np.ones(act.size)
        x_new, f_new = x[act], f[act]
        pending = np.arange(act.size)
        for _ in range(40):  # backtracking, only on rows still without a decrease
            rows = act[pending]
            trial = np.clip(x[rows] - scale[pending, None] * step[pending], lo, hi)
            f_try = _nll(trial, t, n, k[rows], guess, lapse)[0]
            ok = f_try <= f[rows]
            x_new[pending[ok]], f_new[pending[ok]] = trial[ok], f_try[ok]
            pending = pending[~ok]
            if pending.size == 0:
                break
            scale[pending] *= 0.5
        moved = np.max(np.abs(x_new - x[act]), axis=1) > 1e-12
        done[act[~moved]] = True  # no decrease possible: a (numerical) optimum
        x[act] = x_new
        f[act], g[act], hess[act] = _nll(x_new, t, n, k[act], guess, lapse)
    pg = np.where(_held(x, g, lo, hi), 0.0, g)
    converged = np.max(np.abs(pg), axis=1) <= 1e-5 * float(n.sum())
    return x, f, converged
