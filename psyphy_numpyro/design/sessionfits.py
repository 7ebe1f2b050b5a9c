"""A session's fits: the latest finished one and the refits that make the next.

One concept: what :class:`~psyphy_numpyro.design.session.Experiment` knows of its fits.
The latest fit (read from its file in the folder ``<session>.fits`` on first use: ``ask``
needs only the proposals stored with it), whether a refit is due (:mod:`.store` counts),
the refits that run in the background (in a thread or a worker process:
:class:`~psyphy_numpyro.design.refit.BackgroundRefit`,
:class:`~psyphy_numpyro.design.refit.ProcessRefit`) or in the caller, and the recording
of each finished one in the session file (:func:`~psyphy_numpyro.design.refit.record_refit`).
"""

from __future__ import annotations

from . import refit as pipeline

__all__ = ["SessionFits"]


class SessionFits:
    """The latest fit of a session and its refits.

    Parameters
    ----------
    store : SessionStore
        The session file.
    settings : dict
        The session's settings (shared: the first refit of a session without a model
        records the model it chose there).
    refit_in : {"thread", "process"}
        Where background refits run.
    lock : lock
        Held while a finished refit is recorded.
    lease : Lease or None
        The owner's lease (None for a read-only view): recording checks it.

    Attributes
    ----------
    refits : BackgroundRefit or ProcessRefit
        The background refits.
    seq : int or None
        The latest fit's number (None before the first refit).
    """

    def __init__(self, store, settings: dict, refit_in: str, lock, lease):
        self._store, self._settings = store, settings
        self.refit_in, self._lock, self._lease = refit_in, lock, lease
        # live=True: the refits' thread (or the thread waiting for the worker process)
        self.refits = (pipeline.ProcessRefit() if refit_in == "process"
                       else pipeline.BackgroundRefit())
        self._obj, self._file, self.seq = None, None, None
        latest = store.latest_fit()
        if latest is not None:  # read on first use: ``ask`` needs only the stored proposals
            self._file, self.seq = latest["path"], latest["seq"]

    @property
    def fit(self):
        """The latest finished fit (read from its file on first use), or None."""
        if self._obj is None and self._file is not None:
            from ..persist import load_fit

            self._obj = load_fit(self._file)
            self._file = None
        return self._obj

    def due(self) -> bool:
        """Whether the policy refits now (enough responses told since the last refit;
        validation trials do not count)."""
        return self._store.num_fit_told() >= self._store.next_refit_at(self._settings)

    def job(self) -> dict:
        """A refit job of the session's current data, warm-started from the latest fit."""
        return pipeline.make_job(self._store, self._settings, previous=self.fit)

    def refit_if_due(self) -> None:
        """Run a due refit here (synchronously) and record it."""
        if self.due():
            self.record(pipeline.refit_job(self.job()))

    def start_if_due(self) -> None:
        """Start a due refit in the background (unless one is running)."""
        if self.refits.running or not self.due():
            return
        if self.refit_in == "process":  # the worker loads (or keeps) the previous fit
            self.refits.start(pipeline.make_job(self._store, self._settings,
                                                load_previous=False))
        else:
            self.refits.start(self.job())

    def collect(self) -> None:
        """Record a finished background refit (called from the user's thread)."""
        result = self.refits.take()
        if result is not None:
            self.record(result)

    def record(self, result: dict) -> None:
        """Record a finished refit in the session file; it becomes the latest fit."""
        with self._lock:
            pipeline.record_refit(self._store, self._settings, result, lease=self._lease)
        if result.get("fit") is None:  # from a worker process: read from its file on use
            self._obj, self._file = None, result["path"]
        else:
            self._obj, self._file = result["fit"], None
        self.seq = result["seq"]
