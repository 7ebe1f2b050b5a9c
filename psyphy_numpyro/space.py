"""Stimulus spaces: the lab's units <-> the model's box ``[-1, 1]^d``.

The WPPM lives on the box ``[-1, 1]^d``; a lab stores stimuli in its own
units (CIE xy chromaticities, CIELAB, monitor RGB, cone excitations ...). A
:class:`StimulusSpace` is the affine map between the two,

    ``model = A @ x + b``        ``x = A^-1 @ (model - b)``,

with the lab-unit domain it accepts, axis labels and units for plots and
tables and, for colour spaces, a way to express stimuli as CIE XYZ / CIELAB
so that thresholds can be read as colour differences (ΔE76/94/2000, through
:func:`colour.delta_E`). The colour spaces' descriptions and conversions live in
:mod:`psyphy_numpyro.colourspaces`, the checks of a space's map and of points against
its domain in :mod:`psyphy_numpyro.spacecheck`, its description (dict and file) in
:mod:`psyphy_numpyro.spacefile`; this module is the space itself.

Because the map is affine its Jacobian ``J = d x / d model = A^-1`` is
constant: a covariance or threshold ellipse ``E`` in the box is
``J E J^T`` in the lab's units, exactly.

A space is immutable, compares by value, and round-trips through a small
JSON-ready dict (:meth:`StimulusSpace.to_dict`, :meth:`StimulusSpace.from_dict`,
:meth:`StimulusSpace.from_file` for JSON or TOML descriptions; written and read by
:mod:`psyphy_numpyro.spacefile`).

This module imports NumPy only (``colour`` on first use of a colour space).
"""

from __future__ import annotations

import numpy as np

from .colourspaces import (
    COLOUR_SPACES,
    OBSERVER,
    as_vector,
    colour_space,
    delta_e,
    from_xyz,
    need_colour,
    rgb_to_xyz,
    to_xyz,
    xyz_to_cielab,
)
from .errors import InvalidInput
from .spacecheck import SPACE_TOL, as_points, check_domain, check_map
from .spacefile import (
    read_description,
    space_from_dict,
    space_to_dict,
    space_to_json,
    write_description,
)

__all__ = ["StimulusSpace", "COLOUR_SPACES", "SPACE_TOL"]


