"""A :class:`~psyphy_numpyro.population_fit.PopulationFit` on disk: one NetCDF file.

The file holds the population's and every observer's weights, every observer's
trials (``observer_of_trial`` says whose), the loss history, the learned lapse
rates, ``tau`` and (format 2) the per-observer deviation scales ``tau_i``
(``observer_tau``, dim ``observer``). A format-1 file (written before the
per-observer scales) loads with every ``tau_i = tau``. A posterior fit (format 3,
``inference`` ``"laplace"`` or ``"nuts"``) adds every member's draws (``W_draws``,
dims ``member, chain, draw``; member 0 is the population), the lapse and ``tau``
draws, the Laplace covariances or the NUTS statistics; the MAP weights stay in
``W_pop`` and ``W``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .data import TrialData
from .errors import InvalidInput
from .fits import MAPFit

__all__ = ["write_population", "read_population", "observer_params", "point_fit"]

FORMAT = 3


def observer_params(model, W, lapses, i=None) -> dict:
    """``params`` of observer ``i`` (or of the population: the median lapse rate)."""
    out = {"W": jnp.asarray(W)}
    if model.learns_lapse:
        out["lapse_rate"] = float(np.median(lapses) if i is None else lapses[i])
    return out


def write_population(fit, path) -> None:
    """Write ``fit`` (a PopulationFit) to the NetCDF file ``path``."""
    import xarray as xr

    from .fitfile import model_config, to_json

    model = fit.model
    ws = [f"w{i}" for i in range(len(model.weight_shape))]
    stim = np.concatenate([np.asarray(f.data.stimuli) for f in fit.observers])
    who = np.concatenate([np.full(len(f.data), i) for i, f in enumerate(fit.observers)])
    out = {
        "W_pop": (ws, np.asarray(point_fit(fit.population).params["W"])),
        "W": (["observer", *ws], np.stack([np.asarray(point_fit(f).params["W"])
                                           for f in fit.observers])),
        "stimuli": (["trial", "pair", "stimulus_dim"], stim),
        "responses": (["trial"], np.concatenate([f.data.responses for f in fit.observers])),
        "observer_of_trial": (["trial"], who.astype(np.int32)),
        "loss_history": (["step"], np.asarray(fit.loss_history, np.float64)),
        "observer_tau": (["observer"], np.asarray(fit.observer_taus, np.float64)),
    }
    if model.learns_lapse:
        out["lapse_rate"] = (["observer"], np.array([point_fit(f).lapse_rate
                                                     for f in fit.observers]))
    if fit.inference != "map":
        _write_draws(fit, ws, out)
    attrs = {"psyphy_numpyro_kind": "population", "format": FORMAT, "inference": fit.inference,
             "model": to_json(model_config(model)), "tau": float(fit.tau),
             "learned_tau": int(fit.learned_tau), "seed": int(fit.seed),
             "observer_scales": int(fit.observer_scales)}
    xr.Dataset(out, attrs=attrs).to_netcdf(path, engine="h5netcdf")


def point_fit(fit):
    """The MAP fit behind a population member: itself, or a posterior fit's ``map_fit``
    (Laplace) or ``init_fit`` (NUTS)."""
    for name in ("map_fit", "init_fit"):
        inner = getattr(fit, name, None)
        if inner is not None:
            return inner
    if not hasattr(fit, "params"):
        raise InvalidInput("the population fit's members carry no MAP fit")
    return fit


def _write_draws(fit, ws, out):
    """A posterior population fit's draws (member 0 the population), Laplace covariances,
    ``tau`` draws and NUTS statistics."""
    members = [fit.population, *fit.observers]
    out["W_draws"] = (["member", "chain", "draw", *ws], np.stack([m.draws for m in members]))
    if fit.model.learns_lapse:
        out["lapse_draws"] = (["member", "chain", "draw"], np.stack([m.lapse for m in members]))
    if fit.tau_draws is not None:
        out["tau_draws"] = (["chain", "draw"], np.asarray(fit.tau_draws))
    if fit.inference == "laplace":
        out["laplace_cov_pop"] = (["pw", "pw_"], np.asarray(fit.population.cov))
        out["laplace_cov"] = (["observer", "ow", "ow_"],
                              np.stack([np.asarray(f.cov) for f in fit.observers]))
    else:
        for name, value in (fit.population._sample_stats() or {}).items():
            out[f"stat_{name}"] = (["chain", "draw"], np.asarray(value))


def _posterior_members(ds, maps):
    """The Laplace or NUTS members of a file written from a posterior population fit."""
    from .posterior import LaplaceFit, MCMCFit

    draws = ds["W_draws"].values
    lapse = ds["lapse_draws"].values if "lapse_draws" in ds else [None] * len(maps)
    if ds.attrs["inference"] == "laplace":
        covs = [ds["laplace_cov_pop"].values, *ds["laplace_cov"].values]
        return [LaplaceFit(model=m.model, data=m.data, draws=draws[j], lapse=lapse[j],
                           map_fit=m, mean=np.asarray(m.params["W"]), cov=covs[j])
                for j, m in enumerate(maps)]
    stats = {k[len("stat_"):]: ds[k].values for k in ds.data_vars if k.startswith("stat_")}
    return [MCMCFit(model=m.model, data=m.data, draws=draws[j], lapse=lapse[j], init_fit=m,
                    sample_stats=stats or None) for j, m in enumerate(maps)]


def read_population(cls, path):
    """The ``cls`` (PopulationFit) written to ``path`` by :func:`write_population`."""
    import xarray as xr

    from .fitfile import model_from_config

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        ds = ds.load()
    if ds.attrs.get("psyphy_numpyro_kind") != "population":
        raise InvalidInput(f"{path}: not a population fit file (see PopulationFit.save)")
    model = model_from_config(ds.attrs["model"], str(path))
    who = ds["observer_of_trial"].values
    stim, resp = ds["stimuli"].values, ds["responses"].values
    K = ds.sizes["observer"]
    datas = [TrialData(stim[who == i], resp[who == i]) for i in range(K)]
    tau = float(ds.attrs["tau"])
    taus = ds["observer_tau"].values if "observer_tau" in ds else np.full(K, tau)  # format 1
    lapses = ds["lapse_rate"].values if model.learns_lapse else None
    maps = [MAPFit.from_params(model, observer_params(model, ds["W_pop"].values, lapses),
                               TrialData.concatenate(datas))]
    maps += [MAPFit.from_params(model, observer_params(model, ds["W"].values[i], lapses, i), d)
             for i, d in enumerate(datas)]
    inference = str(ds.attrs.get("inference", "map"))
    members = maps if inference == "map" else _posterior_members(ds, maps)
    return cls(
        population=members[0], observers=members[1:], inference=inference,
        tau_draws=ds["tau_draws"].values if "tau_draws" in ds else None,
        tau=tau, learned_tau=bool(ds.attrs["learned_tau"]), model=model,
        loss_history=ds["loss_history"].values, seed=int(ds.attrs["seed"]),
        observer_taus=np.asarray(taus, np.float64),
        observer_scales=bool(ds.attrs.get("observer_scales", 0)))
