"""The result of :func:`~psyphy_numpyro.thresholds`: contours, ellipses, tables, CSV.

A :class:`Thresholds` holds the threshold distance along every ray around
every reference (per posterior draw for draw-based fits), the least-squares
ellipses through the boundary points (:func:`fit_ellipse`; intervals in 1-D;
both in :mod:`psyphy_numpyro.rays`, re-exported here)
and, for draw-based fits, medians and credible intervals. :meth:`Thresholds.table`
turns them into one row of ellipse parameters per reference, and
:meth:`Thresholds.to_csv` writes that table.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .csvio import write_csv
from .errors import InvalidInput
from .rays import (  # re-exported: the rays and ellipses
    fit_ellipse,
    intervals_1d,
    length_quantiles,
    ray_extent,
    unit_directions,
)

__all__ = [
    "Thresholds",
    "fit_ellipse",
    "threshold_table",
    "unit_directions",
    "ray_extent",
    "length_quantiles",
    "intervals_1d",
]

_AXES = ("x", "y", "z")


@dataclass(frozen=True)
class Thresholds:
    """Discrimination thresholds around a set of references.

    Attributes
    ----------
    refs : numpy array (R, d)
    directions : numpy array (D, d)
        Unit directions of the rays.
    lengths : numpy array (R, D) or (num_draws, R, D)
        Distance from each reference to the ``target`` contour along each
        direction; NaN where p(correct) stays below ``target`` up to the domain
        edge (or ``max_distance``).
    points : numpy array (..., R, D, d)
        Boundary points ``refs + lengths * directions``.
    ellipses : numpy array (..., R, d, d) or, in 1-D, (..., R, 2)
        Least-squares threshold ellipses ``E`` (boundary ``(x-r)' E^-1 (x-r) = 1``,
        see :func:`fit_ellipse`); in 1-D the intervals ``[lower, upper]``.
    max_lengths : numpy array (R, D)
        Upper end of each ray's search bracket.
    target : float
        The p(correct) level of the contour.
    median, interval : numpy arrays (R, D) and (2, R, D), draw-based fits only
        Posterior median and central credible interval (``level``) of the lengths.
    level : float, draw-based fits only
    space : StimulusSpace or None
        The units of every array above (``None``: the model's box).
    """

    refs: np.ndarray
    directions: np.ndarray
    lengths: np.ndarray
    points: np.ndarray
    ellipses: np.ndarray
    max_lengths: np.ndarray = field(repr=False)
    target: float = 2.0 / 3.0
    median: np.ndarray | None = None
    interval: np.ndarray | None = None
    level: float | None = None
    space: object = field(default=None, repr=False)

    @property
    def input_dim(self) -> int:
        return int(self.refs.shape[-1])

    @property
    def has_draws(self) -> bool:
        """True for results of a draw-based fit (``lengths`` has a draws axis)."""
        return self.lengths.ndim == 3

    @property
    def median_points(self) -> np.ndarray:
        """Boundary points of the median lengths, ``(R, D, d)``."""
        lengths = self.median if self.has_draws else self.lengths
        return self.refs[:, None, :] + lengths[..., None] * self.directions[None]

    @property
    def median_ellipses(self) -> np.ndarray:
        """Ellipses (intervals in 1-D) fitted to the median lengths, ``(R, d, d)``."""
        if not self.has_draws:
            return self.ellipses
        if self.input_dim == 1:
            return intervals_1d(self.refs, self.median, self.directions)
        return fit_ellipse(self.median_points - self.refs[:, None, :])

    def table(self, refs=None):
        """One row of ellipse parameters per reference, as a ``pandas.DataFrame``.

        Parameters
        ----------
        refs : array (R, d), optional
            The references as given (``self.refs`` holds them in the fit's dtype).

        Returns
        -------
        pandas.DataFrame
            One row per reference, columns ``ref_x ...``; in 1-D ``lower,
            upper``; in 2-D and 3-D the upper triangle ``E_xx, E_xy ...`` of the
            median ellipse, then in 2-D ``semi_major, semi_minor, angle_deg``
            (degrees in [0, 180)) and in 3-D ``axis_1..3`` (semi-axes, largest
            first); for draw-based fits ``*_lo``/``*_hi`` credible bounds
            (``level``) of the interval ends or semi-axes; last ``missing_rays``
            (rays without a crossing, an integer column). Floats are float64 at
            full precision (pandas prints them rounded to its display
            precision; ``to_csv`` writes every digit).

        See Also
        --------
        threshold_table : the same table as ``(names, values)`` arrays.
        """
        import pandas as pd

        names, values = threshold_table(self, refs)
        frame = pd.DataFrame(values, columns=names)
        frame["missing_rays"] = frame["missing_rays"].astype(np.int64)
        frame.attrs["target"] = float(self.target)
        if self.level is not None:
            frame.attrs["level"] = float(self.level)
        return frame

    def to_csv(self, path, refs=None) -> None:
        """Write :meth:`table` to a CSV file, atomically (a temporary file moved over it).

        Values keep full precision: ``repr`` of a float64, 9 significant
        digits (an exact round trip) for float32 fits.
        """
        names, values = threshold_table(self, refs)
        single = np.asarray(self.lengths).dtype == np.float32

        def cell(n, v):
            if n == "missing_rays":
                return int(v)
            return f"{v:.9g}" if single and not n.startswith("ref_") else repr(float(v))

        write_csv(path, names,
                  ([cell(n, v) for n, v in zip(names, row, strict=True)] for row in values))

    def delta_e(self, method: str = "CIE 2000", *, median: bool = True) -> np.ndarray:
        """Colour difference between each reference and its threshold points, ``(R, D)``.

        Each boundary point and its reference are expressed in CIELAB by the
        space (:meth:`StimulusSpace.delta_e`) and compared with
        :func:`colour.delta_E`.

        Parameters
        ----------
        method : str
            ``"CIE 1976"`` (ΔE76), ``"CIE 1994"`` (ΔE94), ``"CIE 2000"`` (ΔE2000,
            default) or another method of :func:`colour.delta_E`.
        median : bool
            Draw-based fits: of the median lengths (default) or, ``False``, per
            draw ``(num_draws, R, D)``.

        Returns
        -------
        numpy array (R, D) or (num_draws, R, D)
            NaN on rays without a crossing.

        Raises
        ------
        ValueError
            The thresholds are not in a colour space.
        """
        if self.space is None or not getattr(self.space, "is_colour", False):
            raise InvalidInput("delta_e needs thresholds in a colour space: fit data with "
                               "space=pn.StimulusSpace.colour(...), or pass space= to "
                               "pn.thresholds")
        pts = self.median_points if (median or not self.has_draws) else self.points
        refs = np.broadcast_to(self.refs[:, None, :], pts.shape)
        ok = np.all(np.isfinite(pts), -1)
        safe = np.where(ok[..., None], pts, refs)
        return np.where(ok, self.space.delta_e(refs, safe, method=method), np.nan)



def _axes_2d(E):
    """semi_major, semi_minor, angle (deg in [0, 180)) of 2x2 ellipses (..., 2, 2)."""
    ok = np.all(np.isfinite(E), axis=(-1, -2))
    safe = np.where(ok[..., None, None], E, np.eye(2))
    lam, vec = np.linalg.eigh(safe)
    major = np.sqrt(np.maximum(lam[..., 1], 0.0))
    minor = np.sqrt(np.maximum(lam[..., 0], 0.0))
    angle = np.degrees(np.arctan2(vec[..., 1, 1], vec[..., 0, 1])) % 180.0
    nan = np.where(ok, 1.0, np.nan)
    return major * nan, minor * nan, angle * nan


def _axes_nd(E):
    ok = np.all(np.isfinite(E), axis=(-1, -2))
    d = E.shape[-1]
    safe = np.where(ok[..., None, None], E, np.eye(d))
    lam = np.linalg.eigvalsh(safe)[..., ::-1]
    return np.sqrt(np.maximum(lam, 0.0)) * np.where(ok, 1.0, np.nan)[..., None]


def _nanquantile(x, q):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(x, q, axis=0)


def threshold_table(th, refs=None) -> tuple[list[str], np.ndarray]:
    """Column names and rows (R, C) of ellipse parameters (:meth:`Thresholds.table`)."""
    refs = np.asarray(th.refs if refs is None else refs, dtype=float)
    d = refs.shape[1]
    axes = _AXES[:d]
    names = [f"ref_{a}" for a in axes]
    cols = [refs[:, k] for k in range(d)]
    med = np.asarray(th.median_ellipses, dtype=float)
    q = [(1 - th.level) / 2, (1 + th.level) / 2] if th.has_draws else None
    if d == 1:
        names += ["lower", "upper"]
        cols += [med[:, 0], med[:, 1]]
        if th.has_draws:
            E = np.asarray(th.ellipses, dtype=float)  # (S, R, 2)
            for j, n in enumerate(("lower", "upper")):
                lo, hi = _nanquantile(E[..., j], q)
                names += [f"{n}_lo", f"{n}_hi"]
                cols += [lo, hi]
    else:
        iu, ju = np.triu_indices(d)
        for i, j in zip(iu, ju, strict=True):
            names.append(f"E_{axes[i]}{axes[j]}")
            cols.append(med[:, i, j])
        if d == 2:
            major, minor, angle = _axes_2d(med)
            names += ["semi_major", "semi_minor", "angle_deg"]
            cols += [major, minor, angle]
            if th.has_draws:
                dmaj, dmin, _ = _axes_2d(np.asarray(th.ellipses, dtype=float))
                for n, v in (("semi_major", dmaj), ("semi_minor", dmin)):
                    lo, hi = _nanquantile(v, q)
                    names += [f"{n}_lo", f"{n}_hi"]
                    cols += [lo, hi]
        else:
            ax = _axes_nd(med)
            names += [f"axis_{k + 1}" for k in range(d)]
            cols += [ax[:, k] for k in range(d)]
            if th.has_draws:
                dax = _axes_nd(np.asarray(th.ellipses, dtype=float))
                for k in range(d):
                    lo, hi = _nanquantile(dax[..., k], q)
                    names += [f"axis_{k + 1}_lo", f"axis_{k + 1}_hi"]
                    cols += [lo, hi]
    lengths = th.median if th.has_draws else th.lengths
    names.append("missing_rays")
    cols.append(np.sum(np.isnan(lengths), axis=-1).astype(float))
    return names, np.stack(cols, axis=1)
