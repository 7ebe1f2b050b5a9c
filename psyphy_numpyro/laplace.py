"""Laplace approximation: a Gaussian posterior over ``W`` at the MAP."""

from __future__ import annotations

import math
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.util import constrain_fn, log_density, log_likelihood, potential_energy

from .errors import FitFailedError, InvalidInput, InvalidType
from .estimators import check_fixed_noise, surrogate_model, surrogate_noise
from .fits import MAPFit
from .inference.svi import pad_trials, padded_size
from .map_fit import fit_map
from .model import wppm_model
from .noise import SharedNoise
from .posterior import LaplaceFit
from .progress import use_progress
from .resolve import resolve_model
from .validation import check_count, check_real, seed_from

__all__ = ["fisher_information", "fit_laplace", "floored_root", "negative_log_joint",
           "rotation_tangents"]


def negative_log_joint(model, stimuli, responses, noise):
    """``W -> -log p(W, y)`` of :func:`~psyphy_numpyro.wppm_model` with fixed noise
    (deterministic, differentiable): NumPyro's ``log_density`` of the model."""
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


def floored_root(H, tangents, floor: float, scale=None, *, caller: str = "fit_laplace",
                 stacklevel: int = 3):
    """The Gaussian of a curvature on the complement of flat directions.

    Parameters
    ----------
    H : array (n, n)
        Curvature (precision) of the negative log joint; symmetrised here.
    tangents : array (n, k)
        Orthonormal directions to project out (the rotation orbit).
    floor : float
        Eigenvalues of the projected curvature below it are raised to it (with a warning
        naming ``caller``).
    scale : array (n,), optional
        Coordinate units in which the floor applies (``H`` is divided by
        ``scale scale^T``; the root is mapped back).

    Returns
    -------
    (root, num_floored)
        ``root (n, n - k)`` with covariance ``root root^T``; how many eigenvalues were
        floored.
    """
    n = H.shape[0]
    scale = np.ones(n) if scale is None else np.asarray(scale, np.float64)
    T = np.asarray(tangents, np.float64)
    if T.shape[1]:
        full, _ = np.linalg.qr(np.concatenate([T, np.eye(n)], 1))
        B = full[:, T.shape[1]:n]
    else:
        B = np.eye(n)
    Hs = 0.5 * (H + H.T) / np.outer(scale, scale)
    lam, V = np.linalg.eigh(B.T @ Hs @ B)
    num_floored = int(np.sum(lam < floor))
    if num_floored:
        warnings.warn(
            f"{caller}: {num_floored} curvature eigenvalue(s) below the smallest prior "
            f"precision ({floor:.3g}) were raised to it; the MAP may not be converged",
            RuntimeWarning, stacklevel=stacklevel)
    return (B @ V / np.sqrt(np.maximum(lam, floor))) / scale[:, None], num_floored


def _sites(model, v):
    """Unconstrained sites of the flat vector ``v``: ``W``, then ``logit(lapse)`` when learned
    (NumPyro's unconstrained value of the ``"lapse_rate"`` site)."""
    P = int(np.prod(model.weight_shape))
    sites = {"W": v[:P].reshape(model.weight_shape)}
    if model.learns_lapse:
        sites["lapse_rate"] = v[P]
    return sites


CURVATURE_CHUNK = 64
"""Trials per block of the curvature: the Jacobian (or Hessian) of one block is
formed at a time and the blocks' contributions are summed, so memory does not
grow with the trial count. (XLA on CPU also miscompiled the forward-mode Jacobian
of thousands of trials at once in one program: entries off by O(1), measured
with jax 0.10 against finite differences; blocks of this size agree with them.)"""


def _blocks(n: int) -> int:
    """The block size for ``n`` (padded) trials: the largest power of two <= CURVATURE_CHUNK
    dividing ``n`` (bucket sizes are multiples of large powers of two)."""
    return math.gcd(n, CURVATURE_CHUNK)


def _noise_blocks(noise, num_blocks, size):
    """Per-block noise leaves (trial axis split) and the function that rebuilds one block."""
    if isinstance(noise, SharedNoise):
        Q = noise.Q.reshape((num_blocks, size) + noise.Q.shape[1:])
        return Q, lambda q: SharedNoise(noise.z, q)
    return noise.reshape((num_blocks, size) + noise.shape[1:]), lambda q: q


def _block_sum(model, block_fn, v, stimuli, responses, weights, noise):
    """``sum_b block_fn(model_b, v, y_b, weights_b)`` over blocks of trials (jittable), with
    ``model_b`` the WPPM model on block ``b``'s trials and noise."""
    n = stimuli.shape[0]
    size = _blocks(n)
    nb = n // size
    per, rebuild = _noise_blocks(noise, nb, size)

    def one(args):
        s, y, wt, q = args
        fn = partial(wppm_model, s, config=model, noise=rebuild(q))
        return block_fn(fn, model, v, y, wt)

    blocks = (stimuli.reshape((nb, size) + stimuli.shape[1:]), responses.reshape(nb, size),
              weights.reshape(nb, size), per)
    return jnp.sum(jax.lax.map(one, blocks), 0)


