"""Colour spaces: the colour-science (``colour``) conversions behind
:meth:`StimulusSpace.colour <psyphy_numpyro.space.StimulusSpace.colour>`.

One concept: a colour space's description (its axes, white point, fixed
coordinates, monitor calibration, cone matrix) and the conversions between its
coordinates and CIE XYZ / CIELAB. Every colour formula comes from colour-science
(``colour``); this module writes none of its own except the DKL axes, which
``colour`` does not provide.

A description is the plain dict :attr:`StimulusSpace.colour_info
<psyphy_numpyro.space.StimulusSpace.colour_info>` returns: ``space`` (the
colour-space name), ``white`` (xy), ``white_name``, ``observer`` and what fixes
the other coordinates (``Y``, ``L``, ``background_Y``), the ``cones`` matrix or
the monitor ``calibration``.

This module imports NumPy only (``colour`` on first use).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InvalidInput, InvalidType

__all__ = ["COLOUR_SPACES", "OBSERVER", "as_vector", "colour_key", "describe_colour",
           "colour_space", "need_colour", "to_xyz", "from_xyz", "rgb_to_xyz", "xyz_to_cielab",
           "delta_e"]

OBSERVER = "CIE 1931 2 Degree Standard Observer"
"""The default CIE standard observer of the illuminant table."""

# name -> (coordinates for d = 3, for d = 2 (a plane at a fixed value), units)
_COLOUR = {
    "XYZ": (("X", "Y", "Z"), None, "CIE XYZ"),
    "xyY": (("CIE x", "CIE y", "Y"), None, "CIE xyY"),
    "xy": (None, ("CIE x", "CIE y"), "CIE 1931 xy chromaticity"),
    "CIELAB": (("L*", "a*", "b*"), ("a*", "b*"), "CIELAB"),
    "CIELUV": (("L*", "u*", "v*"), ("u*", "v*"), "CIELUV"),
    "LMS": (("L", "M", "S"), None, "cone excitation (LMS)"),
    "DKL": (("L+M", "L-M", "S-(L+M)"), ("L-M", "S-(L+M)"), "DKL (cone increments)"),
    "RGB": (("R", "G", "B"), None, "monitor RGB (device values, 0-1)"),
}
_ALIASES = {"LAB": "CIELAB", "CIELAB": "CIELAB", "LUV": "CIELUV", "CIELUV": "CIELUV",
            "XYZ": "XYZ", "XYY": "xyY", "XY": "xy", "LMS": "LMS", "DKL": "DKL", "RGB": "RGB"}
COLOUR_SPACES = tuple(_COLOUR)
"""Names accepted by :meth:`StimulusSpace.colour` (``"Lab"``/``"Luv"`` are aliases)."""


def as_vector(name, value, d=None) -> np.ndarray:
    """``value`` as a finite float64 vector of 1 to 3 numbers (``d`` of them if given):
    a space's bounds, offset or white point."""
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidType(f"{name} must be a list of numbers, got {value!r}") from None
    if v.ndim != 1 or v.size not in (1, 2, 3) or (d is not None and v.size != d):
        want = f"{d} numbers" if d else "1 to 3 numbers (one per axis)"
        raise InvalidInput(f"{name} must be {want}, got {value!r}")
    if not np.all(np.isfinite(v)):
        raise InvalidInput(f"{name} must be finite, got {value!r}")
    return v


def _colour():
    import colour  # colour-science: imported on first use

    return colour


def _white_xy(white, observer=OBSERVER) -> np.ndarray:
    """The white point's chromaticity: an illuminant name (e.g. ``"D65"``) or an xy pair."""
    if isinstance(white, str):
        table = _colour().CCS_ILLUMINANTS[observer]
        if white not in table:
            raise InvalidInput(f"unknown white point {white!r}; use an illuminant of {observer} "
                               f"(e.g. 'D65', 'D50') or an xy pair")
        return np.asarray(table[white], dtype=np.float64)
    return as_vector("white", white, 2)


