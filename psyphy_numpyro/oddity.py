"""Monte Carlo estimators of p(correct) on a 3-alternative oddity trial.

The observer sees the reference ``r`` twice and the comparison ``c`` once:
``z0, z1 ~ N(r, Sigma_r)``, ``z2 ~ N(c, Sigma_c)``. With the pooled metric
``S = (2/3) Sigma_r + (1/3) Sigma_c`` and ``d_ij = (z_i - z_j)' S^-1 (z_i - z_j)``
the trial is answered correctly when ``delta = min(d_02, d_12) - d_01 > 0``.
The model's p(correct) is ``E[sigmoid(delta / bandwidth)]`` clipped to
``[eps, 1 - eps]``. Three estimators of that one expectation live here:

``"mc"``
    Plain Monte Carlo with the three-sample rule, drawing
    ``z = U n + m + sqrt(diag_term) n'`` exactly as psyphy does
    (``3 (2d + e)`` standard normals per sample).
``"reparam"``
    The exact 4-normal reparameterisation. ``a = z0 - z1 ~ N(0, 2 Sigma_r)``
    and ``b = z2 - (z0 + z1)/2 ~ N(c - r, Sigma_c + Sigma_r/2)`` are
    independent, and ``delta = b'Mb - |a'Mb| - (3/4) a'Ma`` with
    ``M = S^-1``: ``2d`` normals per sample, same expectation.
``"cv"`` (default)
    The 4-normal form with two exact variance reductions.

    *Radial integration.* Write ``a = Ra z_a`` with ``z_a = rho v``
    (``rho = |z_a| ~ chi_d`` independent of the direction ``v``). Given
    ``v`` and ``b``, ``delta = B - k rho - m rho^2`` with ``B = b'Mb``,
    ``k = |(Ra v)'M b|`` and ``m = (3/4)(Ra v)'M(Ra v)`` falls with ``rho``.
    The logistic smoothing is itself an expectation,
    ``sigmoid(delta / h) = P(delta > h T)`` with ``T`` standard logistic, so
    ``E[sigmoid(delta / h) | v, b, T] = F_chi_d(rho*)`` where ``rho* >= 0``
    solves ``delta(rho*) = h T``: a smooth function of the parameters. ``T``
    need not be drawn: ``logit(F_chi_d(rho))`` of the radius that was
    integrated out is exactly standard logistic and independent of ``v`` and
    ``b``.

    *Control variate.* The same normals pushed through the equal-covariance
    trial, whose expectation ``f(d')`` depends only on the Mahalanobis
    distance ``d'`` and is tabulated once per ``(input_dim, bandwidth)``.

    Unbiased, and far more accurate per sample than plain Monte Carlo at a
    modest extra cost per sample (measurements: ``docs/performance.md``,
    "Accuracy per sample").

All functions are pure and jittable; the noise is always an explicit argument.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np

from ._kernels import (  # noqa: F401 - _radial_p and _radial_p_jax are tested here
    _cholesky,
    _chunked_over_trials,
    _dot,
    _feature_coeffs,
    _matvec,
    _mean_radial_shared,
    _mean_sigmoid_shared,
    _oddity_delta,
    _radial_p,
    _radial_p_jax,
    _radial_split,
    _shared_features,
    _solve_lower,
    equal_cov_table,
)
from .noise import SharedNoise

__all__ = [
    "P_EPS",
    "equal_cov_table",
    "p_correct_table",
    "p_correct_from_cov",
    "p_correct_mc",
]

P_EPS = 1e-6


# ---------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------
def _whiten(Sigma_r, Sigma_c, ref, comparison):
    """Cholesky ``L`` of the pooled metric, whitened mean ``mu`` and ``q = |mu|^2``."""
    L = _cholesky((2.0 / 3.0) * Sigma_r + (1.0 / 3.0) * Sigma_c)
    mu = _solve_lower(L, (comparison - ref)[..., :, None])[..., 0]
    return L, mu, jnp.sum(mu * mu, -1)


def _table_f(q, d, bandwidth):
    q_grid, f_grid = equal_cov_table(d, float(bandwidth))
    return jnp.interp(q, jnp.asarray(q_grid, q.dtype), jnp.asarray(f_grid, q.dtype))


def p_correct_table(Sigma_r, Sigma_c, ref, comparison, bandwidth, *, eps=P_EPS):
    """The deterministic equal-covariance surrogate ``f(d')`` (estimator ``"table"``).

    Exact when ``Sigma_r == Sigma_c``; ``d'`` is the Mahalanobis distance of
    ``comparison - ref`` in the pooled metric. No noise, smooth in the field.
    """
    _, _, q = _whiten(Sigma_r, Sigma_c, ref, comparison)
    return jnp.clip(_table_f(q, Sigma_r.shape[-1], bandwidth), eps, 1.0 - eps)


def p_correct_from_cov(
    Sigma_r,
    Sigma_c,
    ref,
    comparison,
    noise,
    bandwidth,
    *,
    control_variate=True,
    eps=P_EPS,
):
    """p(correct) from the 4-normal reparameterisation (``"cv"``/``"reparam"``).

    Parameters
    ----------
    Sigma_r, Sigma_c : array (..., d, d)
        Covariances at the reference and the comparison.
    ref, comparison : array (..., d)
    noise : array (..., 2, d, M) or SharedNoise
        Standard normals (``[..., 0, :, :]`` drives ``a``, ``[..., 1, :, :]``
        drives ``b``; samples on the last axis), or the same in factored form
        (:class:`~psyphy_numpyro.noise.SharedNoise`, what fits draw: much
        faster, same values). With ``M = 0`` the result is
        :func:`p_correct_table`.
    bandwidth : float
        Logistic smoothing of the decision variable.
    control_variate : bool
        ``True`` is estimator ``"cv"``: integrate the radius of ``z_a`` in
        closed form, subtract the equal-covariance trial driven by the same
        normals and add back its tabulated expectation. ``False`` is
        ``"reparam"``: the plain 4-normal average of ``sigmoid(delta / h)``.
    eps : float
        Clip to ``[eps, 1 - eps]``.

    Returns
    -------
    array (...,)
    """
    num_samples = noise.num_samples if isinstance(noise, SharedNoise) else noise.shape[-1]
    if num_samples == 0:
        return p_correct_table(Sigma_r, Sigma_c, ref, comparison, bandwidth, eps=eps)
    L, mu, q = _whiten(Sigma_r, Sigma_c, ref, comparison)
    Ra = _solve_lower(L, _cholesky(2.0 * Sigma_r))
    Rb = _solve_lower(L, _cholesky(Sigma_c + 0.5 * Sigma_r))
    form = _p_shared if isinstance(noise, SharedNoise) else _p_dense
    if not control_variate:
        return jnp.clip(form(Ra, Rb, mu, q, noise, bandwidth, False), eps, 1.0 - eps)
    p_rad, p_eq = form(Ra, Rb, mu, q, noise, bandwidth, True)
    f = _table_f(q, Sigma_r.shape[-1], bandwidth)
    return _combine_cv(f + p_rad - p_eq, p_rad, eps)


def _p_shared(Ra, Rb, mu, q, noise, bandwidth, radial):
    """Factored noise: ``delta`` is a quadratic form in the shared normals, so the
    per-trial maps ``Q`` are folded into the coefficients and small matrix
    products give every trial's decision terms for all samples.

    Returns the mean sigmoid (``radial=False``) or the radially integrated
    mean and its equal-covariance twin (``radial=True``).
    """
    d, num_samples = mu.shape[-1], noise.num_samples
    z = noise.z
    if radial:
        # features of the direction v = z_a / |z_a| (|Q z_a| = |z_a|, so the
        # logistic variate is shared by all trials)
        v, t = _radial_split(z[0], jnp, jsp)
        z = jnp.stack([v, z[1]])
    phi_q, phi_x = _shared_features(z)
    Q1, Q2 = noise.Q[..., 0, :, :], noise.Q[..., 1, :, :]
    batch = q.shape
    cq, cx = _feature_coeffs(Ra @ Q1, Rb @ Q2, mu)
    coeffs = [cq.reshape(-1, cq.shape[-1]), cx.reshape(-1, cx.shape[-1]), q.reshape(-1)]
    if not radial:

        def block(cq, cx, c0):
            return _mean_sigmoid_shared(cq, cx, c0, phi_q, phi_x, bandwidth)

        return _chunked_over_trials(block, coeffs, num_samples).reshape(batch)
    y = bandwidth * t
    cq_eq, cx_eq = _feature_coeffs(np.sqrt(2.0) * Q1, np.sqrt(1.5) * Q2, mu)
    coeffs += [cq_eq.reshape(-1, cq.shape[-1]), cx_eq.reshape(-1, cx.shape[-1])]

    def block(cq, cx, c0, cq_eq, cx_eq):
        p = _mean_radial_shared(cq, cx, c0, phi_q, phi_x, y, d)
        return p, _mean_radial_shared(cq_eq, cx_eq, c0, phi_q, phi_x, y, d, m=1.5)

    p_rad, p_eq = _chunked_over_trials(block, coeffs, num_samples)
    return p_rad.reshape(batch), p_eq.reshape(batch)


def _p_dense(Ra, Rb, mu, q, noise, bandwidth, radial):
    """Per-trial noise arrays ``(..., 2, d, M)``: the same estimates as :func:`_p_shared`."""
    d = mu.shape[-1]
    n1, n2 = noise[..., 0, :, :], noise[..., 1, :, :]
    b = [mu[..., i, None] + w for i, w in enumerate(_matvec(Rb, n2))]
    if not radial:
        return jnp.mean(jax.nn.sigmoid(_oddity_delta(_matvec(Ra, n1), b) / bandwidth), -1)
    v, t = _radial_split(n1, jnp, jsp)
    y = bandwidth * t
    av = _matvec(Ra, v)
    p_rad = _radial_p_jax(_dot(b, b), jnp.abs(_dot(av, b)), 0.75 * _dot(av, av), y, d)
    b_eq = [mu[..., i, None] + np.sqrt(1.5) * n2[..., i, :] for i in range(d)]
    k_eq = np.sqrt(2.0) * jnp.abs(_dot([v[..., i, :] for i in range(d)], b_eq))
    p_eq = _radial_p_jax(_dot(b_eq, b_eq), k_eq, jnp.full_like(k_eq, 1.5), y, d)
    return jnp.mean(p_rad, -1), jnp.mean(p_eq, -1)


def _combine_cv(p_cv, p_fallback, eps):
    """Control-variate estimate, or the fallback where it leaves ``(eps, 1 - eps)``."""
    # Possible when Sigma_r and Sigma_c differ a lot and the correction is
    # noisy: the radially integrated mean (the fallback) always lies in [0, 1]
    # and keeps a gradient, where clipping would leave a flat constant.
    p = jnp.where((p_cv > eps) & (p_cv < 1.0 - eps), p_cv, p_fallback)
    return jnp.clip(p, eps, 1.0 - eps)


def p_correct_mc(U_r, U_c, ref, comparison, noise, diag_term, bandwidth, *, eps=P_EPS):
    """Plain Monte Carlo three-sample oddity rule (estimator ``"mc"``).

    Parameters
    ----------
    U_r, U_c : array (..., d, m)
        Square roots at the reference and comparison (``m = d + e``).
    ref, comparison : array (..., d)
    noise : array (..., 3, m + d, M)
        Standard normals: ``[..., k, :m, :]`` drive ``U n`` and
        ``[..., k, m:, :]`` the ``sqrt(diag_term) n'`` part of sample ``z_k``.
    diag_term, bandwidth, eps : float

    Returns
    -------
    array (...,)
    """
    d, m = U_r.shape[-2], U_r.shape[-1]
    sq = jnp.sqrt(diag_term)

    def draw(U, mean, n):
        return jnp.stack(
            [mean[..., i, None] + v + sq * n[..., m + i, :] for i, v in enumerate(_matvec(U, n))],
            -2,
        )

    z0 = draw(U_r, ref, noise[..., 0, :, :])
    z1 = draw(U_r, ref, noise[..., 1, :, :])
    z2 = draw(U_c, comparison, noise[..., 2, :, :])
    eye = jnp.eye(d, dtype=U_r.dtype)
    Sigma_r = jnp.einsum("...ik,...jk->...ij", U_r, U_r) + diag_term * eye
    Sigma_c = jnp.einsum("...ik,...jk->...ij", U_c, U_c) + diag_term * eye
    L = _cholesky((2.0 / 3.0) * Sigma_r + (1.0 / 3.0) * Sigma_c)

    def dist(u, v):
        w = _solve_lower(L, u - v)
        return jnp.sum(w * w, -2)

    delta = jnp.minimum(dist(z0, z2), dist(z1, z2)) - dist(z0, z1)
    p = jnp.mean(jax.nn.sigmoid(delta / bandwidth), -1)
    return jnp.clip(p, eps, 1.0 - eps)
