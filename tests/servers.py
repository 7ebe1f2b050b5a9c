"""Helpers of the tests that run a real ``psyphy-numpyro serve`` process (the server, its
Python client, the live page in Chromium, the MATLAB client under Octave).

Not a test module: ``tests/`` is on ``sys.path`` (pytest's rootdir insertion), so test
files import it as ``from servers import Server, ...``.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# sessions that never reach a refit (num_initial above the trials told)
NO_REFIT = {"num_initial": 10_000, "refit_every": 10_000}
# a small, quickly compiled model and quick refits (as in test_design)
SMALL_MODEL = {"input_dim": 2, "basis_degree": 1, "num_samples": 16, "estimator": "reparam"}
QUICK_FITS = {"map_steps": 40, "warm_steps": 20, "num_draws": 16}


def env():
    """The environment of a child process: this checkout first on PYTHONPATH, JAX on CPU."""
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in out.get(
        "PYTHONPATH", "").split(os.pathsep) if p])
    out.setdefault("JAX_PLATFORMS", "cpu")
    return out


class Server:
    """A real ``psyphy-numpyro serve`` process on a free port."""

    def __init__(self, root, *extra, port=0):
        self.root, self.extra = Path(root), extra
        self.lines = []  # the output of every run
        self.start(port)

    def start(self, port=0):
        cmd = [sys.executable, "-m", "psyphy_numpyro", "serve", "--port", str(port),
               "--root", str(self.root), *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env(), text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the server ended: " + "".join(self.lines))
            self.lines.append(line)
            m = re.search(r"at (http://\S+)", line)
            if m:
                self.url = m.group(1)
                self.port = int(self.url.rsplit(":", 1)[1])
                threading.Thread(target=self._drain, daemon=True).start()
                return
        raise RuntimeError("the server did not start: " + "".join(self.lines))

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        return self.proc.wait(60)


def wait_for(fn, timeout=240, every=0.5):
    """Call ``fn`` until it returns something true (returned); AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = fn()
        if out:
            return out
        time.sleep(every)
    raise AssertionError("timed out")


def chromium():
    """The path of a Chromium (or Chrome) executable, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def browser(url, *args, timeout=120):
    """Run headless Chromium on ``url`` with ``args`` (``--dump-dom``, ``--screenshot=``)."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
               "--window-size=1200,800", *args, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
