"""Laplace approximation: a Gaussian posterior over ``W`` at the MAP."""

from __future__ import annotations

import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.util import log_density

from .errors import FitFailedError, InvalidInput, InvalidType
from .estimators import check_fixed_noise, surrogate_model, surrogate_noise
from .fits import MAPFit
from .inference.objective import bucket_size, pad_trials
from .map_fit import _check_count, fit_map, resolve_model
from .model import wppm_model
from .posterior import LaplaceFit
from .progress import use_progress
from .validation import check_params, check_real, seed_from

__all__ = ["fit_laplace", "negative_log_joint", "rotation_tangents"]


def negative_log_joint(model, stimuli, responses, noise):
    """``W -> -log p(W, y)`` with fixed noise (deterministic, differentiable)."""
    fn = partial(wppm_model, config=model, noise=noise)

    def f(W):
        return -log_density(fn, (stimuli, responses), {}, {"W": W})[0]

    return f


def rotation_tangents(W) -> np.ndarray:
    """Orthonormal basis (P, k) of the directions ``W -> W A`` (A antisymmetric).

    Along these ``k = m (m - 1) / 2`` directions (``m = d + e``) the joint
    density is flat: ``Sigma = U U^T`` does not change when ``U`` is rotated.
    """
    W = np.asarray(W, dtype=np.float64)
    m = W.shape[-1]
    vecs = []
    for i in range(m):
        for j in range(i + 1, m):
            A = np.zeros((m, m))
            A[i, j], A[j, i] = 1.0, -1.0
            vecs.append((W @ A).ravel())
    if not vecs:
        return np.zeros((W.size, 0))
    V = np.stack(vecs, 1)
    U, s, _ = np.linalg.svd(V, full_matrices=False)
    return U[:, s > 1e-10 * max(s.max(), 1e-300)]


@partial(jax.jit, static_argnums=0)
def _fisher(model, w, stimuli, weights, noise):
    """Bernoulli Fisher information ``sum_n w_n grad p_n grad p_n' / (p_n (1 - p_n))``."""
    shape = model.weight_shape

    def p_of(v):
        return model.p_correct_from_weights(v.reshape(shape), stimuli[:, 0], stimuli[:, 1], noise)

    p = p_of(w)
    J = jax.jacfwd(p_of)(w)  # (N, P)
    Jw = J * jnp.sqrt(weights / (p * (1.0 - p)))[:, None]
    return Jw.T @ Jw


@partial(jax.jit, static_argnums=0)
def _hessian(model, w, stimuli, responses, weights, noise):
    """Exact Hessian of the (weighted) negative log joint."""
    shape = model.weight_shape

    def f(v):
        fn = partial(wppm_model, config=model, noise=noise, weights=weights)
        return -log_density(fn, (stimuli, responses), {}, {"W": v.reshape(shape)})[0]

    return jax.hessian(f)(w)


def _curvature(model, W0, data, noise, curvature):
    """Curvature matrix (P, P) of the negative log joint at ``W0``.

    Trials are padded to their size bucket (weight 0 on the padding; ``noise``
    must cover the padded count), so nearby trial counts share one program.
    """
    trials = pad_trials(data, noise.shape[0], dtype=W0.dtype)
    w = W0.reshape(-1)
    if curvature == "hessian":
        return _hessian(model, w, trials.stimuli, trials.responses, trials.weights, noise)
    prior_prec = 1.0 / np.asarray(model.prior_std(), dtype=np.float64).reshape(-1) ** 2
    F = _fisher(model, w, trials.stimuli, trials.weights, noise)
    return np.asarray(F, dtype=np.float64) + np.diag(prior_prec)


