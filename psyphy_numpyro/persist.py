"""Saving fits to NetCDF and loading them back (``fit.save(path)``, :func:`load_fit`).

A fit file is an ArviZ ``InferenceData`` NetCDF file (``fit.to_arviz()``:
``posterior`` with ``W`` and ``Sigma``, ``observed_data``, ``constant_data``,
``log_likelihood``, ``sample_stats``) with two additions that make it
self-contained:

- root attributes: ``psyphy_numpyro_format`` (format version),
  ``psyphy_numpyro_version`` (package version that wrote the file),
  ``fit_kind`` (``"map"``, ``"laplace"``, ``"mcmc"`` or ``"posterior"``),
  ``model_config`` (every field of the :class:`~psyphy_numpyro.WPPM` as JSON)
  and kind-specific JSON (the NUTS surrogate description);
- a group ``psyphy_numpyro`` with the arrays ArviZ has no place for: the MAP
  loss histories, restart losses, starting point and seed; the Laplace mean
  and covariance; the MAP fit a Laplace or NUTS fit started from.

The weights are read back from ``posterior["W"]`` (chain layout, dtype
preserved) and the trials from ``constant_data`` / ``observed_data``, so a
loaded fit gives bit-for-bit the same read-outs as the original. The NumPyro
``MCMC`` object of a NUTS fit cannot be saved: it loads as ``None``, and its
sampler statistics (divergences, tree depth, ...) are restored from
``sample_stats`` instead.

Writes are atomic: the file is written to a temporary file in the target's
directory and moved over the target with :func:`os.replace` only once it is
complete, so an interrupted save never leaves a half-written file behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import warnings

import numpy as np

__all__ = ["save_fit", "load_fit", "fit_kind", "FORMAT_VERSION", "FIT_KINDS"]

FORMAT_VERSION = 1
"""Version of the fit-file layout written by :func:`save_fit`."""

FIT_KINDS = ("map", "laplace", "mcmc", "posterior")

_GROUP = "psyphy_numpyro"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} {obj!r} in a fit file")


def _to_json(obj) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=True)


def _model_config(model) -> dict:
    return {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}


def _model_from_config(text, path):
    from .model import WPPM

    cfg = json.loads(text)
    # JSON has no tuples; the model is a static (hashable) JIT argument
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
    known = {f.name for f in dataclasses.fields(WPPM)}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(
            f"{path}: the model configuration has settings this version of psyphy_numpyro "
            f"does not know: {unknown} (the file was written by a newer version?)"
        )
    return WPPM(**cfg)


def fit_kind(fit) -> str:
    """``"map"``, ``"laplace"``, ``"mcmc"`` or ``"posterior"``: what a fit file records."""
    from .map_fit import MAPFit
    from .posterior import LaplaceFit, MCMCFit, PosteriorFit

    if isinstance(fit, MAPFit):
        return "map"
    if isinstance(fit, LaplaceFit):
        return "laplace"
    if isinstance(fit, MCMCFit):
        return "mcmc"
    if isinstance(fit, PosteriorFit):
        return "posterior"
    raise TypeError(
        f"save_fit needs a MAPFit, MCMCFit, LaplaceFit or PosteriorFit, got {type(fit).__name__}"
    )


def _map_vars(fit, prefix, parent, out, attrs):
    """Arrays and attributes of a nested MAP fit (``prefix`` e.g. ``"map_"``)."""
    from .arviz_io import weight_dims

    wd = [f"{prefix}{d}" for d in weight_dims(fit.model.input_dim)]
    out[f"{prefix}W"] = (wd, np.asarray(fit.params["W"]))
    _map_extras(fit, prefix, out)
    if fit.model != parent.model:
        attrs[f"{prefix}model_config"] = _to_json(_model_config(fit.model))
    if fit.data is not parent.data and fit.data != parent.data:
        out[f"{prefix}stimuli"] = ([f"{prefix}trial", "pair", "stimulus_dim"], fit.data.stimuli)
        out[f"{prefix}responses"] = ([f"{prefix}trial"], fit.data.responses)


def _map_extras(fit, prefix, out):
    from .arviz_io import weight_dims

    step, restart = f"{prefix}step", f"{prefix}restart"
    out[f"{prefix}loss_history"] = ([step], np.asarray(fit.loss_history))
    out[f"{prefix}restart_histories"] = ([restart, step], np.asarray(fit.restart_histories))
    out[f"{prefix}restart_losses"] = ([restart], np.asarray(fit.restart_losses))
    out[f"{prefix}best_restart"] = ((), np.int64(fit.best_restart))
    out[f"{prefix}seed"] = ((), np.int64(fit.seed))
    for name, seconds in (fit.timings or {}).items():
        out[f"{prefix}timing_{name}"] = ((), np.float64(seconds))
    if fit.init_params is not None:
        wd = [f"{prefix}{d}" for d in weight_dims(fit.model.input_dim)]
        out[f"{prefix}init_W"] = (wd, np.asarray(fit.init_params["W"]))


def _build(fit, log_likelihood):
    """InferenceData of ``fit`` plus the ``psyphy_numpyro`` group and root attributes."""
    import xarray as xr

    from ._version import __version__

    kind = fit_kind(fit)
    # at least one variable: ArviZ drops a group that holds attributes only
    extras: dict = {"format_version": ((), np.int64(FORMAT_VERSION))}
    attrs = {
        "psyphy_numpyro_format": FORMAT_VERSION,
        "psyphy_numpyro_version": __version__,
        "fit_kind": kind,
        "model_config": _to_json(_model_config(fit.model)),
    }
    if kind == "map":
        idata = fit.to_arviz()
        _map_extras(fit, "map_", extras)
    else:
        idata = fit.to_arviz(log_likelihood=log_likelihood)
    if kind == "laplace":
        if fit.mean is not None:
            extras["laplace_mean"] = (
                [f"laplace_{d}" for d in _weight_dims(fit)],
                np.asarray(fit.mean),
            )
        if fit.cov is not None:
            extras["laplace_cov"] = (["weight", "weight_"], np.asarray(fit.cov))
        attrs["laplace_num_floored"] = int(fit.num_floored)
        attrs["laplace_curvature"] = str(fit.curvature)
        if fit.map_fit is not None:
            _map_vars(fit.map_fit, "map_", fit, extras, attrs)
    if kind == "mcmc":
        attrs["mcmc_surrogate"] = _to_json(dict(fit.surrogate or {}))
        if fit.init_fit is not None:
            _map_vars(fit.init_fit, "init_", fit, extras, attrs)
    group = xr.Dataset({k: xr.Variable(*dv) for k, dv in extras.items()}, attrs=attrs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        idata.add_groups({_GROUP: group})
    idata.attrs.update(attrs)
    return idata


def _weight_dims(fit):
    from .arviz_io import weight_dims

    return weight_dims(fit.model.input_dim)


def _write_netcdf(idata, filename):
    """Write ``idata`` to ``filename`` (the step :func:`save_fit` makes atomic)."""
    idata.to_netcdf(filename)


# ---------------------------------------------------------------------------
# save
# ---------------------------------------------------------------------------
def save_fit(fit, path, *, log_likelihood: bool = True) -> None:
    """Save a fit to a NetCDF file, atomically.

    Parameters
    ----------
    fit : MAPFit, MCMCFit, LaplaceFit or PosteriorFit
    path : str or os.PathLike
        Target file (conventionally ``*.nc``); replaced if it exists.
    log_likelihood : bool
        Store the pointwise log-likelihood group (for ``az.loo`` straight
        from the file). Draw-based fits compute it once per draw, which
        takes a while for thousands of draws; ``False`` skips it. It is not
        needed to restore the fit. Always stored for MAP fits (one draw).

    Raises
    ------
    TypeError
        ``fit`` is not a fit object.
    FileNotFoundError
        The target's directory does not exist.

    Notes
    -----
    The file is first written to a temporary file in the same directory and
    then moved over ``path`` with :func:`os.replace`; if anything fails (or
    the process is interrupted) the temporary file is removed and an existing
    ``path`` is left untouched. A new file gets permissions ``0o644``; an
    existing one keeps its own.

    Examples
    --------
    >>> fit.save("fit.nc")                      # doctest: +SKIP
    >>> same = psyphy_numpyro.load_fit("fit.nc")  # doctest: +SKIP
    """
    path = os.fspath(path)
    target = os.path.realpath(path)  # through a symlink: replace the file it points to
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{path}: directory {directory!r} does not exist")
    if os.path.isdir(target):
        raise IsADirectoryError(f"{path}: is a directory")
    idata = _build(fit, log_likelihood)
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(target)}.",
                               suffix=".tmp")
    os.close(fd)
    try:
        _write_netcdf(idata, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# ---------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------
def _read(path):
    import arviz as az

    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such fit file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, not a fit file")
    try:
        with az.rc_context({"data.load": "eager"}), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return az.from_netcdf(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a NetCDF fit file ({type(exc).__name__}: {exc})") from exc


def _as_jax(W):
    """``W`` as a JAX array when JAX can hold its dtype (float64 needs x64), else numpy."""
    import jax.numpy as jnp

    W = np.asarray(W)
    j = jnp.asarray(W)
    return j if j.dtype == W.dtype else W


def _value(ds, name, default=None):
    return ds[name].values if name in ds.data_vars else default


def _restore_map(ds, prefix, model, data, path, W=None):
    from .data import TrialData
    from .map_fit import MAPFit

    if f"{prefix}loss_history" not in ds.data_vars:
        return None

    attrs = ds.attrs
    if f"{prefix}model_config" in attrs:
        model = _model_from_config(attrs[f"{prefix}model_config"], path)
    if f"{prefix}stimuli" in ds.data_vars:
        data = TrialData(ds[f"{prefix}stimuli"].values, ds[f"{prefix}responses"].values)
    if W is None:
        W = ds[f"{prefix}W"].values
    init = _value(ds, f"{prefix}init_W")
    timing = f"{prefix}timing_"
    return MAPFit(
        params={"W": _as_jax(W)},
        model=model,
        data=data,
        loss_history=ds[f"{prefix}loss_history"].values,
        restart_histories=ds[f"{prefix}restart_histories"].values,
        restart_losses=ds[f"{prefix}restart_losses"].values,
        best_restart=int(ds[f"{prefix}best_restart"].values),
        init_params=None if init is None else {"W": _as_jax(init)},
        seed=int(ds[f"{prefix}seed"].values),
        timings={k[len(timing):]: float(ds[k].values) for k in ds.data_vars
                 if k.startswith(timing)},
    )


def load_fit(path):
    """Load a fit written by ``fit.save(path)`` (:func:`save_fit`).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    MAPFit, LaplaceFit, MCMCFit or PosteriorFit
        The same class as the saved fit, with the same weights (dtype
        included), model configuration and data, so every read-out
        (``covariance``, ``p_correct``, ``log_likelihood``, ``summary``,
        ``to_arviz``, :func:`~psyphy_numpyro.thresholds`,
        :func:`~psyphy_numpyro.psychometric`) gives identical results. What
        cannot be saved loads as ``None``: ``MCMCFit.mcmc`` (its sampler
        statistics come from the file's ``sample_stats`` instead).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        ``path`` is not a NetCDF file, not a psyphy_numpyro fit file, or was
        written by a newer, incompatible format version.

    Examples
    --------
    >>> fit = psyphy_numpyro.load_fit("fit.nc")   # doctest: +SKIP
    >>> fit.covariance([[0.0, 0.0]])              # doctest: +SKIP
    """
    from ._version import __version__

    path = os.fspath(path)
    idata = _read(path)
    groups = set(idata.groups())
    if _GROUP not in groups or "psyphy_numpyro_format" not in idata[_GROUP].attrs:
        raise ValueError(
            f"{path}: not a psyphy_numpyro fit file (no '{_GROUP}' group; write fit files "
            "with fit.save(path))"
        )
    extra = idata[_GROUP]
    attrs = extra.attrs
    version = int(attrs["psyphy_numpyro_format"])
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: fit-file format {version} was written by psyphy_numpyro "
            f"{attrs.get('psyphy_numpyro_version', '?')}; this version ({__version__}) reads "
            f"format <= {FORMAT_VERSION}"
        )
    kind = str(attrs.get("fit_kind", ""))
    if kind not in FIT_KINDS:
        raise ValueError(f"{path}: unknown fit kind {kind!r} (expected one of {FIT_KINDS})")
    for g in ("posterior", "observed_data", "constant_data"):
        if g not in groups:
            raise ValueError(f"{path}: the fit file has no '{g}' group")

    try:
        return _restore(idata, kind, path)
    except KeyError as exc:
        raise ValueError(f"{path}: incomplete fit file (missing {exc})") from exc


def _restore(idata, kind, path):
    """The fit object of kind ``kind`` from a fit file's InferenceData."""
    from .data import TrialData
    from .posterior import LaplaceFit, MCMCFit, PosteriorFit

    groups = set(idata.groups())
    extra = idata[_GROUP]
    attrs = extra.attrs
    model = _model_from_config(attrs["model_config"], path)
    const = idata.constant_data
    data = TrialData(
        np.stack([const["ref"].values, const["comparison"].values], axis=1),
        idata.observed_data["y"].values,
    )
    draws = idata.posterior["W"].values
    expect = model.weight_shape
    if draws.ndim != len(expect) + 2 or tuple(draws.shape[2:]) != tuple(expect):
        raise ValueError(
            f"{path}: posterior W has shape {draws.shape}, the model expects "
            f"(chain, draw) + {expect}"
        )
    import jax

    if draws.dtype == np.float64 and not jax.config.jax_enable_x64:
        warnings.warn(
            f"{path}: the weights were saved in float64 but JAX runs in float32, so read-outs "
            "are computed in float32; call jax.config.update('jax_enable_x64', True) before "
            "loading to reproduce them exactly",
            RuntimeWarning,
            stacklevel=3,
        )

    if kind == "map":
        if draws.shape[:2] != (1, 1):
            raise ValueError(f"{path}: a MAP fit has one draw, the file has {draws.shape[:2]}")
        return _restore_map(extra, "map_", model, data, path, W=draws[0, 0])
    if kind == "laplace":
        return LaplaceFit(
            model=model,
            data=data,
            draws=draws,
            map_fit=_restore_map(extra, "map_", model, data, path),
            mean=_value(extra, "laplace_mean"),
            cov=_value(extra, "laplace_cov"),
            num_floored=int(attrs.get("laplace_num_floored", 0)),
            curvature=str(attrs.get("laplace_curvature", "fisher")),
        )
    if kind == "mcmc":
        stats = None
        if "sample_stats" in groups:
            stats = {k: v.values for k, v in idata.sample_stats.data_vars.items()}
        return MCMCFit(
            model=model,
            data=data,
            draws=draws,
            mcmc=None,
            surrogate=json.loads(attrs.get("mcmc_surrogate", "{}")),
            init_fit=_restore_map(extra, "init_", model, data, path),
            sample_stats=stats,
        )
    return PosteriorFit(model=model, data=data, draws=draws)
