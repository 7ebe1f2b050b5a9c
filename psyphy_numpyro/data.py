"""Trial data: validated container, CSV input/output and simulation."""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Mapping

import jax
import numpy as np

from .errors import InvalidInput, InvalidType
from .validation import (
    DOMAIN_TOL,
    as_key,
    check_array,
    check_int,
    check_points,
    check_responses,
)

__all__ = [
    "TrialData",
    "simulate_trials",
    "as_trial_data",
    "csv_columns",
    "comparisons_at_radius",
    "simulate_experiment",
    "read_points",
]

_AXES = ("x", "y", "z")
_ROLES = ("reference", "comparison")


def write_csv(path, header, rows) -> None:
    """Write ``header`` and ``rows`` (lists of cells) to a CSV file atomically.

    The rows go to ``path + ".tmp"``, which replaces ``path`` only once it is
    complete; on any error the temporary file is removed and ``path`` is left
    as it was.
    """
    path = os.fspath(path)
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _locate_stimulus(idx) -> str:
    """``(trial, role, coordinate)`` index of a stimuli array, in words."""
    trial, role, coord = idx
    return f"trial {trial} ({_ROLES[role]}, coordinate {coord})"


def csv_columns(input_dim: int) -> list[str]:
    """CSV header for ``input_dim``: ``ref_x,...,comparison_x,...,response``."""
    axes = _AXES[:input_dim]
    return [f"ref_{a}" for a in axes] + [f"comparison_{a}" for a in axes] + ["response"]


DATA_COLUMNS = tuple(csv_columns(3))
"""Every column name the library itself reads (``ref_x`` ... ``comparison_z``, ``response``)."""

RESPONSE_WORDS = {"0": 0, "1": 1, "false": 0, "true": 1}
"""Response cells :meth:`TrialData.from_csv` reads as they are (any case; 0.0 and 1.0 too)."""

DELIMITERS = (",", ";", "\t")
"""The field delimiters :meth:`TrialData.from_csv` detects."""

_EXPECTED = "; ".join(f"{','.join(csv_columns(k))} ({k}-D)" for k in (1, 2, 3))
_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)\Z")
_LEADING_ZERO = re.compile(r"[+-]?0[0-9]")  # codes such as "007" stay text


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


