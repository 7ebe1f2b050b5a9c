"""Shared plotting helpers: lazy matplotlib, keyword and covariance checks, saving."""

from __future__ import annotations

import os

import numpy as np

from ..errors import InvalidInput, InvalidType
from ..validation import check_array

__all__ = ["save_figure", "check_figure_path", "PALETTE", "COLORS"]

_FORMATS = (".png", ".pdf", ".svg")

#: Okabe & Ito (2008) colours, distinguishable with every common colour-vision
#: deficiency and in greyscale print (black is left out; it marks references
#: and ground truth). Every figure of the package takes its colours from here.
COLORS = {
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "green": "#009E73",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
}
#: The colour cycle: blue, vermillion, bluish green, orange, sky blue, reddish purple, yellow.
PALETTE = tuple(COLORS[k] for k in ("blue", "vermillion", "green", "orange", "sky", "purple",
                                    "yellow"))
#: Axis label of a stimulus dimension (the model's coordinates span [-1, 1]).
AXIS_NAMES = ("x", "y", "z")


def axis_label(k: int, d: int, space=None) -> str:
    """Label of stimulus dimension ``k`` (0-based) of a ``d``-D space, with its units.

    With a :class:`~psyphy_numpyro.StimulusSpace`: the space's axis label (e.g.
    ``"CIE x"``), and its units for spaces that are not colour spaces.
    """
    if space is not None:
        label = space.axis_labels[k]
        return f"{label} ({space.units})" if space.units and not space.is_colour else label
    if d == 1:
        return "stimulus x (model units, [-1, 1])"
    return f"stimulus {AXIS_NAMES[k]} (model units, [-1, 1])"


def set_axis_labels(ax, d, plane, space=None):
    """Axis labels (the space's, in its units, when there is one), where none is set yet."""
    if not ax.get_xlabel():
        ax.set_xlabel(axis_label(plane[0], d, space))
    if not ax.get_ylabel():
        ax.set_ylabel("reference (row)" if d == 1 else axis_label(plane[1], d, space))


def legend_outside(ax, **kwargs):
    """A legend to the right of the axes (never over the data); ``None`` when nothing is
    labelled."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    opts = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "fontsize": 8,
            "frameon": False, "borderaxespad": 0.0, "alignment": "left"}
    return ax.legend(handles, labels, **{**opts, **kwargs})


def figure_legend(fig, axes, title=None):
    """One legend below a row of panels (outside every one) of the labels of all of them.

    With nothing labelled, ``title`` is still written there as text (a
    figure's stated scale must not vanish with its legend).
    """
    seen = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, h)
    if not seen:
        if title:
            fig.text(0.5, 0.005, title, ha="center", va="bottom", fontsize=9)
        return None
    return fig.legend(list(seen.values()), list(seen), loc="outside lower center",
                      ncol=len(seen), fontsize=9, frameon=False, title=title,
                      title_fontsize=9)


def unit_ticks(ax, x=True, y=True):
    """Ticks at -1, -0.5, 0, 0.5, 1 (model units) so that tick labels never collide."""
    ticks = [-1.0, -0.5, 0.0, 0.5, 1.0]
    if x:
        ax.set_xticks(ticks)
    if y:
        ax.set_yticks(ticks)


def plane_covariances(covs, plane, cut="section"):
    """2 x 2 covariances of 3 x 3 ones in the plane of two coordinates.

    Parameters
    ----------
    covs : array (..., 3, 3)
    plane : pair of distinct ints in 0..2
        The two coordinates spanning the plane; the third is held fixed.
    cut : {"section", "marginal"}
        ``"section"``: the ellipsoid cut by the plane, ``(P' S^-1 P)^-1`` =
        the conditional covariance ``S_pp - S_pq S_qq^-1 S_qp`` (for a
        threshold ellipsoid: the contour of comparisons inside the plane);
        ``"marginal"``: the 2 x 2 sub-block ``S_pp`` (the ellipsoid's shadow
        on the plane, always at least as large as the section).

    Returns
    -------
    numpy array (..., 2, 2)
    """
    i, j = check_plane(plane)
    if cut not in ("section", "marginal"):
        raise InvalidInput(f'cut must be "section" or "marginal", got {cut!r}')
    covs = np.asarray(covs, dtype=float)
    if covs.shape[-2:] != (3, 3):
        raise InvalidInput(f"plane covariances need (..., 3, 3) covariances, got {covs.shape}")
    idx = [i, j]
    if cut == "marginal":
        return covs[..., idx, :][..., :, idx]
    (k,) = {0, 1, 2} - {i, j}
    s_pp = covs[..., idx, :][..., :, idx]
    s_pq = covs[..., idx, k]
    s_qq = covs[..., k, k]
    ok = s_qq > 0
    safe = np.where(ok, s_qq, 1.0)
    out = s_pp - s_pq[..., :, None] * s_pq[..., None, :] / safe[..., None, None]
    return np.where(ok[..., None, None], out, np.nan)


def check_plane(plane):
    """``plane`` as a pair of distinct coordinates in 0..2 (ValueError otherwise)."""
    try:
        i, j = (int(v) for v in plane)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"plane must be a pair of coordinates, e.g. (0, 1), got {plane!r}"
        ) from None
    if i == j or not (0 <= i <= 2 and 0 <= j <= 2):
        raise InvalidInput(f"plane must be two distinct coordinates in 0..2, got {plane!r}")
    return i, j


def cut_text(cut: str) -> str:
    """How a 3-D slice's ellipses were made, for a figure caption."""
    return ("sections of the ellipsoids by the plane" if cut == "section"
            else "2x2 sub-blocks of Sigma (marginal)")


def new_axes(ax, d, *, figsize2=(6.0, 6.0), figsize1=(7.0, 4.0)):
    """``(fig, axes)``: the given axes or a new figure (one panel; three in 3-D)."""
    plt = _plt()
    if d == 3:
        if ax is None:
            fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.9), layout="constrained")
            return fig, list(axes)
        axes = list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) != 3:
            raise InvalidInput(f"3-D figures draw three slices: pass ax as three Axes, got "
                               f"{len(axes)}")
        return axes[0].figure, axes
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize2 if d == 2 else figsize1)
        return fig, ax
    return ax.figure, ax


