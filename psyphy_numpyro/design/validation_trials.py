"""Validation trials inside a session: a fixed MOCS design interleaved with the adaptive
trials, labelled ``"validation"`` and left out of the fits.

One concept: a session's held-out MOCS trials (issue 22). ``Experiment(path,
validation=...)`` takes a spec (:func:`validation_setting` checks it; the session file
stores it as the setting ``validation``); the design it implies is generated once, from the
session's seed, and stored beside the settings (the meta key ``validation_design``,
:func:`validation_design`), so a reopened session hands out the same trials whatever
version generates them. ``ask`` interleaves them at the spec's ``fraction``
(:class:`ValidationPlan`): the new trial number ``t`` of the session (``t = 0, 1, ...``,
every trial ever handed out counted once) is a validation trial when fewer than
``floor((t + 1) * fraction)`` validation trials were handed out before it and the design
is not used up, so they are spread evenly and a ``live=False`` session stays a pure
function of its seed and its responses. The adaptive trials (space-filling sequence, fit
proposals) are the same sequences as without validation, with validation trials in
between.

The design
----------
``references`` conditions (a count: references spread over the session's region, kept
off its edges; or an ``(R, d)`` array in the session's units), each with one random unit
direction (model units, drawn from the seed, such that the largest level stays in the
domain), tested at every distance of ``levels`` (model units, like ``distances``; an int
``L``: ``L`` levels spaced geometrically over the session's ``distances`` range)
``repeats`` times. The ``R * L * repeats`` trials are shuffled (from the seed), so a
session stopped early has tested every condition and level about equally.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import InvalidInput, InvalidType

__all__ = ["SOURCE", "VALIDATION_DEFAULTS", "validation_setting", "validation_design",
           "ValidationPlan", "validation_plan", "validation_status", "held_out_data"]

SOURCE = "validation"
"""The source label of validation trials (:meth:`~psyphy_numpyro.Experiment.sources`)."""

VALIDATION_DEFAULTS = {"fraction": None, "references": 8, "levels": 6, "repeats": 10}
"""The spec's keys and defaults (``fraction`` has none: it must be given)."""

_FORMS = ("validation must be None, a fraction in (0, 1), or a dict with 'fraction' and "
          "optionally 'references' (a count or an (R, {d}) array), 'levels' (a count or a "
          "list of distances > 0) and 'repeats'")


def validation_setting(validation, d: int, space=None):
    """A validation spec checked, in the JSON form the session file stores.

    Parameters
    ----------
    validation : None, float or dict
        ``None``: no validation trials. A float: the fraction, with the default design.
        A dict: ``fraction`` (required, in (0, 1)), ``references`` (int >= 1 or an
        ``(R, d)`` array in the session's units), ``levels`` (int >= 2 or a list of
        distances > 0 in model units), ``repeats`` (int >= 1).
    d : int
        The session's dimension.
    space : StimulusSpace, optional
        The session's units (given references are in them).

    Returns
    -------
    None or dict
        ``{"fraction", "references", "levels", "repeats"}`` (references an int or a list
        of lists, levels an int or a list of floats).

    Raises
    ------
    TypeError
        Not one of the forms, or a value of the wrong type.
    ValueError
        A value out of range, an unknown key, or a reference outside the domain.
    """
    from ..validation import check_int, check_real

    if validation is None:
        return None
    if isinstance(validation, numbers.Real) and not isinstance(validation, bool):
        validation = {"fraction": validation}
    if not isinstance(validation, dict):
        raise InvalidType(_FORMS.format(d=d) + f"; got {type(validation).__name__}")
    unknown = sorted(set(validation) - set(VALIDATION_DEFAULTS))
    if unknown:
        raise InvalidInput(f"unknown validation keys {unknown}; known: "
                           f"{sorted(VALIDATION_DEFAULTS)}")
    if validation.get("fraction") is None:
        raise InvalidInput("validation needs a 'fraction' in (0, 1): the share of the "
                           "trials ask hands out that are validation trials")
    spec = {**VALIDATION_DEFAULTS, **validation}
    out = {"fraction": check_real("validation fraction", spec["fraction"], 0.0, 1.0),
           "repeats": check_int("validation repeats", spec["repeats"], 1)}
    refs = spec["references"]
    if isinstance(refs, numbers.Integral) and not isinstance(refs, bool):
        out["references"] = check_int("validation references", refs, 1)
    else:
        arr = _array("validation references", refs)
        if arr.ndim != 2 or arr.shape[1] != d or arr.shape[0] == 0:
            raise InvalidInput(f"validation references must be a count or an (R, {d}) "
                               f"array, got shape {arr.shape}")
        _inside(arr, space)
        out["references"] = arr.tolist()
    levels = spec["levels"]
    if isinstance(levels, numbers.Integral) and not isinstance(levels, bool):
        out["levels"] = check_int("validation levels", levels, 2)
    else:
        arr = _array("validation levels", levels)
        if arr.ndim != 1 or arr.size == 0:
            raise InvalidInput(f"validation levels must be a count or a list of distances, "
                               f"got shape {arr.shape}")
        if np.any(arr <= 0):
            raise InvalidInput(f"validation levels must be > 0, got {arr.tolist()}")
        out["levels"] = arr.tolist()
    return {k: out[k] for k in ("fraction", "references", "levels", "repeats")}


