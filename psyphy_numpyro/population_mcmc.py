"""NUTS on the population model (:mod:`~psyphy_numpyro.hierarchy`): the full posterior,
``tau`` included, as a :class:`~psyphy_numpyro.PopulationFit` of
:class:`~psyphy_numpyro.MCMCFit` members (see
:mod:`~psyphy_numpyro.population_laplace` for the Laplace route)."""

from __future__ import annotations

import copy
import functools
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.handlers import reparam
from numpyro.infer import MCMC, NUTS
from numpyro.infer.reparam import LocScaleReparam

from .errors import FitFailedError
from .estimators import check_fixed_noise, surrogate_model, surrogate_noise
from .hierarchy import population_model, sample_observer_scales
from .inference.trials import bucket_size, pad_trials
from .noise import SharedNoise
from .population import KAPPA_SD
from .population_fit import PopulationFit
from .population_laplace import joint_weights, population_start
from .populationfile import point_fit
from .posterior import MCMCFit
from .progress import use_progress
from .validation import check_count, check_real, seed_from

__all__ = ["fit_population_mcmc"]


def _nuts_model(stimuli, responses=None, *, config, tau, tau_scale, kappa_sd, **kw):
    """The population model with, for ``kappa_sd``, the observer scales sampled too."""
    kappa = None if kappa_sd is None else sample_observer_scales(stimuli.shape[0], kappa_sd)
    population_model(stimuli, responses, config=config, tau=tau, tau_scale=tau_scale,
                     kappa=kappa, **kw)


@functools.lru_cache(maxsize=8)
def _sampler(smodel, K, tau, tau_scale, kappa_sd, settings):
    """NUTS on the decentred population model (built once per setting, the last 8 kept)."""
    num_warmup, num_draws, num_chains, accept, depth, show = settings
    fn = reparam(partial(_nuts_model, config=smodel, tau=tau, tau_scale=tau_scale,
                         kappa_sd=kappa_sd),
                 config={"W_pop": LocScaleReparam(0), "delta": LocScaleReparam(0)})
    kernel = NUTS(fn, target_accept_prob=accept, max_tree_depth=depth)
    return MCMC(kernel, num_warmup=num_warmup, num_samples=num_draws, num_chains=num_chains,
                chain_method="sequential", progress_bar=show, jit_model_args=True)


def _stacked_trials(pop, smodel, surrogate_samples, seed):
    """Every observer's trials padded to one bucket, and the surrogate's fixed noise
    ``(K, N, ...)`` (observer ``i``'s from seed ``seed + i``)."""
    datas = [point_fit(f).data for f in pop.observers]
    size = bucket_size(max(len(d) for d in datas))
    padded = [pad_trials(d, size) for d in datas]
    noises = [surrogate_noise(smodel, size, surrogate_samples, seed + i)
              for i in range(len(datas))]
    if isinstance(noises[0], SharedNoise):
        noise = SharedNoise(noises[0].z, jnp.stack([q.Q for q in noises]))
    else:
        noise = jnp.stack(noises)
    return (jnp.stack([t.stimuli for t in padded]), jnp.stack([t.responses for t in padded]),
            jnp.stack([t.weights for t in padded]), noise)


def _nuts_start(pop, learned, kappa_sd, num_chains, jitter, seed, dtype):
    """Unconstrained starting values (a leading chain axis when ``num_chains > 1``): the MAP
    with ``jitter`` standard deviations of Gaussian noise on the decentred weights."""
    model, K = pop.model, pop.num_observers
    sd = np.asarray(model.prior_std(), np.float64)
    W_pop, delta = joint_weights(pop)
    taus = pop.observer_taus.reshape((K,) + (1,) * len(model.weight_shape))
    start = {"W_pop_decentered": W_pop / sd, "delta_decentered": (delta / (taus * sd))[:, None]}
    if learned:
        start["tau"] = np.log(pop.tau)
    if kappa_sd is not None:
        start["log_kappa"] = np.log(pop.observer_taus / pop.tau).reshape(K, 1)
    if model.learns_lapse:
        lam = np.array([point_fit(f).lapse_rate for f in pop.observers]).reshape(K, 1)
        start["lapse_rate"] = np.log(lam / (1.0 - lam))
    keys = jax.random.split(jax.random.PRNGKey(seed), len(start))
    out = {}
    for k, (name, v) in zip(keys, sorted(start.items()), strict=True):
        v = np.asarray(v, np.float64)
        shape = ((num_chains,) if num_chains > 1 else ()) + v.shape
        noise = np.asarray(jax.random.normal(k, shape), np.float64)
        scale = jitter if name.endswith("_decentered") else 0.1 * jitter
        out[name] = jnp.asarray(v + scale * noise, dtype)
    return out


