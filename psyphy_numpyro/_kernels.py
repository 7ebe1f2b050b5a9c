"""Building blocks of the oddity estimators (:mod:`psyphy_numpyro.oddity`).

Small dense linear algebra unrolled for ``d <= 3`` (so it vectorises over
trials), the radial integration of estimator ``"cv"`` (with its exact,
finite derivative), the features that let factored noise be shared by all
trials, and the equal-covariance table ``f(d')``. Pure and jittable, except
the table, which is computed once in numpy per ``(input_dim, bandwidth)``.
"""

from __future__ import annotations

from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np

_TABLE_MAX_DPRIME = 12.0
_TABLE_POINTS = 481
_TABLE_LOG2_SAMPLES = 16


# ---------------------------------------------------------------------------
# small dense linear algebra, unrolled for d <= 3 so it vectorises over trials
# ---------------------------------------------------------------------------
def _cholesky(A):
    d = A.shape[-1]
    L = [[None] * d for _ in range(d)]
    for j in range(d):
        s = A[..., j, j] - sum(L[j][k] ** 2 for k in range(j))
        L[j][j] = jnp.sqrt(s)
        for i in range(j + 1, d):
            L[i][j] = (A[..., i, j] - sum(L[i][k] * L[j][k] for k in range(j))) / L[j][j]
    zero = jnp.zeros_like(A[..., 0, 0])
    rows = [jnp.stack([L[i][j] if j <= i else zero for j in range(d)], -1) for i in range(d)]
    return jnp.stack(rows, -2)


def _solve_lower(L, B):
    """Solve ``L X = B`` for lower-triangular ``L`` (..., d, d), ``B`` (..., d, n)."""
    d = L.shape[-1]
    X = []
    for i in range(d):
        acc = B[..., i, :] - sum(L[..., i, k, None] * X[k] for k in range(i))
        X.append(acc / L[..., i, i, None])
    return jnp.stack(X, -2)


def _matvec(R, n):
    """``R n`` for R (..., d, m) and n (..., m, M) -> list of d arrays (..., M)."""
    d, m = R.shape[-2], R.shape[-1]
    return [sum(R[..., i, j, None] * n[..., j, :] for j in range(m)) for i in range(d)]


def _dot(u, v):
    """Sum of products of two lists of arrays (one entry per coordinate)."""
    return sum(a * b for a, b in zip(u, v, strict=True))


def _oddity_delta(a, b):
    """``b'b - |a'b| - 0.75 a'a`` for whitened difference vectors (coordinate lists)."""
    return _dot(b, b) - jnp.abs(_dot(a, b)) - 0.75 * _dot(a, a)


# ---------------------------------------------------------------------------
# radial integration (estimator "cv"); xp / sp are numpy + scipy.special or
# jax.numpy + jax.scipy.special, so the table and the estimator share one code
# ---------------------------------------------------------------------------
_SQRT_HALF = float(np.sqrt(0.5))
_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))
_RHO_MAX = 40.0


def _chi_cdf(r, d, xp, sp):
    """CDF of the chi distribution with ``d`` degrees of freedom (closed forms, d <= 3)."""
    if d == 1:
        return sp.erf(_SQRT_HALF * r)
    if d == 2:
        return -xp.expm1(-0.5 * r * r)
    return sp.erf(_SQRT_HALF * r) - _SQRT_2_OVER_PI * r * xp.exp(-0.5 * r * r)


def _radial_split(z1, xp, sp):
    """Direction ``v = z1 / |z1|`` and the logistic variate ``logit(F_chi(|z1|))``.

    ``z1`` is ``(..., d, M)`` standard normals. ``|z1|`` is chi_d distributed
    and independent of ``v``, so ``logit(F_chi_d(|z1|))`` is exactly standard
    logistic and independent of ``v`` (computed from both tails, so it stays
    finite far into either).
    """
    d = z1.shape[-2]
    rho2 = xp.sum(z1 * z1, -2, keepdims=True)
    tiny = xp.finfo(rho2.dtype).tiny
    v = z1 / xp.sqrt(xp.maximum(rho2, tiny))
    x = 0.5 * rho2[..., 0, :]
    lower, upper = sp.gammainc(0.5 * d, x), sp.gammaincc(0.5 * d, x)
    t = xp.log(xp.maximum(lower, tiny)) - xp.log(xp.maximum(upper, tiny))
    return v, t


