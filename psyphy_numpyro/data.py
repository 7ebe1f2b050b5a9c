"""Trial data: validated container, CSV input/output and simulation."""

from __future__ import annotations

import csv
import math
import os

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


def _csv_layout(path, header) -> int:
    """Stimulus dimension of a CSV header; errors name the bad columns."""
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise InvalidInput(f"{path}: header (file line 1) repeats column(s) {dup}")
    for d in (1, 2, 3):
        if set(header) == set(csv_columns(d)):
            return d
    known = csv_columns(3)
    unknown = [h for h in header if h not in known]
    axes = [_AXES.index(h.rsplit("_", 1)[1]) for h in header if h in known and h != "response"]
    d = max(axes, default=0) + 1
    missing = [c for c in csv_columns(d) if c not in header]
    expected = " | ".join(",".join(csv_columns(k)) for k in (1, 2, 3))
    raise InvalidInput(
        f"{path}: header (file line 1) {','.join(header)!r} does not match any layout "
        f"({expected})"
        + (f"; unknown columns {unknown}" if unknown else "")
        + (f"; missing columns {missing} for the {d}-D layout" if missing else "")
    )


class TrialData:
    """Oddity-task trials: stimuli and 0/1 responses (1 = correct).

    Parameters
    ----------
    stimuli : array (N, 2, d), or a psyphy ``TrialData``/``ResponseData``
        ``stimuli[:, 0]`` are references, ``stimuli[:, 1]`` comparisons, all in
        ``[-1, 1]``, ``d`` in {1, 2, 3}. A psyphy data object may be passed
        alone: its ``stimuli`` and ``responses`` are taken over.
    responses : array (N,) or (N, 1) of 0/1

    Attributes
    ----------
    stimuli : numpy array (N, 2, d), float64
    responses : numpy array (N,), int8
    """

    __slots__ = ("stimuli", "responses")

    def __init__(self, stimuli, responses=None):
        if responses is None:
            if hasattr(stimuli, "to_trial_data"):  # psyphy ResponseData
                stimuli = stimuli.to_trial_data()
            if hasattr(stimuli, "stimuli") and hasattr(stimuli, "responses"):
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
        self.stimuli = np.array(s, dtype=np.float64)
        self.responses = y

    # -- constructors ---------------------------------------------------------
    @classmethod
    def from_arrays(cls, ref, comparison, responses) -> TrialData:
        """Build from references (N, d), comparisons (N, d) and responses (N,)."""
        ref = np.asarray(ref)
        comparison = np.asarray(comparison)
        if ref.shape != comparison.shape or ref.ndim != 2:
            raise InvalidInput(
                f"ref and comparison must both have shape (N, d), got {ref.shape} and "
                f"{comparison.shape}"
            )
        return cls(np.stack([ref, comparison], axis=1), responses)

    @classmethod
    def from_csv(cls, path) -> TrialData:
        """Read a CSV file with header (see :func:`csv_columns`).

        Errors name the file, the row (1 = first data row; the physical file
        line is given too) and the column. A UTF-8 byte-order mark is ignored.
        """
        path = os.fspath(path)
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise InvalidInput(f"{path}: file is empty (no header)") from None
            d = _csv_layout(path, header)
            cols = csv_columns(d)
            order = [header.index(c) for c in cols]
            rows = []
            for r, row in enumerate(reader, start=1):
                if not row or all(not v.strip() for v in row):
                    continue
                line = f" (file line {reader.line_num})"
                if len(row) != len(header):
                    raise InvalidInput(
                        f"{path}: row {r} has {len(row)} fields, expected {len(header)} "
                        f"({','.join(header)}){line}"
                    )
                vals = []
                for c, j in zip(cols, order, strict=True):
                    try:
                        v = float(row[j])
                    except ValueError:
                        raise InvalidInput(
                            f"{path}: row {r}, column {c!r}: {row[j]!r} is not a number{line}"
                        ) from None
                    if not np.isfinite(v):
                        raise InvalidInput(
                            f"{path}: row {r}, column {c!r} is {row[j]!r}; NaN and Inf are "
                            f"not allowed{line}"
                        )
                    if c == "response" and v not in (0.0, 1.0):
                        raise InvalidInput(
                            f"{path}: row {r}, column 'response' must be 0 or 1 "
                            f"(1 = correct), got {row[j]!r}{line}"
                        )
                    if c != "response" and abs(v) > 1.0 + DOMAIN_TOL:
                        raise InvalidInput(
                            f"{path}: row {r}, column {c!r} = {v:g} is outside [-1, 1]{line}; "
                            "rescale the stimuli into [-1, 1] (e.g. x' = 2 (x - lo) / (hi - lo) "
                            "- 1 per axis)"
                        )
                    vals.append(v)
                rows.append(vals)
        if not rows:
            raise InvalidInput(f"{path}: no data rows")
        a = np.asarray(rows)
        stim = np.stack([a[:, :d], a[:, d : 2 * d]], axis=1)
        return cls(stim, a[:, -1].astype(np.int8))

    def to_csv(self, path) -> None:
        """Write the CSV layout read by :meth:`from_csv` (lossless: 17 digits)."""
        d = self.input_dim
        flat = np.concatenate([self.stimuli[:, 0], self.stimuli[:, 1]], axis=1)
        write_csv(path, csv_columns(d),
                  ([repr(float(v)) for v in row] + [int(y)]
                   for row, y in zip(flat, self.responses, strict=True)))

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
        idx = np.arange(len(self))[idx]
        return TrialData(self.stimuli[np.atleast_1d(idx)], self.responses[np.atleast_1d(idx)])

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, TrialData)
            and np.array_equal(self.stimuli, other.stimuli)
            and np.array_equal(self.responses, other.responses)
        )

    def __repr__(self) -> str:
        return (
            f"TrialData(num_trials={len(self)}, input_dim={self.input_dim}, "
            f"proportion_correct={self.responses.mean():.3f})"
        )


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


_POINT_AXES = ("x", "y", "z")


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
    axes = _POINT_AXES[:d]
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