def _same_column(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal metadata columns (NaN equals NaN; numbers never equal text)."""
    numeric = (a.dtype.kind in "biuf", b.dtype.kind in "biuf")
    if numeric[0] != numeric[1]:
        return False
    return np.array_equal(a, b, equal_nan=numeric[0] and "f" in a.dtype.kind + b.dtype.kind)


def _concat_column(parts) -> np.ndarray:
    try:
        return np.concatenate(parts)
    except TypeError:  # numbers in one data set, text in another
        return np.concatenate([p.astype(str) for p in parts])


def _cell(v) -> str:
    """A metadata value as CSV text that :func:`_parse_metadata` reads back as the same."""
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, np.integer):
        return str(int(v))
    if isinstance(v, np.floating):
        return repr(float(v))
    return str(v)


# ---------------------------------------------------------------------------
# CSV reading
# ---------------------------------------------------------------------------
def _number(text: str, decimal_comma: bool):
    """``float(text)``, or ``None``; ``"0,5"`` is 0.5 where the delimiter is not a comma."""
    try:
        return float(text)
    except ValueError:
        pass
    if decimal_comma and text.count(",") == 1 and "." not in text:
        try:
            return float(text.replace(",", "."))
        except ValueError:
            pass
    return None


def _parse_metadata(cells, decimal_comma: bool) -> np.ndarray:
    """A metadata column read from CSV text: bool, int, float (empty cells NaN) or text."""
    vals = [c.strip() for c in cells]
    if {v.lower() for v in vals} <= {"true", "false"}:
        return np.array([v.lower() == "true" for v in vals])
    if all(_INT.match(v) for v in vals):
        try:
            return np.array([int(v) for v in vals], dtype=np.int64)
        except OverflowError:  # beyond int64: a float column
            pass
    if any(vals) and not any(_LEADING_ZERO.match(v) for v in vals):
        nums = [_number(v, decimal_comma) if v else math.nan for v in vals]
        if None not in nums:
            return np.array(nums, dtype=np.float64)
    return np.array(vals, dtype=str)


def _detect_delimiter(line: str) -> str:
    """The most frequent of :data:`DELIMITERS` outside quotes in the header line (``,`` on
    ties or when there is none)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(DELIMITERS, key=lambda c: counts[c])  # first of the maxima: "," on ties
    return best if counts[best] else ","


def _check_mapping(columns) -> dict:
    """``columns=`` (library name -> file name) checked."""
    if columns is None:
        return {}
    if not isinstance(columns, Mapping):
        raise InvalidType("columns must be a dict of library column name -> the file's column "
                          f"name (e.g. {{'response': 'correct'}}), got {type(columns).__name__}")
    for key, value in columns.items():
        if key not in DATA_COLUMNS:
            raise InvalidInput(
                f"columns: {key!r} is not a library column; the keys are the library's names "
                f"({', '.join(DATA_COLUMNS)}) and the values your file's names, e.g. "
                "columns={'response': 'correct', 'ref_x': 'x0'}")
        if not isinstance(value, str):
            raise InvalidType(f"columns[{key!r}] must be the file's column name (a string), got "
                              f"{type(value).__name__}")
    seen = {}
    for key, value in columns.items():
        if value in seen:
            raise InvalidInput(f"columns maps both {seen[value]!r} and {key!r} to the file's "
                               f"column {value!r}")
        seen[value] = key
    return dict(columns)


def _response_words(response_values) -> dict:
    """:data:`RESPONSE_WORDS` plus ``response_values`` (lower-cased words -> 0/1), checked."""
    words = dict(RESPONSE_WORDS)
    if response_values is None:
        return words
    if not isinstance(response_values, Mapping):
        raise InvalidType("response_values must be a dict of word -> 0 or 1 (1 = correct), e.g. "
                          f"{{'yes': 1, 'no': 0}}, got {type(response_values).__name__}")
    for word, value in response_values.items():
        if not isinstance(word, str):
            raise InvalidType(f"response_values: the words must be strings, got {word!r}")
        if isinstance(value, bool) or value not in (0, 1):
            raise InvalidInput(f"response_values[{word!r}] must be 0 or 1 (1 = correct), got "
                               f"{value!r}")
        words[word.strip().lower()] = int(value)
    return words


def _csv_layout(path, header, mapping):
    """``(d, {library name: column index}, [(metadata name, column index)])`` of a header;
    errors name the missing, repeated or wrongly mapped columns."""
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise InvalidInput(f"{path}: header (file line 1) repeats column(s) {dup}")
    absent = {k: v for k, v in mapping.items() if v not in header}
    if absent:
        maps = ", ".join(f"{k!r} to {v!r}" for k, v in absent.items())
        lacks = ", ".join(map(repr, absent.values()))
        raise InvalidInput(f"{path}: columns maps {maps}, but the header (file line 1) has no "
                           f"column {lacks} (it has {', '.join(header)})")
    clash = [k for k, v in mapping.items() if k in header and k != v]
    if clash:
        raise InvalidInput(
            f"{path}: the file has a column {clash[0]!r} and columns maps {clash[0]!r} to "
            f"{mapping[clash[0]]!r}; rename one of them (or map {clash[0]!r} to itself)")
    to_lib = {v: k for k, v in mapping.items()}
    names = [to_lib.get(h, h) for h in header]
    stim = [n for n in names if n in DATA_COLUMNS and n != "response"]
    d = max((_AXES.index(n.rsplit("_", 1)[1]) for n in stim), default=0) + 1
    missing = [c for c in csv_columns(d) if c not in names]
    meta = [(h, j) for j, (h, n) in enumerate(zip(header, names, strict=True))
            if n not in DATA_COLUMNS]
    if missing:
        others = [h for h, _ in meta]
        hint = ""
        if others:
            example = ", ".join(f"{m!r}: '<your column>'" for m in missing[:2])
            hint = (f"; the other columns {others} would be kept as metadata: if your file names "
                    f"these columns differently, map them, e.g. columns={{{example}}}")
        raise InvalidInput(
            f"{path}: header (file line 1) {','.join(header)!r} does not match any layout "
            f"({_EXPECTED}); missing columns {missing} for the {d}-D layout{hint}")
    index = {n: j for j, n in enumerate(names) if n in DATA_COLUMNS}
    return d, index, meta


def _missing_header(path, header, decimal_comma) -> None:
    """Raise when the first line is data (numbers, true/false) rather than column names."""
    cells = [h for h in header if h]
    numeric = [h for h in cells if _number(h, decimal_comma) is not None]
    if numeric and all(h in numeric or h.lower() in ("true", "false") for h in cells):
        raise InvalidInput(
            f"{path}: the header is missing: file line 1 ({','.join(header)!r}) holds values, "
            "but the first line must name the columns, e.g. " + _EXPECTED
            + " (any order; other columns are kept as metadata, and other names can be mapped "
            "with columns={'response': '<your column>', ...})")


def _column_label(name, lib) -> str:
    return repr(name) if name == lib else f"{name!r} ({lib})"


class TrialData:
    """Oddity-task trials: stimuli, 0/1 responses (1 = correct) and per-trial metadata.

    Parameters
    ----------
    stimuli : array (N, 2, d), or a psyphy ``TrialData``/``ResponseData``
        ``stimuli[:, 0]`` are references, ``stimuli[:, 1]`` comparisons, all in
        ``[-1, 1]``, ``d`` in {1, 2, 3}. A psyphy data object may be passed
        alone: its ``stimuli`` and ``responses`` are taken over.
    responses : array (N,) or (N, 1) of 0/1
    metadata : dict, optional
        Per-trial columns such as subject, session, block or response time:
        name -> a vector of ``N`` values (keyword only). Numbers and booleans
        keep their dtype, anything else is stored as text. Names may not be
        data columns (``ref_x``, ..., ``response``).

    Attributes
    ----------
    stimuli : numpy array (N, 2, d), float64
    responses : numpy array (N,), int8
    metadata : dict of str -> numpy array (N,)
        Kept through slicing (``data[mask]``), :meth:`split`,
        :meth:`concatenate`, :meth:`to_csv` (extra columns) and fit files
        (``fit.save`` / :func:`~psyphy_numpyro.load_fit`). Fits ignore it.

    Examples
    --------
    >>> data = pn.TrialData.from_csv("lab.csv")      # doctest: +SKIP
    >>> data.metadata["subject"]                     # doctest: +SKIP
    array(['s01', 's01', ..., 's07'], dtype='<U3')
    >>> fits = pn.fit_map(list(data.split("subject").values()), model)  # doctest: +SKIP
    """

    __slots__ = ("stimuli", "responses", "metadata")

    def __init__(self, stimuli, responses=None, *, metadata=None):
        if responses is None:
            if hasattr(stimuli, "to_trial_data"):  # psyphy ResponseData
                stimuli = stimuli.to_trial_data()
            if hasattr(stimuli, "stimuli") and hasattr(stimuli, "responses"):
                if metadata is None and isinstance(stimuli, TrialData):
                    metadata = stimuli.metadata
                stimuli, responses = stimuli.stimuli, stimuli.responses
            else:
                raise InvalidType("TrialData needs stimuli and responses")
        try:
            s = np.asarray(stimuli)
        except (ValueError, TypeError) as exc:  # ragged nested sequences
            raise InvalidInput(
                f"stimuli must be a rectangular numeric array of shape (N, 2, d) ({exc})"
            ) from None
        if s.dtype == object or not np.issubdtype(s.dtype, np.number):
            raise InvalidType(f"stimuli must be a numeric array, got dtype {s.dtype}")
        if s.ndim != 3 or s.shape[1] != 2 or s.shape[2] not in (1, 2, 3):
            raise InvalidInput(
                "stimuli must have shape (N, 2, d) with d in {1, 2, 3} "
                f"([:, 0] = reference, [:, 1] = comparison), got {s.shape}"
            )
        if s.shape[0] == 0:
            raise InvalidInput("TrialData is empty: at least one trial is needed")
        check_points(s, s.shape[2], "stimuli", locate=_locate_stimulus)
        y = check_responses(responses, s.shape[0])
        meta = check_metadata(metadata, s.shape[0])
        self.stimuli = np.array(s, dtype=np.float64)
        self.responses = y
        self.metadata = meta

    # -- constructors ---------------------------------------------------------
    @classmethod
    def from_arrays(cls, ref, comparison, responses, *, metadata=None) -> TrialData:
        """Build from references (N, d), comparisons (N, d), responses (N,) and optional
        per-trial ``metadata`` (name -> N values, see :class:`TrialData`)."""
        ref = np.asarray(ref)
        comparison = np.asarray(comparison)
        if ref.shape != comparison.shape or ref.ndim != 2:
            raise InvalidInput(
                f"ref and comparison must both have shape (N, d), got {ref.shape} and "
                f"{comparison.shape}"
            )
        return cls(np.stack([ref, comparison], axis=1), responses, metadata=metadata)

    @classmethod
    def concatenate(cls, datas) -> TrialData:
        """One data set of several (sessions, observers ...), in order, metadata included.

        Every data set must have the same stimulus dimension and the same
        metadata columns.
        """
        datas = [as_trial_data(d) for d in datas]
        if not datas:
            raise InvalidInput("concatenate needs at least one data set")
        dims = sorted({d.input_dim for d in datas})
        if len(dims) > 1:
            raise InvalidInput(f"concatenate: the data sets have different stimulus dimensions "
                               f"{dims}")
        names = list(datas[0].metadata)
        for i, d in enumerate(datas[1:], start=1):
            if set(d.metadata) != set(names):
                raise InvalidInput(
                    f"concatenate: data set {i} has metadata columns {sorted(d.metadata)}, data "
                    f"set 0 has {sorted(names)}; every data set needs the same columns")
        return cls(np.concatenate([d.stimuli for d in datas]),
                   np.concatenate([d.responses for d in datas]),
                   metadata={n: _concat_column([d.metadata[n] for d in datas]) for n in names})

    @classmethod
    def from_csv(cls, path, *, columns=None, response_values=None,
                 delimiter=None) -> TrialData:
        """Read a CSV file with a header (see :func:`csv_columns`).

        Columns may come in any order; columns other than the stimuli and the
        response (subject, session, block, rt ...) are kept as per-trial
        :attr:`metadata`: numbers where every value is one (empty cells are
        NaN), ``true``/``false`` as booleans, text otherwise (codes with
        leading zeros such as ``007`` stay text).

        Parameters
        ----------
        path : str or os.PathLike
        columns : dict, optional
            The library's column name -> the file's, for files named
            differently, e.g. ``{"response": "correct", "ref_x": "x0"}``.
        response_values : dict, optional
            What other response words mean, e.g. ``{"yes": 1, "no": 0}``
            (1 = correct; matched in any case). Without it the response must
            be 0/1 or true/false (any case).
        delimiter : str, optional
            Field delimiter; by default detected from the header line: the
            most frequent of comma, semicolon and tab. Where it is not a
            comma, decimal commas (``0,5``) are read as well.

        Raises
        ------
        FileNotFoundError
        ValueError
            Errors name the file, the row (1 = first data row; the physical
            file line is given too) and the column: a missing header, missing
            or repeated columns, a mapped column the file lacks, a value that
            is not a number, NaN/Inf, a coordinate outside ``[-1, 1]``, a
            response that is not 0/1, true/false or a ``response_values`` word.

        Notes
        -----
        A UTF-8 byte-order mark is ignored.
        """
        path = os.fspath(path)
        mapping = _check_mapping(columns)
        words = _response_words(response_values)
        if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
            raise InvalidInput(f"delimiter must be one character, e.g. ';', got {delimiter!r}")
        with open(path, newline="", encoding="utf-8-sig") as fh:
            first = fh.readline()
            if delimiter is None:
                delimiter = _detect_delimiter(first)
            decimal_comma = delimiter != ","
            fh.seek(0)
            reader = csv.reader(fh, delimiter=delimiter)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise InvalidInput(f"{path}: file is empty (no header)") from None
            _missing_header(path, header, decimal_comma)
            header = [h or f"column_{j + 1}" for j, h in enumerate(header)]
            d, index, meta = _csv_layout(path, header, mapping)
            cols = csv_columns(d)
            order = [index[c] for c in cols]
            rows, meta_cells = [], []
            for r, row in enumerate(reader, start=1):
                if not row or all(not v.strip() for v in row):
                    continue
                line = f" (file line {reader.line_num})"
                if len(row) != len(header):
                    raise InvalidInput(
                        f"{path}: row {r} has {len(row)} fields, expected {len(header)} "
                        f"({','.join(header)}){line}"
                    )
                vals = [_read_value(path, r, line, header[j], c, row[j], words, decimal_comma)
                        for c, j in zip(cols, order, strict=True)]
                rows.append(vals)
                meta_cells.append([row[j] for _, j in meta])
        if not rows:
            raise InvalidInput(f"{path}: no data rows")
        a = np.asarray(rows)
        stim = np.stack([a[:, :d], a[:, d : 2 * d]], axis=1)
        metadata = {name: _parse_metadata([cells[k] for cells in meta_cells], decimal_comma)
                    for k, (name, _) in enumerate(meta)}
        return cls(stim, a[:, -1].astype(np.int8), metadata=metadata)

    def to_csv(self, path) -> None:
        """Write the CSV layout read by :meth:`from_csv` (lossless: 17 digits), metadata as
        extra columns after the response.

        Metadata round-trips with its values; text that looks like a number
        (``"12"``) reads back as a number.
        """
        d = self.input_dim
        flat = np.concatenate([self.stimuli[:, 0], self.stimuli[:, 1]], axis=1)
        meta = list(self.metadata.values())
        write_csv(path, csv_columns(d) + list(self.metadata),
                  ([repr(float(v)) for v in row] + [int(y)] + [_cell(m[i]) for m in meta]
                   for i, (row, y) in enumerate(zip(flat, self.responses, strict=True))))

    # -- views ------------------------------------------------------------------
    @property
    def ref(self) -> np.ndarray:
        """References, shape (N, d)."""
        return self.stimuli[:, 0]

    @property
    def comparison(self) -> np.ndarray:
        """Comparisons, shape (N, d)."""
        return self.stimuli[:, 1]

    @property
    def input_dim(self) -> int:
        return self.stimuli.shape[2]

    def __len__(self) -> int:
        return self.stimuli.shape[0]

    def __getitem__(self, idx) -> TrialData:
        idx = np.atleast_1d(np.arange(len(self))[idx])
        return TrialData(self.stimuli[idx], self.responses[idx],
                         metadata={k: v[idx] for k, v in self.metadata.items()})

    def split(self, column: str) -> dict:
        """One :class:`TrialData` per value of a metadata column, e.g. per subject.

        Parameters
        ----------
        column : str
            A key of :attr:`metadata`.

        Returns
        -------
        dict
            value -> the trials with that value (in their order, metadata
            included), values sorted. ``list(d.values())`` feeds the
            many-observer fits: ``pn.fit_map(list(d.values()), model)``.

        Raises
        ------
        ValueError
            No such column, or the column has missing values (NaN).
        """
        if column not in self.metadata:
            have = ", ".join(map(repr, self.metadata)) or "none"
            raise InvalidInput(f"split: no metadata column {column!r} (metadata columns: {have})")
        values = self.metadata[column]
        if values.dtype.kind == "f" and np.isnan(values).any():
            rows = np.flatnonzero(np.isnan(values))
            raise InvalidInput(
                f"split: metadata column {column!r} has {rows.size} missing values (NaN; first "
                f"at trial {rows[0]}); drop those trials first, e.g. "
                f"data[~np.isnan(data.metadata[{column!r}])]")
        keys, inverse = np.unique(values, return_inverse=True)
        return {k.item(): self[np.flatnonzero(inverse == i)] for i, k in enumerate(keys)}

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, TrialData)
            and np.array_equal(self.stimuli, other.stimuli)
            and np.array_equal(self.responses, other.responses)
            and self.metadata.keys() == other.metadata.keys()
            and all(_same_column(v, other.metadata[k]) for k, v in self.metadata.items())
        )

    def __repr__(self) -> str:
        meta = f", metadata={list(self.metadata)}" if self.metadata else ""
        return (
            f"TrialData(num_trials={len(self)}, input_dim={self.input_dim}, "
            f"proportion_correct={self.responses.mean():.3f}{meta})"
        )