def own_axes(ax, figsize=(6.4, 4.4)):
    """``ax``, or the axes of a new figure when ``ax`` is ``None``.

    Every plot function opens its own figure rather than drawing into
    whatever figure is current (``plt.gca()``), so two calls without ``ax``
    give two figures.
    """
    if ax is not None:
        return ax
    _, ax = _plt().subplots(figsize=figsize, layout="constrained")
    return ax


def _plt():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ImportError(
            "plotting needs matplotlib: pip install matplotlib"
        ) from exc
    return plt


def _check_style(func, style, artist="line"):
    """TypeError naming keyword arguments the matplotlib artist does not accept.

    Checked before anything is drawn (matplotlib itself raises
    ``AttributeError`` halfway through a figure).
    """
    from matplotlib import cbook, collections, lines, patches

    cls = {
        "line": lines.Line2D,
        "patch": patches.Polygon,
        "lines": collections.LineCollection,
    }[artist]
    props = cbook.normalize_kwargs(style, cls)
    unknown = sorted(k for k in props if not callable(getattr(cls, f"set_{k}", None)))
    if unknown:
        raise InvalidType(
            f"{func}() got unexpected keyword argument(s) {unknown}: extra keywords are "
            f"passed to matplotlib's {cls.__name__}, which has no such properties"
        )


def _check_covs(name, covs, shape_msg=None):
    """Finite, symmetric positive definite 2 x 2 covariances ``(..., 2, 2)``."""
    covs = check_array(name, covs)
    if covs.ndim < 2 or covs.shape[-2:] != (2, 2):
        raise InvalidInput(shape_msg or f"{name} must have shape (..., 2, 2), got {covs.shape}")
    asym = np.abs(covs - np.swapaxes(covs, -1, -2)) > 1e-6 * (np.abs(covs).max() + 1e-300)
    det = covs[..., 0, 0] * covs[..., 1, 1] - covs[..., 0, 1] * covs[..., 1, 0]
    bad = asym.any((-1, -2)) | (covs[..., 0, 0] <= 0) | (det <= 0)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f"{name}[{', '.join(map(str, idx))}]" if idx else name
        raise InvalidInput(
            f"{where} = {covs[idx].tolist()} is not a symmetric positive definite covariance "
            f"({int(bad.sum())} of {bad.size} bad); pass Sigma(x) from fit.covariance / "
            "model.covariance"
        )
    return covs


def save_figure(fig, path, *, dpi: int = 300) -> None:
    """Write a figure as PNG (``dpi``, default 300), PDF or SVG, chosen by the extension.

    Raises
    ------
    ValueError
        An extension other than ``.png``, ``.pdf`` or ``.svg``.
    FileNotFoundError
        The target directory does not exist.
    """
    path = check_figure_path(path)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")


def check_figure_path(path) -> str:
    """``path`` as a string after checking its extension and directory (before any work)."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in _FORMATS:
        raise InvalidInput(f"{path}: figures are written as {', '.join(_FORMATS)}; "
                           f"got {ext or 'no extension'!r}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{path}: directory {directory!r} does not exist")
    return path
