"""A session's region of interest: where its references go and what ``"global"`` targets.

One concept: the ``region=`` of :class:`~psyphy_numpyro.design.session.Experiment`, in
the session's units (its ``space``'s when it has one, else the model's box
``[-1, 1]^d``). Three forms:

``None``
    The whole domain (the default).
a box ``(lo, hi)``
    A *tuple* of two length-``d`` sequences, ``lo < hi`` on every axis, inside the
    session's domain: references are spread over the box.
reference points ``(R, d)``
    An array (or list of lists) of points inside the domain: every reference is one
    of them.

:func:`region_setting` checks a region and gives the JSON form the session file
stores (``None``, ``{"box": [lo, hi]}`` or ``{"points": [[...], ...]}``; the same
dicts are accepted as input, e.g. from the session server's JSON);
:class:`Region` turns the stored form into the model's box: :meth:`Region.place`
maps Sobol points of ``[0, 1)^d`` to references inside the region, and
:meth:`Region.points` gives the reference points the ``"global"`` criterion
integrates over (:func:`~psyphy_numpyro.design.acquisition.region_points`).
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInput, InvalidType

__all__ = ["region_setting", "Region"]

_FORMS = ("region must be None (the whole domain), a box as a tuple (lo, hi) of two "
          "length-{d} sequences, an (R, {d}) array of reference points, or a dict "
          "{{'box': [lo, hi]}} / {{'points': [[...], ...]}}")


def _floats(name, value, shape, d) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidType(f"{name} must be numbers, got {value!r}; "
                          + _FORMS.format(d=d)) from None
    if shape == "points":
        if arr.ndim != 2 or arr.shape[1] != d or arr.shape[0] == 0:
            raise InvalidInput(f"{name} must be an (R, {d}) array of reference points with "
                               f"R >= 1, got shape {arr.shape}")
    elif arr.shape != (d,):
        raise InvalidInput(f"{name} must have {d} entries (one per axis), got shape "
                           f"{arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInput(f"{name} has a non-finite value: {arr.tolist()}")
    return arr


def _inside(x, name, space) -> None:
    """Raise unless the points ``x`` (n, d), in the session's units, lie in its domain."""
    if space is not None:
        space.to_model(x, check=True, name=name)
        return
    from ..validation import check_points

    check_points(x, x.shape[-1], name)


def _corners(lo, hi) -> np.ndarray:
    d = len(lo)
    bits = (np.arange(2**d)[:, None] >> np.arange(d)) & 1
    return np.where(bits == 1, hi, lo)


def region_setting(region, d: int, space=None):
    """A region checked, in the JSON form the session file stores.

    Parameters
    ----------
    region : None, tuple (lo, hi), array (R, d) or dict
        See the module.
    d : int
        The session's dimension.
    space : StimulusSpace, optional
        The session's units (the region is in them); ``None``: the model's box.

    Returns
    -------
    None or dict
        ``{"box": [lo, hi]}`` or ``{"points": [[...], ...]}`` (lists of floats).

    Raises
    ------
    TypeError
        Not one of the forms, or not numbers.
    ValueError
        Wrong shapes, ``lo >= hi`` on an axis, a non-finite value, or a corner of the
        box (a point) outside the session's domain.
    """
    if region is None:
        return None
    if isinstance(region, dict):
        if len(region) != 1 or next(iter(region)) not in ("box", "points"):
            raise InvalidInput(f"a region dict must have one key, 'box' or 'points', got "
                               f"{sorted(region)}")
        kind, value = next(iter(region.items()))
        if kind == "box":
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise InvalidInput(f"region box must be [lo, hi], got {value!r}")
            region = tuple(value)
        else:
            return {"points": _points(value, d, space)}
    if isinstance(region, tuple):
        if len(region) != 2:
            raise InvalidInput(f"a region box must be a pair (lo, hi), got a tuple of "
                               f"{len(region)}; " + _FORMS.format(d=d))
        lo = _floats("region lo", region[0], "axis", d)
        hi = _floats("region hi", region[1], "axis", d)
        if np.any(hi <= lo):
            raise InvalidInput(f"region: hi must exceed lo on every axis, got lo="
                               f"{lo.tolist()}, hi={hi.tolist()}")
        _inside(_corners(lo, hi), "region box corners", space)
        return {"box": [lo.tolist(), hi.tolist()]}
    if isinstance(region, str | bytes) or np.isscalar(region):
        raise InvalidType(_FORMS.format(d=d) + f"; got {region!r}")
    return {"points": _points(region, d, space)}


def _points(value, d, space) -> list:
    pts = _floats("region points", value, "points", d)
    _inside(pts, "region points", space)
    return pts.tolist()


class Region:
    """A stored region (:func:`region_setting`'s form) in the model's box.

    Parameters
    ----------
    setting : None or dict
        The stored region.
    d : int
    space : StimulusSpace or dict, optional
        The session's space (the region's units); ``None``: the model's box.
    """

    def __init__(self, setting, d: int, space=None):
        if isinstance(space, dict):
            from ..space import StimulusSpace

            space = StimulusSpace.from_dict(space)
        self.setting, self.input_dim, self.space = setting, int(d), space
        self.kind = None if setting is None else next(iter(setting))
        if self.kind == "box":
            self.lo, self.hi = (np.asarray(v, np.float64) for v in setting["box"])
        elif self.kind == "points":
            self._points = self._to_model(np.asarray(setting["points"], np.float64))

    def _to_model(self, x) -> np.ndarray:
        if self.space is not None:
            x = self.space.to_model(x, check=False)
        return np.clip(np.asarray(x, np.float64), -1.0, 1.0)

    def place(self, u) -> np.ndarray:
        """References (model units) for Sobol points ``u`` (n, d) in ``[0, 1)^d``: spread
        over the domain or the box; for reference points, point ``floor(u[:, 0] * R)``."""
        u = np.asarray(u, np.float64)
        if self.kind is None:
            return 2.0 * u - 1.0
        if self.kind == "box":
            return self._to_model(self.lo + u * (self.hi - self.lo))
        idx = np.minimum((u[:, 0] * len(self._points)).astype(np.int64), len(self._points) - 1)
        return self._points[idx]

    def points(self, points_per_axis: int = 5):
        """The reference points (model units) the ``"global"`` criterion integrates over:
        ``None`` for the whole domain (its default grid), a grid over a box, or the
        given points."""
        if self.kind is None:
            return None
        if self.kind == "points":
            return self._points
        axes = [np.linspace(self.lo[i], self.hi[i], points_per_axis)
                for i in range(self.input_dim)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, self.input_dim)
        return self._to_model(grid)