def _read_value(path, r, line, name, lib, text, words, decimal_comma) -> float:
    """One stimulus coordinate or response cell of a CSV row, checked."""
    label = _column_label(name, lib)
    if lib == "response":
        word = text.strip().lower()
        if word in words:
            return float(words[word])
    v = _number(text, decimal_comma)
    if v is None:
        if lib == "response":
            raise InvalidInput(
                f"{path}: row {r}, column {label}: {text!r} is not a response; accepted are 0/1 "
                "and true/false in any case (1 = true = correct); say what other words mean "
                "with response_values, e.g. TrialData.from_csv(path, response_values={'yes': 1, "
                f"'no': 0}}) (1 = correct), or convert the column to 0/1{line}")
        raise InvalidInput(f"{path}: row {r}, column {label}: {text!r} is not a number{line}")
    if not np.isfinite(v):
        raise InvalidInput(f"{path}: row {r}, column {label} is {text!r}; NaN and Inf are not "
                           f"allowed{line}")
    if lib == "response" and v not in (0.0, 1.0):
        raise InvalidInput(f"{path}: row {r}, column {label} must be 0 or 1 (1 = correct; "
                           f"true/false are accepted too), got {text!r}{line}")
    if lib != "response" and abs(v) > 1.0 + DOMAIN_TOL:
        raise InvalidInput(
            f"{path}: row {r}, column {label} = {v:g} is outside [-1, 1]{line}; rescale the "
            "stimuli into [-1, 1] (e.g. x' = 2 (x - lo) / (hi - lo) - 1 per axis)")
    return v


