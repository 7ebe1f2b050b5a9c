"""Posteriors of the population model: Laplace around the pooled MAP (here) and NUTS
(:mod:`~psyphy_numpyro.population_mcmc`).

Both run on the one population model of :mod:`~psyphy_numpyro.hierarchy` and
return a :class:`~psyphy_numpyro.PopulationFit` whose ``population`` and
``observers`` are posterior fits (a :class:`~psyphy_numpyro.LaplaceFit` or a
:class:`~psyphy_numpyro.MCMCFit` each), so every read-out gives intervals:
``pn.thresholds(pop.observers[2], refs).interval``, ``pn.plot_ellipses``
with bands, ``pop.to_arviz()`` with an ``observer`` dimension.

:func:`~psyphy_numpyro.fit_population_laplace`
    A Gaussian over the joint parameters ``(W_pop, delta_1 .. delta_K,
    logit(lapse_i))`` at the MAP of :func:`~psyphy_numpyro.fit_population`,
    with ``tau`` (and the observer scales) fixed at their type-II estimate
    (empirical Bayes). Its precision is the model's prior curvature (NumPyro's
    potential energy of the population model, differentiated twice) plus each
    observer's Fisher information (:func:`~psyphy_numpyro.laplace.fisher_information`,
    the single-observer model's own likelihood), carried to the joint
    coordinates by ``W_i = (W_pop + delta_i) / sqrt(1 + tau_i^2)``. The joint
    density is flat along one rotation orbit (every ``W_pop`` and ``delta_i``
    rotated together, ``U -> U R``), and each observer's own orbit (``W_i``
    rotated alone) is invisible in its ``Sigma_i`` and held only by the
    deviation's prior; both are projected out as in
    :func:`~psyphy_numpyro.fit_laplace` (the Gaussian has no spread along
    them, which changes no ``Sigma``).
    Each member's Gaussian is the marginal of the joint one, so an observer
    with few trials borrows precision from the population.
:func:`~psyphy_numpyro.fit_population_mcmc`
    NUTS on the decentred population model (``W_pop`` and the deviations as
    standard normals times their scales, NumPyro's ``LocScaleReparam(0)``),
    ``tau`` sampled from its half-normal prior (full Bayes: no type-II step),
    on the deterministic surrogate likelihood of
    :func:`~psyphy_numpyro.fit_mcmc`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.util import potential_energy

from .errors import FitFailedError, InvalidInput, InvalidType
from .hierarchy import population_model
from .laplace import fisher_information, floored_root, rotation_tangents
from .population import fit_population
from .population_fit import PopulationFit
from .populationfile import point_fit
from .posterior import LaplaceFit
from .progress import use_progress
from .validation import check_count, seed_from

__all__ = ["fit_population_laplace", "joint_weights", "population_start"]


def joint_weights(pop: PopulationFit):
    """``(W_pop, delta (K, *weight_shape))`` of a MAP population fit, in the model's own
    coordinates (``W_i = (W_pop + delta_i) / sqrt(1 + tau_i^2)``)."""
    W_mean = np.asarray(point_fit(pop.population).params["W"], np.float64)
    W_pop = W_mean * np.sqrt(1.0 + pop.tau**2)
    delta = np.stack([np.asarray(point_fit(f).params["W"], np.float64) * np.sqrt(1.0 + t**2)
                      - W_pop for f, t in zip(pop.observers, pop.observer_taus, strict=True)])
    return W_pop, delta


def population_start(datas, model, init, seed, show, options):
    """The MAP population fit a posterior starts from: ``init`` (checked) or a new
    :func:`~psyphy_numpyro.fit_population` of ``datas`` with ``options``."""
    if init is None:
        if datas is None:
            raise InvalidInput("give the observers' data sets or init=a PopulationFit")
        return fit_population(datas, model, seed=seed, progress=show, **options)
    if not isinstance(init, PopulationFit):
        raise InvalidType(f"init must be a PopulationFit or None, got {type(init).__name__}")
    if options:
        raise InvalidInput(f"fit_population options {sorted(options)} need init=None")
    if init.inference != "map":
        raise InvalidInput(f"init must be a MAP population fit, got a {init.inference} one")
    return init


def _layout(model, K):
    """Sizes of the flat joint vector: ``P`` weights per field, ``K + 1`` fields, then
    ``K`` lapse logits when the model learns its lapse rate."""
    P = int(np.prod(model.weight_shape))
    return P, (K + 1) * P + (K if model.learns_lapse else 0)


def _sites(model, K, v):
    """The population model's unconstrained sites of the flat vector ``v``."""
    P, _ = _layout(model, K)
    ws = model.weight_shape
    sites = {"W_pop": v[:P].reshape(ws), "delta": v[P:(K + 1) * P].reshape((K, 1) + ws)}
    if model.learns_lapse:
        sites["lapse_rate"] = v[(K + 1) * P:].reshape(K, 1)
    return sites