class StimulusSpace:
    """An affine map between the lab's stimulus units and the model's box ``[-1, 1]^d``.

    ``model = matrix @ x + offset``; build one with :meth:`box`, :meth:`affine`
    or :meth:`colour` rather than the constructor.

    Attributes
    ----------
    input_dim : int
    matrix : numpy array (d, d)
        ``A`` of ``model = A x + b``.
    offset : numpy array (d,)
        ``b``.
    lo, hi : numpy arrays (d,) or None
        The lab-unit bounds stimuli must lie in (``None`` for an affine space
        without bounds: there the domain is every ``x`` that maps into the box).
    name : str
        E.g. ``"box"``, ``"affine"``, ``"xy"``, ``"CIELAB"``.
    axis_labels : tuple of str
        One per axis, e.g. ``("CIE x", "CIE y")``; used by plots and tables.
    units : str
        What the numbers are, in words.
    colour : dict or None
        For colour spaces: ``space`` (the colour-space name), ``white`` (xy),
        ``white_name``, ``observer`` and what fixes the other coordinates
        (``Y``, ``L``, ``background_Y``) or the monitor ``calibration``.

    Examples
    --------
    >>> space = pn.StimulusSpace.box(lo=[0.24, 0.26], hi=[0.38, 0.40])  # doctest: +SKIP
    >>> space.to_model([0.31, 0.33])                                    # doctest: +SKIP
    array([0., 0.])
    """

    __slots__ = ("_matrix", "_offset", "_inverse", "_lo", "_hi", "_name", "_labels",
                 "_units", "_colour", "_args")

    def __init__(self, matrix, offset, *, lo=None, hi=None, name="affine", axis_labels=None,
                 units="", colour=None, _args=None):
        A, b, lo, hi, labels = check_map(matrix, offset, lo, hi, axis_labels)
        for n, v in (("_matrix", A), ("_offset", b), ("_lo", lo), ("_hi", hi)):
            if v is not None:
                v.setflags(write=False)
            object.__setattr__(self, n, v)
        inv = np.linalg.inv(A)
        inv.setflags(write=False)
        object.__setattr__(self, "_inverse", inv)
        object.__setattr__(self, "_name", str(name))
        object.__setattr__(self, "_labels", labels)
        object.__setattr__(self, "_units", str(units))
        object.__setattr__(self, "_colour", None if colour is None else dict(colour))
        object.__setattr__(self, "_args", _args or {
            "kind": "affine", "matrix": A.tolist(), "offset": b.tolist(),
            **({"lo": lo.tolist(), "hi": hi.tolist()} if lo is not None else {}),
            "name": str(name), "axis_labels": list(labels), "units": str(units)})

    def __setattr__(self, name, value):
        raise AttributeError("StimulusSpace is immutable")

    # -- constructors -----------------------------------------------------------
    @classmethod
    def box(cls, lo, hi, *, shape_preserving: bool = True, axis_labels=None, units="",
            name="box") -> StimulusSpace:
        """Per-axis bounds ``[lo, hi]`` in the lab's units, centred in the box.

        Parameters
        ----------
        lo, hi : array (d,)
            The smallest and largest value stimuli take on each axis.
        shape_preserving : bool
            ``True`` (default): one scale for every axis, ``2 / max(hi - lo)``,
            so that the widest axis fills ``[-1, 1]`` and ellipse shapes
            (ratios of axes, angles) are the same in the lab's units as in the
            model; right where the axes share units (xy, CIELAB, RGB).
            ``False``: each axis scaled to fill ``[-1, 1]`` on its own (axes in
            different units); ellipses are then stretched, but the thresholds
            and ellipses this package returns are mapped back exactly either way.
        axis_labels : sequence of str, optional
        units : str, optional
        name : str

        Returns
        -------
        StimulusSpace
        """
        lo, hi = as_vector("lo", lo), as_vector("hi", hi)
        if lo.shape != hi.shape:
            raise InvalidInput(f"lo and hi must have the same length, got {lo.size} and "
                               f"{hi.size}")
        if np.any(hi <= lo):
            raise InvalidInput(f"hi must exceed lo on every axis, got lo={lo.tolist()}, "
                               f"hi={hi.tolist()}")
        width = hi - lo
        scale = 2.0 / (np.full_like(width, width.max()) if shape_preserving else width)
        centre = 0.5 * (lo + hi)
        args = {"kind": "box", "lo": lo.tolist(), "hi": hi.tolist(),
                "shape_preserving": bool(shape_preserving), "name": str(name),
                "axis_labels": None if axis_labels is None else list(axis_labels),
                "units": str(units)}
        return cls(np.diag(scale), -scale * centre, lo=lo, hi=hi, name=name,
                   axis_labels=axis_labels, units=units, _args=args)

    @classmethod
    def affine(cls, matrix, offset=None, *, lo=None, hi=None, axis_labels=None, units="",
               name="affine") -> StimulusSpace:
        """A general affine map ``model = matrix @ x + offset``.

        E.g. Hong et al.'s (2025) map from monitor RGB to their 2-D model
        space. Without ``lo``/``hi`` the domain is every ``x`` that maps into
        ``[-1, 1]^d``.

        Parameters
        ----------
        matrix : array (d, d)
            Invertible.
        offset : array (d,), optional
            Default zeros.
        lo, hi : array (d,), optional
            Lab-unit bounds (they must map inside the box).
        axis_labels, units, name : optional
        """
        A = np.asarray(matrix, dtype=np.float64)
        b = np.zeros(A.shape[0]) if offset is None else offset
        return cls(A, b, lo=lo, hi=hi, name=name, axis_labels=axis_labels, units=units)

    @classmethod
    def colour(cls, name: str, lo, hi, *, white="D65", Y: float = 1.0, L: float = 50.0,
               background_Y: float = 0.5, calibration=None, cones: str = "Von Kries",
               shape_preserving: bool = True, observer: str = OBSERVER) -> StimulusSpace:
        """A colour space, bounded by ``[lo, hi]`` in its own coordinates (as :meth:`box`).

        Colour conversions go through colour-science (``colour``). XYZ values
        are relative: the white has ``Y = 1`` (colour's reference scale).

        Parameters
        ----------
        name : str
            ``"xy"`` (2-D chromaticity at the fixed luminance ``Y``), ``"xyY"``
            (3-D), ``"XYZ"``, ``"Lab"``/``"CIELAB"`` (3-D ``L* a* b*``, or 2-D
            ``a* b*`` at the fixed lightness ``L``), ``"Luv"``/``"CIELUV"``
            (likewise), ``"LMS"`` (cone excitations), ``"DKL"`` (3-D, or 2-D
            isoluminant ``L-M``, ``S-(L+M)``) or ``"RGB"`` (monitor values;
            needs ``calibration``). The dimension is that of ``lo``.
        lo, hi : array (d,)
            Bounds of the stimuli in the space's coordinates.
        white : str or (x, y)
            The reference white: an illuminant of ``observer`` (default
            ``"D65"``) or its chromaticity. With a ``calibration`` the white is
            the monitor's (all primaries at full drive) unless given.
        Y : float
            Luminance of ``"xy"`` stimuli relative to the white (default 1).
        L : float
            Lightness of 2-D CIELAB/CIELUV stimuli (default 50).
        background_Y : float
            DKL: luminance (relative to the white) of the white-chromaticity
            background the cone increments are taken from (default 0.5).
        calibration : dict, optional
            A monitor calibration: ``primaries`` (3 xy chromaticities, R G B),
            ``luminances`` (3 luminances of the primaries at full drive, any
            unit, e.g. cd/m^2), and ``gamma`` (a number, default 2.2) or
            ``lut`` (a table (K, 3) of linear light for K equally spaced drive
            values per channel). Used by ``"RGB"``, sets the white of every
            other space, and lets :meth:`from_rgb` express monitor values in
            this space.
        cones : str
            LMS/DKL: the XYZ -> LMS matrix, a name of
            :data:`colour.CHROMATIC_ADAPTATION_TRANSFORMS` (default ``"Von
            Kries"``: the Hunt-Pointer-Estevez cone fundamentals).
        shape_preserving : bool
            As :meth:`box` (default ``True``).
        observer : str
            CIE standard observer of the illuminant table.
        """
        lo, hi, labels, units, col, args = colour_space(
            name, lo, hi, white=white, Y=Y, L=L, background_Y=background_Y,
            calibration=calibration, cones=cones, shape_preserving=shape_preserving,
            observer=observer)
        space = cls.box(lo, hi, shape_preserving=shape_preserving, axis_labels=labels,
                        units=units, name=args["name"])
        return cls(space.matrix, space.offset, lo=lo, hi=hi, name=args["name"],
                   axis_labels=labels, units=units, colour=col, _args=args)

    # -- serialisation (psyphy_numpyro.spacefile) ---------------------------------------
    def to_dict(self) -> dict:
        """A JSON-ready description (:meth:`from_dict` rebuilds an equal space).

        Holds the constructor and its arguments (``kind``: ``box``, ``affine``
        or ``colour``) and, for reading, the resulting ``matrix`` and ``offset``.
        """
        return space_to_dict(self._args, self._matrix, self._offset)

    @classmethod
    def from_dict(cls, description) -> StimulusSpace:
        """A space from :meth:`to_dict`'s output or a hand-written description.

        ``kind`` is ``"box"`` (``lo``, ``hi``, optional ``shape_preserving``,
        ``axis_labels``, ``units``), ``"colour"`` (``name``, ``lo``, ``hi`` and
        the optional arguments of :meth:`colour`) or ``"affine"`` (``matrix``,
        optional ``offset``, ``lo``, ``hi``...). Without ``kind``: ``colour``
        when a colour-space ``name`` is given, else ``affine`` when a
        ``matrix`` is, else ``box``.
        """
        if isinstance(description, StimulusSpace):
            return description
        return space_from_dict(cls, description)

    @classmethod
    def from_file(cls, path) -> StimulusSpace:
        """Read a description (see :meth:`from_dict`) from a ``.json`` or ``.toml`` file.

        Examples
        --------
        A TOML file::

            kind = "colour"
            name = "xy"
            lo = [0.24, 0.26]
            hi = [0.38, 0.40]
            white = "D65"
            Y = 0.5
        """
        return cls.from_dict(read_description(path))

    def to_json(self) -> str:
        """:meth:`to_dict` as one line of JSON (used in fit files and CSV sidecars)."""
        return space_to_json(self.to_dict())

    def save(self, path) -> None:
        """Write :meth:`to_dict` as a JSON file (read back by :meth:`from_file`)."""
        write_description(path, self.to_dict())

    # -- properties -------------------------------------------------------------------
    input_dim = property(lambda self: self._matrix.shape[0], doc="The dimension d.")
    matrix = property(lambda self: self._matrix, doc="A of model = A x + b.")
    offset = property(lambda self: self._offset, doc="b of model = A x + b.")
    lo = property(lambda self: self._lo, doc="Lower lab-unit bounds (or None).")
    hi = property(lambda self: self._hi, doc="Upper lab-unit bounds (or None).")
    name = property(lambda self: self._name, doc="The space's name.")
    axis_labels = property(lambda self: self._labels, doc="One label per axis.")
    units = property(lambda self: self._units, doc="The units in words.")
    colour_info = property(lambda self: None if self._colour is None else dict(self._colour),
                           doc="The colour description (None for non-colour spaces).")

    @property
    def is_colour(self) -> bool:
        """Whether stimuli can be expressed as CIE XYZ (and so as colour differences)."""
        return self._colour is not None

    @property
    def jacobian(self) -> np.ndarray:
        """``J = d x / d model = A^-1`` (d, d): a model-unit offset ``v`` is ``J v`` in lab
        units."""
        return self._inverse

    @property
    def scale(self) -> float:
        """Lab units per model unit along a typical axis: ``|det J|^(1/d)``."""
        return float(abs(np.linalg.det(self._inverse)) ** (1.0 / self.input_dim))

    # -- maps ---------------------------------------------------------------------------
    def _points(self, x, name) -> np.ndarray:
        return as_points(self, x, name)

    def check(self, x, name: str = "stimuli", *, locate=None) -> np.ndarray:
        """``x`` (..., d) in lab units as a float64 array, after checking it lies in the domain.

        Parameters
        ----------
        x : array (..., d)
        name : str
            What ``x`` is, for the message.
        locate : callable, optional
            Index tuple -> words (e.g. ``"trial 5 (comparison, coordinate 0)"``).

        Raises
        ------
        ValueError
            A non-finite value, or a point outside the bounds (beyond
            :data:`SPACE_TOL` of the width): the message names the first such
            entry, its value and the bounds in the space's units.
        """
        return check_domain(self, x, name, locate)

    def to_model(self, x, *, check: bool = True, name: str = "stimuli", locate=None):
        """Lab units -> the model's box: ``A x + b`` for points ``x`` (..., d).

        With ``check`` (default) points outside the domain are a ``ValueError``
        (see :meth:`check`).
        """
        arr = self.check(x, name, locate=locate) if check else self._points(x, name)
        return arr @ self._matrix.T + self._offset

    def to_lab(self, m) -> np.ndarray:
        """The model's box -> lab units: ``A^-1 (m - b)`` for points ``m`` (..., d)."""
        arr = self._points(m, "model points")
        return (arr - self._offset) @ self._inverse.T

    def vectors_to_lab(self, v) -> np.ndarray:
        """Model-unit offsets (..., d) -> lab units: ``J v`` (no translation)."""
        return self._points(v, "vectors") @ self._inverse.T

    def vectors_to_model(self, v) -> np.ndarray:
        """Lab-unit offsets (..., d) -> model units: ``A v``."""
        return self._points(v, "vectors") @ self._matrix.T

    def covariance_to_lab(self, S) -> np.ndarray:
        """Model-unit covariances or ellipses (..., d, d) -> lab units: ``J S J^T``."""
        J = self._inverse
        return np.einsum("ij,...jk,lk->...il", J, np.asarray(S, dtype=np.float64), J)

    def covariance_to_model(self, S) -> np.ndarray:
        """Lab-unit covariances or ellipses (..., d, d) -> model units: ``A S A^T``."""
        A = self._matrix
        return np.einsum("ij,...jk,lk->...il", A, np.asarray(S, dtype=np.float64), A)

    # -- colour ---------------------------------------------------------------------------
    def to_xyz(self, x) -> np.ndarray:
        """Stimuli (..., d) in this colour space -> CIE XYZ (white ``Y = 1``), via ``colour``."""
        col = need_colour(self._colour, "to_xyz", self._name)
        return to_xyz(col, self._points(x, "stimuli"))

    def from_xyz(self, xyz) -> np.ndarray:
        """CIE XYZ (white ``Y = 1``) -> this colour space's coordinates (3-D spaces, and the
        planes of 2-D ones: the fixed coordinate is dropped)."""
        return from_xyz(need_colour(self._colour, "from_xyz", self._name), xyz, self.input_dim)

    def from_rgb(self, rgb) -> np.ndarray:
        """Monitor drive values (..., 3) in [0, 1] -> this space's coordinates, through the
        space's calibration (gamma or lookup table)."""
        col = need_colour(self._colour, "from_rgb", self._name)
        if "calibration" not in col:
            raise InvalidInput("from_rgb needs a space built with a monitor calibration=")
        return self.from_xyz(rgb_to_xyz(col["calibration"], np.asarray(rgb, np.float64)))

    def to_cielab(self, x) -> np.ndarray:
        """Stimuli (..., d) -> CIELAB ``L* a* b*`` relative to the space's white (via
        ``colour``)."""
        col = need_colour(self._colour, "to_cielab", self._name)
        return xyz_to_cielab(col, self.to_xyz(x))

    def delta_e(self, x1, x2, method: str = "CIE 2000") -> np.ndarray:
        """Colour differences between stimuli ``x1`` and ``x2`` (..., d) in this space.

        Parameters
        ----------
        x1, x2 : arrays (..., d)
        method : str
            A method of :func:`colour.delta_E`: ``"CIE 1976"`` (ΔE76), ``"CIE 1994"``
            (ΔE94), ``"CIE 2000"`` (ΔE2000, default), ``"CMC"``, ...

        Returns
        -------
        numpy array (...)
        """
        need_colour(self._colour, "delta_e", self._name)
        lab1, lab2 = self.to_cielab(x1), self.to_cielab(x2)
        return delta_e(lab1, lab2, method)

    # -- comparison and display ---------------------------------------------------------------
    def __eq__(self, other) -> bool:
        if not isinstance(other, StimulusSpace):
            return NotImplemented
        return self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __repr__(self) -> str:
        if self._lo is not None:
            fmt = lambda v: "[" + ", ".join(f"{a:.6g}" for a in v) + "]"  # noqa: E731
            where = f"lo={fmt(self._lo)}, hi={fmt(self._hi)}"
        else:
            where = f"matrix={np.array2string(self._matrix, precision=4, separator=', ')}"
        kind = self._args.get("kind")
        sp = "" if kind != "box" and kind != "colour" or self._args.get(
            "shape_preserving", True) else ", shape_preserving=False"
        units = f", units={self._units!r}" if self._units else ""
        return (f"StimulusSpace({self._name!r}, axes={list(self._labels)}, {where}{sp}"
                f"{units})")

    def __reduce__(self):
        return (StimulusSpace.from_dict, (self.to_dict(),))