def colour_key(name) -> str | None:
    """The canonical name of colour space ``name`` (case-insensitive; ``"Lab"`` ->
    ``"CIELAB"``), or ``None`` when it names none."""
    return _ALIASES.get(str(name).upper())


def describe_colour(key, d, *, white, Y, L, background_Y, calibration, cones, observer):
    """The axis labels, units and description of the ``d``-D colour space ``key``.

    The arguments are those of :meth:`StimulusSpace.colour`, checked here.

    Returns
    -------
    labels : tuple of str
    units : str
    col : dict
        The description (see the module's docstring); its ``calibration``, when
        given, is the checked copy.
    """
    labels3, labels2, units = _COLOUR[key]
    labels = {3: labels3, 2: labels2}.get(d)
    if labels is None:
        dims = [n for n, lab in ((3, labels3), (2, labels2)) if lab is not None]
        raise InvalidInput(f"colour space {key!r} has {' or '.join(map(str, dims))} "
                           f"coordinates, got lo/hi of length {d}")
    col = {"space": key, "observer": observer}
    if calibration is not None:
        calibration = _check_calibration(calibration)
        col["calibration"] = calibration
    elif key == "RGB":
        raise InvalidInput("colour space 'RGB' needs a monitor calibration=")
    if calibration is not None and white == "D65":
        col["white"] = _monitor_white(calibration)[0].tolist()
        col["white_name"] = "monitor white"
    else:
        col["white"] = _white_xy(white, observer).tolist()
        col["white_name"] = white if isinstance(white, str) else "xy"
    if key == "xy":
        col["Y"] = float(Y)
    if key in ("CIELAB", "CIELUV") and d == 2:
        col["L"] = float(L)
    if key in ("LMS", "DKL"):
        if cones not in _colour().CHROMATIC_ADAPTATION_TRANSFORMS:
            raise InvalidInput(f"unknown cones matrix {cones!r}; use a name of "
                               "colour.CHROMATIC_ADAPTATION_TRANSFORMS, e.g. 'Von Kries'")
        col["cones"] = cones
    if key == "DKL":
        col["background_Y"] = float(background_Y)
    fixed = {"Y": "stimulus Y", "L": "L*"}
    extra = "".join(f", {fixed[k]} = {col[k]:g}" for k in ("Y", "L") if k in col)
    units = f"{units} (white {col['white_name']}, white Y = 1{extra})"
    return labels, units, col


def colour_space(name, lo, hi, *, white, Y, L, background_Y, calibration, cones,
                 shape_preserving, observer):
    """What :meth:`StimulusSpace.colour <psyphy_numpyro.space.StimulusSpace.colour>`
    builds a space from (its arguments, checked here).

    Returns
    -------
    lo, hi : numpy arrays (d,)
        The bounds.
    labels : tuple of str
    units : str
    col : dict
        The description (see the module's docstring).
    args : dict
        The constructor's arguments as stored in the space's description
        (``kind`` ``"colour"``; the ``calibration`` checked).
    """
    key = colour_key(name)
    if key is None:
        raise InvalidInput(f"unknown colour space {name!r}; use one of "
                           f"{', '.join(COLOUR_SPACES)} (or 'Lab', 'Luv')")
    lo, hi = as_vector("lo", lo), as_vector("hi", hi)
    labels, units, col = describe_colour(
        key, lo.size, white=white, Y=Y, L=L, background_Y=background_Y,
        calibration=calibration, cones=cones, observer=observer)
    args = {"kind": "colour", "name": key, "lo": lo.tolist(), "hi": hi.tolist(),
            "white": white if isinstance(white, str) else list(map(float, white)),
            "Y": float(Y), "L": float(L), "background_Y": float(background_Y),
            "calibration": col.get("calibration"), "cones": cones,
            "shape_preserving": bool(shape_preserving), "observer": observer}
    return lo, hi, labels, units, col, args