@partial(jax.jit, static_argnums=(0, 1))
def _prior_curvature(model, K, v, tau, kappa):
    """Hessian of the population model's potential energy at ``v`` with every trial
    weightless: its prior curvature (the lapse logits' Jacobian included)."""
    d = model.input_dim
    stim = jnp.zeros((K, 1, 2, d), v.dtype)
    noise = model.fresh_noise(jax.random.PRNGKey(0), (K, 1), dtype=v.dtype)
    fn = partial(population_model, config=model, noise=noise, tau=tau, kappa=kappa,
                 weights=jnp.zeros((K, 1), v.dtype))
    y = jnp.zeros((K, 1), jnp.int32)
    return jax.hessian(lambda u: potential_energy(fn, (stim, y), {}, _sites(model, K, u)))(v)


def _likelihood_curvature(pop, hessian_samples, seed):
    """The joint likelihood curvature: each observer's Fisher information about ``(W_i,
    logit lapse_i)`` carried to ``(W_pop, delta_i, logit lapse_i)``."""
    model, K = pop.model, pop.num_observers
    P, n = _layout(model, K)
    H = np.zeros((n, n))
    for i, f in enumerate(pop.observers):
        m = point_fit(f)
        F = np.asarray(fisher_information(model, m.params, m.data, num_samples=hessian_samples,
                                          seed=seed), np.float64)
        s = 1.0 / np.sqrt(1.0 + pop.observer_taus[i] ** 2)
        rows = [np.arange(P), np.arange((i + 1) * P, (i + 2) * P)]  # W_pop, delta_i
        for a in rows:
            for b in rows:
                H[np.ix_(a, b)] += s * s * F[:P, :P]
        if model.learns_lapse:
            u = (K + 1) * P + i
            for a in rows:
                H[a, u] += s * F[:P, P]
                H[u, a] += s * F[P, :P]
            H[u, u] += F[P, P]
    return H


def _flat_start(pop):
    """The MAP as the flat joint vector ``v0``."""
    W_pop, delta = joint_weights(pop)
    parts = [W_pop.ravel(), delta.ravel()]
    if pop.model.learns_lapse:
        lam = np.array([point_fit(f).lapse_rate for f in pop.observers], np.float64)
        parts.append(np.log(lam / (1.0 - lam)))
    return np.concatenate(parts), W_pop, delta


def _orbit_tangents(W_pop, delta, n):
    """Orthonormal basis ``(n, k)`` of the rotation directions: every field rotated together
    (flat for the whole model), and each observer's ``W_i`` rotated alone (``delta_i`` moves
    by ``(W_pop + delta_i) A``): invisible in that observer's ``Sigma``, and held only by the
    deviation's prior, which would otherwise spread the draws along the orbit and inflate
    ``Sigma`` at second order."""
    P = W_pop.size
    parts = [rotation_tangents(np.concatenate([W_pop[None], delta], 0))]
    for i, d in enumerate(delta):
        t = rotation_tangents(W_pop + d)
        block = np.zeros((delta.size + P, t.shape[1]))
        block[(i + 1) * P:(i + 2) * P] = t
        parts.append(block)
    T = np.concatenate(parts, 1)
    T = np.concatenate([T, np.zeros((n - T.shape[0], T.shape[1]))], 0)
    U, sv, _ = np.linalg.svd(T, full_matrices=False)
    return U[:, sv > 1e-10 * max(sv.max(initial=0.0), 1e-300)]


def _gaussian_root(pop, H, prior, W_pop, delta):
    """``(root (n, r), num_floored)``: the inverse of ``H`` on the complement of the
    rotation orbits (:func:`_orbit_tangents`), eigenvalues floored at the smallest prior
    precision of a weight, each lapse logit in units where its prior precision is that
    floor (as :func:`~psyphy_numpyro.fit_laplace`)."""
    model, K = pop.model, pop.num_observers
    P, n = _layout(model, K)
    diag = np.diag(prior)
    floor = float(np.min(diag[: (K + 1) * P]))
    scale = np.ones(n)
    if model.learns_lapse:
        scale[(K + 1) * P:] = np.sqrt(diag[(K + 1) * P:] / floor)
    return floored_root(H, _orbit_tangents(W_pop, delta, n), floor, scale,
                        caller="fit_population_laplace", stacklevel=4)


