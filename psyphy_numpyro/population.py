"""``fit_population``: the hierarchical WPPM (:mod:`~psyphy_numpyro.hierarchy`) fitted to
several observers at once, MAP through NumPyro's ``SVI`` with an ``AutoDelta`` guide.

The fit runs the deterministic route of :func:`~psyphy_numpyro.fit_map`: fixed
estimator noise (one draw per padded trial of every observer, set by the seed),
the population and deviation weights decentred by NumPyro's
``LocScaleReparam(centered=0)``, and ``optax.lbfgs`` until the loss falls by less
than ``tol`` over 10 steps. It starts from the MAP fit of the pooled trials (a
random ``START_TRIALS`` = 4 000 of them when there are more, each observer's
share in proportion) with every observer at the population (``delta = 0``).

With a learned ``tau`` the weights are first fitted at the fixed ``tau =
tau_scale`` (``DEVIATIONS_TAU``; each deviation at its conditional optimum), and
only then is ``tau`` released, from there: started with every deviation at 0,
the deviations carry no gradient for ``tau`` and the Laplace term alone pulls
``tau`` down before the deviations grow, a path that ended at ``tau`` near 0.04
for observers drawn at 0.3 (docs/performance.md, seed 1 at the issue's sizes).
The first phase's ``tau`` is the prior's scale rather than a tighter one so
that an outlier's deviation is fitted loosely enough to be recognised (at
``tau_scale / 2`` the outlier of ``tests/test_population_outlier.py`` took a
scale no larger than a typical observer's).

Learning ``tau``
----------------
A joint MAP of ``tau`` and the deviations is not an estimate of ``tau``: in
the model's own coordinates the density grows without bound as ``tau`` and
every deviation shrink to 0, and in decentred coordinates (deviation = ``tau``
x a standard normal) the optimum runs to large ``tau``. ``tau`` is therefore
estimated by its *marginal* likelihood (type-II MAP, empirical Bayes): the
deviations are integrated out by a Laplace approximation, which adds
``1/2 sum_k log(1 + tau^2 / (1 + tau^2) lambda_ik)`` to the decentred loss, with
``lambda_ik`` the eigenvalues of observer ``i``'s Fisher information
(:func:`~psyphy_numpyro.laplace.fisher_information`, at the pooled start) in
prior-standard-deviation units. The term is added to the model as a NumPyro
``factor`` (the model's log joint itself is untouched); it is what keeps
``tau`` where the observers' differences put it.

With ``observer_scales=True`` (opt-in) each observer has its own scale
``tau_i = tau kappa_i`` (:mod:`~psyphy_numpyro.hierarchy`, a log-normal local
scale ``kappa_i`` around the shared ``tau``), estimated the same way: observer
``i``'s Laplace term is ``1/2 sum_k log(1 + tau_i^2 / (1 + tau_i^2) lambda_ik)``,
its own eigenvalues, so an observer whose field is far from the others' (an
outlier) takes a large ``tau_i`` (and is fitted practically on its own) without
raising the shared ``tau`` that the typical observers, and a new observer's
prior, use. ``observer_scales=False`` (the default) is one ``tau`` for all: with four
observers drawn at one ``tau = 0.3`` the per-observer scales came out at 0.06, 0.33,
0.05 and 0.06 (the shared ``tau`` 0.09), pooling three of them too strongly.
"""

from __future__ import annotations

import functools
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.handlers import reparam, seed, substitute, trace
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoDelta
from numpyro.infer.reparam import LocScaleReparam

from .data import TrialData, as_trial_data
from .errors import FitDivergedError, InvalidInput
from .fits import MAPFit
from .hierarchy import check_tau, population_model
from .inference.optim import OptaxOptim, lbfgs
from .inference.trials import bucket_size, pad_trials
from .population_fit import PopulationFit
from .population_tau import fisher_eigenvalues, marginal_tau_model
from .populationfile import observer_params
from .progress import Progress, use_progress
from .validation import check_count, check_real, seed_from
from .wppm import WPPM, as_wppm

__all__ = ["fit_population"]

CHUNK = 10  # L-BFGS steps per compiled chunk; convergence is checked between chunks
KAPPA_SD = 1.0  # spread of the observer scales' log-normal prior (see hierarchy)


