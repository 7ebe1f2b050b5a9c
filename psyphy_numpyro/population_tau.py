"""The pieces of ``tau``'s type-II MAP in :func:`~psyphy_numpyro.fit_population` (see
:mod:`~psyphy_numpyro.population`): every observer's Fisher eigenvalues at the pooled
start, and the population model with the deviations' Laplace term."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro

from .hierarchy import population_model, sample_observer_scales, sample_tau

__all__ = ["marginal_tau_model", "fisher_eigenvalues"]


def marginal_tau_model(stimuli, responses=None, *, config, tau_scale, eigenvalues,
                       kappa_sd=None, **kw):
    """:func:`population_model` with ``tau`` (and, with ``kappa_sd``, the observer scales)
    sampled here and the deviations' Laplace term (see the module): the loss of the
    type-II MAP."""
    tau = sample_tau(tau_scale)
    kappa = None if kappa_sd is None else sample_observer_scales(stimuli.shape[0], kappa_sd)
    population_model(stimuli, responses, config=config, tau=tau, kappa=kappa, **kw)
    tau_i = tau if kappa is None else tau * kappa  # (K, 1) against eigenvalues (K, P)
    var = jnp.square(tau_i) / (1.0 + jnp.square(tau_i))  # the deviations' prior variance in W
    numpyro.factor("deviations_marginal", -0.5 * jnp.sum(jnp.log1p(var * eigenvalues)))


INFORMATION_SAMPLES = 64
"""Quasi-Monte Carlo draws per trial of the Fisher information behind ``tau``'s Laplace
term (it needs first derivatives only; ``fit_laplace`` uses 256 for intervals)."""


def fisher_eigenvalues(model, W, datas, seed):
    """Each observer's Fisher information about ``W`` in prior-sd units: eigenvalues (K, P),
    on ``INFORMATION_SAMPLES`` draws per trial."""
    from .laplace import fisher_information

    sd = np.asarray(model.prior_std(), np.float64).reshape(-1)
    P = sd.size
    out = []
    for d in datas:
        params = {"W": W}
        if model.learns_lapse:
            a, b = model.lapse_prior
            params["lapse_rate"] = a / (a + b)
        F = np.asarray(fisher_information(model, params, d, num_samples=INFORMATION_SAMPLES,
                                          seed=seed), np.float64)[:P, :P]
        out.append(np.clip(np.linalg.eigvalsh(sd[:, None] * F * sd[None, :]), 0.0, None))
    return np.stack(out)
