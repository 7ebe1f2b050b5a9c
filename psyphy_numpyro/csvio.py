"""CSV files: trial tables (read and written for :class:`~psyphy_numpyro.TrialData`), point
tables (:func:`read_points`) and the atomic writer every CSV output of the package uses
(:func:`write_csv`).

This module knows the file layout only: it reads cells into numpy arrays and writes
arrays into cells; :meth:`TrialData.from_csv <psyphy_numpyro.TrialData.from_csv>` and
:meth:`TrialData.to_csv <psyphy_numpyro.TrialData.to_csv>` build on :func:`read_trials`
and :func:`write_trials`.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Mapping

import numpy as np

from .errors import InvalidInput, InvalidType
from .spacecheck import SPACE_TOL
from .validation import check_int

__all__ = [
    "write_csv",
    "csv_columns",
    "DATA_COLUMNS",
    "RESPONSE_WORDS",
    "DELIMITERS",
    "read_trials",
    "write_trials",
    "read_points",
]

_AXES = ("x", "y", "z")


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


def _read_value(path, r, line, name, lib, text, words, decimal_comma,
                check_domain=True) -> float:
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
    if check_domain and lib != "response" and abs(v) > 1.0 + SPACE_TOL:
        raise InvalidInput(
            f"{path}: row {r}, column {label} = {v:g} is outside [-1, 1]{line}; rescale the "
            "stimuli into [-1, 1], or read them in your units with a space: "
            "TrialData.from_csv(path, space=pn.StimulusSpace.box(lo=..., hi=...))")
    return v


def read_trials(path, *, columns=None, response_values=None, delimiter=None,
                check_domain=True):
    """``(stimuli (N, 2, d), responses (N,) int8, metadata dict)`` read from a trial CSV.

    The reader behind :meth:`TrialData.from_csv <psyphy_numpyro.TrialData.from_csv>`, which
    documents the layout, the arguments and the errors; the values are checked cell by cell
    here (numbers, responses, and, with ``check_domain``, the box ``[-1, 1]``), the arrays as
    a whole by ``TrialData``.
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
            vals = [_read_value(path, r, line, header[j], c, row[j], words, decimal_comma,
                                check_domain)
                    for c, j in zip(cols, order, strict=True)]
            rows.append(vals)
            meta_cells.append([row[j] for _, j in meta])
    if not rows:
        raise InvalidInput(f"{path}: no data rows")
    a = np.asarray(rows)
    stim = np.stack([a[:, :d], a[:, d : 2 * d]], axis=1)
    metadata = {name: _parse_metadata([cells[k] for cells in meta_cells], decimal_comma)
                for k, (name, _) in enumerate(meta)}
    return stim, a[:, -1].astype(np.int8), metadata


def write_trials(path, stimuli, responses, metadata) -> None:
    """Write trials in the layout :func:`read_trials` reads (lossless: 17 digits), metadata
    as extra columns after the response; the writer behind :meth:`TrialData.to_csv
    <psyphy_numpyro.TrialData.to_csv>`."""
    d = stimuli.shape[2]
    flat = np.concatenate([stimuli[:, 0], stimuli[:, 1]], axis=1)
    meta = list(metadata.values())
    write_csv(path, csv_columns(d) + list(metadata),
              ([repr(float(v)) for v in row] + [int(y)] + [_cell(m[i]) for m in meta]
               for i, (row, y) in enumerate(zip(flat, responses, strict=True))))


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