def as_trial_data(data) -> TrialData:
    """Coerce ``data`` (ours, psyphy's TrialData/ResponseData) to :class:`TrialData`."""
    if isinstance(data, TrialData):
        return data
    if hasattr(data, "stimuli") or hasattr(data, "to_trial_data"):
        return TrialData(data)
    raise InvalidType(
        f"data must be a TrialData (or psyphy TrialData/ResponseData), got {type(data).__name__}"
    )


def simulate_trials(model, params, ref, comparison, *, key) -> TrialData:
    """Simulate oddity responses from a WPPM observer.

    Parameters
    ----------
    model : WPPM
    params : dict with ``"W"``
    ref, comparison : array (N, d)
    key : jax PRNG key or int seed

    Returns
    -------
    TrialData
        Responses drawn as ``Bernoulli((1 - lapse) p + lapse / 3)``, ``p`` the
        model's estimate of p(correct) and ``lapse`` its lapse rate (``params``'
        when the model learns it).
    """
    ref = np.asarray(check_points(ref, model.input_dim, "ref"))
    comparison = np.asarray(check_points(comparison, model.input_dim, "comparison"))
    try:
        ref, comparison = np.broadcast_arrays(ref, comparison)
    except ValueError:
        raise InvalidInput(
            f"ref {ref.shape} and comparison {comparison.shape} do not broadcast to one (N, d) "
            "shape"
        ) from None
    if ref.ndim != 2:
        raise InvalidInput(f"ref and comparison must be (N, d), got {ref.shape}")
    k_p, k_y = jax.random.split(as_key(key))
    p = model.p_correct(params, ref, comparison, key=k_p, include_lapse=True)
    y = jax.random.bernoulli(k_y, p)
    return TrialData(np.stack([ref, comparison], axis=1), np.asarray(y, dtype=np.int8))


