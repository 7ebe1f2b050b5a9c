"""The fit-file format: NetCDF writing and reading that knows no fit class.

A fit file is an ArviZ NetCDF file (``fit.to_arviz()``, one NetCDF group per
ArviZ group: ``posterior`` with the unique entries of ``Sigma`` on a grid and a learned
``lapse_rate``, ``unconstrained_posterior`` with the weights ``W``, ``observed_data``,
``constant_data``, ``log_likelihood``, ``sample_stats``), readable by ArviZ 0.x
(``InferenceData``) and >= 1.0 (``xarray.DataTree``), with two additions that make it
self-contained:

- root attributes: ``psyphy_numpyro_format`` (format version),
  ``psyphy_numpyro_version`` (package version that wrote the file),
  ``fit_kind`` (the ``kind`` of the fit class, e.g. ``"map"``),
  ``model_config`` (every field of the :class:`~psyphy_numpyro.WPPM` as JSON)
  and whatever attributes the fit class's save hook adds;
- a group ``psyphy_numpyro`` with the arrays ArviZ has no place for (MAP loss
  histories, the Laplace covariance, the MAP fit a posterior fit started
  from ...), written by the fit class's own save hook, and the data's per-trial
  metadata (:func:`metadata_extras`; absent in files without metadata, which
  load with none) and its stimulus space (attribute ``stimulus_space``, the
  JSON of :meth:`StimulusSpace.to_dict <psyphy_numpyro.StimulusSpace.to_dict>`;
  absent without a space). ``constant_data`` holds the stimuli in the space's
  units.

This module writes and reads those files; it imports no fit class. The fit
classes (:mod:`psyphy_numpyro.fits`) call :func:`write` from their ``save``
method, and :mod:`psyphy_numpyro.persist` reads a file with :func:`read` and
hands it to the restore hook of the class its ``fit_kind`` names.

Writes are atomic: the file is written to a temporary file in the target's
directory and moved over the target with :func:`os.replace` only once it is
complete, so an interrupted save never leaves a half-written file behind.

Format 2 moved ``W`` from ``posterior`` to ``unconstrained_posterior`` and stores only
the unique entries of ``Sigma``; format-1 files (``W`` in ``posterior``) still load.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import warnings
from typing import NamedTuple

import numpy as np

from . import arviz_io
from ._version import __version__
from .data import TrialData
from .errors import InvalidInput, InvalidType
from .wppm import WPPM

__all__ = ["FORMAT_VERSION", "GROUP", "FitSource", "write", "read", "as_jax", "to_json",
           "model_config", "model_from_config", "value", "metadata_extras", "read_metadata"]

FORMAT_VERSION = 2
"""Version of the fit-file layout written by :func:`write` (2: ``W`` in
``unconstrained_posterior``; 1: ``W`` in ``posterior``, still read)."""

GROUP = "psyphy_numpyro"


class FitSource(NamedTuple):
    """What a restore hook gets: the parts of a fit file every kind shares."""

    idata: object        #: the file's ArviZ data (InferenceData or xarray.DataTree)
    extra: object        #: its ``psyphy_numpyro`` group (xarray Dataset)
    model: WPPM
    data: TrialData
    draws: np.ndarray    #: the weights ``W``, ``(chain, draw, *weight_shape)``
    path: str
    lapse: np.ndarray | None = None  #: posterior ``lapse_rate`` ``(chain, draw)`` when learned


# ---------------------------------------------------------------------------
# small helpers shared by the save/restore hooks
# ---------------------------------------------------------------------------
def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise InvalidType(f"cannot store {type(obj).__name__} {obj!r} in a fit file")


def to_json(obj) -> str:
    """``obj`` as sorted JSON (numpy scalars and arrays allowed)."""
    return json.dumps(obj, default=_json_default, sort_keys=True)


def model_config(model: WPPM) -> dict:
    """Every field of a :class:`WPPM` by name (a ``weight_prior`` as its ``to_dict()``)."""
    out = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}
    if out.get("weight_prior") is not None:
        out["weight_prior"] = out["weight_prior"].to_dict()
    return out


def model_from_config(text: str, path: str) -> WPPM:
    """The :class:`WPPM` of a JSON configuration, with a clear error for unknown settings."""
    cfg = json.loads(text)
    # JSON has no tuples; the model is a static (hashable) JIT argument
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
    known = {f.name for f in dataclasses.fields(WPPM)}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise InvalidInput(
            f"{path}: the model configuration has settings this version of psyphy_numpyro "
            f"does not know: {unknown} (the file was written by a newer version?)"
        )
    return WPPM(**cfg)


def as_jax(W):
    """``W`` as a JAX array when JAX can hold its dtype (float64 needs x64), else numpy."""
    import jax.numpy as jnp

    W = np.asarray(W)
    j = jnp.asarray(W)
    return j if j.dtype == W.dtype else W


def value(ds, name, default=None):
    """``ds[name].values``, or ``default`` when the variable is absent."""
    return ds[name].values if name in ds.data_vars else default


def metadata_extras(data: TrialData, prefix: str, out: dict, attrs: dict) -> None:
    """Add ``data.metadata`` to a fit file's group: variables ``{prefix}metadata_{i}`` along
    ``{prefix}trial`` and their names, in order, in the attribute ``{prefix}metadata_columns``
    (JSON; any column name is allowed). Nothing when there is no metadata."""
    if not data.metadata:
        return
    attrs[f"{prefix}metadata_columns"] = to_json(list(data.metadata))
    for i, column in enumerate(data.metadata.values()):
        out[f"{prefix}metadata_{i}"] = ([f"{prefix}trial"], column)


def space_attr(data: TrialData, prefix: str, attrs: dict) -> None:
    """Store the data's stimulus space (JSON, :meth:`StimulusSpace.to_dict`) in the attribute
    ``{prefix}stimulus_space``; nothing without a space (the stimuli are then in the box)."""
    if data.space is not None:
        attrs[f"{prefix}stimulus_space"] = data.space.to_json()


def read_space(ds, prefix: str):
    """The :class:`StimulusSpace` :func:`space_attr` wrote under ``prefix`` (``None`` when
    there is none: the stored stimuli are in the box)."""
    from .space import StimulusSpace

    key = f"{prefix}stimulus_space"
    if key not in ds.attrs:
        return None
    return StimulusSpace.from_dict(json.loads(ds.attrs[key]))


def read_metadata(ds, prefix: str) -> dict | None:
    """The metadata :func:`metadata_extras` wrote under ``prefix`` (``None`` when there is
    none, as in files written before metadata was stored)."""
    key = f"{prefix}metadata_columns"
    if key not in ds.attrs:
        return None
    names = json.loads(ds.attrs[key])
    return {name: ds[f"{prefix}metadata_{i}"].values for i, name in enumerate(names)}


# ---------------------------------------------------------------------------
# write
# ---------------------------------------------------------------------------
def _build(idata, kind, model, extras, attrs):
    import xarray as xr

    # at least one variable: ArviZ drops a group that holds attributes only
    extras = {"format_version": ((), np.int64(FORMAT_VERSION)), **extras}
    attrs = {
        "psyphy_numpyro_format": FORMAT_VERSION,
        "psyphy_numpyro_version": __version__,
        "fit_kind": kind,
        "model_config": to_json(model_config(model)),
        **attrs,
    }
    group = xr.Dataset({k: xr.Variable(*dv) for k, dv in extras.items()}, attrs=attrs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        arviz_io.add_group(idata, GROUP, group)
    idata.attrs.update(attrs)
    return idata


def _write_netcdf(idata, filename):
    """Write ``idata`` to ``filename`` (the step :func:`write` makes atomic)."""
    idata.to_netcdf(filename)


def _check_target(path):
    target = os.path.realpath(path)  # through a symlink: replace the file it points to
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{path}: directory {directory!r} does not exist")
    if os.path.isdir(target):
        raise IsADirectoryError(f"{path}: is a directory")
    return target, directory


def write(path, idata, *, kind: str, model: WPPM, extras: dict, attrs: dict,
          data: TrialData | None = None) -> None:
    """Write a fit file atomically.

    Parameters
    ----------
    path : str or os.PathLike
    idata : arviz.InferenceData or xarray.DataTree
        The fit's ``to_arviz()`` output.
    kind : str
        The fit class's ``kind``.
    model : WPPM
    extras : dict
        ``name -> (dims, array)`` for the ``psyphy_numpyro`` group.
    attrs : dict
        Extra attributes of the group and of the file.
    data : TrialData, optional
        The fit's data: its per-trial metadata is stored in the group
        (:func:`metadata_extras`; stimuli and responses are in ``idata``).

    Notes
    -----
    The file is first written to a temporary file in the same directory and
    then moved over ``path`` with :func:`os.replace`; if anything fails (or
    the process is interrupted) the temporary file is removed and an existing
    ``path`` is left untouched. A new file gets permissions ``0o644``; an
    existing one keeps its own.
    """
    path = os.fspath(path)
    target, directory = _check_target(path)
    if data is not None:
        extras, attrs = dict(extras), dict(attrs)
        metadata_extras(data, "", extras, attrs)
        space_attr(data, "", attrs)
    idata = _build(idata, kind, model, extras, attrs)
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
# read
# ---------------------------------------------------------------------------
def _open(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such fit file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, not a fit file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return arviz_io.read_netcdf(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path}: not a NetCDF fit file ({type(exc).__name__}: {exc})") from exc


def _check_header(idata, path, kinds):
    groups = set(arviz_io.group_names(idata))
    if GROUP not in groups or "psyphy_numpyro_format" not in idata[GROUP].attrs:
        raise InvalidInput(
            f"{path}: not a psyphy_numpyro fit file (no '{GROUP}' group; write fit files "
            "with fit.save(path))"
        )
    attrs = idata[GROUP].attrs
    version = int(attrs["psyphy_numpyro_format"])
    if version > FORMAT_VERSION:
        raise InvalidInput(
            f"{path}: fit-file format {version} was written by psyphy_numpyro "
            f"{attrs.get('psyphy_numpyro_version', '?')}; this version ({__version__}) reads "
            f"format <= {FORMAT_VERSION}"
        )
    kind = str(attrs.get("fit_kind", ""))
    if kind not in kinds:
        raise InvalidInput(f"{path}: unknown fit kind {kind!r} (expected one of {tuple(kinds)})")
    for g in ("posterior", "observed_data", "constant_data"):
        if g not in groups:
            raise InvalidInput(f"{path}: the fit file has no '{g}' group")
    return kind


def _source(idata, path) -> FitSource:
    import jax

    extra = arviz_io.group(idata, GROUP)
    model = model_from_config(extra.attrs["model_config"], path)
    const = arviz_io.group(idata, "constant_data")
    data = TrialData(
        np.stack([const["ref"].values, const["comparison"].values], axis=1),
        arviz_io.group(idata, "observed_data")["y"].values,
        metadata=read_metadata(extra, ""),
        space=read_space(extra, ""),
    )
    posterior = arviz_io.group(idata, "posterior")
    # format 2 keeps W in unconstrained_posterior, format 1 in posterior
    where = arviz_io.WEIGHTS_GROUP
    if where not in arviz_io.group_names(idata) and "W" in posterior.data_vars:
        where = "posterior"
    draws = arviz_io.group(idata, where)["W"].values
    expect = model.weight_shape
    if draws.ndim != len(expect) + 2 or tuple(draws.shape[2:]) != tuple(expect):
        raise InvalidInput(
            f"{path}: {where} W has shape {draws.shape}, the model expects "
            f"(chain, draw) + {expect}"
        )
    if draws.dtype == np.float64 and not jax.config.jax_enable_x64:
        warnings.warn(
            f"{path}: the weights were saved in float64 but JAX runs in float32, so read-outs "
            "are computed in float32; call jax.config.update('jax_enable_x64', True) before "
            "loading to reproduce them exactly",
            RuntimeWarning,
            stacklevel=4,
        )
    lapse = None
    if model.learns_lapse:
        if "lapse_rate" not in posterior.data_vars:
            raise InvalidInput(f"{path}: the model learns its lapse rate but the posterior has "
                               "no 'lapse_rate'")
        lapse = posterior["lapse_rate"].values
        if lapse.shape != draws.shape[:2]:
            raise InvalidInput(f"{path}: posterior lapse_rate has shape {lapse.shape}, expected "
                               f"(chain, draw) = {draws.shape[:2]}")
    return FitSource(idata, extra, model, data, draws, path, lapse)


def read(path, kinds) -> tuple[str, FitSource]:
    """Open and check a fit file: its kind (one of ``kinds``) and the shared parts.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
    ValueError
        Not a NetCDF fit file, an unknown kind, a newer format, a missing
        group or variable.
    """
    path = os.fspath(path)
    idata = _open(path)
    kind = _check_header(idata, path, kinds)
    try:
        return kind, _source(idata, path)
    except KeyError as exc:
        raise InvalidInput(f"{path}: incomplete fit file (missing {exc})") from exc