def _fisher_block(fn, model, v, y, wt):
    """Expected information of one block's responses: ``E_y[s s']`` per trial, with the
    scores ``s`` of both outcomes from the model's own log-likelihood."""

    def loglik(u, outcome):
        params = constrain_fn(fn, (outcome,), {}, _sites(model, u))
        return log_likelihood(fn, params, outcome, batch_ndims=0)["y"]

    ones = jnp.ones_like(y)
    zeros = jnp.zeros_like(y)
    p = jnp.exp(loglik(v, ones))  # the model's probability of a correct response
    J1 = jax.jacfwd(loglik)(v, ones)
    J0 = jax.jacfwd(loglik)(v, zeros)
    return (J1 * (wt * p)[:, None]).T @ J1 + (J0 * (wt * (1.0 - p))[:, None]).T @ J0


def _hessian_block(fn, model, v, y, wt):
    """Hessian of the block's (weighted) potential energy, prior included (subtracted once
    per block by :func:`_curvature`)."""
    weighted = partial(fn, weights=wt)
    return jax.hessian(lambda u: potential_energy(weighted, (y,), {}, _sites(model, u)))(v)


@partial(jax.jit, static_argnums=(0, 1))
def _likelihood_curvature(model, curvature, v, stimuli, responses, weights, noise):
    """The likelihood's curvature (P, P), block by block: the Fisher information of the
    responses, or the exact Hessian of the negative log-likelihood."""
    if curvature == "hessian":
        H = _block_sum(model, _hessian_block, v, stimuli, responses, weights, noise)
        nb = stimuli.shape[0] // _blocks(stimuli.shape[0])
        return H - nb * _prior_curvature(model, v, stimuli, noise)
    return _block_sum(model, _fisher_block, v, stimuli, responses, weights, noise)


def _prior_curvature(model, v, stimuli, noise):
    """Hessian of the model's potential energy on one weightless trial: the prior's curvature
    in the unconstrained coordinates (a learned lapse rate's Jacobian included)."""
    one = jax.tree_util.tree_map(lambda a: a[:1], noise)
    fn = partial(wppm_model, stimuli[:1], config=model, noise=one,
                 weights=jnp.zeros(1, stimuli.dtype))
    y = jnp.zeros(1, jnp.int32)
    return jax.hessian(lambda u: potential_energy(fn, (y,), {}, _sites(model, u)))(v)


_prior_curvature_jit = jax.jit(_prior_curvature, static_argnums=0)


def _curvature(model, w, data, noise, curvature):
    """Curvature ``(likelihood, prior)`` (P, P) each of the negative log joint at the flat
    unconstrained parameters ``w``, both from the model.

    Trials are padded to their size bucket (weight 0 on the padding; ``noise``
    must cover the padded count), so nearby trial counts share one program.
    """
    trials = pad_trials(data, noise.shape[0], dtype=w.dtype)
    L = _likelihood_curvature(model, curvature, w, trials.stimuli, trials.responses,
                              trials.weights, noise)
    prior = _prior_curvature_jit(model, w, trials.stimuli, noise)
    return np.asarray(L, np.float64), np.asarray(prior, np.float64)


def fisher_information(model, params, data, *, num_samples: int = 256, seed: int = 0
                       ) -> np.ndarray:
    """Expected (Fisher) information of ``data``'s responses about the weights at ``params``.

    The curvature :func:`fit_laplace` uses with ``curvature="fisher"``, from the
    model's own log-likelihood, on fixed quasi-Monte Carlo noise of ``num_samples``
    draws per trial (``seed``).

    Returns
    -------
    numpy array (P, P)
        In the flat coordinates of ``W`` (``P = prod(model.weight_shape)``),
        followed by the logit of a learned lapse rate (``P + 1`` then).
    """
    hmodel = surrogate_model(model, num_samples, None)
    W0 = jnp.asarray(params["W"])
    w0 = W0.reshape(-1)
    if model.learns_lapse:
        lam0 = float(np.asarray(params["lapse_rate"]))
        w0 = jnp.append(w0, jnp.asarray(np.log(lam0 / (1 - lam0)), W0.dtype))
    noise = surrogate_noise(hmodel, padded_size(len(data)), num_samples, seed)
    return _curvature(hmodel, w0, data, noise, "fisher")[0]


def _check_init(init, model):
    """``init`` must be None or a MAPFit whose parameters fit ``model``."""
    if isinstance(init, MAPFit):
        model.checked_params(init.params, "init.params")
    elif init is not None:
        raise InvalidType(f"init must be a MAPFit or None, got {type(init).__name__}")


def _mode_vector(model, init):
    """``W`` at the mode, and the flat coordinates of the Gaussian there: ``W`` raveled,
    then the logit of a learned lapse rate."""
    W0 = jnp.asarray(init.params["W"])
    w0 = W0.reshape(-1)
    if model.learns_lapse:
        lam0 = float(np.asarray(init.params["lapse_rate"]))
        w0 = jnp.append(w0, jnp.asarray(np.log(lam0 / (1 - lam0)), W0.dtype))
    return W0, w0


