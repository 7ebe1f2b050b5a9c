"""Trial data: the validated container :class:`TrialData`.

Its per-trial metadata columns are checked by :mod:`psyphy_numpyro.metadata`; CSV
input and output live in :mod:`psyphy_numpyro.csvio` (``TrialData.from_csv`` and
``to_csv`` call it) with the space sidecar in :mod:`psyphy_numpyro.sidecar`;
simulation in :mod:`psyphy_numpyro.simulate`; the warning about data that look
like they are in the lab's units (``warn_small_range``) in
:mod:`psyphy_numpyro.rangecheck`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from .csvio import (
    csv_columns,
    read_points,  # noqa: F401 - re-exported for modules not yet updated
    read_trials,
    write_trials,
)
from .errors import InvalidInput, InvalidType
from .metadata import check_metadata, concat_column, same_column
from .sidecar import read_sidecar, sidecar_path, write_sidecar  # noqa: F401 - re-exported
from .space import StimulusSpace
from .validation import check_points, check_responses

__all__ = [
    "TrialData",
    "as_trial_data",
    "as_space",
]

_ROLES = ("reference", "comparison")


def _locate_stimulus(idx) -> str:
    """``(trial, role, coordinate)`` index of a stimuli array, in words."""
    trial, role, coord = idx
    return f"trial {trial} ({_ROLES[role]}, coordinate {coord})"


class TrialData:
    """Oddity-task trials: stimuli, 0/1 responses (1 = correct) and per-trial metadata.

    ``N`` may be 0: no trials yet, e.g. a new session's ``Experiment.data``
    (stimuli ``(0, 2, d)``, responses ``(0,)``). Fits and the other functions
    that take data reject it (:func:`as_trial_data`).

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

    space : StimulusSpace or its dict description, optional
        The units ``stimuli`` are given in (keyword only, see
        :class:`~psyphy_numpyro.StimulusSpace`): ``stimuli`` must then lie in
        the space's domain (else a ``ValueError`` naming the trial and the
        units), and fits use :attr:`model_stimuli`, their image in the box.
        Without a space the stimuli are in the box already.

    Attributes
    ----------
    stimuli : numpy array (N, 2, d), float64
        In the lab's units (those of :attr:`space`).
    model_stimuli : numpy array (N, 2, d), float64
        In the model's box ``[-1, 1]^d``: what fits see. The same array as
        :attr:`stimuli` when there is no space.
    space : StimulusSpace or None
    responses : numpy array (N,), int8
    metadata : dict of str -> numpy array (N,)
        Kept through slicing (``data[mask]``), :meth:`split`,
        :meth:`concatenate`, :meth:`to_csv` (extra columns) and fit files
        (``fit.save`` / :func:`~psyphy_numpyro.load_fit`). Fits ignore it.
        The space is kept the same way.

    Examples
    --------
    >>> data = pn.TrialData.from_csv("lab.csv")      # doctest: +SKIP
    >>> data.metadata["subject"]                     # doctest: +SKIP
    array(['s01', 's01', ..., 's07'], dtype='<U3')
    >>> fits = pn.fit_map(list(data.split("subject").values()), model)  # doctest: +SKIP
    """

    __slots__ = ("stimuli", "responses", "metadata", "space", "model_stimuli", "_warned")

    def __init__(self, stimuli, responses=None, *, metadata=None, space=None):
        if responses is None:
            if hasattr(stimuli, "to_trial_data"):  # psyphy ResponseData
                stimuli = stimuli.to_trial_data()
            if hasattr(stimuli, "stimuli") and hasattr(stimuli, "responses"):
                if isinstance(stimuli, TrialData):
                    if metadata is None:
                        metadata = stimuli.metadata
                    if space is None:
                        space = stimuli.space
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
        space = as_space(space)
        if space is None:
            check_points(s, s.shape[2], "stimuli", locate=_locate_stimulus)
            lab = model = np.array(s, dtype=np.float64)
        else:
            if space.input_dim != s.shape[2]:
                raise InvalidInput(f"the stimuli have d = {s.shape[2]} coordinates but the "
                                   f"space is {space.input_dim}-D ({space!r})")
            lab = np.array(space.check(s, "stimuli", locate=_locate_stimulus),
                           dtype=np.float64)
            model = np.clip(space.to_model(lab, check=False), -1.0, 1.0)
        y = check_responses(responses, s.shape[0])
        meta = check_metadata(metadata, s.shape[0])
        self.stimuli = lab
        self.model_stimuli = model
        self.space = space
        self.responses = y
        self.metadata = meta
        self._warned = False  # set by rangecheck.warn_small_range: warned once already

    # -- constructors ---------------------------------------------------------
    @classmethod
    def from_arrays(cls, ref, comparison, responses, *, metadata=None,
                    space=None) -> TrialData:
        """Build from references (N, d), comparisons (N, d), responses (N,), optional
        per-trial ``metadata`` (name -> N values) and the ``space`` the stimuli are given
        in (see :class:`TrialData`)."""
        ref = np.asarray(ref)
        comparison = np.asarray(comparison)
        if ref.shape != comparison.shape or ref.ndim != 2:
            raise InvalidInput(
                f"ref and comparison must both have shape (N, d), got {ref.shape} and "
                f"{comparison.shape}"
            )
        return cls(np.stack([ref, comparison], axis=1), responses, metadata=metadata,
                   space=space)

    @classmethod
    def concatenate(cls, datas) -> TrialData:
        """One data set of several (sessions, observers ...), in order, metadata included.

        Every data set must have the same stimulus dimension, the same
        metadata columns and the same stimulus space (or none).
        """
        datas = [as_trial_data(d, allow_empty=True) for d in datas]
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
        for i, d in enumerate(datas[1:], start=1):
            if d.space != datas[0].space:
                raise InvalidInput(
                    f"concatenate: data set {i} is in the space {d.space!r}, data set 0 in "
                    f"{datas[0].space!r}; every data set needs the same stimulus space")
        return cls(np.concatenate([d.stimuli for d in datas]),
                   np.concatenate([d.responses for d in datas]),
                   metadata={n: concat_column([d.metadata[n] for d in datas]) for n in names},
                   space=datas[0].space)

    @classmethod
    def from_csv(cls, path, *, columns=None, response_values=None,
                 delimiter=None, space=None) -> TrialData:
        """Read a CSV file with a header (see :func:`~psyphy_numpyro.csvio.csv_columns`).

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
        space : StimulusSpace, dict, path or ``"auto"``, optional
            The units of the file's stimuli (see :class:`TrialData`); a path
            is read by :meth:`StimulusSpace.from_file`. By default (``None``)
            the space :meth:`to_csv` stored next to the file
            (``<file>.space.json``) is used when there is one, else the
            stimuli must be in the box ``[-1, 1]``.
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
            is not a number, NaN/Inf, a coordinate outside ``[-1, 1]`` (outside
            the space's bounds with a space), a response that is not 0/1,
            true/false or a ``response_values`` word.

        Notes
        -----
        A UTF-8 byte-order mark is ignored.
        """
        if space is None:
            space = read_sidecar(path)
        elif isinstance(space, (str, os.PathLike)):
            space = StimulusSpace.from_file(space)
        stimuli, responses, metadata = read_trials(
            path, columns=columns, response_values=response_values, delimiter=delimiter,
            check_domain=space is None)
        if space is not None:
            space = as_space(space)
            names = csv_columns(stimuli.shape[2])
            d = stimuli.shape[2]
            if space.input_dim != d:
                raise InvalidInput(f"{os.fspath(path)}: the file has {d}-D stimuli but the "
                                   f"space is {space.input_dim}-D ({space!r})")

            def locate(idx):
                return f"row {idx[0] + 1}, column {names[idx[1] * d + idx[2]]!r}"

            try:
                space.check(stimuli, "stimuli", locate=locate)
            except InvalidInput as exc:
                raise InvalidInput(f"{os.fspath(path)}: {exc}") from None
        return cls(stimuli, responses, metadata=metadata, space=space)

    def to_csv(self, path) -> None:
        """Write the CSV layout read by :meth:`from_csv` (lossless: 17 digits), metadata as
        extra columns after the response.

        Metadata round-trips with its values; text that looks like a number
        (``"12"``) reads back as a number. Stimuli are written in the lab's
        units; with a space, its description goes to a JSON sidecar file
        ``<path>.space.json`` (:meth:`StimulusSpace.to_dict`), which
        :meth:`from_csv` reads back; the CSV itself keeps the plain layout.
        Without a space no sidecar is written (and a stale one is removed).
        """
        write_trials(path, self.stimuli, self.responses, self.metadata)
        write_sidecar(path, self.space)

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
                         metadata={k: v[idx] for k, v in self.metadata.items()},
                         space=self.space)

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
            and self.space == other.space
            and self.metadata.keys() == other.metadata.keys()
            and all(same_column(v, other.metadata[k]) for k, v in self.metadata.items())
        )

    def __repr__(self) -> str:
        meta = f", metadata={list(self.metadata)}" if self.metadata else ""
        correct = f", proportion_correct={self.responses.mean():.3f}" if len(self) else ""
        space = f", space={self.space!r}" if self.space is not None else ""
        return (f"TrialData(num_trials={len(self)}, input_dim={self.input_dim}{correct}{meta}"
                f"{space})")

    def in_model_units(self) -> TrialData:
        """The same trials with :attr:`model_stimuli` as stimuli and no space."""
        if self.space is None:
            return self
        return TrialData(self.model_stimuli, self.responses, metadata=self.metadata)


def as_trial_data(data, *, allow_empty: bool = False) -> TrialData:
    """Coerce ``data`` (ours, psyphy's TrialData/ResponseData) to :class:`TrialData`.

    Data without trials is an error unless ``allow_empty``: every function that
    fits or evaluates data takes it through here.
    """
    if not isinstance(data, TrialData):
        if not (hasattr(data, "stimuli") or hasattr(data, "to_trial_data")):
            raise InvalidType(f"data must be a TrialData (or psyphy TrialData/ResponseData), "
                              f"got {type(data).__name__}")
        data = TrialData(data)
    if not allow_empty and len(data) == 0:
        raise InvalidInput("data has no trials (an empty TrialData): at least one trial is "
                           "needed")
    return data


def as_space(space) -> StimulusSpace | None:
    """``None``, a :class:`StimulusSpace`, or its dict description
    (:meth:`StimulusSpace.from_dict`)."""
    if space is None or isinstance(space, StimulusSpace):
        return space
    if isinstance(space, Mapping):
        return StimulusSpace.from_dict(dict(space))
    raise InvalidType(f"space must be a StimulusSpace (or its dict description), got "
                      f"{type(space).__name__}")
