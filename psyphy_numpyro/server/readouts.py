"""Where the server reads out its sessions' fits: the thresholds the live page and the
``thresholds`` route show, and the precision the stop rules use.

Reading out a fit loads it and runs :func:`~psyphy_numpyro.thresholds` (JAX: tracing,
compiling, computing). Done in the server's own process it would hold Python's
interpreter lock for stretches of a second and hold up every request; so with the
sessions' refits in worker processes (the default), read-outs run in one worker process
of their own, at lower priority (``nice`` 10), which keeps its compiled programs from one
fit to the next and ends with the server (even one ended by ``kill -9``).
:func:`readout_job` is the same either way.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from ..design.worker import become_worker
from .replies import thresholds_reply
from .warmup import IMPORT_LOCK

__all__ = ["readout_executor", "readout_job"]


def readout_executor(refit_in: str) -> Executor:
    """One worker for the read-outs: a process (``refit_in="process"``) or a thread."""
    if refit_in == "process":
        return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=become_worker, initargs=(10, os.getpid()))
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="psyphy-numpyro-readout")


def readout_job(info: dict, space, region, input_dim: int) -> dict:
    """Read out the fit ``info`` (a session's ``latest_fit_info()``): its thresholds reply
    (at the ``region``'s reference points, or a 3-per-axis grid over its box, in the
    ``space``'s units; ``space`` as ``StimulusSpace.to_dict()`` gives it, or None) and its
    precision, cached in its fits folder for the session's progress; returns the reply."""
    from ..design.region import Region
    from ..design.stopping import cache_precision
    from ..persist import load_fit

    with IMPORT_LOCK:  # reading the fit file imports modules: never beside another import
        from .. import readout  # noqa: F401

        fit = load_fit(info["path"])
    reg = Region(region, input_dim, space)
    reply = thresholds_reply(fit, info["seq"], info["num_trials"], space=reg.space,
                             refs=reg.points(3))
    cache_precision(Path(info["path"]).parent, info, fit, reg, input_dim)
    return reply
