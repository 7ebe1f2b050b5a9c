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
           "prior_summary", "latest_fit_reply", "refit_reply"]

REFIT_STATES = ("not_due", "due", "started", "running", "finished", "up_to_date", "off",
                "failed", "interrupted")
"""Values of ``refit["state"]`` (see ``docs/server.md``)."""


def settings_reply(settings: dict) -> dict:
    """The session's settings from its stored ``settings`` dict: ``input_dim``, ``seed``,
    ``num_initial``, ``refit_every``, ``distances``, ``fit_options``, ``model`` (the
    WPPM's settings, without its weight prior), ``model_chosen_from_data``,
    ``space`` (the session's stimulus space as
    :meth:`~psyphy_numpyro.StimulusSpace.to_dict` gives it, or ``None``: stimuli
    in the model's box ``[-1, 1]^d``), ``region`` (``None``: the whole domain,
    ``{"box": [lo, hi]}`` or ``{"points": [...]}``, in the session's units), ``prior``
    (the model's weight prior, a session warm-started from a population, as
    :func:`prior_summary` gives it, or ``None``: its arrays stay in the session file)
    and ``stop`` (the stop rules ``{"trials", "seconds", "precision"}`` given, or
    ``None``)."""
    s = settings
    model = s.get("model") or s.get("chosen_model")
    prior = None
    if model is not None and "weight_prior" in model:
        model = dict(model)
        prior = prior_summary(model.pop("weight_prior"))
    return {"input_dim": s["input_dim"], "seed": s["seed"], "num_initial": s["num_initial"],
            "refit_every": s["refit_every"], "distances": s["distances"],
            "fit_options": s["fit_options"], "model": model,
            "model_chosen_from_data": s.get("model") is None, "space": s.get("space"),
            "region": s.get("region"), "prior": prior, "stop": s.get("stop")}


def prior_summary(prior: dict | None) -> dict | None:
    """A stored weight prior (``{"mean", "std", "source"}``, nested lists, as
    :meth:`~psyphy_numpyro.WeightPrior.to_dict` gives it) in a few numbers: ``source``
    (where it came from, e.g. ``"population of 5 observers, tau=0.3"``), ``shape`` (of
    its weight arrays) and ``std_range`` (``[min, max]`` of its standard deviations)."""
    if prior is None:
        return None
    shape, first = [], prior["std"]
    while isinstance(first, list):
        shape.append(len(first))
        first = first[0] if first else None
    std = list(_flat(prior["std"]))
    return {"source": prior.get("source", ""), "shape": shape,
            "std_range": [min(std), max(std)] if std else None}


def _flat(x):
    if isinstance(x, list):
        for v in x:
            yield from _flat(v)
    else:
        yield float(x)


def latest_fit_reply(info: dict | None) -> dict | None:
    """The latest finished fit from its record (``seq``, ``num_trials``, ``path``, as
    ``Experiment.latest_fit_info()`` gives it): ``fit`` (its number), ``num_trials``,
    ``file``, ``written`` (ISO time); ``None`` before the first refit."""
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


def ask_reply(ids, stimuli, *, sources, reissued: int, told: int, pending: int,
              refit: dict | None) -> dict:
    """The reply of ``ask``.

    Parameters
    ----------
    ids, stimuli : sequences ``(n,)`` and ``(n, 2, d)``
        What :meth:`~psyphy_numpyro.Experiment.ask` returned (arrays or lists).
    sources : list of str
        How each trial was chosen (:meth:`~psyphy_numpyro.Experiment.sources`).
    reissued : int
        How many of ``ids`` were pending before this call.
    told, pending : int
        The session's counts after the call.
    refit : dict
        The refit state (:func:`refit_reply`).

    Returns
    -------
    dict
        ``ids``, ``stimuli`` (n, 2, d), ``ref`` and ``comparison`` (n, d),
        ``sources``, ``reissued``, ``told``, ``pending``, ``refit``.
    """
    ids = [int(i) for i in ids]
    stimuli = stimuli.tolist() if hasattr(stimuli, "tolist") else stimuli
    return {"ids": ids, "stimuli": stimuli, "ref": [s[0] for s in stimuli],
            "comparison": [s[1] for s in stimuli], "sources": list(sources),
            "reissued": int(reissued), "told": int(told), "pending": int(pending),
            "refit": refit}


def tell_reply(ids, *, recorded: int, total_told: int, pending: int,
               refit: dict | None) -> dict:
    """The reply of ``tell``: ``told`` (ids in the call), ``recorded`` (responses newly
    recorded: fewer than ``told`` when a retried call repeated some), ``ids``,
    ``total_told``, ``pending``, ``refit``."""
    ids = [int(i) for i in ids]
    return {"told": len(ids), "recorded": int(recorded), "ids": ids,
            "total_told": int(total_told), "pending": int(pending), "refit": refit}


def status_reply(*, session: str, counts: dict, pending_ids, latest_fit: dict | None,
                 next_refit_at: int, refitting: bool, refit: dict, last_refit: dict | None,
                 settings: dict, owner: dict | None = None,
                 validation: dict | None = None, progress: dict | None = None) -> dict:
    """The reply of ``status``.

    Parameters
    ----------
    counts : dict
        ``told``, ``pending``, ``expired``, ``fits``.
    latest_fit : dict or None
        The latest fit's record (:func:`latest_fit_reply` formats it).
    settings : dict
        The stored settings (:func:`settings_reply` formats them).
    progress : dict, optional
        The progress and stop rules
        (:func:`~psyphy_numpyro.design.stopping.progress_report`).

    Returns
    -------
    dict
        ``session``, ``told``, ``pending``, ``pending_ids``, ``expired``,
        ``fits``, ``latest_fit``, ``next_refit_at``, ``refit_due``,
        ``refitting``, ``refit``, ``last_refit`` (the latest refit's record or
        ``None``), ``owner`` (who holds the session open for asking, or
        ``None``), ``validation`` (the validation trials' ``told``, ``pending``,
        ``expired``, ``total`` and ``fraction``, or ``None`` without them; the told ones
        do not count towards ``refit_due``), ``progress`` (told, refits, precision,
        target, trials left, elapsed seconds, ``stop`` and ``reason``; ``None`` when not
        given) and the settings.
    """
    fit_told = counts["told"] - (0 if validation is None else validation["told"])
    return {"session": str(session), "told": counts["told"], "pending": counts["pending"],
            "pending_ids": [int(i) for i in pending_ids], "expired": counts["expired"],
            "fits": counts["fits"], "latest_fit": latest_fit_reply(latest_fit),
            "next_refit_at": int(next_refit_at),
            "refit_due": fit_told >= next_refit_at, "refitting": bool(refitting),
            "refit": refit, "last_refit": last_refit, "owner": owner,
            "validation": validation, "progress": progress,
            **settings_reply(settings)}
