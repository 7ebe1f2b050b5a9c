"""The Wishart-process covariance field: Chebyshev basis, U(x) and Sigma(x).

Every function here is pure and jittable. Shapes follow psyphy's layout:
``W`` has shape ``(K+1,)*d + (d, d+e)`` where ``K`` is the basis degree,
``d`` the stimulus dimension and ``e`` the number of extra embedding
dimensions.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = [
    "chebyshev",
    "basis_features",
    "total_degree",
    "prior_std",
    "prior_mean_variance",
    "isotropic_weights",
    "sqrt_field",
    "covariance_field",
    "weight_shape",
]


def weight_shape(input_dim: int, basis_degree: int, extra_dims: int) -> tuple[int, ...]:
    """Shape of ``W``: ``(K+1,)*d + (d, d+e)`` (psyphy's ``params["W"]``)."""
    return (basis_degree + 1,) * input_dim + (input_dim, input_dim + extra_dims)


def chebyshev(x: jnp.ndarray, degree: int) -> jnp.ndarray:
    """Chebyshev polynomials of the first kind ``T_0..T_degree``.

    Parameters
    ----------
    x : array, shape (...)
        Points, normally in [-1, 1].
    degree : int
        Highest degree ``K`` (>= 0).

    Returns
    -------
    array, shape (..., degree + 1)
        ``out[..., k] = T_k(x)`` from the recurrence
        ``T_{k+1} = 2 x T_k - T_{k-1}``.
    """
    x = jnp.asarray(x)
    terms = [jnp.ones_like(x)]
    if degree >= 1:
        terms.append(x)
    for _ in range(2, degree + 1):
        terms.append(2.0 * x * terms[-1] - terms[-2])
    return jnp.stack(terms, axis=-1)


def basis_features(x: jnp.ndarray, degree: int) -> jnp.ndarray:
    """Tensor-product Chebyshev features ``phi_ab..(x) = T_a(x_1) T_b(x_2) ...``.

    Parameters
    ----------
    x : array, shape (..., d)
    degree : int

    Returns
    -------
    array, shape (..., (degree+1)**d)
        Features flattened in C order, matching ``W.reshape(-1, d, d+e)``.
    """
    x = jnp.asarray(x)
    d = x.shape[-1]
    t = chebyshev(x, degree)  # (..., d, K+1)
    phi = t[..., 0, :]
    for i in range(1, d):
        phi = (phi[..., :, None] * t[..., i, None, :]).reshape(
            phi.shape[:-1] + (phi.shape[-1] * (degree + 1),)
        )
    return phi


def total_degree(input_dim: int, basis_degree: int) -> np.ndarray:
    """Total polynomial degree ``a+b(+c)`` of each basis function, shape ``(K+1,)*d``."""
    k = np.arange(basis_degree + 1)
    grids = np.meshgrid(*([k] * input_dim), indexing="ij")
    return sum(grids)


def prior_std(
    input_dim: int,
    basis_degree: int,
    extra_dims: int,
    variance_scale: float,
    decay_rate: float,
) -> np.ndarray:
    """Prior standard deviation of every entry of ``W`` (full ``W`` shape).

    Entry ``W[a, b, i, j]`` has variance ``variance_scale * decay_rate**(a+b)``.
    """
    var = variance_scale * decay_rate ** total_degree(input_dim, basis_degree)
    sd = np.sqrt(var)[(...,) + (None, None)]
    return np.broadcast_to(sd, weight_shape(input_dim, basis_degree, extra_dims)).copy()


def prior_mean_variance(input_dim: int, basis_degree: int, extra_dims: int,
                        decay_rate: float) -> float:
    """Mean over the domain of the prior mean of ``Sigma_ii(x) - diag_term``, per unit
    ``variance_scale`` (``(d+e) * mean_x sum_k phi_k(x)^2 decay^deg(k)``)."""
    g = np.linspace(-1, 1, 21)
    grid = np.stack([a.ravel() for a in np.meshgrid(*([g] * input_dim), indexing="ij")], -1)
    phi = np.asarray(basis_features(grid, basis_degree), np.float64)  # (G, (K+1)^d)
    var = decay_rate ** total_degree(input_dim, basis_degree).reshape(-1)
    return float((input_dim + extra_dims) * np.mean(phi**2 @ var))


def isotropic_weights(input_dim: int, basis_degree: int, extra_dims: int,
                      scale: float) -> np.ndarray:
    """``W`` of the constant isotropic field ``U(x) = scale [I_d | 0]``, so that
    ``Sigma(x) = scale^2 I + diag_term I`` everywhere (only the constant basis function)."""
    W = np.zeros(weight_shape(input_dim, basis_degree, extra_dims))
    W[(0,) * input_dim] = scale * np.eye(input_dim, input_dim + extra_dims)
    return W


def sqrt_field(W: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """``U(x) = sum_ab phi_ab(x) W[a, b]``.

    Parameters
    ----------
    W : array, shape ``(K+1,)*d + (d, d+e)``
    x : array, shape (..., d)

    Returns
    -------
    array, shape (..., d, d+e)
    """
    d, m = W.shape[-2], W.shape[-1]
    degree = W.shape[0] - 1
    phi = basis_features(x, degree)
    return jnp.einsum("...k,kij->...ij", phi, W.reshape(-1, d, m))


def covariance_field(W: jnp.ndarray, x: jnp.ndarray, diag_term: float) -> jnp.ndarray:
    """``Sigma(x) = U(x) U(x)^T + diag_term * I``, shape (..., d, d)."""
    U = sqrt_field(W, x)
    d = U.shape[-2]
    return jnp.einsum("...ik,...jk->...ij", U, U) + diag_term * jnp.eye(d, dtype=U.dtype)
