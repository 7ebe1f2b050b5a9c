"""The server's hosted session (``server/sessions.py``'s ``Hosted``) on a stand-in
Experiment: a failed background refit, raised by whichever call comes next, is recorded
the same way by ``ask``/``tell`` and by the monitor's ``observe``; a refit's duration."""

import numpy as np

from psyphy_numpyro.server.sessions import Hosted


class FakeExperiment:
    """What ``Hosted`` reads of an Experiment; ``fail`` makes the next call raise the
    error a failed background refit raises (once)."""

    refit_pid = 4242
    next_refit_at = 10

    def __init__(self):
        self.fail = None
        self.told = self.fits = 0
        self.refitting = False
        self.data = type("Data", (), {"stimuli": np.zeros((0, 2, 2)),
                                      "responses": np.zeros(0, int)})()
        self.pending = np.zeros(0, int)
        self.calls = []

    def _raise(self):
        if self.fail is not None:
            cause, self.fail = self.fail, None
            raise RuntimeError(f"the background refit failed: {cause}") from cause

    def status(self):
        self.calls.append("status")
        self._raise()
        return {"told": self.told, "pending": 0, "expired": 0, "fits": self.fits,
                "refitting": self.refitting, "next_refit_at": self.next_refit_at}

    def ask(self, n):
        self.calls.append("ask")
        self._raise()
        return np.arange(n), np.zeros((n, 2, 2))

    def latest_fit_info(self):
        return {"seq": self.fits, "num_trials": self.told, "path": _NoFile()}


class _NoFile:
    def exists(self):
        return False

    def __str__(self):
        return "fit.nc"


def _hosted():
    exp = FakeExperiment()
    return Hosted("s.sqlite", "s.sqlite", exp), exp


def test_attributes_set_in_init():
    hosted, _ = _hosted()
    assert hosted._t0 is None and hosted.thresholds_error is None
    assert hosted.last_refit is None and hosted.thresholds_state == "none"


def test_a_failed_refit_is_recorded_alike_by_a_call_and_by_observe():
    records = []
    for how in ("call", "observe"):
        hosted, exp = _hosted()
        hosted.last_refit = {"state": "running", "pid": 1, "num_trials": 0}
        exp.calls.clear()
        exp.fail = ValueError("boom")
        if how == "call":
            ids, _ = hosted._call(exp.ask, 2)
            assert ids.tolist() == [0, 1] and exp.calls == ["ask", "ask"]  # made again
        else:
            st = hosted.observe()
            assert st["fits"] == 0 and exp.calls == ["status", "status"]
        rec = dict(hosted.last_refit)
        assert rec.pop("ended")
        records.append(rec)
    assert records[0] == records[1] == {"state": "failed", "pid": 1, "num_trials": 0,
                                        "error": "boom"}
    # the refit state a reply reports: failed while no new trial was told
    assert hosted.refit_state(hosted.observe())["state"] == "failed"


def test_other_errors_are_not_swallowed():
    hosted, exp = _hosted()

    def bad():
        raise RuntimeError("something else")

    try:
        hosted._call(bad)
    except RuntimeError as exc:
        assert str(exc) == "something else"
    else:
        raise AssertionError("no error")
    assert hosted.last_refit is None


def test_a_refit_seen_running_then_finished_has_its_duration():
    hosted, exp = _hosted()
    exp.refitting, exp.told = True, 10
    hosted.observe()
    assert hosted._t0 is not None and hosted.last_refit["state"] == "running"
    exp.refitting, exp.fits = False, 1
    hosted.observe()
    rec = hosted.last_refit
    assert rec["state"] == "finished" and rec["fit"] == 1 and rec["seconds"] >= 0
    # a refit never seen running (started and ended between two looks): no duration
    hosted, exp = _hosted()
    hosted.last_refit = {"state": "running", "pid": None, "num_trials": 0}
    exp.fits = 1
    hosted.observe()
    assert hosted.last_refit["state"] == "finished" and "seconds" not in hosted.last_refit
    assert hosted.last_refit["pid"] == FakeExperiment.refit_pid
