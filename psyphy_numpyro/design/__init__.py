"""Experimental design: where to put the next trials, and the live session that asks for them.

``acquisition`` scores candidate trials by the information one response
carries about the field under a posterior fit and picks diverse batches;
``store`` is the session file (SQLite, WAL, the ownership lease; no JAX);
``refit`` the refit pipeline; ``session`` is :class:`Experiment`, the
crash-safe ask/tell session that runs the space-filling start, the refits and
the adaptive batches.

The names below load on first use (PEP 562), so importing
:mod:`psyphy_numpyro.design.store` (the command line's read-only calls) does
not import JAX.
"""

from __future__ import annotations

import importlib
import importlib.util

# public name -> the submodule that defines it
_EXPORTS = {
    "CRITERIA": ".acquisition",
    "candidate_trials": ".acquisition",
    "inside_domain": ".acquisition",
    "propose_trials": ".acquisition",
    "random_trials": ".acquisition",
    "score_trials": ".acquisition",
    "space_filling_trials": ".acquisition",
    "Experiment": ".session",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        if name.startswith("_") or importlib.util.find_spec(f"{__name__}.{name}") is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return importlib.import_module(f".{name}", __name__)  # a submodule: design.store
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
