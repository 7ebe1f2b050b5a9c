"""The container of the installed ArviZ: ``arviz.InferenceData`` (0.x) or
``xarray.DataTree`` (>= 1.0).

One concept: one way to build, read, write and take apart either container, so
that :mod:`psyphy_numpyro.arviz_io` and the fit-file code work with both ArviZ
versions. Re-exported by :mod:`psyphy_numpyro.arviz_io`.
"""

from __future__ import annotations

import warnings

__all__ = ["uses_datatree", "wrap_groups", "group_names", "group", "add_group",
           "read_netcdf", "write_netcdf"]


def uses_datatree() -> bool:
    """``True`` when the installed ArviZ (>= 1.0) takes ``xarray.DataTree`` rather than
    ``arviz.InferenceData``."""
    import arviz as az

    major = az.__version__.split(".", 1)[0]
    return int(major) >= 1 if major.isdigit() else True


def wrap_groups(groups: dict, attrs: dict):
    """``groups`` (name -> Dataset) as the container the installed ArviZ takes."""
    import xarray as xr

    if uses_datatree():
        return xr.DataTree.from_dict({"/": xr.Dataset(attrs=attrs), **groups})
    import arviz as az

    return az.InferenceData(attrs=attrs, **groups)


def group_names(idata) -> list[str]:
    """The group names of an ``InferenceData`` or a ``DataTree``."""
    if hasattr(idata, "children"):  # xarray.DataTree
        return list(idata.children)
    return list(idata.groups())


def group(idata, name: str):
    """One group as an ``xarray.Dataset``, for either container."""
    node = idata[name]
    return node.to_dataset() if hasattr(node, "to_dataset") else node


def add_group(idata, name: str, dataset) -> None:
    """Add (or replace) the group ``name`` in place."""
    if hasattr(idata, "children"):
        import xarray as xr

        idata[name] = xr.DataTree(dataset)
    else:
        if name in idata.groups():
            delattr(idata, name)  # ArviZ 0.x adds only new groups
        with warnings.catch_warnings():  # ArviZ 0.x warns about groups it does not know
            warnings.simplefilter("ignore", UserWarning)
            idata.add_groups({name: dataset})


def read_netcdf(path: str):
    """Read a NetCDF file fully into memory (the file is closed afterwards) as the container
    the installed ArviZ takes."""
    if uses_datatree():
        import xarray as xr

        with xr.open_datatree(path) as tree:
            return tree.load().copy()
    import arviz as az

    with az.rc_context({"data.load": "eager"}):
        return az.from_netcdf(path)


def write_netcdf(idata, path: str) -> None:
    """Write either container to a NetCDF file (one NetCDF group per ArviZ group)."""
    idata.to_netcdf(path)
