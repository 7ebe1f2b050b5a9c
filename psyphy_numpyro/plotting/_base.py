"""Shared plotting helpers: lazy matplotlib, keyword and covariance checks, saving."""

from __future__ import annotations

import os

import numpy as np

from ..errors import InvalidInput, InvalidType
from ..validation import check_array

__all__ = ["save_figure", "check_figure_path"]

_FORMATS = (".png", ".pdf", ".svg")


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
