"""A MAP fit's fields in a fit file: what :class:`~psyphy_numpyro.fits.MAPFit` writes
under a prefix of the file's ``psyphy_numpyro`` group, and reads back.

One concept: the layout of a MAP fit's arrays and attributes (loss histories,
restarts, seed, timings, the starting point, the chosen hyperparameters), both
for a MAP fit's own file (prefix ``"map_"``) and for a MAP fit stored inside
another fit's file (a Laplace fit's mean, a NUTS fit's start), where its model
and data are written only where they differ from the parent's. Like
:mod:`psyphy_numpyro.fitfile`, it imports no fit class: the fit class hands
itself in and builds itself from what :func:`read_map_fields` returns.
"""

from __future__ import annotations

import json

import numpy as np

from . import fitfile
from .arviz_io import weight_dims
from .data import TrialData

__all__ = ["write_map_fields", "read_map_fields"]


def write_map_fields(fit, prefix: str, parent, out: dict, attrs: dict) -> None:
    """Write the MAP fit ``fit``'s arrays under ``prefix`` (its model and data only where
    they differ from ``parent``'s; ``parent`` ``None`` for the fit's own file)."""
    wd = [f"{prefix}{d}" for d in weight_dims(fit.model.input_dim)]
    step, restart = f"{prefix}step", f"{prefix}restart"
    if parent is not None:
        out[f"{prefix}W"] = (wd, np.asarray(fit.params["W"]))
        if "lapse_rate" in fit.params:
            out[f"{prefix}lapse_rate"] = ((), np.asarray(fit.params["lapse_rate"]))
        if fit.model != parent.model:
            attrs[f"{prefix}model_config"] = fitfile.to_json(
                fitfile.model_config(fit.model))
        if fit.data is not parent.data and fit.data != parent.data:
            out[f"{prefix}stimuli"] = ([f"{prefix}trial", "pair", "stimulus_dim"],
                                       fit.data.stimuli)
            out[f"{prefix}responses"] = ([f"{prefix}trial"], fit.data.responses)
            fitfile.metadata_extras(fit.data, prefix, out, attrs)
            fitfile.space_attr(fit.data, prefix, attrs)
    out[f"{prefix}loss_history"] = ([step], np.asarray(fit.loss_history))
    out[f"{prefix}restart_histories"] = ([restart, step], np.asarray(fit.restart_histories))
    out[f"{prefix}restart_losses"] = ([restart], np.asarray(fit.restart_losses))
    out[f"{prefix}best_restart"] = ((), np.int64(fit.best_restart))
    if fit.final_nll is not None:
        out[f"{prefix}final_nll"] = ((), np.float64(fit.final_nll))
    out[f"{prefix}seed"] = ((), np.int64(fit.seed))
    if fit.hyperparameters:
        attrs[f"{prefix}hyperparameters"] = fitfile.to_json(fit.hyperparameters)
    for name, seconds in (fit.timings or {}).items():
        out[f"{prefix}timing_{name}"] = ((), np.float64(seconds))
    if fit.init_params is not None:
        out[f"{prefix}init_W"] = (wd, np.asarray(fit.init_params["W"]))
        if "lapse_rate" in fit.init_params:
            out[f"{prefix}init_lapse_rate"] = ((), np.asarray(fit.init_params["lapse_rate"]))


def read_map_fields(src, prefix: str, W=None, lapse=None) -> dict | None:
    """The :class:`~psyphy_numpyro.fits.MAPFit` fields written by :func:`write_map_fields`
    under ``prefix`` in the file ``src`` (a :class:`~psyphy_numpyro.fitfile.FitSource`),
    or ``None`` when there are none. ``W`` and ``lapse``: the weights and lapse rate when
    the file holds them elsewhere (a MAP fit's own file: its one draw)."""
    ds = src.extra
    if f"{prefix}loss_history" not in ds.data_vars:
        return None
    model, data = src.model, src.data
    if f"{prefix}model_config" in ds.attrs:
        model = fitfile.model_from_config(ds.attrs[f"{prefix}model_config"], src.path)
    if f"{prefix}stimuli" in ds.data_vars:
        data = TrialData(ds[f"{prefix}stimuli"].values, ds[f"{prefix}responses"].values,
                         metadata=fitfile.read_metadata(ds, prefix),
                         space=fitfile.read_space(ds, prefix))
    if W is None:
        W = ds[f"{prefix}W"].values
        lapse = fitfile.value(ds, f"{prefix}lapse_rate")
    params = {"W": fitfile.as_jax(W)}
    if model.learns_lapse:
        params["lapse_rate"] = fitfile.as_jax(np.asarray(lapse).reshape(()))
    init = fitfile.value(ds, f"{prefix}init_W")
    init_params = None if init is None else {"W": fitfile.as_jax(init)}
    init_lapse = fitfile.value(ds, f"{prefix}init_lapse_rate")
    if init_params is not None and init_lapse is not None:
        init_params["lapse_rate"] = fitfile.as_jax(init_lapse)
    timing = f"{prefix}timing_"
    return dict(
        params=params,
        model=model,
        data=data,
        loss_history=ds[f"{prefix}loss_history"].values,
        restart_histories=ds[f"{prefix}restart_histories"].values,
        restart_losses=ds[f"{prefix}restart_losses"].values,
        best_restart=int(ds[f"{prefix}best_restart"].values),
        init_params=init_params,
        hyperparameters=(json.loads(ds.attrs[f"{prefix}hyperparameters"])
                         if f"{prefix}hyperparameters" in ds.attrs else None),
        seed=int(ds[f"{prefix}seed"].values),
        final_nll=(None if fitfile.value(ds, f"{prefix}final_nll") is None
                   else float(fitfile.value(ds, f"{prefix}final_nll"))),
        timings={k[len(timing):]: float(ds[k].values) for k in ds.data_vars
                 if k.startswith(timing)},
    )