def need_colour(col, what, space_name) -> dict:
    """The colour description ``col`` of the space ``space_name``, which ``what`` (a
    method's name) needs; a ``ValueError`` when the space is not a colour space."""
    if col is None:
        raise InvalidInput(f"{what} needs a colour space (StimulusSpace.colour); this "
                           f"space is {space_name!r}")
    return col


# ---------------------------------------------------------------------------
# conversions (through `colour`)
# ---------------------------------------------------------------------------
def to_xyz(col, x) -> np.ndarray:
    """Stimuli ``x`` (..., d) in the colour space ``col`` -> CIE XYZ (white ``Y = 1``)."""
    c = _colour()
    key, white = col["space"], np.asarray(col["white"])
    if key == "XYZ":
        return x.copy()
    if key == "xyY":
        return c.xyY_to_XYZ(x)
    if key == "xy":
        return c.xyY_to_XYZ(np.concatenate([x, np.full(x.shape[:-1] + (1,), col["Y"])],
                                           -1))
    if key in ("CIELAB", "CIELUV"):
        if x.shape[-1] == 2:
            x = np.concatenate([np.full(x.shape[:-1] + (1,), col["L"]), x], -1)
        f = c.Lab_to_XYZ if key == "CIELAB" else c.Luv_to_XYZ
        return f(x, illuminant=white)
    if key == "RGB":
        return rgb_to_xyz(col["calibration"], x)
    lms_to_xyz = np.linalg.inv(_cones(col))
    if key == "LMS":
        return x @ lms_to_xyz.T
    # DKL: cone increments on the background
    D, lms_b = _dkl(col)
    if x.shape[-1] == 2:
        x = np.concatenate([np.zeros(x.shape[:-1] + (1,)), x], -1)
    lms = lms_b + x @ np.linalg.inv(D).T
    return lms @ lms_to_xyz.T


def from_xyz(col, xyz, d) -> np.ndarray:
    """CIE XYZ (white ``Y = 1``) -> the ``d``-D colour space ``col``'s coordinates (3-D
    spaces, and the planes of 2-D ones: the fixed coordinate is dropped)."""
    c = _colour()
    xyz = np.asarray(xyz, dtype=np.float64)
    key, white = col["space"], np.asarray(col["white"])
    if key == "XYZ":
        out = xyz.copy()
    elif key == "xyY":
        out = c.XYZ_to_xyY(xyz)
    elif key == "xy":
        out = c.XYZ_to_xy(xyz)
    elif key == "CIELAB":
        out = c.XYZ_to_Lab(xyz, illuminant=white)[..., 3 - d:]
    elif key == "CIELUV":
        out = c.XYZ_to_Luv(xyz, illuminant=white)[..., 3 - d:]
    elif key == "RGB":
        out = _xyz_to_rgb(col["calibration"], xyz)
    else:
        lms = xyz @ _cones(col).T
        if key == "LMS":
            out = lms
        else:
            D, lms_b = _dkl(col)
            out = ((lms - lms_b) @ D.T)[..., 3 - d:]
    return out


def xyz_to_cielab(col, xyz) -> np.ndarray:
    """CIE XYZ -> CIELAB ``L* a* b*`` relative to the colour space ``col``'s white."""
    return _colour().XYZ_to_Lab(xyz, illuminant=np.asarray(col["white"]))


def delta_e(lab1, lab2, method: str = "CIE 2000") -> np.ndarray:
    """Colour differences between CIELAB colours, by a method of :func:`colour.delta_E`."""
    return np.asarray(_colour().delta_E(lab1, lab2, method=method), dtype=np.float64)


