"""Per-trial metadata: the columns of a data set that are neither stimuli nor responses.

One concept: checking such columns (name -> one value per trial) into numpy
vectors (numbers and booleans kept, anything else text), comparing them and
joining them across data sets. :class:`~psyphy_numpyro.data.TrialData` holds them
as its ``metadata``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .csvio import DATA_COLUMNS
from .errors import InvalidInput, InvalidType

__all__ = ["check_metadata", "same_column", "concat_column"]


# ---------------------------------------------------------------------------
# metadata: per-trial columns that are neither stimuli nor responses
# ---------------------------------------------------------------------------
def _metadata_column(name, values, num_trials) -> np.ndarray:
    """One metadata column as a numpy vector: numbers and bools kept, anything else text."""
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"metadata[{name!r}] must be a vector of one value per trial "
                           f"({exc})") from None
    if arr.ndim != 1:
        raise InvalidInput(f"metadata[{name!r}] must be a vector of one value per trial, shape "
                           f"({num_trials},), got shape {arr.shape}")
    if arr.shape[0] != num_trials:
        raise InvalidInput(f"metadata[{name!r}] has {arr.shape[0]} values but there are "
                           f"{num_trials} trials")
    if arr.dtype.kind == "O":  # e.g. a pandas column of strings, or read back from NetCDF
        try:
            arr = np.asarray(arr.tolist())
        except (ValueError, TypeError):
            pass
    if arr.dtype.kind in "biuf":
        return np.array(arr)
    if arr.dtype.kind == "S":
        return np.char.decode(arr, "utf-8")
    return arr.astype(str)


def check_metadata(metadata, num_trials: int) -> dict:
    """``metadata`` (name -> one value per trial) checked and copied into numpy vectors.

    Numbers and booleans keep their dtype; anything else becomes text (``str``).

    Raises
    ------
    TypeError
        ``metadata`` is not a mapping, or a name is not a string.
    ValueError
        A name is one of the data columns (:data:`DATA_COLUMNS`), or a column
        does not hold one value per trial.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidType("metadata must be a dict of column name -> one value per trial, got "
                          f"{type(metadata).__name__}")
    out = {}
    for name, values in metadata.items():
        if not isinstance(name, str):
            raise InvalidType(f"metadata names must be strings, got {type(name).__name__} "
                              f"{name!r}")
        if name in DATA_COLUMNS:
            raise InvalidInput(f"metadata name {name!r} is a data column (one of "
                               f"{', '.join(DATA_COLUMNS)}); rename it")
        out[name] = _metadata_column(name, values, num_trials)
    return out


def same_column(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal metadata columns (NaN equals NaN; numbers never equal text)."""
    numeric = (a.dtype.kind in "biuf", b.dtype.kind in "biuf")
    if numeric[0] != numeric[1]:
        return False
    return np.array_equal(a, b, equal_nan=numeric[0] and "f" in a.dtype.kind + b.dtype.kind)


def concat_column(parts) -> np.ndarray:
    """Metadata columns of several data sets joined (as text where numbers meet text)."""
    try:
        return np.concatenate(parts)
    except TypeError:  # numbers in one data set, text in another
        return np.concatenate([p.astype(str) for p in parts])