def _member_maps(model, K, tau, taus):
    """Linear maps ``A (n_member, n)`` from the joint vector to each member's flat
    ``(W, logit lapse)``: the population (``W_pop / sqrt(1 + tau^2)``, no lapse) first."""
    P, n = _layout(model, K)
    A0 = np.zeros((P, n))
    A0[:, :P] = np.eye(P) / np.sqrt(1.0 + tau**2)
    maps = [A0]
    for i in range(K):
        A = np.zeros((P + (1 if model.learns_lapse else 0), n))
        s = 1.0 / np.sqrt(1.0 + taus[i] ** 2)
        A[:P, :P] = s * np.eye(P)
        A[:P, (i + 1) * P:(i + 2) * P] = s * np.eye(P)
        if model.learns_lapse:
            A[P, (K + 1) * P + i] = 1.0
        maps.append(A)
    return maps


def fit_population_laplace(datas=None, model=None, *, init=None, num_draws: int = 1000,
                           seed=0, hessian_samples: int = 256, progress: bool | None = None,
                           **options) -> PopulationFit:
    """Gaussian (Laplace) posterior of the population model around its MAP.

    See the module: ``tau`` and the observer scales stay at their type-II
    estimates; the Gaussian is over the population weights, every deviation
    and every learned lapse logit, so each observer's intervals include what
    the population teaches about it.

    Parameters
    ----------
    datas : list of TrialData, optional
        The observers' data sets (when ``init`` is None).
    model : WPPM, optional
        As for :func:`~psyphy_numpyro.fit_population`.
    init : PopulationFit, optional
        A MAP population fit to expand around; ``None`` runs
        :func:`~psyphy_numpyro.fit_population` (``options`` passed on) first.
    num_draws : int
        Gaussian draws per member (one chain).
    seed : int or PRNG key
        Seeds the MAP fit (when run here), the Fisher information's
        quasi-Monte Carlo noise and the draws.
    hessian_samples : int
        Fixed quasi-Monte Carlo draws per trial of the Fisher information.
    progress : bool, optional

    Returns
    -------
    PopulationFit
        ``inference == "laplace"``; ``population`` and every ``observers[i]``
        is a :class:`~psyphy_numpyro.LaplaceFit` (its ``map_fit`` the MAP member).

    Examples
    --------
    >>> pop = pn.fit_population_laplace([d1, d2, d3], seed=0)            # doctest: +SKIP
    >>> pn.thresholds(pop.observers[0], refs).interval(0.9)               # doctest: +SKIP
    """
    num_draws = check_count("num_draws", num_draws)
    hessian_samples = check_count("hessian_samples", hessian_samples)
    seed = seed_from(seed)
    pop = population_start(datas, model, init, seed, use_progress(progress), options)
    model, K = pop.model, pop.num_observers
    v0, W_pop, delta = _flat_start(pop)
    kappa = jnp.asarray(pop.observer_taus / pop.tau, jnp.float32).reshape(K, 1)
    dtype = jnp.asarray(point_fit(pop.population).params["W"]).dtype
    prior = np.asarray(_prior_curvature(model, K, jnp.asarray(v0, dtype),
                                        jnp.asarray(pop.tau, dtype), kappa.astype(dtype)),
                       np.float64)
    H = prior + _likelihood_curvature(pop, hessian_samples, seed)
    if not np.all(np.isfinite(H)):
        raise FitFailedError("fit_population_laplace: the curvature at the MAP is not finite; "
                             "check that init is a converged fit_population result")
    root, num_floored = _gaussian_root(pop, H, prior, W_pop, delta)
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(seed), (num_draws, root.shape[1])),
                   np.float64)
    members = []
    for A, f in zip(_member_maps(model, K, pop.tau, pop.observer_taus),
                    [pop.population, *pop.observers], strict=True):
        m = point_fit(f)
        R = A @ root
        mean = A @ v0
        flat = mean[None] + z @ R.T
        P = int(np.prod(model.weight_shape))
        W = flat[:, :P].astype(dtype).reshape((1, num_draws) + model.weight_shape)
        lapse = None
        if model.learns_lapse:
            lapse = (1.0 / (1.0 + np.exp(-flat[:, P])) if flat.shape[1] > P else
                     np.full(num_draws, m.lapse_rate)).astype(W.dtype)[None]
        members.append(LaplaceFit(model=model, data=m.data, draws=W, lapse=lapse, map_fit=m,
                                  mean=np.asarray(m.params["W"]), cov=R @ R.T,
                                  num_floored=num_floored, curvature="fisher"))
    return pop.with_members(members[0], members[1:], inference="laplace")