def _radial_root(B, k, m, y, xp):
    """``rho* >= 0`` solving ``B - k rho - m rho^2 = y`` (0 when ``B <= y``), and ``k + 2 m rho*``.

    Uses the cancellation-free form ``rho* = 2c / (k + sqrt(k^2 + 4mc))`` with
    ``c = B - y``; ``k + 2 m rho* = sqrt(k^2 + 4mc)``.
    """
    c = xp.maximum(B - y, 0.0)
    root = xp.sqrt(xp.maximum(k * k + 4.0 * m * c, xp.finfo(c.dtype).tiny))
    # F_chi(40) = 1 in double precision; the cap keeps rho*^2 finite when k = m = 0
    return xp.minimum(2.0 * c / (k + root), _RHO_MAX), root


def _radial_p(B, k, m, y, d, xp, sp):
    """``P(rho < rho*)``, ``rho ~ chi_d``: ``E[sigmoid(delta / h) | v, b, T]`` for ``y = h T``."""
    return _chi_cdf(_radial_root(B, k, m, y, xp)[0], d, xp, sp)


@partial(jax.custom_jvp, nondiff_argnums=(4,))
def _radial_p_jax(B, k, m, y, d):
    """:func:`_radial_p` in JAX with its derivative in closed form.

    Implicit differentiation of ``B - y - k rho - m rho^2 = 0`` gives
    ``d rho = (dB - dy - rho dk - rho^2 dm) / (k + 2 m rho)``, and
    ``dF = chi_pdf(rho) d rho``: a few multiplies instead of differentiating
    through the square root, the division and the CDF.
    """
    return _radial_p(B, k, m, y, d, jnp, jsp)


@_radial_p_jax.defjvp
def _radial_p_jvp(d, primals, tangents):
    B, k, m, y = primals
    dB, dk, dm, dy = tangents
    r, root = _radial_root(B, k, m, y, jnp)
    gauss = jnp.exp(-0.5 * r * r)
    pdf = {1: _SQRT_2_OVER_PI, 2: r, 3: _SQRT_2_OVER_PI * r * r}[d] * gauss
    g = jnp.where((B > y) & (r < _RHO_MAX), pdf / root, 0.0)
    return _chi_cdf(r, d, jnp, jsp), g * (dB - dy - r * dk - r * r * dm)


def _pairs(d):
    return [(i, j) for i in range(d) for j in range(i, d)]


def _shared_features(z):
    """Monomials of the shared normals that ``delta`` is linear in.

    For ``a = A z1`` and ``b = mu + B z2``, ``b'b - (3/4) a'a - mu'mu`` is
    linear in ``phi_q = [z1_i z1_j (i <= j), z2_i z2_j (i <= j), z2_i]`` and
    ``a'b`` in ``phi_x = [z1_i z2_j, z1_i]``. Returns ``(phi_q, phi_x)`` of
    shapes ``(d(d+1) + d, M)`` and ``(d^2 + d, M)``.
    """
    z1, z2 = z[0], z[1]
    d = z1.shape[0]
    q = [z1[i] * z1[j] for i, j in _pairs(d)] + [z2[i] * z2[j] for i, j in _pairs(d)]
    x = [z1[i] * z2[j] for i in range(d) for j in range(d)] + [z1[i] for i in range(d)]
    return jnp.stack(q + [z2[i] for i in range(d)]), jnp.stack(x)


def _feature_coeffs(A, B, mu):
    """Per-trial coefficients of ``_shared_features`` for ``a = A z1``, ``b = mu + B z2``."""
    d = A.shape[-1]
    AA = jnp.einsum("...ki,...kj->...ij", A, A)
    BB = jnp.einsum("...ki,...kj->...ij", B, B)
    AB = jnp.einsum("...ki,...kj->...ij", A, B)
    Am = jnp.einsum("...ki,...k->...i", A, mu)
    Bm = jnp.einsum("...ki,...k->...i", B, mu)
    w = [1.0 if i == j else 2.0 for i, j in _pairs(d)]
    cq = [-0.75 * wk * AA[..., i, j] for wk, (i, j) in zip(w, _pairs(d), strict=True)]
    cq += [wk * BB[..., i, j] for wk, (i, j) in zip(w, _pairs(d), strict=True)]
    cq += [2.0 * Bm[..., i] for i in range(d)]
    cx = [AB[..., i, j] for i in range(d) for j in range(d)] + [Am[..., i] for i in range(d)]
    return jnp.stack(cq, -1), jnp.stack(cx, -1)