def simulate_observer(covariance, ref, comparison, *, key, lapse_rate: float = 0.0,
                      bandwidth: float = 1e-2, num_samples: int = 1024) -> TrialData:
    """Simulate oddity responses of any observer given by its covariance field.

    For observers that are not WPPMs (a colour-difference metric, a
    hand-made field): ``p`` is the oddity p(correct) of ``Sigma(ref)`` and
    ``Sigma(comparison)`` (the ``"cv"`` estimator with ``num_samples`` fresh
    samples per trial) and responses are ``Bernoulli((1 - lapse) p + lapse / 3)``.

    Parameters
    ----------
    covariance : callable
        ``covariance(x)``: ``(N, d) -> (N, d, d)`` symmetric positive definite.
    ref, comparison : array (N, d)
    key : jax PRNG key or int seed
    lapse_rate : float
        In ``[0, 0.5)``.
    bandwidth : float
        Logistic smoothing of the decision variable (the WPPM's default).
    num_samples : int
    """
    from .noise import draw_shared_noise
    from .oddity import p_correct_from_cov
    from .validation import check_int, check_real

    ref = np.asarray(check_points(ref, np.shape(ref)[-1], "ref"), np.float64)
    comparison = np.asarray(check_points(comparison, ref.shape[-1], "comparison"), np.float64)
    if ref.ndim != 2 or comparison.shape != ref.shape:
        raise InvalidInput(f"ref and comparison must both be (N, d), got {ref.shape} and "
                           f"{comparison.shape}")
    lapse = check_real("lapse_rate", lapse_rate, 0.0, 0.5, lo_closed=True)
    num_samples = check_int("num_samples", num_samples, 1)
    S_r, S_c = np.asarray(covariance(ref)), np.asarray(covariance(comparison))
    n, d = ref.shape
    if S_r.shape != (n, d, d) or S_c.shape != (n, d, d):
        raise InvalidInput(f"covariance(x) must return (N, d, d) = {(n, d, d)}, got {S_r.shape}")
    k_n, k_y = jax.random.split(as_key(key))
    noise = draw_shared_noise(k_n, (n,), num_samples, d)
    p = p_correct_from_cov(S_r, S_c, ref, comparison, noise, check_real("bandwidth", bandwidth,
                                                                          0.0))
    p = (1 - lapse) * np.asarray(p, np.float64) + lapse / 3
    y = jax.random.bernoulli(k_y, p)
    return TrialData(np.stack([ref, comparison], axis=1), np.asarray(y, dtype=np.int8))


