"""Standard-normal noise for the p(correct) estimators: factored, rotated and quasi-random.

Every random draw takes an explicit key (or seed); nothing here knows which
estimator consumes the noise (:mod:`psyphy_numpyro.estimators` does).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["SharedNoise", "draw_shared_noise", "random_orthogonal", "qmc_normals"]


class SharedNoise(NamedTuple):
    """Noise of the 4-normal estimators in factored form (a JAX pytree).

    Every trial's standard normals are ``Q[..., k] @ z[k]`` (``k = 0`` drives
    ``a``, ``k = 1`` drives ``b``): one block ``z`` shared by all trials and a
    random orthogonal map per trial and block. :func:`p_correct_from_cov`
    folds ``Q`` into the trial's small matrices, so the per-trial noise
    ``(..., 2, d, M)`` is never formed and the per-sample work becomes a few
    small matrix products plus one elementwise function per sample.

    Attributes
    ----------
    z : array (2, d, M)
        Shared standard normals, samples on the last axis.
    Q : array (..., 2, d, d)
        Orthogonal maps, one per trial and block.
    """

    z: jnp.ndarray
    Q: jnp.ndarray

    @property
    def num_samples(self) -> int:
        return self.z.shape[-1]

    def materialize(self):
        """The per-trial noise ``Q z`` as one array ``(..., 2, d, M)``."""
        return jnp.einsum("...kij,kjm->...kim", self.Q, self.z)


def draw_shared_noise(key, batch_shape, num_samples, input_dim, dtype=None) -> SharedNoise:
    """Fresh noise for ``"cv"``/``"reparam"`` in factored form.

    One block of ``2 x num_samples`` independent ``d``-vectors is drawn and
    each trial gets it through its own Haar-random orthogonal maps. A fixed
    orthogonal map of iid ``N(0, I)`` vectors is again iid ``N(0, I)``, so each
    trial's noise has exactly the iid distribution (its estimate is unbiased
    with the iid variance), while the random maps decorrelate trials.
    ``draw_shared_noise(key, ...).materialize()`` equals the ``"cv"``
    estimator's ``draw_noise`` from the same key.
    """
    dtype = dtype or jnp.result_type(float)
    k_z, k_q = jax.random.split(key)
    z = jax.random.normal(k_z, (2, input_dim, num_samples), dtype=dtype)
    Q = random_orthogonal(k_q, tuple(batch_shape) + (2,), input_dim, dtype)
    return SharedNoise(z, Q)


def random_orthogonal(key, batch_shape, d, dtype=None):
    """Haar-distributed orthogonal ``d x d`` matrices (d <= 3), shape ``batch + (d, d)``."""
    dtype = dtype or jnp.result_type(float)
    batch_shape = tuple(batch_shape)
    k_r, k_s = jax.random.split(key)
    sign = jnp.where(jax.random.bernoulli(k_s, 0.5, batch_shape), 1.0, -1.0).astype(dtype)
    if d == 1:
        return sign[..., None, None]
    if d == 2:
        t = jax.random.uniform(k_r, batch_shape, dtype, 0.0, 2 * jnp.pi)
        c, s = jnp.cos(t), jnp.sin(t)
        return jnp.stack([jnp.stack([c, -sign * s], -1), jnp.stack([s, sign * c], -1)], -2)
    # d == 3: a uniform unit quaternion gives a Haar rotation; the sign adds reflections
    q = jax.random.normal(k_r, batch_shape + (4,), dtype)
    w, x, y, z = jnp.moveaxis(q / jnp.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    R = jnp.stack(
        [
            jnp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            jnp.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            jnp.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )
    return R * sign[..., None, None]


def qmc_normals(seed, num_trials: int, shape: tuple) -> np.ndarray:
    """Randomised quasi-Monte Carlo normals ``(num_trials,) + shape``, fixed by ``seed``.

    ``shape[-1]`` is the number of samples. One scrambled Sobol point set is
    shifted per trial modulo 1 (Cranley-Patterson rotation) and mapped through
    the normal quantile, so every point is exactly N(0, I) while each trial
    keeps a low-discrepancy set. Used for deterministic surrogate likelihoods
    (NUTS, Laplace).
    """
    from scipy.special import ndtri
    from scipy.stats import qmc

    shape = tuple(shape)
    num_samples = shape[-1]
    if num_samples == 0:
        return np.zeros((num_trials,) + shape)
    dim = int(np.prod(shape[:-1]))
    rng = np.random.default_rng(seed)
    pts = qmc.Sobol(dim, scramble=True, seed=rng).random(num_samples)  # (M, dim)
    shift = rng.random((num_trials, dim, 1))
    u = np.mod(pts.T[None] + shift, 1.0)
    u = np.clip(u, 1e-12, 1 - 1e-12)
    return ndtri(u).reshape((num_trials,) + shape)