def _array(name, value) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidType(f"{name} must be numbers, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise InvalidInput(f"{name} has a non-finite value")
    return arr


def _inside(x, space) -> None:
    if space is not None:
        space.to_model(x, check=True, name="validation references")
        return
    out = np.abs(x) > 1.0
    if out.any():
        i = int(np.flatnonzero(out.any(axis=1))[0])
        raise InvalidInput(f"validation reference {i} {x[i].tolist()} lies outside the "
                           f"domain [-1, 1]^{x.shape[1]}")


def _extent(ref, u) -> float:
    """Largest ``t >= 0`` with ``ref + t * u`` inside ``[-1, 1]^d``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(u != 0, (np.sign(u) - ref) / u, np.inf)
    return float(t.min())


def validation_design(spec: dict, settings: dict, space=None) -> dict:
    """The trials of a validation spec, generated from the session's seed.

    Parameters
    ----------
    spec : dict
        From :func:`validation_setting`.
    settings : dict
        The session's settings (``input_dim``, ``seed``, ``distances``, ``region``).
    space : StimulusSpace, optional
        The session's units.

    Returns
    -------
    dict
        ``refs`` and ``comparisons`` (lists of ``R * L * repeats`` points, model units,
        in the order ``ask`` hands them out), ``levels`` (model units) and ``conditions``
        (``R``).

    Raises
    ------
    ValueError
        The largest level does not fit in the domain along any direction from a reference.
    """
    from .region import Region

    d, seed = settings["input_dim"], settings["seed"]
    rng = np.random.default_rng([seed, 0x5A11D])
    levels = spec["levels"]
    if isinstance(levels, int):
        lo, hi = settings["distances"]
        levels = np.geomspace(lo, hi, levels)
    levels = np.asarray(levels, np.float64)
    if isinstance(spec["references"], int):
        region = Region(settings.get("region"), d, space)
        # off the region's edges (a tenth of it on each side), so every direction has room
        refs = region.place(0.1 + 0.8 * rng.random((spec["references"], d)))
    else:
        refs = np.asarray(spec["references"], np.float64)
        if space is not None:
            refs = space.to_model(refs, check=True, name="validation references")
    refs = np.asarray(refs, np.float64)
    top = float(levels.max())
    dirs = np.zeros_like(refs)
    for c in range(len(refs)):
        for _ in range(256):
            u = rng.normal(size=d)
            u /= np.linalg.norm(u)
            if _extent(refs[c], u) >= top:
                break
        else:
            raise InvalidInput(f"validation levels up to {top:g} do not fit in the domain "
                               f"[-1, 1]^{d} along any direction from reference "
                               f"{np.round(refs[c], 4).tolist()}: give smaller levels or "
                               "other references")
        dirs[c] = u
    k = spec["repeats"]
    cond = np.repeat(np.arange(len(refs)), len(levels) * k)
    step = np.tile(np.repeat(levels, k), len(refs))
    order = rng.permutation(len(cond))
    cond, step = cond[order], step[order]
    ref = refs[cond]
    comp = np.clip(ref + step[:, None] * dirs[cond], -1.0, 1.0)
    return {"refs": ref.tolist(), "comparisons": comp.tolist(), "levels": levels.tolist(),
            "conditions": len(refs)}


def add_design(settings: dict, given: dict, space=None) -> None:
    """Add the stored design of ``settings["validation"]`` (when given) to the settings a
    new session stores (``validation_design``; never compared when reopening: the stored
    design wins)."""
    given["validation_design"] = False
    if settings.get("validation") is not None:
        settings["validation_design"] = validation_design(settings["validation"], settings,
                                                          space)


class ValidationPlan:
    """Which of a session's new trials are validation trials, and which ones.

    Parameters
    ----------
    spec : dict
        The stored spec (:func:`validation_setting`).
    design : dict
        The stored design (:func:`validation_design`).
    """

    def __init__(self, spec: dict, design: dict):
        self.fraction = float(spec["fraction"])
        self.refs, self.comparisons = design["refs"], design["comparisons"]
        self.total = len(self.refs)

    def flags(self, db, store, n: int) -> list[bool]:
        """Whether each of the next ``n`` new trials is a validation trial (read inside the
        transaction ``db``)."""
        t = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM trials").fetchone()[0])
        v = store.next_source_index(db, SOURCE)
        out = []
        for j in range(n):
            due = min(self.total, math.floor((t + j + 1) * self.fraction + 1e-9))
            out.append(v < due)
            v += out[-1]
        return out

    def trials(self, db, store, n: int) -> list:
        """The next ``n`` validation trials as ``(ref, comparison, "validation", index)``."""
        start = store.next_source_index(db, SOURCE)
        return [(list(self.refs[i]), list(self.comparisons[i]), SOURCE, i)
                for i in range(start, min(start + n, self.total))]


def validation_plan(settings: dict) -> ValidationPlan | None:
    """The :class:`ValidationPlan` of a session's stored settings (None without one)."""
    spec, design = settings.get("validation"), settings.get("validation_design")
    return None if spec is None or design is None else ValidationPlan(spec, design)


def validation_status(store, settings: dict) -> dict | None:
    """``{"told", "pending", "expired", "total", "fraction"}`` of a session's validation
    trials (``total``: the design's size), or None without validation."""
    spec, design = settings.get("validation"), settings.get("validation_design")
    if spec is None or design is None:
        return None
    return {**store.validation_counts(), "total": len(design["refs"]),
            "fraction": spec["fraction"]}


def held_out_data(store, input_dim: int, space=None):
    """:class:`~psyphy_numpyro.TrialData` of the store's told validation trials, in the
    order told (in ``space``'s units when given, like the session's ``data``)."""
    from .refit import told_data  # (refit imports JAX: not at module level)

    _, ref, comp, responses = store.validation_told()
    return told_data(ref, comp, responses, input_dim, space)