def fit_laplace(
    data,
    model=None,
    *,
    init=None,
    num_draws: int = 1000,
    seed: int = 0,
    rng_key=None,
    progress: bool | None = None,
    curvature: str = "fisher",
    hessian_samples: int = 256,
    hessian_bandwidth: float | None = None,
    map_steps: int = 2000,
) -> LaplaceFit:
    """Gaussian (Laplace) posterior around the MAP: uncertainty in seconds.

    The covariance is the inverse curvature of the negative log joint at the
    MAP, on a deterministic version of the likelihood (``hessian_samples``
    fixed quasi-Monte Carlo draws per trial):

    - ``curvature="fisher"`` (default): the Bernoulli Fisher information
      ``sum_n grad p_n grad p_n' / (p_n (1 - p_n))`` plus the prior
      precision. Positive definite and built from first derivatives only, so
      it is insensitive to the Monte Carlo roughness of second derivatives.
    - ``curvature="hessian"``: the exact ``jax.hessian`` of the negative log
      joint. Second derivatives of a fixed-noise average of near-steps
      (estimators ``"reparam"``/``"mc"``) are rough; the default ``"cv"``
      integrates one radius per draw in closed form and is smooth in ``W``
      (apart from kinks on measure-zero sets), as is ``hessian_samples=0``
      (the equal-covariance table surrogate).

    ``W`` is identified only up to rotations ``U -> U R`` of its embedding
    columns, so the true Hessian is singular along ``m (m - 1) / 2``
    directions at the mode (``m = d + e``). Those directions are projected
    out: the Gaussian lives on the identifiable complement and has zero spread
    along the rotation orbit, which leaves every ``Sigma(x)`` unchanged. Any
    remaining eigenvalue below the smallest prior precision is raised to it
    (with a warning); ``fit.num_floored`` counts them.

    Parameters
    ----------
    data : TrialData
    model : WPPM, optional
    init : MAPFit, optional
        The mode; ``None`` runs :func:`fit_map` (``map_steps`` steps) first.
    num_draws : int
        Gaussian draws, returned as a single chain.
    seed : int
        Seeds the MAP start (when ``init`` is None), the QMC noise and the draws.
    rng_key : jax PRNG key, optional
        Used instead of ``seed`` (an integer seed is drawn from it).
    curvature : {"fisher", "hessian"}
    hessian_samples : int
        Fixed QMC draws per trial of the likelihood (0: table surrogate).
    hessian_bandwidth : float, optional
        Logistic bandwidth of that likelihood (default: the model's).

    Returns
    -------
    LaplaceFit
    """
    data, model = resolve_model(data, model)
    num_draws = _check_count("num_draws", num_draws)
    seed = seed_from(seed, rng_key)
    hessian_samples = _check_count("hessian_samples", hessian_samples, lo=0)
    if curvature not in ("fisher", "hessian"):
        raise InvalidInput(f'curvature must be "fisher" or "hessian", got {curvature!r}')
    map_steps = _check_count("map_steps", map_steps)
    if hessian_bandwidth is not None:
        hessian_bandwidth = check_real("hessian_bandwidth", hessian_bandwidth, 0.0)
    check_fixed_noise(
        model, "fit_laplace", "the curvature uses fixed quasi-Monte Carlo noise",
        "hessian_samples", hessian_samples,
    )
    if isinstance(init, MAPFit):
        check_params(init.params, model.weight_shape, "init.params")
    elif init is not None:
        raise InvalidType(f"init must be a MAPFit or None, got {type(init).__name__}")
    if init is None:
        init = fit_map(data, model, steps=map_steps, seed=seed, progress=use_progress(progress))
    if not isinstance(init, MAPFit):
        raise InvalidType(f"init must be a MAPFit or None, got {type(init).__name__}")
    hmodel = surrogate_model(model, hessian_samples, hessian_bandwidth)
    W0 = jnp.asarray(init.params["W"])
    noise = surrogate_noise(hmodel, bucket_size(len(data)), hessian_samples, seed)
    H = np.asarray(_curvature(hmodel, W0, data, noise, curvature), dtype=np.float64)
    if not np.all(np.isfinite(H)):
        raise FitFailedError(
            "fit_laplace: the curvature at the MAP is not finite (NaN/Inf), so no Gaussian "
            "can be built there; check that init is a converged fit_map result, or try "
            "curvature='fisher', a larger hessian_bandwidth or a larger model.diag_term"
        )
    H = 0.5 * (H + H.T)
    P = W0.size

    T = rotation_tangents(W0)
    if T.shape[1]:
        full, _ = np.linalg.qr(np.concatenate([T, np.eye(P)], 1))
        B = full[:, T.shape[1] : P]
    else:
        B = np.eye(P)
    lam, V = np.linalg.eigh(B.T @ H @ B)
    floor = float(1.0 / np.max(model.prior_std() ** 2))
    num_floored = int(np.sum(lam < floor))
    if num_floored:
        warnings.warn(
            f"fit_laplace: {num_floored} curvature eigenvalue(s) below the smallest prior "
            f"precision ({floor:.3g}) were raised to it; the MAP may not be converged",
            RuntimeWarning,
            stacklevel=2,
        )
    lam = np.maximum(lam, floor)
    root = B @ V / np.sqrt(lam)  # cov = root root^T
    z = np.asarray(
        jax.random.normal(jax.random.PRNGKey(seed), (num_draws, root.shape[1])), dtype=np.float64
    )
    draws = np.asarray(W0, dtype=np.float64).reshape(-1)[None] + z @ root.T
    draws = draws.astype(np.asarray(W0).dtype).reshape((1, num_draws) + W0.shape)
    return LaplaceFit(
        model=model,
        data=data,
        draws=draws,
        map_fit=init,
        mean=np.asarray(W0),
        cov=root @ root.T,
        num_floored=num_floored,
        curvature=curvature,
    )