def _check_datas(datas):
    if not isinstance(datas, list | tuple) or len(datas) < 2:
        raise InvalidInput("fit_population needs a list of at least two observers' data sets")
    datas = [as_trial_data(d) for d in datas]
    dims = sorted({d.input_dim for d in datas})
    if len(dims) > 1:
        raise InvalidInput(f"the observers' data have different stimulus dimensions {dims}")
    return datas


def _pooled_model(datas, model):
    if model is not None:
        model = as_wppm(model)
        if model.weight_prior is not None:
            raise InvalidInput("fit_population: the model has a weight_prior (a new observer's "
                               "prior); the population model has its own prior: pass "
                               "model.with_prior(None)")
        return model
    from .hyperparameters import pooled_choice

    return pooled_choice(datas, WPPM(input_dim=datas[0].input_dim)).model


@functools.lru_cache(maxsize=16)
def _population_svi(model: WPPM, num_observers: int, tau, tau_scale: float, kappa_sd=None):
    """SVI with an AutoDelta guide on the decentred population model (cached per setting;
    a learned ``tau`` takes the Fisher eigenvalues as the argument ``eigenvalues``;
    ``kappa_sd``: learned observer scales)."""
    if tau is None:
        base = partial(marginal_tau_model, config=model, tau_scale=tau_scale,
                       kappa_sd=kappa_sd)
    else:
        base = partial(population_model, config=model, tau=tau, tau_scale=tau_scale)
    fn = reparam(base, config={"W_pop": LocScaleReparam(0), "delta": LocScaleReparam(0)})
    svi = SVI(fn, AutoDelta(fn), OptaxOptim(lbfgs()), Trace_ELBO())
    K, d = num_observers, model.input_dim
    extra = {} if tau is not None else {"eigenvalues": jnp.zeros((K, 1))}
    # set the guide up on abstract values (evaluated eagerly the model would compile op by op)
    jax.eval_shape(lambda k: svi.init(k, jnp.zeros((K, 8, 2, d)), jnp.zeros((K, 8), jnp.int32),
                                      weights=jnp.ones((K, 8)), **extra),
                   jax.random.PRNGKey(0))
    return svi


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _chunk(model, tau, tau_scale, kappa_sd, length, state, stimuli, responses, weights, noise,
           extra):
    svi = _population_svi(model, stimuli.shape[0], tau, tau_scale, kappa_sd)

    def body(s, _):
        return svi.update(s, stimuli, responses, weights=weights, noise=noise, **extra)

    return jax.lax.scan(body, state, None, length=length)


def _start(svi, model, W_start, K, tau, tau_scale, dtype, kappa_sd=None, first=None):
    """The optimiser state where every observer's (and the population's) field is
    ``W_start`` (every ``delta = 0``), at a middling ``tau`` (every ``kappa = 1``); with
    ``first`` (:func:`_deviations_first`'s unconstrained parameters at that ``tau``), the
    weights (and lapse rates) are those."""
    sd = np.asarray(model.prior_std(), np.float64)
    t = tau if tau is not None else (DEVIATIONS_TAU if first else 0.5) * tau_scale
    W_pop = np.asarray(W_start) * np.sqrt(1.0 + t**2)
    params = {"W_pop_decentered_auto_loc": jnp.asarray(W_pop / sd, dtype),
              "delta_decentered_auto_loc": jnp.zeros((K, 1) + model.weight_shape, dtype)}
    params.update(first or {})
    if tau is None:
        params["tau_auto_loc"] = jnp.asarray(np.log(t), dtype)
        if kappa_sd is not None:
            params["log_kappa_auto_loc"] = jnp.zeros((K, 1), dtype)
    if model.learns_lapse and "lapse_rate_auto_loc" not in params:
        a, b = model.lapse_prior
        params["lapse_rate_auto_loc"] = jnp.full((K, 1), np.log(a / b), dtype)
    from numpyro.infer.svi import SVIState

    return SVIState(svi.optim.init(params), None, jax.random.PRNGKey(0))


DEVIATIONS_TAU = 1.0
"""The fixed ``tau`` of the first phase, in units of ``tau_scale``."""


def _deviations_first(model, W_start, K, tau_scale, args, steps, tol, timings, show):
    """L-BFGS on the weights at the fixed ``tau = DEVIATIONS_TAU * tau_scale``: the
    unconstrained parameters it reaches (the learned-``tau`` fit starts there, at that
    ``tau``; see the module)."""
    t = DEVIATIONS_TAU * tau_scale
    svi = _population_svi(model, K, t, tau_scale, None)
    state = _start(svi, model, W_start, K, t, tau_scale, args[0].dtype)
    stim, resp, weights, noise, _ = args
    state, _ = _optimise((model, t, tau_scale, None), state, (stim, resp, weights, noise, {}),
                         steps, tol, timings, Progress(show, steps, f"fit_population x{K} "
                                                       "observers (deviations)"))
    return dict(svi.optim.get_params(state.optim_state))


