"""A :class:`~psyphy_numpyro.population.PopulationFit` on disk: one NetCDF file.

The file holds the population's and every observer's weights, every observer's
trials (``observer_of_trial`` says whose), the loss history, the learned lapse
rates, ``tau`` and (format 2) the per-observer deviation scales ``tau_i``
(``observer_tau``, dim ``observer``). A format-1 file (written before the
per-observer scales) loads with every ``tau_i = tau``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .data import TrialData
from .errors import InvalidInput
from .fits import MAPFit

__all__ = ["write_population", "read_population", "observer_params"]

FORMAT = 2


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
        "W_pop": (ws, np.asarray(fit.population.params["W"])),
        "W": (["observer", *ws], np.stack([np.asarray(f.params["W"]) for f in fit.observers])),
        "stimuli": (["trial", "pair", "stimulus_dim"], stim),
        "responses": (["trial"], np.concatenate([f.data.responses for f in fit.observers])),
        "observer_of_trial": (["trial"], who.astype(np.int32)),
        "loss_history": (["step"], np.asarray(fit.loss_history, np.float64)),
        "observer_tau": (["observer"], np.asarray(fit.observer_taus, np.float64)),
    }
    if model.learns_lapse:
        out["lapse_rate"] = (["observer"], np.array([f.lapse_rate for f in fit.observers]))
    attrs = {"psyphy_numpyro_kind": "population", "format": FORMAT,
             "model": to_json(model_config(model)), "tau": float(fit.tau),
             "learned_tau": int(fit.learned_tau), "seed": int(fit.seed),
             "observer_scales": int(fit.observer_scales)}
    xr.Dataset(out, attrs=attrs).to_netcdf(path, engine="h5netcdf")


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
    return cls(
        population=MAPFit.from_params(model, observer_params(model, ds["W_pop"].values, lapses),
                                      TrialData.concatenate(datas)),
        observers=[MAPFit.from_params(model, observer_params(model, ds["W"].values[i], lapses,
                                                             i), d)
                   for i, d in enumerate(datas)],
        tau=tau, learned_tau=bool(ds.attrs["learned_tau"]), model=model,
        loss_history=ds["loss_history"].values, seed=int(ds.attrs["seed"]),
        observer_taus=np.asarray(taus, np.float64),
        observer_scales=bool(ds.attrs.get("observer_scales", 0)))
