"""The JSON replies of a session's ``ask``, ``tell`` and ``status``: one schema for the
command line (``psyphy-numpyro experiment ...``) and the session server
(``psyphy-numpyro serve``).

Both build their replies with these functions from an open
:class:`~psyphy_numpyro.Experiment`, so a program that parses one parses the
other (the schema is documented once, in ``docs/server.md``). Only the
``refit`` object differs in where it comes from: the command line starts
refits in processes of its own, the server runs them in a thread of its
process; both report ``{"state": ..., "next_refit_at": ...}``.

The module imports neither JAX nor NumPy at import time: building a reply
only reads the session file.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["REFIT_STATES", "ask_reply", "tell_reply", "status_reply", "settings_reply",
           "latest_fit_reply", "refit_reply"]

REFIT_STATES = ("not_due", "due", "started", "running", "finished", "up_to_date", "off",
                "failed", "interrupted")
"""Values of ``refit["state"]`` (see ``docs/server.md``)."""


def settings_reply(exp) -> dict:
    """The session's settings: ``input_dim``, ``seed``, ``num_initial``, ``refit_every``,
    ``distances``, ``fit_options``, ``model`` and ``model_chosen_from_data``."""
    s = exp.settings
    return {"input_dim": exp.input_dim, "seed": exp.seed, "num_initial": s["num_initial"],
            "refit_every": s["refit_every"], "distances": s["distances"],
            "fit_options": s["fit_options"], "model": s.get("model") or s.get("chosen_model"),
            "model_chosen_from_data": s.get("model") is None}


def latest_fit_reply(exp) -> dict | None:
    """The latest finished fit: ``fit`` (its number), ``num_trials``, ``file``,
    ``written`` (ISO time); ``None`` before the first refit."""
    info = exp.latest_fit_info()
    if info is None:
        return None
    file = info["path"]
    written = None
    if file.exists():
        written = datetime.fromtimestamp(file.stat().st_mtime, UTC).isoformat(timespec="seconds")
    return {"fit": info["seq"], "num_trials": info["num_trials"], "file": str(file),
            "written": written}


def refit_reply(state: str, next_refit_at: int, **extra) -> dict:
    """The ``refit`` object of a reply: ``{"state": state, "next_refit_at": ..., **extra}``."""
    if state not in REFIT_STATES:
        raise ValueError(f"unknown refit state {state!r}; known: {REFIT_STATES}")
    return {"state": state, "next_refit_at": int(next_refit_at), **extra}


def ask_reply(exp, ids, stimuli, *, reissued: int, refit: dict, status: dict | None = None
              ) -> dict:
    """The reply of ``ask``.

    Parameters
    ----------
    exp : Experiment
        The open session the trials came from.
    ids, stimuli : arrays ``(n,)`` and ``(n, 2, d)``
        What :meth:`~psyphy_numpyro.Experiment.ask` returned.
    reissued : int
        How many of ``ids`` were pending before this call.
    refit : dict
        The refit state (:func:`refit_reply`).
    status : dict, optional
        ``exp.status()`` if the caller has it already.

    Returns
    -------
    dict
        ``ids``, ``stimuli`` (n, 2, d), ``ref`` and ``comparison`` (n, d),
        ``sources``, ``reissued``, ``told``, ``pending``, ``refit``.
    """
    st = exp.status() if status is None else status
    ids = [int(i) for i in ids]
    stimuli = stimuli.tolist() if hasattr(stimuli, "tolist") else stimuli
    return {"ids": ids, "stimuli": stimuli, "ref": [s[0] for s in stimuli],
            "comparison": [s[1] for s in stimuli], "sources": exp.sources(ids) if ids else [],
            "reissued": int(reissued), "told": st["told"], "pending": st["pending"],
            "refit": refit}


def tell_reply(exp, ids, *, refit: dict, recorded: int | None = None,
               status: dict | None = None) -> dict:
    """The reply of ``tell``: ``told`` (ids in the call), ``ids``, ``recorded`` (responses
    newly recorded: fewer than ``told`` when a retried call repeated some),
    ``total_told``, ``pending``, ``refit``."""
    st = exp.status() if status is None else status
    ids = [int(i) for i in ids]
    return {"told": len(ids), "ids": ids,
            "recorded": len(ids) if recorded is None else int(recorded),
            "total_told": st["told"], "pending": st["pending"], "refit": refit}


def status_reply(exp, *, refit: dict, refitting: bool, last_refit: dict | None,
                 session: str | None = None, status: dict | None = None) -> dict:
    """The reply of ``status``.

    Returns
    -------
    dict
        ``session``, ``told``, ``pending``, ``pending_ids``, ``expired``,
        ``fits``, ``latest_fit`` (:func:`latest_fit_reply`), ``next_refit_at``,
        ``refit_due``, ``refitting``, ``refit`` (:func:`refit_reply`),
        ``last_refit`` (the latest refit's record or ``None``) and the
        settings (:func:`settings_reply`).
    """
    st = exp.status() if status is None else status
    return {"session": str(exp.path if session is None else session), "told": st["told"],
            "pending": st["pending"], "pending_ids": [int(i) for i in exp.pending],
            "expired": st["expired"], "fits": st["fits"], "latest_fit": latest_fit_reply(exp),
            "next_refit_at": st["next_refit_at"],
            "refit_due": st["told"] >= st["next_refit_at"], "refitting": bool(refitting),
            "refit": refit, "last_refit": last_refit, **settings_reply(exp)}
