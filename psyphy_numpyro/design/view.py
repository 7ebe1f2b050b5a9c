"""What an opened session shows without changing it: the read-only side of ``Experiment``.

One concept: :class:`SessionView`, the base of
:class:`~psyphy_numpyro.design.session.Experiment` (whose ``read_only=True`` opening is
exactly this view). Its stored settings, owner and model; the told, pending and
validation trials and their stimuli and sources; the latest fit; the status and the
progress (:mod:`.stopping`); and the state of the background refits (running, their
process, the next refit's trial count). ``Experiment`` adds the asking, telling,
expiring, refitting and closing.
"""

from __future__ import annotations

import numpy as np

from . import refit as pipeline
from .region import Region
from .store import read_settings
from .trials import check_ids
from .validation_trials import held_out_data, validation_status

__all__ = ["SessionView"]


class SessionView:
    """The read-only side of an adaptive session (the base of ``Experiment``).

    ``Experiment.__init__`` opens the store, checks the settings and calls
    :meth:`_open_view`; it sets ``_fits`` (:class:`~.sessionfits.SessionFits`) and
    ``_progress`` (:class:`~.stopping.Progress`) itself.
    """

    def _open_view(self, store, settings: dict, lease) -> None:
        """Set the view's state from an opened store and its checked settings."""
        from ..space import StimulusSpace

        self._store, self.settings, self._lease = store, settings, lease
        self.path = store.path
        self._lock = store.lock
        self.input_dim = settings["input_dim"]
        self.seed = settings["seed"]
        stored_space = settings.get("space")
        self.space = None if stored_space is None else StimulusSpace.from_dict(stored_space)
        self.region = Region(settings.get("region"), self.input_dim, self.space)
        self.fits_dir = store.fits_dir

    @staticmethod
    def read_settings(path) -> dict:
        """The settings stored in an existing session file, read without changing it.

        Parameters
        ----------
        path : str or os.PathLike
            The session file.

        Returns
        -------
        dict
            The stored settings (``input_dim``, ``seed``, ``model``,
            ``num_initial``, ``refit_every``, ``distances``, ``fit_options``,
            ``version``, and ``chosen_model`` once a refit chose the model), as
            in ``settings`` of an opened session.

        Raises
        ------
        ValueError
            No such file, a folder, or a file that is not a session file
            (which is left as it is, where opening it as an ``Experiment``
            would turn it into one).
        """
        return read_settings(path)

    # -- ownership ---------------------------------------------------------------
    @property
    def owner(self) -> dict | None:
        """This opening's owner info (``pid``, ``host``, ``since``, ``name``); for a
        read-only view, the session's live owner, if any."""
        if self._lease is not None:
            return dict(self._lease.owner)
        return None if self._store.db is None else self._store.owner()

    # -- state ----------------------------------------------------------------
    @property
    def model(self):
        """The refits' model: the given one, the one chosen at the first refit, or None."""
        obj = self.settings.get("model") or self.settings.get("chosen_model")
        return pipeline.model_from_json(obj)

    @property
    def trial_ids(self) -> np.ndarray:
        """Ids of the told trials of :attr:`data` (validation trials left out:
        :attr:`validation_ids`), in the order their responses arrived."""
        return np.array(self._store.told_ids(), np.int64)

    @property
    def pending(self) -> np.ndarray:
        """Ids of the trials asked and not yet told (nor expired), oldest first."""
        return np.array(self._store.pending_ids(), np.int64)

    @property
    def num_told(self) -> int:
        """The number of told trials (validation trials included)."""
        return self._store.num_told()

    @property
    def data(self):
        """:class:`~psyphy_numpyro.TrialData` of the told trials the refits use, in the
        order told: every told trial but the validation trials (:attr:`validation_data`)."""
        return pipeline.session_data(self._store, self.input_dim, self.space)

    @property
    def validation_ids(self) -> np.ndarray:
        """Ids of the told validation trials, in the order their responses arrived (empty
        without ``validation``)."""
        return np.array(self._store.validation_told()[0], np.int64)

    @property
    def validation_data(self):
        """:class:`~psyphy_numpyro.TrialData` of the told validation trials (held out of
        every fit), in the order told and the units of :attr:`data`: score a fit on them
        with :func:`~psyphy_numpyro.validate_mocs` (empty without ``validation``)."""
        return held_out_data(self._store, self.input_dim, self.space)

    @property
    def fit(self):
        """The latest finished posterior fit (a LaplaceFit), or None before the first refit."""
        self._fits.collect()
        return self._fits.fit

    def stimuli(self, ids) -> np.ndarray:
        """Stimuli ``(n, 2, d)`` of the given trial ids, in the session's units (its
        ``space``'s, else the model's box)."""
        model = np.asarray(self._store.stimuli(check_ids(ids)), np.float64)
        return model if self.space is None else self.space.to_lab(model)

    def sources(self, ids) -> list[str]:
        """How each trial was chosen: ``"space"`` (the space-filling sequence),
        ``"fit<k>"`` (proposed from the session's fit number ``k``) or ``"validation"``
        (the session's validation design, held out of the fits)."""
        return self._store.sources(check_ids(ids))

    def latest_fit_info(self) -> dict | None:
        """Where the latest finished fit is stored, without loading it.

        Returns
        -------
        dict or None
            ``None`` before the first refit; else ``seq`` (the fit's number,
            from 0), ``num_trials`` (the told trials it saw) and ``path`` (the
            absolute path of its NetCDF file in the folder ``<path>.fits``).
        """
        return self._store.latest_fit()

    def status(self) -> dict:
        """Counts, settings and the progress (:meth:`progress` with the precision only
        when cached: ``compute=False``) as a JSON-ready dict."""
        self._fits.collect()
        latest = self._store.latest_fit()
        return {
            "session": str(self.path),
            **self._store.counts(),
            "latest_fit_trials": None if latest is None else latest["num_trials"],
            "refitting": self.refitting,
            "next_refit_at": self.next_refit_at,
            "input_dim": self.input_dim,
            "seed": self.seed,
            "num_initial": self.settings["num_initial"],
            "refit_every": self.settings["refit_every"],
            "space": self.settings.get("space"),
            "region": self.settings.get("region"),
            "validation": validation_status(self._store, self.settings),
            "stop": self.settings.get("stop"),
            "progress": self.progress(compute=False),
        }

    def progress(self, compute: bool = True) -> dict:
        """How far the session is, in plain units, and whether a stop rule is met.

        Parameters
        ----------
        compute : bool
            Compute the latest fit's precision when it is not cached yet (once per
            fit: loads the fit and reads its thresholds, about a second); ``False``:
            only a cached one (``status`` uses that), else ``precision`` is None.

        Returns
        -------
        dict
            JSON-ready: ``told`` (trials told), ``refits`` (refits done), ``precision``
            (the latest fit's median width of the 90% threshold intervals over the
            region's references x 8 directions, in % of the threshold: the median of
            ``100 * (hi - lo) / median``; None before the first refit),
            ``precision_fit_trials`` (the trials that fit saw), ``precision_means``,
            ``target``, ``max_trials``, ``max_seconds`` (the stop rules, None when not
            set), ``elapsed_s`` (since the first ask), ``trials_left_estimate`` (None
            when unknown; widths assumed to shrink as ``1/sqrt(trials)``), ``stop`` and
            ``reason`` (the met rules in words, e.g. ``"3000 trials told (limit
            3000)"``). See :func:`~psyphy_numpyro.design.stopping.progress_report`.
        """
        self._fits.collect()
        return self._progress.report(lambda: self._fits.fit, compute=compute)

    @property
    def done(self) -> bool:
        """Whether a stop rule (``stop=``) is met; ``ask`` still works after it."""
        return self.progress()["stop"]

    # -- refits -------------------------------------------------------------------
    @property
    def next_refit_at(self) -> int:
        """The number of told trials at which the policy refits next."""
        return self._store.next_refit_at(self.settings)

    @property
    def refitting(self) -> bool:
        """Whether a background refit is running."""
        return self._fits.refits.running

    @property
    def refit_pid(self) -> int | None:
        """The process that runs this session's background refits: this one with
        ``refit_in="thread"``, the worker process with ``"process"`` (None until the
        first refit started it)."""
        return self._fits.refits.pid