def _values(svi, state, stimuli, responses, weights, noise, extra):
    """The model's sites at the state's point: ``W_mean``, ``W (K, ...)``, ``tau``, lapses."""
    params = svi.get_params(state)
    subs = {k[: -len("_auto_loc")]: v for k, v in params.items()}
    tr = trace(substitute(seed(svi.model, 0), data=subs)).get_trace(
        stimuli, responses, weights=weights, noise=noise, **extra)
    out = {k: np.asarray(tr[k]["value"]) for k in ("W_mean", "W") if k in tr}
    out["tau"] = float(tr["tau"]["value"]) if "tau" in tr else None
    if "kappa" in tr:
        out["kappa"] = np.asarray(tr["kappa"]["value"], np.float64).reshape(-1)
    if "lapse_rate" in tr:
        out["lapse_rate"] = np.asarray(tr["lapse_rate"]["value"]).reshape(-1)
    return out


def fit_population(datas, model=None, *, tau="learn", tau_scale: float = 0.5,
                   observer_scales: bool = False, kappa_sd: float = KAPPA_SD, seed=0,
                   steps: int = 300, tol: float = 0.05, progress: bool | None = None
                   ) -> PopulationFit:
    """Fit the hierarchical WPPM to several observers at once (MAP, SVI + AutoDelta).

    Parameters
    ----------
    datas : list of TrialData (at least two)
        One data set per observer (same stimulus dimension).
    model : WPPM, optional
        The configuration every observer shares. Default: hyperparameters
        chosen from the pooled data (as :func:`~psyphy_numpyro.fit_map` does
        for a list).
    tau : "learn" or float
        ``"learn"`` (default): the deviation scale is a parameter with prior
        ``HalfNormal(tau_scale)``; a number fixes it (``1e-3``: practically one
        shared field; ``10``: practically independent observers).
    tau_scale : float
        Scale of ``tau``'s prior (in prior standard deviations).
    observer_scales : bool
        With a learned ``tau``: each observer strays by its own ``tau_i = tau
        kappa_i`` (``log kappa_i ~ N(0, kappa_sd^2)``), so that one observer unlike
        the rest is not pulled towards them. ``False`` (default): one ``tau`` for
        all; the scales can under-estimate the spread of observers that share one
        ``tau`` (docs/population.md). Ignored for a fixed ``tau``.
    kappa_sd : float
        The spread of the observer scales' log-normal prior.
    seed : int or PRNG key
        Seeds the pooled start and the fixed estimator noise.
    steps : int
        The most L-BFGS steps.
    tol : float
        Stop once the loss fell by at most ``tol`` nats over 10 steps.
    progress : bool, optional
        Progress bar (default: on unless ``CI`` is set).

    Returns
    -------
    PopulationFit
        ``.population`` and ``.observers[i]`` are fits with every read-out.

    Examples
    --------
    >>> pop = pn.fit_population([d1, d2, d3], seed=0)          # doctest: +SKIP
    >>> pop.tau, pop.observers[0].covariance(x)                  # doctest: +SKIP
    """
    from .map_fit import fit_map

    datas = _check_datas(datas)
    tau_value = check_tau(tau)
    kappa_sd = (check_real("kappa_sd", kappa_sd, 0.0)
                if observer_scales and tau_value is None else None)
    tau_scale = check_real("tau_scale", tau_scale, 0.0)
    steps = check_count("steps", steps)
    tol = check_real("tol", tol, 0.0, lo_closed=True)
    seed = seed_from(seed)
    model = _pooled_model(datas, model)
    show = use_progress(progress)
    timings = {"pooled": 0.0, "compile": 0.0, "steps": 0.0}
    t0 = time.perf_counter()
    pooled = fit_map(_start_trials(datas, seed), model, seed=seed, progress=show)
    timings["pooled"] = time.perf_counter() - t0
    K = len(datas)
    stim, resp, weights, noise = _stacked(datas, model, seed)
    extra = {} if tau_value is not None else _information(model, pooled.params["W"], datas,
                                                          seed, stim.dtype, timings)
    args = (stim, resp, weights, noise, extra)
    first = None
    if tau_value is None:  # the deviations first, at the start's tau (see the module)
        first = _deviations_first(model, pooled.params["W"], K, tau_scale, args, steps, tol,
                                  timings, show)
    statics = (model, tau_value, tau_scale, kappa_sd)
    svi = _population_svi(model, K, tau_value, tau_scale, kappa_sd)
    state = _start(svi, model, pooled.params["W"], K, tau_value, tau_scale, stim.dtype,
                   kappa_sd, first)
    state, history = _optimise(statics, state, args, steps, tol, timings,
                               Progress(show, steps, f"fit_population x{K} observers"))
    v = _values(svi, state, stim, resp, weights, noise, extra)
    population, observers = _members(model, datas, v)
    return PopulationFit(population=population, observers=observers,
                         tau=tau_value if tau_value is not None else v["tau"],
                         learned_tau=tau_value is None, model=model,
                         loss_history=np.asarray(history[:steps]), seed=seed, timings=timings,
                         observer_taus=(v["tau"] * v["kappa"] if "kappa" in v else None),
                         observer_scales=kappa_sd is not None)