def fit_population_mcmc(datas=None, model=None, *, init=None, tau_scale: float = 0.5,
                        num_warmup: int = 500, num_draws: int = 500, num_chains: int = 2,
                        seed=0, progress: bool | None = None, target_accept_prob: float = 0.8,
                        max_tree_depth: int = 8, surrogate_samples: int = 0,
                        init_jitter: float = 0.05, **options) -> PopulationFit:
    """Sample the population model's posterior with NUTS.

    Sites as in :func:`~psyphy_numpyro.hierarchy.population_model`, decentred
    (``W_pop`` and the deviations are standard normals times their prior
    scales); a learned ``tau`` (and, with observer scales, every ``log
    kappa_i``) is sampled with its prior: the full posterior, no type-II step.
    The likelihood is :func:`~psyphy_numpyro.fit_mcmc`'s deterministic
    surrogate (``surrogate_samples``: 0 = the equal-covariance table).

    Parameters
    ----------
    datas, model, init, options
        As for :func:`~psyphy_numpyro.fit_population_laplace`: the chains start from the MAP
        population fit ``init`` (run here when None), whose settings (a fixed
        or learned ``tau``, observer scales) they keep.
    tau_scale : float
        Scale of a learned ``tau``'s half-normal prior.
    num_warmup, num_draws, num_chains : int
    seed : int or PRNG key
    progress : bool, optional
    target_accept_prob, max_tree_depth, surrogate_samples, init_jitter
        As for :func:`~psyphy_numpyro.fit_mcmc`.

    Returns
    -------
    PopulationFit
        ``inference == "nuts"``; every member an :class:`~psyphy_numpyro.MCMCFit`
        (its ``init_fit`` the MAP member); ``tau_draws`` when ``tau`` is learned.
    """
    num_warmup = check_count("num_warmup", num_warmup)
    num_draws = check_count("num_draws", num_draws)
    num_chains = check_count("num_chains", num_chains)
    surrogate_samples = check_count("surrogate_samples", surrogate_samples, lo=0)
    tau_scale = check_real("tau_scale", tau_scale, 0.0)
    target_accept_prob = check_real("target_accept_prob", target_accept_prob, 0.0, 1.0)
    max_tree_depth = check_count("max_tree_depth", max_tree_depth)
    init_jitter = check_real("init_jitter", init_jitter, 0.0, lo_closed=True)
    seed = seed_from(seed)
    show = use_progress(progress)
    if init is None:
        options.setdefault("tau_scale", tau_scale)
    pop = population_start(datas, model, init, seed, show, options)
    check_fixed_noise(pop.model, "fit_population_mcmc", "NUTS samples a smooth deterministic "
                      "surrogate of p(correct)", "surrogate_samples", surrogate_samples)
    smodel = surrogate_model(pop.model, surrogate_samples)
    K = pop.num_observers
    tau = None if pop.learned_tau else float(pop.tau)
    kappa_sd = KAPPA_SD if pop.observer_scales else None
    stim, resp, weights, noise = _stacked_trials(pop, smodel, surrogate_samples, seed)
    mcmc = _sampler(smodel, K, tau, tau_scale, kappa_sd,
                    (num_warmup, num_draws, num_chains, target_accept_prob, max_tree_depth, show))
    start = _nuts_start(pop, tau is None, kappa_sd, num_chains, init_jitter, seed, stim.dtype)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="There are not enough devices")
        mcmc.run(jax.random.PRNGKey(seed + 1), stim, resp, noise=noise, weights=weights,
                 init_params=start, extra_fields=("num_steps", "accept_prob", "energy",
                                                  "potential_energy"))
    mcmc = copy.copy(mcmc)  # this run's draws; the cached sampler moves on
    return _nuts_result(pop, mcmc, surrogate_samples)


def _nuts_result(pop, mcmc, surrogate_samples):
    """The PopulationFit of a finished NUTS run."""
    s = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    if not all(np.isfinite(v).all() for v in s.values()):
        raise FitFailedError("fit_population_mcmc: NUTS produced non-finite draws; try a "
                             "higher target_accept_prob (e.g. 0.95) or a fixed tau")
    lapse = s["lapse_rate"].reshape(s["W"].shape[:3]) if "lapse_rate" in s else None
    info = {"num_samples": surrogate_samples}
    members = [MCMCFit(model=pop.model, data=point_fit(pop.population).data, draws=s["W_mean"],
                       lapse=None if lapse is None else np.median(lapse, axis=2), mcmc=mcmc,
                       surrogate=dict(info), init_fit=point_fit(pop.population))]
    members += [MCMCFit(model=pop.model, data=point_fit(f).data, draws=s["W"][:, :, i],
                        lapse=None if lapse is None else lapse[:, :, i], mcmc=mcmc,
                        surrogate=dict(info), init_fit=point_fit(f))
                for i, f in enumerate(pop.observers)]
    diverged = int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"])))
    if diverged > 0.02 * members[0].num_draws:
        warnings.warn(f"fit_population_mcmc: {diverged} of {members[0].num_draws} transitions "
                      "diverged; raise target_accept_prob (e.g. 0.95)", RuntimeWarning,
                      stacklevel=3)
    changes = {}
    if "tau" in s:
        taus = s["tau"][..., None] * (s["kappa"].reshape(s["tau"].shape + (-1,))
                                       if "kappa" in s else 1.0)
        changes = {"tau": float(np.median(s["tau"])), "tau_draws": s["tau"],
                   "observer_taus": np.median(np.broadcast_to(
                       taus, s["tau"].shape + (pop.num_observers,)).reshape(
                       -1, pop.num_observers), 0)}
    return pop.with_members(members[0], members[1:], inference="nuts", **changes)