# ---------------------------------------------------------------------------
# monitor calibrations and cone spaces (conversions through `colour`)
# ---------------------------------------------------------------------------
def _check_calibration(cal) -> dict:
    if not isinstance(cal, dict):
        raise InvalidType("calibration must be a dict with primaries, luminances and gamma "
                          "or lut")
    try:
        prim = np.asarray(cal["primaries"], dtype=np.float64)
        lum = np.asarray(cal["luminances"], dtype=np.float64)
    except KeyError as exc:
        raise InvalidInput(f"calibration needs {exc.args[0]!r} (primaries: 3 xy pairs, "
                           "luminances: 3 numbers)") from None
    if prim.shape != (3, 2) or lum.shape != (3,) or np.any(lum <= 0):
        raise InvalidInput(f"calibration primaries must be 3 xy pairs and luminances 3 positive "
                           f"numbers, got shapes {prim.shape} and {lum.shape}")
    out = {"primaries": prim.tolist(), "luminances": lum.tolist()}
    if cal.get("lut") is not None:
        lut = np.asarray(cal["lut"], dtype=np.float64)
        if lut.ndim != 2 or lut.shape[1] != 3 or lut.shape[0] < 2:
            raise InvalidInput(f"calibration lut must be a (K, 3) table, got shape {lut.shape}")
        out["lut"] = lut.tolist()
    else:
        gamma = float(cal.get("gamma", 2.2))
        if not (math.isfinite(gamma) and gamma > 0):
            raise InvalidInput(f"calibration gamma must be positive, got {gamma}")
        out["gamma"] = gamma
    return out



def _primaries_xyz(cal) -> np.ndarray:
    """Columns: the primaries' XYZ at full drive, relative to the white's luminance."""
    c = _colour()
    prim = np.asarray(cal["primaries"])
    lum = np.asarray(cal["luminances"])
    xyz = c.xyY_to_XYZ(np.column_stack([prim, lum / lum.sum()]))
    return xyz.T


def _monitor_white(cal):
    c = _colour()
    white_xyz = _primaries_xyz(cal).sum(1)
    return np.asarray(c.XYZ_to_xy(white_xyz)), white_xyz


def _linearise(cal, rgb):
    c = _colour()
    if "lut" in cal:
        lut = np.asarray(cal["lut"])
        lut = (lut - lut[0]) / (lut[-1] - lut[0])  # linear light, 0 at black, 1 at full drive
        return c.LUT3x1D(lut).apply(rgb)
    return c.gamma_function(np.clip(rgb, 0.0, None), cal["gamma"])


def rgb_to_xyz(cal, rgb):
    """Monitor drive values (..., 3) -> CIE XYZ through the calibration ``cal``."""
    return _linearise(cal, rgb) @ _primaries_xyz(cal).T


def _xyz_to_rgb(cal, xyz):
    c = _colour()
    linear = xyz @ np.linalg.inv(_primaries_xyz(cal)).T
    if "lut" in cal:
        lut = np.asarray(cal["lut"])
        lut = (lut - lut[0]) / (lut[-1] - lut[0])
        return c.LUT3x1D(lut).invert().apply(linear)
    return c.gamma_function(np.clip(linear, 0.0, None), 1.0 / cal["gamma"])


def _cones(col) -> np.ndarray:
    """The XYZ -> LMS matrix (colour.CHROMATIC_ADAPTATION_TRANSFORMS[cones])."""
    return np.asarray(_colour().CHROMATIC_ADAPTATION_TRANSFORMS[col["cones"]], dtype=np.float64)


def _dkl(col):
    """DKL axes (unscaled, after Brainard 1996) as a matrix on cone increments, and the
    background's LMS: ``L+M = dL + dM``, ``L-M = dL - (Lb/Mb) dM``,
    ``S-(L+M) = dS - Sb/(Lb+Mb) (dL + dM)``."""
    c = _colour()
    xy = np.asarray(col["white"])
    xyz_b = c.xyY_to_XYZ(np.array([xy[0], xy[1], col["background_Y"]]))
    Lb, Mb, Sb = xyz_b @ _cones(col).T
    D = np.array([[1.0, 1.0, 0.0],
                  [1.0, -Lb / Mb, 0.0],
                  [-Sb / (Lb + Mb), -Sb / (Lb + Mb), 1.0]])
    return D, np.array([Lb, Mb, Sb])