def comparisons_at_radius(model, params, ref, radius, *, key) -> np.ndarray:
    """Comparisons at Mahalanobis ``radius`` from ``ref`` along random directions.

    ``comparison = ref + radius * L u`` with ``L L^T = Sigma(ref)`` under
    ``params`` and ``u`` a uniformly random unit vector, clipped to
    ``[-1, 1]`` (the usual design for simulated oddity experiments).

    Parameters
    ----------
    model : WPPM
    params : dict with ``"W"``
    ref : array (N, d)
    radius : float or array (N,)
    key : jax PRNG key or int seed

    Returns
    -------
    numpy array (N, d)
    """
    ref = np.asarray(check_points(ref, model.input_dim, "ref"), dtype=np.float64)
    if ref.ndim != 2:
        raise InvalidInput(f"ref must be (N, d), got {ref.shape}")
    radius = check_array("radius", radius)
    if np.any(radius < 0):
        raise InvalidInput(f"radius must be >= 0, got minimum {radius.min():g}")
    try:
        step = np.broadcast_to(radius, (len(ref),))[:, None]
    except ValueError:
        raise InvalidInput(
            f"radius must be a number or have shape ({len(ref)},), got shape {radius.shape}"
        ) from None
    u = np.asarray(jax.random.normal(as_key(key), ref.shape), dtype=np.float64)
    u = u / np.linalg.norm(u, axis=1, keepdims=True)  # u may be a read-only view
    L = np.linalg.cholesky(np.asarray(model.covariance(params, ref), dtype=np.float64))
    return np.clip(ref + step * np.einsum("nij,nj->ni", L, u), -1.0, 1.0)