def _mean_sigmoid_shared(cq, cx, c0, phi_q, phi_x, bandwidth):
    """``mean_m sigmoid(delta_m / bandwidth)`` with ``delta = cq.phi_q + c0 - |cx.phi_x|``."""
    delta = cq @ phi_q + c0[..., None] - jnp.abs(cx @ phi_x)
    return jnp.mean(jax.nn.sigmoid(delta / bandwidth), -1)


def _mean_radial_shared(cq, cx, c0, phi_q, phi_x, y, d, m=None):
    """``mean_m F_chi(rho*_m)`` from the factored features of ``(v, z_b)``.

    ``cq`` holds ``-(3/4) (Ra v)'(Ra v)`` on the first ``d(d+1)/2`` features
    and ``b'b - mu'mu`` on the rest; ``m`` overrides the first part with a
    constant (``1.5`` for the equal-covariance trial, where ``|v| = 1``).
    """
    n_a = d * (d + 1) // 2
    B = cq[:, n_a:] @ phi_q[n_a:] + c0[..., None]
    if m is None:  # >= 0 exactly; clamp float rounding
        m = jnp.maximum(-(cq[:, :n_a] @ phi_q[:n_a]), 0.0)
    m = jnp.broadcast_to(jnp.asarray(m, B.dtype), B.shape)
    k = jnp.abs(cx @ phi_x)
    return jnp.mean(_radial_p_jax(B, k, m, y, d), -1)


_CHUNK_ELEMENTS = 2**16


def _chunked_over_trials(fn, args, num_samples):
    """Apply ``fn`` to blocks of trials (leading axis of every ``args`` entry).

    The per-sample work of one block (``trials x num_samples`` values) stays
    in cache; ``jax.checkpoint`` recomputes a block's forward pass in the
    backward pass instead of storing ``N x num_samples`` residuals, so memory
    does not grow with ``N x num_samples`` (timings: ``docs/performance.md``).
    """
    n = args[0].shape[0]
    chunk = max(1, _CHUNK_ELEMENTS // max(num_samples, 1))
    if n <= chunk:
        return fn(*args)
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n

    def blocks(a):
        a = jnp.concatenate([a, jnp.broadcast_to(a[:1], (pad,) + a.shape[1:])]) if pad else a
        return a.reshape((n_chunks, chunk) + a.shape[1:])

    out = jax.lax.map(jax.checkpoint(lambda xs: fn(*xs)), tuple(blocks(a) for a in args))
    return jax.tree_util.tree_map(lambda o: o.reshape((n_chunks * chunk,) + o.shape[2:])[:n], out)


# ---------------------------------------------------------------------------
# equal-covariance table f(d')
# ---------------------------------------------------------------------------
@lru_cache(maxsize=32)
def equal_cov_table(input_dim: int, bandwidth: float):
    """Tabulate ``f(d') = E[sigmoid(delta / bandwidth)]`` when Sigma_r = Sigma_c.

    Whitened by the common covariance, ``a ~ N(0, 2 I)``, ``b ~ N(d' e_1, 1.5 I)``
    and the expectation depends on ``d'`` only. Computed once in float64 with
    the radially integrated estimator of ``"cv"`` on 2**16 scrambled Sobol
    points (fixed seed), on a grid of ``d'`` in [0, 12].

    Returns
    -------
    (q, f) : numpy arrays
        ``q = d'**2`` grid (interpolating in ``d'**2`` keeps gradients finite
        at ``d' = 0``) and ``f`` values.
    """
    import scipy.special as sp
    from scipy.stats import qmc

    d = input_dim
    pts = qmc.Sobol(2 * d, scramble=True, seed=20260101).random_base2(_TABLE_LOG2_SAMPLES)
    z = sp.ndtri(np.clip(pts, 1e-15, 1 - 1e-15)).T  # (2d, M)
    v, t = _radial_split(z[:d], np, sp)
    n2 = np.sqrt(1.5) * z[d:]
    y = bandwidth * t
    dprime = np.linspace(0.0, _TABLE_MAX_DPRIME, _TABLE_POINTS)
    f = np.empty_like(dprime)
    for i, dp in enumerate(dprime):
        b = n2.copy()
        b[0] += dp
        k = np.sqrt(2.0) * np.abs(np.sum(v * b, 0))
        f[i] = _radial_p(np.sum(b * b, 0), k, 1.5, y, d, np, sp).mean()
    return dprime**2, f