def _covariance_root(model, H, prior, W0, P):
    """:func:`floored_root` ``(root, num_floored)`` of the curvature ``H`` (P, P) off the
    rotation orbit of ``W0``, floored at the smallest prior precision of ``W``."""
    T = rotation_tangents(W0)
    if P > W0.size:  # the lapse coordinate is not on the rotation orbit
        T = np.concatenate([T, np.zeros((P - W0.size, T.shape[1]))], 0)
    floor = float(1.0 / np.max(model.prior_std() ** 2))
    # the floor is a precision of W; the logit of a learned lapse rate is measured in units
    # where its own prior precision equals the floor, so the floor binds for it only where
    # its curvature falls below its prior's
    scale = np.ones(P)
    if model.learns_lapse:
        scale[-1] = np.sqrt(prior[-1, -1] / floor)
    return floored_root(H, T, floor, scale, caller="fit_laplace", stacklevel=4)


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
    steps: int | None = None,
    trial_capacity: int | None = None,
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

    A learned lapse rate is one more coordinate, its logit: the Gaussian is
    over ``(W, logit(lapse))`` (curvature of the log density of the logit,
    the Beta prior's Jacobian included), so every lapse draw lies in (0, 1).

    Parameters
    ----------
    data : TrialData
    model : WPPM or psyphy WPPM, optional
        A psyphy model is converted (:meth:`WPPM.from_psyphy`).
    init : MAPFit, optional
        The mode; ``None`` runs :func:`fit_map` first (``steps`` optimiser
        steps, default its own), with this ``seed``: the same MAP as
        ``fit_map(data, model, seed=seed)``.
    num_draws : int
        Gaussian draws, returned as a single chain.
    seed : int or jax PRNG key
        Seeds the MAP start (when ``init`` is None), the QMC noise and the draws.
    rng_key : jax PRNG key, optional
        Used instead of ``seed`` (an integer seed is drawn from it).
    curvature : {"fisher", "hessian"}
    hessian_samples : int
        Fixed QMC draws per trial of the likelihood (0: table surrogate).
    hessian_bandwidth : float, optional
        Logistic bandwidth of that likelihood (default: the model's).
    trial_capacity : int, optional
        Pad the trial axis to at least this many trials (see
        :func:`~psyphy_numpyro.fit_map`), here and in the MAP fit it runs.

    Returns
    -------
    LaplaceFit
    """
    given = model
    data, model = resolve_model(data, model)
    num_draws = check_count("num_draws", num_draws)
    given_seed = seed if rng_key is None else rng_key  # the MAP start: fit_map's stream
    seed = seed_from(seed, rng_key)
    hessian_samples = check_count("hessian_samples", hessian_samples, lo=0)
    if curvature not in ("fisher", "hessian"):
        raise InvalidInput(f'curvature must be "fisher" or "hessian", got {curvature!r}')
    if steps is not None:
        steps = check_count("steps", steps)
    if hessian_bandwidth is not None:
        hessian_bandwidth = check_real("hessian_bandwidth", hessian_bandwidth, 0.0)
    check_fixed_noise(
        model, "fit_laplace", "the curvature uses fixed quasi-Monte Carlo noise",
        "hessian_samples", hessian_samples,
    )
    _check_init(init, model)
    if init is None:
        init = fit_map(data, given, steps=steps, seed=given_seed, progress=use_progress(progress),
                       trial_capacity=trial_capacity)
    if not isinstance(init, MAPFit):
        raise InvalidType(f"init must be a MAPFit or None, got {type(init).__name__}")
    hmodel = surrogate_model(model, hessian_samples, hessian_bandwidth)
    W0, w0 = _mode_vector(model, init)
    noise = surrogate_noise(hmodel, padded_size(len(data), trial_capacity), hessian_samples,
                            seed)
    L, prior = _curvature(hmodel, w0, data, noise, curvature)
    H = L + prior
    if not np.all(np.isfinite(H)):
        raise FitFailedError(
            "fit_laplace: the curvature at the MAP is not finite (NaN/Inf), so no Gaussian "
            "can be built there; check that init is a converged fit_map result, or try "
            "curvature='fisher', a larger hessian_bandwidth or a larger model.diag_term"
        )
    root, num_floored = _covariance_root(model, H, prior, W0, w0.size)
    z = np.asarray(
        jax.random.normal(jax.random.PRNGKey(seed), (num_draws, root.shape[1])), dtype=np.float64
    )
    flat = np.asarray(w0, dtype=np.float64)[None] + z @ root.T
    draws = flat[:, : W0.size].astype(np.asarray(W0).dtype).reshape((1, num_draws) + W0.shape)
    lapse = None
    if model.learns_lapse:
        lapse = (1.0 / (1.0 + np.exp(-flat[:, -1]))).astype(draws.dtype)[None]
    return LaplaceFit(
        model=model,
        data=data,
        draws=draws,
        lapse=lapse,
        map_fit=init,
        mean=np.asarray(W0),
        cov=root @ root.T,
        num_floored=num_floored,
        curvature=curvature,
    )
