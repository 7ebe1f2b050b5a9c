"""The server's read-out worker (``server/readouts.py``): one process of lower priority
that ends with the server, even when the server is killed with SIGKILL."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

PARENT = textwrap.dedent("""
    import os, sys, time
    from psyphy_numpyro.server.readouts import readout_executor

    pool = readout_executor("process")
    print(pool.submit(os.getpid).result(), pool.submit(os.nice, 0).result(), flush=True)
    time.sleep(600)
""")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has ended
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_readout_worker_is_niced_and_ends_with_a_killed_server():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=os.getcwd()))
    try:
        worker, niceness = (int(v) for v in parent.stdout.readline().split())
        assert worker != parent.pid and niceness >= 10 and _alive(worker)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
    deadline = time.monotonic() + 20
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker)
