"""The curvature of the MAP loss at an optimum, as the fixed matrix of chord-Newton refits.

Refits that start at the MAP fit of the full data and differ from it only by the
trials' weights (bootstrap resampling counts) have optima close to it. One
Hessian of the loss at the MAP (:func:`loss_hessian`: the SVI loss of
:func:`~psyphy_numpyro.inference.svi.map_model`, the model's own log joint, on
the fixed estimator noise of the deterministic route) then serves every refit as
the matrix of :func:`~psyphy_numpyro.inference.optim.newton_chord`: near the
optimum each step is close to a Newton step, at the cost of one gradient and one
loss evaluation, and all refits stay one vmapped program.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .objective import negative_log_posterior

__all__ = ["loss_hessian", "chord_inverse"]

HVP_BATCH = 8  # Hessian-vector products formed at once (memory: 8 x one gradient's)


@functools.partial(jax.jit, static_argnums=0)
def _hessian(model, z, trials, noise):
    flat, unravel = ravel_pytree(z)  # "W" before "lapse_rate", as the SVI parameters

    def grad(x):
        return jax.grad(lambda u: negative_log_posterior(
            model, unravel(u), trials, jax.random.PRNGKey(0), noise=noise))(x)

    def hvp(v):
        return jax.jvp(grad, (flat,), (v,))[1]

    return jax.lax.map(hvp, jnp.eye(flat.size, dtype=flat.dtype), batch_size=HVP_BATCH)


def loss_hessian(model, z: dict, trials, noise) -> np.ndarray:
    """Hessian ``(P, P)`` (numpy float64, symmetrised) of the deterministic MAP loss at ``z``.

    Parameters
    ----------
    model : WPPM
    z : dict
        Unconstrained coordinates (:func:`~psyphy_numpyro.inference.svi.to_whitened`).
    trials : Trials
        Padded trials (their weights are the loss's).
    noise
        Fixed estimator noise of the padded trials.

    Returns
    -------
    numpy array (P, P)
        Over the parameters flattened in ``ravel_pytree`` order of the SVI
        parameters (the order :func:`~psyphy_numpyro.inference.optim.newton_chord`
        uses).
    """
    H = np.asarray(_hessian(model, z, trials, noise), np.float64)
    return 0.5 * (H + H.T)


def chord_inverse(H, floor: float = 1.0) -> np.ndarray:
    """Inverse of ``H`` with its eigenvalues' magnitudes floored at ``floor``.

    In whitened coordinates the prior alone has curvature 1 in every direction, so
    ``floor=1`` never steps further than the prior would allow. Directions of
    negative or near-zero curvature (the rotation orbit of ``U``, an optimum
    not quite reached) would otherwise get huge or uphill steps.
    """
    lam, V = np.linalg.eigh(np.asarray(H, np.float64))
    return (V / np.maximum(np.abs(lam), floor)) @ V.T
