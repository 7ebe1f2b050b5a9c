"""Experimental design: where to put the next trials, and the live session that asks for them.

``nonadaptive`` places trials without a fit (the space-filling sequence, the
random baseline); ``acquisition`` scores candidate trials by the information one
response carries about the field under a posterior fit and picks diverse batches;
``store`` is the session file (SQLite, WAL, the ownership lease; no JAX);
``refit`` the refit pipeline; ``session`` is :class:`Experiment`, the
crash-safe ask/tell session that runs the space-filling start, the refits and
the adaptive batches (``view`` its read-only side, the base class ``SessionView``).

The names below load on first use (PEP 562), so importing
:mod:`psyphy_numpyro.design.store` (the command line's read-only calls) does
not import JAX.
"""

# ruff: noqa: F401  (the TYPE_CHECKING imports exist for type checkers and griffe)
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

# public name -> the submodule that defines it
_EXPORTS = {
    "CRITERIA": ".acquisition",
    "candidate_trials": ".acquisition",
    "inside_domain": ".nonadaptive",
    "propose_trials": ".acquisition",
    "random_trials": ".nonadaptive",
    "score_trials": ".acquisition",
    "space_filling_trials": ".nonadaptive",
    "Experiment": ".session",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and the API docs (griffe)
    from .acquisition import CRITERIA, candidate_trials, propose_trials, score_trials
    from .nonadaptive import inside_domain, random_trials, space_filling_trials
    from .session import Experiment


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
