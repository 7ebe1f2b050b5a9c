"""The stimulus-space sidecar of a CSV file: ``<file>.space.json``.

One concept: where :meth:`TrialData.to_csv <psyphy_numpyro.data.TrialData.to_csv>`
stores the data's :class:`~psyphy_numpyro.space.StimulusSpace` next to the CSV
(the CSV itself keeps the plain layout) and where
:meth:`TrialData.from_csv <psyphy_numpyro.data.TrialData.from_csv>` finds it.
"""

from __future__ import annotations

import os

from .space import StimulusSpace

__all__ = ["sidecar_path", "read_sidecar", "write_sidecar"]


def sidecar_path(path) -> str:
    """The space sidecar of a CSV file: ``<path>.space.json``."""
    return os.fspath(path) + ".space.json"


def read_sidecar(path) -> StimulusSpace | None:
    """The space :meth:`TrialData.to_csv` stored next to ``path``, or ``None``."""
    side = sidecar_path(path)
    if not os.path.isfile(side):
        return None
    return StimulusSpace.from_file(side)


def write_sidecar(path, space) -> None:
    """Store ``space`` next to ``path`` (``None``: remove a stale sidecar)."""
    side = sidecar_path(path)
    if space is None:
        if os.path.isfile(side):
            os.unlink(side)
        return
    space.save(side)
