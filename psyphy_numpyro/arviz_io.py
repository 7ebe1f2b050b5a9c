"""Conversion of fits to ArviZ data, for ArviZ 0.x and ArviZ >= 1.0.

ArviZ 0.x functions take an ``arviz.InferenceData``; ArviZ >= 1.0 (Python >=
3.12) replaced it by ``xarray.DataTree``. :func:`to_inference_data` builds the
groups as plain ``xarray.Dataset`` objects and wraps them in whichever of the
two the installed ArviZ takes, so ``az.summary``, ``az.loo``, ``az.compare``
and ``az.plot_trace`` work on ``fit.to_arviz()`` with either version. The
small helpers of :mod:`psyphy_numpyro.arviz_container`, re-exported here
(:func:`group_names`, :func:`group`, :func:`add_group`, :func:`read_netcdf`,
:func:`write_netcdf`), give the fit-file code one way to handle both containers.

Layout (``docs/arviz.md``):

- ``posterior``: the identified quantities only, so the default
  ``az.summary(idata)`` is meaningful: ``Sigma``, the unique entries of the
  covariance at the grid points (dims ``grid_point, sigma_entry``; entries
  ``xx, xy, yy`` in 2-D, the upper triangle row by row; the grid points'
  positions as the coordinates ``grid_x, grid_y ...`` on ``grid_point``), and a
  learned ``lapse_rate``;
- ``unconstrained_posterior``: the raw weights ``W`` (NumPyro's sample site,
  real-valued, identified only up to a rotation of its embedding columns),
  which fit files are restored from;
- ``sample_stats``, ``log_likelihood`` (``y``), ``observed_data`` (``y``),
  ``constant_data`` (``ref``, ``comparison``, ``grid``) and, on request,
  ``posterior_predictive`` (``y``).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np

from . import field
from ._version import __version__
from .arviz_container import (  # re-exported: the container helpers
    add_group,
    group,
    group_names,
    read_netcdf,
    uses_datatree,
    wrap_groups,
    write_netcdf,
)
from .errors import InvalidInput

__all__ = [
    "to_inference_data",
    "default_grid",
    "weight_dims",
    "sigma_entries",
    "expand_sigma",
    "WEIGHTS_GROUP",
    "uses_datatree",
    "group_names",
    "group",
    "add_group",
    "read_netcdf",
    "write_netcdf",
    "grid_coords",
    "summary_table",
    "significant",
]

_AXES = ("x", "y", "z")

WEIGHTS_GROUP = "unconstrained_posterior"
"""The group that holds the raw weights ``W`` (files of format 1 kept them in ``posterior``)."""


def weight_dims(input_dim: int) -> list[str]:
    """Dim names of ``W``: ``basis_0..basis_{d-1}, stimulus_dim, embedding_dim``."""
    return [f"basis_{i}" for i in range(input_dim)] + ["stimulus_dim", "embedding_dim"]


def default_grid(input_dim: int, points_per_axis: int = 5) -> np.ndarray:
    """A regular grid over ``[-0.8, 0.8]^d`` (flattened, shape (G, d))."""
    g = np.linspace(-0.8, 0.8, points_per_axis)
    mesh = np.meshgrid(*([g] * input_dim), indexing="ij")
    return np.stack([m.ravel() for m in mesh], -1)


def _pairs(input_dim: int) -> list[tuple[int, int]]:
    return [(i, j) for i, j in itertools.combinations_with_replacement(range(input_dim), 2)]


def sigma_entries(input_dim: int) -> list[str]:
    """Labels of the unique entries of a ``d x d`` covariance, the ``sigma_entry`` coordinate.

    The upper triangle row by row: ``["xx"]`` in 1-D, ``["xx", "xy", "yy"]`` in
    2-D, ``["xx", "xy", "xz", "yy", "yz", "zz"]`` in 3-D.
    """
    if input_dim not in (1, 2, 3):
        raise InvalidInput(f"input_dim must be 1, 2 or 3, got {input_dim!r}")
    return [_AXES[i] + _AXES[j] for i, j in _pairs(input_dim)]


def expand_sigma(entries) -> np.ndarray:
    """Full symmetric matrices from the unique entries of ``posterior["Sigma"]``.

    Parameters
    ----------
    entries : array-like (..., E)
        The last axis holds the entries in :func:`sigma_entries` order
        (``E = d (d + 1) / 2``), e.g. ``idata.posterior["Sigma"].values`` of
        shape ``(chain, draw, grid_point, E)``.

    Returns
    -------
    numpy array (..., d, d)
    """
    entries = np.asarray(entries)
    sizes = {1: 1, 3: 2, 6: 3}
    if entries.ndim < 1 or entries.shape[-1] not in sizes:
        raise InvalidInput(
            "expand_sigma needs the unique covariance entries on the last axis (1, 3 or 6 of "
            f"them), got shape {entries.shape}"
        )
    d = sizes[entries.shape[-1]]
    out = np.empty(entries.shape[:-1] + (d, d), entries.dtype)
    for k, (i, j) in enumerate(_pairs(d)):
        out[..., i, j] = out[..., j, i] = entries[..., k]
    return out


# ---------------------------------------------------------------------------
# fit -> ArviZ
# ---------------------------------------------------------------------------
def grid_coords(grid) -> dict:
    """The grid points' positions as coordinates on the ``grid_point`` dimension.

    Parameters
    ----------
    grid : array (G, d)

    Returns
    -------
    dict
        ``{"grid_x": ("grid_point", grid[:, 0]), "grid_y": ...}`` (one per
        axis), for ``Dataset.assign_coords``: ``posterior["Sigma"]`` then says
        where each grid point lies, e.g. ``Sigma.sel(grid_point=12).grid_x``.
    """
    grid = np.asarray(grid, dtype=float)
    return {f"grid_{a}": ("grid_point", grid[:, k]) for k, a in enumerate(_AXES[:grid.shape[1]])}


def significant(values, digits: int = 3) -> np.ndarray:
    """``values`` rounded to ``digits`` significant figures (NaN and 0 kept).

    ArviZ rounds a summary to a number of decimals (2 by default), which
    shows covariance entries of 1e-3 .. 1e-5 as ``0.001`` or ``0.0``;
    significant figures keep them readable at every scale.
    """
    x = np.asarray(values, dtype=float)
    finite = np.isfinite(x) & (x != 0)
    exponent = np.floor(np.log10(np.abs(np.where(finite, x, 1.0))))
    factor = 10.0 ** (digits - 1 - exponent)
    return np.where(finite, np.round(x * factor) / factor, x)


_DIAGNOSTICS = ("ess", "r_hat", "rhat")


def summary_table(idata, var_names, *, chains: int, draws: int, round_to=None,
                  digits: int = 3, **kwargs):
    """``az.summary`` of ``var_names`` that reads well at the scale of ``Sigma``.

    Parameters
    ----------
    idata : arviz.InferenceData or xarray.DataTree
        From :func:`to_inference_data` (``posterior["Sigma"]`` carries the
        coordinates of :func:`grid_coords`).
    var_names : list of str
    chains, draws : int
        The fit's chains and draws per chain. With one chain (Laplace,
        bootstrap, MAP) the default ``kind`` is ``"stats"``: r_hat and the
        effective sample sizes need several chains (ArviZ would log a
        shape-validation warning and report r_hat NaN). With one draw (a point
        fit) only the ``mean`` column is kept (the value itself).
    round_to : None, int or "none"
        ``None``: statistics rounded to ``digits`` significant figures
        (effective sample sizes to integers, r_hat to 2 decimals); an int or
        ``"none"``: passed to ArviZ (decimals, or no rounding).
    digits : int
        Significant figures of the default rounding.
    **kwargs
        More arguments of ``az.summary`` (``kind``, ``hdi_prob`` ...).

    Returns
    -------
    pandas.DataFrame
        ArviZ's rows (``Sigma[g, ij]``, ``lapse_rate``), preceded, when
        ``Sigma`` is among them, by the columns ``grid_x, grid_y ...`` (where
        grid point ``g`` lies; NaN on other rows).
    """
    import logging

    import arviz as az

    if chains < 2 or draws < 2:
        kwargs.setdefault("kind", "stats")
    ask = "none" if round_to is None else round_to
    # ArviZ 0.x logs "Shape validation failed" through its own logger for one chain
    logger = getattr(az, "_log", None)
    level = logger.level if isinstance(logger, logging.Logger) else None
    if level is not None and chains < 2:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            if draws < 2:  # sd and intervals of one draw: numpy's ddof warnings
                warnings.simplefilter("ignore", RuntimeWarning)
            try:
                table = az.summary(idata, var_names=list(var_names), round_to=ask, **kwargs)
            except (TypeError, ValueError):
                if round_to is not None:
                    raise
                table = az.summary(idata, var_names=list(var_names), **kwargs)
    finally:
        if level is not None:
            logger.setLevel(level)
    if draws < 2:
        table = table[[c for c in table.columns if c == "mean"]]
    if round_to is None:
        table = table.copy()
        for col in table.columns:
            values = table[col].to_numpy(dtype=float)
            if col.startswith("ess"):
                table[col] = np.round(values)
            elif col.startswith(_DIAGNOSTICS):
                table[col] = np.round(values, 2)
            else:
                table[col] = significant(values, digits)
    post = group(idata, "posterior")
    if "Sigma" in var_names and "Sigma" in post:
        sigma = post["Sigma"]
        names = [c for c in sigma.coords if c.startswith("grid_") and c != "grid_point"]
        if not names and "constant_data" in group_names(idata):
            const = group(idata, "constant_data")
            if "grid" in const and const["grid"].shape[0] == sigma.sizes["grid_point"]:
                sigma = sigma.assign_coords(grid_coords(const["grid"].values))
                names = [c for c in sigma.coords if c.startswith("grid_") and c != "grid_point"]
        if names:
            index = {str(i) for i in table.index}
            cols = {n: np.full(len(table), np.nan) for n in names}
            for g in range(sigma.sizes["grid_point"]):
                for e in sigma["sigma_entry"].values:
                    label = f"Sigma[{g}, {e}]"
                    if label in index:
                        row = table.index.get_loc(label)
                        for n in names:
                            cols[n][row] = float(sigma[n].values[g])
            if any(np.isfinite(v).any() for v in cols.values()):  # ArviZ's row labels known
                for k, n in enumerate(names):
                    table.insert(k, n, cols[n])
    return table


def _dataset(values: dict, dims: dict, coords: dict, *, sample_shape=None, attrs=None):
    """A Dataset of ``values`` with named dims (``chain, draw`` first when ``sample_shape``)."""
    import xarray as xr

    lead = []
    used = {}
    if sample_shape is not None:
        lead = ["chain", "draw"]
        used = {"chain": np.arange(sample_shape[0]), "draw": np.arange(sample_shape[1])}
    out = {}
    for name, value in values.items():
        value = np.asarray(value)
        names = lead + list(dims.get(name, []))
        if len(names) != value.ndim:
            raise InvalidInput(
                f"ArviZ conversion: {name} has shape {value.shape}, expected dims {names}")
        out[name] = (names, value)
        used.update({d: coords[d] for d in names if d in coords})
    return xr.Dataset(out, coords=used, attrs=dict(attrs or {}))


def to_inference_data(
    model,
    data,
    W_draws,
    log_likelihood,
    *,
    sample_stats=None,
    grid=None,
    attrs=None,
    posterior_predictive=None,
    lapse_draws=None,
):
    """ArviZ data of weight draws: ``InferenceData`` on ArviZ 0.x, ``xarray.DataTree`` on
    ArviZ >= 1.0.

    Parameters
    ----------
    model : WPPM
    data : TrialData
    W_draws : array (chain, draw, *weight_shape)
    log_likelihood : array (chain, draw, N) or None
        Pointwise log-likelihood of every trial.
    sample_stats : dict of arrays (chain, draw), optional
    grid : array (G, d), optional
        Points where the unique entries of ``Sigma`` (identified, unlike
        ``W``) are added to the posterior; default :func:`default_grid`.
    attrs : dict, optional
        Extra attributes (``inference`` method etc.), stored on the posterior
        and on the root.
    posterior_predictive : array (chain, draw, N), optional
        Replicated responses ``y``.
    lapse_draws : array (chain, draw), optional
        Draws of a learned lapse rate (posterior variable ``lapse_rate``).

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
        Groups ``posterior`` (``Sigma`` with dims ``grid_point, sigma_entry``
        and ``lapse_rate``), ``unconstrained_posterior`` (``W``),
        ``sample_stats``, ``log_likelihood``, ``observed_data``,
        ``constant_data`` and ``posterior_predictive`` (see the module
        docstring).
    """
    import jax

    d = model.input_dim
    W_draws = np.asarray(W_draws)
    if W_draws.ndim != len(model.weight_shape) + 2:
        raise InvalidInput(
            f"ArviZ conversion needs W draws (chain, draw) + {model.weight_shape}, got shape "
            f"{W_draws.shape}")
    if grid is None:
        grid = default_grid(d)
    grid = np.asarray(grid, dtype=float).reshape(-1, d)
    sample_shape = W_draws.shape[:2]
    flat = W_draws.reshape((-1,) + W_draws.shape[2:])
    Sigma = np.asarray(
        jax.vmap(lambda W: field.covariance_field(W, grid, model.diag_term))(flat)
    )
    rows, cols = zip(*_pairs(d), strict=True)
    Sigma = Sigma[..., list(rows), list(cols)].reshape(sample_shape + (grid.shape[0], -1))
    axes = list(_AXES[:d])
    coords = {
        **{f"basis_{i}": np.arange(model.basis_degree + 1) for i in range(d)},
        "stimulus_dim": axes,
        "embedding_dim": np.arange(model.embedding_dim),
        "trial": np.arange(len(data)),
        "grid_point": np.arange(grid.shape[0]),
        "sigma_entry": sigma_entries(d),
    }
    dims = {
        "W": weight_dims(d),
        "Sigma": ["grid_point", "sigma_entry"],
        "grid": ["grid_point", "stimulus_dim"],
        "y": ["trial"],
        "ref": ["trial", "stimulus_dim"],
        "comparison": ["trial", "stimulus_dim"],
    }
    meta = {"inference_library": "psyphy_numpyro", "inference_library_version": __version__,
            "model": repr(model), **(attrs or {})}
    posterior = {"Sigma": Sigma}
    if lapse_draws is not None:
        posterior["lapse_rate"] = np.asarray(lapse_draws).reshape(sample_shape)
    post = _dataset(posterior, dims, coords, sample_shape=sample_shape, attrs=meta)
    if not uses_datatree():
        # ArviZ 1.x's az.summary concatenates the variables and refuses a coordinate that
        # only Sigma has; there the positions stay in constant_data["grid"] (and
        # fit.summary() shows them from there)
        post = post.assign_coords(grid_coords(grid))
    groups = {
        "posterior": post,
        WEIGHTS_GROUP: _dataset({"W": W_draws}, dims, coords, sample_shape=sample_shape,
                                attrs=meta),
    }
    if sample_stats:
        groups["sample_stats"] = _dataset(sample_stats, {}, coords, sample_shape=sample_shape)
    if log_likelihood is not None:
        groups["log_likelihood"] = _dataset({"y": log_likelihood}, dims, coords,
                                            sample_shape=sample_shape)
    if posterior_predictive is not None:
        groups["posterior_predictive"] = _dataset({"y": posterior_predictive}, dims, coords,
                                                  sample_shape=sample_shape)
    groups["observed_data"] = _dataset({"y": data.responses}, dims, coords)
    groups["constant_data"] = _dataset(
        {"ref": data.stimuli[:, 0], "comparison": data.stimuli[:, 1], "grid": grid}, dims, coords)
    return wrap_groups(groups, meta)
