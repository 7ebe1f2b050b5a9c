"""The server's JSON replies built from fits and stimulus spaces: the thresholds of the
latest fit (:func:`thresholds_reply`), the units a session speaks (:func:`plane_reply`), and
:func:`clean`, which makes NumPy values and non-finite floats JSON-ready."""

from __future__ import annotations

import math

__all__ = ["clean", "threshold_refs", "plane_reply", "thresholds_reply"]


def clean(x):
    """NaN/inf -> None, numpy -> lists: JSON-ready."""
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, list | tuple):
        return [clean(v) for v in x]
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    return x


def threshold_refs(d: int):
    """The references the server reads thresholds at: a grid over ``[-0.6, 0.6]^d``
    (9 points in 1-D, 5 x 5 in 2-D, 3 x 3 x 3 in 3-D)."""
    import numpy as np

    k = {1: 9, 2: 5, 3: 3}[d]
    axis = np.linspace(-0.6, 0.6, k)
    grid = np.meshgrid(*([axis] * d), indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=-1)


def plane_reply(space, d: int) -> dict:
    """The units a session's stimuli, thresholds and live page speak: ``units`` (the
    space's words, or ``"model"``: the box ``[-1, 1]^d``), ``axis_labels``, and
    ``lo``/``hi``, the bounds the live page draws (the space's, else the box's
    image in its units, else ``[-1, 1]``)."""
    import numpy as np

    if space is None:
        return {"units": "model", "axis_labels": [f"x{k}" for k in range(d)],
                "lo": [-1.0] * d, "hi": [1.0] * d, "space_name": None}
    if space.lo is not None:
        lo, hi = np.asarray(space.lo, float), np.asarray(space.hi, float)
    else:  # an affine space without bounds: the box's corners in the lab's units
        corners = np.stack(np.meshgrid(*([[-1.0, 1.0]] * d), indexing="ij"), -1).reshape(-1, d)
        lab = space.to_lab(corners)
        lo, hi = lab.min(0), lab.max(0)
    return {"units": space.units or space.name, "axis_labels": list(space.axis_labels),
            "lo": lo.tolist(), "hi": hi.tolist(), "space_name": space.name}


def thresholds_reply(fit, seq: int, num_trials: int, space=None, refs=None) -> dict:
    """The latest fit's thresholds as JSON: the table, the median contour points and
    the interval's inner and outer contours (draw-based fits); in ``space``'s units when
    given (the session's: its refits fit the box), else the fit's data's space's.
    ``refs`` (model units): where to read them (the session's region: its reference
    points, or a 3-per-axis grid over its box); default :func:`threshold_refs`."""
    import numpy as np

    from ..contours import threshold_table
    from ..readout import thresholds

    refs = threshold_refs(fit.model.input_dim) if refs is None else np.asarray(refs, float)
    if space is None:
        space = getattr(getattr(fit, "data", None), "space", None)
    if space is not None:  # the same grid, in the lab's units: so are the results
        refs = space.to_lab(refs)
    th = thresholds(fit, refs, num_directions=24, space=space)
    refs = np.asarray(th.refs, dtype=float)
    names, values = threshold_table(th, refs)
    out = {"fit": seq, "num_trials": num_trials, "target": float(th.target),
           **plane_reply(space, fit.model.input_dim),
           "level": None if th.level is None else float(th.level),
           "refs": refs, "directions": th.directions, "columns": names, "table": values,
           "ellipses": np.asarray(th.median_ellipses), "points": th.median_points,
           "lower_points": None, "upper_points": None}
    if th.has_draws and th.interval is not None:
        for key, lengths in (("lower_points", th.interval[0]), ("upper_points", th.interval[1])):
            out[key] = refs[:, None, :] + np.asarray(lengths)[..., None] * th.directions[None]
    return clean(out)
