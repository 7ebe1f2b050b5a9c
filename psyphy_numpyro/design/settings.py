"""A session's settings: what :class:`~psyphy_numpyro.design.session.Experiment` stores in
its file when it creates a session, and the check of a reopening against them.

One concept: the settings (``version``, ``input_dim``, ``model``, ``seed``,
``num_initial``, ``refit_every``, ``distances``, ``fit_options``, ``space``, ``region``,
``validation``, ``stop``)
with their defaults, built from an ``Experiment``'s arguments (:func:`session_model`,
:func:`session_settings`) and compared with the stored ones when a session is reopened
(:func:`check_settings`: the stored settings win; a given one that differs raises).
Reading them from a file without opening it is
:func:`~psyphy_numpyro.design.schema.read_settings`.
"""

from __future__ import annotations

import os

from ..errors import InvalidInput, InvalidType
from ..validation import check_int, check_range
from .refit import model_from_json, model_to_json
from .region import region_setting
from .stopping import stop_setting
from .store import SCHEMA_VERSION, read_settings
from .validation_trials import validation_setting

__all__ = ["FIT_OPTIONS", "session_model", "session_settings", "region_units",
           "check_settings"]

FIT_OPTIONS = {"map_steps": 2000, "warm_steps": 500, "num_draws": 64,
               "criterion": "info_gain"}
"""The refits' settings (``fit_options``) and their defaults."""


def session_model(model, prior, input_dim):
    """The refits' model: ``model`` (or the population's, None for none) with ``prior``
    when one is given, checked to be a WPPM of dimension ``input_dim`` (when given).

    Raises
    ------
    TypeError
        ``model`` is not a :class:`~psyphy_numpyro.WPPM`.
    ValueError
        ``input_dim`` differs from the model's.
    """
    from ..wppm import WPPM

    if prior is not None:
        from ..wppm import model_with_prior

        model = model_with_prior(model, prior)

    if model is not None and not isinstance(model, WPPM):
        raise InvalidType(f"model must be a psyphy_numpyro.WPPM, got {type(model).__name__}")
    if model is not None and input_dim is not None and input_dim != model.input_dim:
        raise InvalidInput(f"input_dim={input_dim} does not match model.input_dim="
                           f"{model.input_dim}")
    return model


def session_settings(model, *, space, input_dim, seed, num_initial, refit_every, distances,
                     fit_options, region=None, stored_space=None, validation=None,
                     stop=None):
    """The settings a new session stores, and which of them the caller gave.

    The arguments are :class:`~psyphy_numpyro.design.session.Experiment`'s (``model``
    checked by :func:`session_model`; ``space`` a StimulusSpace, its ``to_dict()`` or
    a JSON/TOML file; ``region`` in the session's units, checked by
    :func:`~psyphy_numpyro.design.region.region_setting`; ``stored_space``: the space
    of the existing session file, the region's units when ``space`` is not given, from
    :func:`region_units`; ``stop`` the stop rules, checked by
    :func:`~psyphy_numpyro.design.stopping.stop_setting`); ``None`` means not given:
    the default.

    Returns
    -------
    settings : dict
        JSON-ready, as stored in the session file.
    given : dict
        Setting name -> whether the caller gave it (only those are checked against
        the stored settings of a reopened session, by :func:`check_settings`).

    Raises
    ------
    ValueError
        A setting out of range, unknown ``fit_options``, a space whose dimension
        is not the session's, or a region outside the session's domain.
    TypeError
        A region of none of the accepted forms.
    """
    from ..space import StimulusSpace

    if space is not None:
        space = (space if isinstance(space, StimulusSpace) else StimulusSpace.from_dict(space)
                 if isinstance(space, dict) else StimulusSpace.from_file(space))
        if input_dim is None and model is None:
            input_dim = space.input_dim
    d = model.input_dim if model is not None else check_int("input_dim", input_dim or 2, 1, 3)
    if space is not None and space.input_dim != d:
        raise InvalidInput(f"the space is {space.input_dim}-D but the session is {d}-D")
    given = {"space": space is not None, "model": model is not None,
             "input_dim": model is None and input_dim is not None,
             "seed": seed is not None, "num_initial": num_initial is not None,
             "refit_every": refit_every is not None, "distances": distances is not None,
             "fit_options": fit_options is not None, "region": region is not None,
             "validation": validation is not None, "stop": stop is not None}
    seed = check_int("seed", 0 if seed is None else seed, 0)
    refit_every = 200 if refit_every is None else refit_every
    distances = (0.005, 0.4) if distances is None else distances
    opts = dict(FIT_OPTIONS)
    unknown = set(fit_options or {}) - set(opts)
    if unknown:
        raise InvalidInput(f"unknown fit_options {sorted(unknown)}; known: {sorted(opts)}")
    opts.update(fit_options or {})
    settings = {
        "version": SCHEMA_VERSION,
        "input_dim": d,
        "model": model_to_json(model),
        "seed": seed,
        "num_initial": check_int("num_initial", num_initial if num_initial is not None
                                 else (20 if _has_prior(model) else 150) * d, 1),
        "refit_every": check_int("refit_every", refit_every, 1),
        "distances": [float(v) for v in distances],
        "fit_options": opts,
        "space": None if space is None else space.to_dict(),
        "region": region_setting(region, d, space if space is not None else
                                 None if stored_space is None else
                                 StimulusSpace.from_dict(stored_space)),
        "validation": validation_setting(validation, d, space if space is not None else
                                         None if stored_space is None else
                                         StimulusSpace.from_dict(stored_space)),
        "stop": stop_setting(stop),
    }
    check_range("distances", distances)  # (no Sobol draw: scipy.stats loads slowly)
    return settings, given


