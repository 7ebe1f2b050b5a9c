"""Stimulus-space descriptions: the JSON-ready dict and the JSON / TOML files behind
:meth:`StimulusSpace.to_dict <psyphy_numpyro.space.StimulusSpace.to_dict>`,
:meth:`~psyphy_numpyro.space.StimulusSpace.from_dict`,
:meth:`~psyphy_numpyro.space.StimulusSpace.from_file`,
:meth:`~psyphy_numpyro.space.StimulusSpace.to_json` and
:meth:`~psyphy_numpyro.space.StimulusSpace.save`.

One concept: a space's description. It holds the constructor that built the space
and that constructor's arguments (``kind``: ``box``, ``affine`` or ``colour``) and,
for reading, the resulting ``matrix`` and ``offset``. Rebuilding a space from a
description goes through the constructors of the class given (this module does not
import :mod:`psyphy_numpyro.space`).

This module imports NumPy only (through :mod:`psyphy_numpyro.colourspaces`).
"""

from __future__ import annotations

import json
from pathlib import Path

from .colourspaces import colour_key
from .errors import InvalidInput, InvalidType

__all__ = ["SPACE_FORMAT", "space_to_dict", "space_from_dict", "read_description",
           "space_to_json", "write_description"]

SPACE_FORMAT = "psyphy_numpyro.StimulusSpace"
"""The ``format`` entry of a space's description."""


def space_to_dict(args: dict, matrix, offset) -> dict:
    """A space's JSON-ready description: its constructor's ``args`` (``kind`` and the
    arguments), then the ``matrix`` and ``offset`` it resulted in."""
    out = {"format": SPACE_FORMAT, "version": 1}
    out.update(json.loads(json.dumps(args)))
    out["matrix"] = matrix.tolist()
    out["offset"] = offset.tolist()
    return out


def space_from_dict(cls, description):
    """A space of class ``cls`` from a description (see
    :meth:`~psyphy_numpyro.space.StimulusSpace.from_dict`), built by ``cls.box``,
    ``cls.colour`` or ``cls.affine``.

    Raises
    ------
    TypeError
        ``description`` is not a dict.
    ValueError
        An unknown ``kind`` or arguments that constructor does not take.
    """
    if not isinstance(description, dict):
        raise InvalidType(f"a space description must be a dict, got "
                          f"{type(description).__name__}")
    desc = {k: v for k, v in description.items() if k not in ("format", "version")}
    kind = desc.pop("kind", None)
    if kind is None:
        if colour_key(desc.get("name", "")) is not None:
            kind = "colour"
        else:
            kind = "affine" if "matrix" in desc else "box"
    try:
        if kind == "box":
            desc.pop("matrix", None), desc.pop("offset", None)
            return cls.box(**desc)
        if kind in ("colour", "color"):
            desc.pop("matrix", None), desc.pop("offset", None)
            name = desc.pop("name")
            if isinstance(desc.get("white"), list):
                desc["white"] = tuple(desc["white"])
            return cls.colour(name, **desc)
        if kind == "affine":
            return cls.affine(**desc)
    except TypeError as exc:
        raise InvalidInput(f"bad {kind!r} space description: {exc}") from None
    raise InvalidInput(f"unknown space kind {kind!r}; use 'box', 'colour' or 'affine'")


def read_description(path) -> dict:
    """The description in a ``.toml`` file (by its suffix) or else a JSON file.

    Raises
    ------
    ValueError
        The file is not valid TOML / JSON.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"{path}: not valid TOML ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: not valid JSON ({exc})") from None


def space_to_json(description: dict) -> str:
    """A description as one line of JSON, keys sorted (so equal spaces give equal text)."""
    return json.dumps(description, sort_keys=True)


def write_description(path, description: dict) -> None:
    """Write a description as an indented JSON file (read back by :func:`read_description`)."""
    Path(path).write_text(json.dumps(description, indent=2, sort_keys=True) + "\n",
                          encoding="utf-8")