def simulate_experiment(
    model, params, num_trials, *, key, radius=(1.0, 4.0), ref_range=(-1.0, 1.0)
) -> TrialData:
    """Simulate a random-design oddity experiment from a WPPM observer.

    References are uniform in ``[ref_range]^d``; each comparison lies at a
    Mahalanobis radius (under ``params``) drawn uniformly from ``radius``
    along a uniformly random direction (:func:`comparisons_at_radius`,
    clipped to the domain); responses are drawn with :func:`simulate_trials`.
    Radii 1-4 span chance to near-ceiling performance, which is the design
    used by the examples, benchmarks and calibration scripts.

    Parameters
    ----------
    model : WPPM
    params : dict with ``"W"``
    num_trials : int
    key : jax PRNG key or int seed
    radius : (low, high)
        Range of Mahalanobis radii.
    ref_range : (low, high)
        Range of every reference coordinate, inside ``[-1, 1]``.

    Returns
    -------
    TrialData
    """
    from .validation import check_int

    num_trials = check_int("num_trials", num_trials, 1)
    r_lo, r_hi = (float(v) for v in radius)
    x_lo, x_hi = (float(v) for v in ref_range)
    if not 0 <= r_lo <= r_hi:
        raise InvalidInput(f"radius must be (low, high) with 0 <= low <= high, got {radius}")
    if not -1 <= x_lo <= x_hi <= 1:
        raise InvalidInput(f"ref_range must lie inside [-1, 1] with low <= high, got {ref_range}")
    k_ref, k_rad, k_dir, k_y = jax.random.split(as_key(key), 4)
    d = model.input_dim
    ref = np.asarray(jax.random.uniform(k_ref, (num_trials, d), minval=x_lo, maxval=x_hi))
    rad = np.asarray(jax.random.uniform(k_rad, (num_trials,), minval=r_lo, maxval=r_hi))
    ref = np.clip(ref.astype(np.float64), -1.0, 1.0)
    comparison = comparisons_at_radius(model, params, ref, rad, key=k_dir)
    return simulate_trials(model, params, ref, comparison, key=k_y)



