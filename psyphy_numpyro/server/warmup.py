"""Start-up imports of the server: JAX and the fitters imported in the background when
it starts (:func:`import_fitters`), what the first ``ask`` needs imported when the first
session opens (:func:`warm_up`), and :data:`IMPORT_LOCK`, which keeps two threads from
importing those modules at once."""

from __future__ import annotations

import threading

__all__ = ["IMPORT_LOCK", "import_fitters", "warm_up"]

_WARM = []

IMPORT_LOCK = threading.Lock()
"""Held while the fitters are imported in the background, and by whatever else imports
them (opening a session, reading out thresholds): two threads importing JAX's modules at
once can see them half initialised."""


def import_fitters():
    """Import JAX and the fitters in the background when the server starts: the first
    refit imports them otherwise, from inside the ``tell`` that makes it due."""
    with IMPORT_LOCK:
        try:
            from scipy.stats import qmc  # noqa: F401

            from .. import (  # noqa: F401
                contours,
                data,
                fits,
                hyperparameters,
                laplace,
                map_fit,
                model,
                persist,
                readout,
            )
            from ..design import acquisition, session  # noqa: F401
        except Exception:  # noqa: BLE001, S110 - the refit will report it
            pass


def warm_up():
    """Import what the first ``ask`` needs (SciPy's Sobol sequences: about a second) when
    the first session opens, not in the first trial's request."""
    if not _WARM:
        from ..design.nonadaptive import space_filling_trials

        space_filling_trials(1, 2, seed=0)
        _WARM.append(True)