def region_units(path, space, region):
    """The stored space of the session file ``path`` when a ``region`` is given without a
    ``space`` (the region is in the session's units), else None; None too when the file
    is missing or not a session file (opening it reports that)."""
    if region is None or space is not None or not os.path.isfile(path):
        return None
    try:
        return read_settings(path).get("space")
    except InvalidInput:
        return None


def check_settings(path, stored: dict, settings: dict, given: dict) -> dict:
    """The ``stored`` settings of the session file ``path``, after checking that every
    one of ``settings`` the caller gave (``given``) equals the stored value.

    A model chosen by the first refit (``chosen_model``) counts as the stored model.

    Raises
    ------
    ValueError
        A given setting differs from the stored one.
    """
    for k, v in settings.items():
        if k == "version" or not given.get(k, True):
            continue
        if k == "model" and stored.get("chosen_model") == v:
            continue
        if k == "model":
            _check_model(path, stored, v)
            continue
        if stored.get(k) != v:
            raise InvalidInput(f"{path}: the session was created with {k}="
                               f"{stored.get(k)!r}; reopen it without {k} or with that "
                               "value")
    return stored


def _check_model(path, stored: dict, given: dict) -> None:
    """Check the given model (JSON) against the stored one (or the one the first refit
    chose); a prior (``weight_prior``) that differs is named as such. Priors compare by
    their values (not their ``source`` note)."""
    if stored.get("model") == given:
        return
    model = model_from_json(given)
    have = model_from_json(stored.get("model"))
    chosen = model_from_json(stored.get("chosen_model"))
    if model in (have, chosen):
        return
    prior = None if have is None else have.weight_prior
    if model.weight_prior != prior:
        if prior is None:
            raise InvalidInput(f"{path}: the session was created without a prior; a prior "
                               "(prior=, --prior) only warm-starts a new session: reopen it "
                               "without one, or start a new session file")
        what = f" ({prior.source})" if prior.source else ""
        if model.weight_prior is None:
            raise InvalidInput(f"{path}: the session was created with a prior{what}; reopen "
                               "it without model or with that prior")
        raise InvalidInput(f"{path}: the session was created with another prior{what}; "
                           "reopen it without prior or with that one")
    raise InvalidInput(f"{path}: the session was created with model="
                       f"{stored.get('model')!r}; reopen it without model or with that value")


def _has_prior(model) -> bool:
    return model is not None and model.weight_prior is not None