def read_points(path, input_dim: int) -> np.ndarray:
    """Stimulus points ``(R, d)`` from a CSV file, e.g. the references of a threshold table.

    The header is optional. With a header the columns ``ref_x, ref_y ...`` (or
    ``x, y ...``) are used wherever they are (other columns are ignored);
    without one, or with exactly ``d`` columns, the first ``d`` columns.
    Every value must be a finite number in ``[-1, 1]``.

    Raises
    ------
    FileNotFoundError
    ValueError
        No points, a header without the needed columns, a ragged row, a
        value that is not a number or outside ``[-1, 1]`` (named by row and
        column).
    """
    d = check_int("input_dim", input_dim, 1, 3)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and any(v.strip() for v in r)]
    if not rows:
        raise InvalidInput(f"{path}: no reference points")
    header = None
    try:
        float(rows[0][0])
    except ValueError:
        header = [h.strip() for h in rows[0]]
        rows = rows[1:]
    axes = _AXES[:d]
    named = None
    if header is not None:
        for candidate in ([f"ref_{a}" for a in axes], list(axes)):
            if all(n in header for n in candidate):
                named = candidate
                break
    if named is not None:
        names, cols, ncols = named, [header.index(n) for n in named], len(header)
    elif header is None or len(header) == d:
        names = list(header) if header else [f"column {j + 1}" for j in range(d)]
        cols, ncols = list(range(d)), d
    else:
        raise InvalidInput(
            f"{path}: reference CSV header {','.join(header)!r} needs columns "
            f"{','.join(f'ref_{a}' for a in axes)} (or {','.join(axes)}) for a {d}-D fit"
        )
    if not rows:
        raise InvalidInput(f"{path}: no reference points")
    out = np.empty((len(rows), d))
    for i, row in enumerate(rows, start=1):
        if len(row) != ncols:
            raise InvalidInput(f"{path}: row {i} has {len(row)} fields, expected {ncols} for a "
                           f"{d}-D fit")
        for k, (j, name) in enumerate(zip(cols, names, strict=True)):
            try:
                v = float(row[j])
            except ValueError:
                raise InvalidInput(f"{path}: row {i}, column {name!r}: {row[j]!r} is not a "
                               "number") from None
            if not math.isfinite(v) or abs(v) > 1.0:
                raise InvalidInput(f"{path}: row {i}, column {name!r} = {row[j]!r} is outside "
                               "[-1, 1]")
            out[i - 1, k] = v
    return out