def _information(model, W_start, datas, seed, dtype, timings) -> dict:
    """The learned ``tau``'s extra model argument: every observer's Fisher eigenvalues at
    the pooled start (``eigenvalues``; see the module), timed as ``information``."""
    t1 = time.perf_counter()
    eig = fisher_eigenvalues(model, W_start, datas, seed)
    extra = {"eigenvalues": jnp.asarray(eig, dtype)}
    timings["information"] = time.perf_counter() - t1
    return extra


def _members(model, datas, values):
    """The population's MAPFit (every observer's trials pooled) and each observer's, at
    the fitted sites ``values`` (:func:`_values`)."""
    lapses = values.get("lapse_rate")
    population = MAPFit.from_params(model, observer_params(model, values["W_mean"], lapses),
                                    TrialData.concatenate(datas))
    observers = [MAPFit.from_params(model, observer_params(model, values["W"][i], lapses, i), d)
                 for i, d in enumerate(datas)]
    return population, observers


START_TRIALS = 4000
"""The most pooled trials the start's MAP fit sees (a start need only be near: every
observer's trials are fitted by the population model after it)."""


def _start_trials(datas, seed):
    """The pooled trials of the start: all of them, or a random ``START_TRIALS`` (each
    observer's share in proportion to its trials, drawn with ``seed``)."""
    total = sum(len(d) for d in datas)
    if total <= START_TRIALS:
        return TrialData.concatenate(datas)
    rng = np.random.default_rng(seed)
    parts = [d[np.sort(rng.choice(len(d), max(1, round(START_TRIALS * len(d) / total)),
                                  replace=False))] for d in datas]
    return TrialData.concatenate(parts)


def _stacked(datas, model, seed):
    """Every observer's trials padded to one size bucket and stacked: ``stimuli (K, N, 2, d),
    responses (K, N), weights (K, N)`` and the fixed estimator noise for them."""
    size = bucket_size(max(len(d) for d in datas))
    padded = [pad_trials(d, size) for d in datas]
    stim = jnp.stack([t.stimuli for t in padded])
    noise = model.fresh_noise(jax.random.fold_in(jax.random.PRNGKey(seed), 10**6 + 3),
                              (len(datas), size), dtype=stim.dtype)
    return (stim, jnp.stack([t.responses for t in padded]),
            jnp.stack([t.weights for t in padded]), noise)


def _optimise(statics, state, args, steps, tol, timings, bar):
    """L-BFGS in compiled chunks of ``CHUNK`` steps until the loss falls by at most ``tol``
    over a chunk: ``(state, loss history)``."""
    history = []
    try:
        while len(history) < steps:
            t1 = time.perf_counter()
            state, losses = _chunk(*statics, CHUNK, state, *args)
            losses = np.asarray(losses)
            timings["compile" if not history else "steps"] += time.perf_counter() - t1
            history.extend(losses.tolist())
            bar.update(CHUNK, nll=f"{losses[-1]:.1f}")
            if not np.isfinite(losses).all():
                raise FitDivergedError("fit_population: the loss became non-finite; try a "
                                       "fixed tau or a model with a larger diag_term")
            if losses[0] - losses[-1] <= tol:
                break
    finally:
        bar.close()
    return state, history
