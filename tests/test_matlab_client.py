"""The MATLAB client (``clients/matlab/PsyphyClient.m``) under GNU Octave against a real
server process: ``clients/matlab/smoke_test.m`` asks, tells (a retried tell records
nothing), checks the error identifiers, that only ask/tell of a session the client opened
reopen it after a 404 (a status never creates a session) and reads the status; the Python
client then reads the same session. MATLAB itself is not run here."""

import re
import shutil
import signal
import subprocess

import pytest
from servers import REPO, Server

from psyphy_numpyro.client import Client

OCTAVE = shutil.which("octave-cli") or shutil.which("octave")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(OCTAVE is None, reason="no GNU Octave (apt-get install octave)"),
    # under Octave the client sends its requests with the curl program
    pytest.mark.skipif(shutil.which("curl") is None, reason="no curl program on PATH"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("served_matlab"))
    yield srv
    srv.kill(signal.SIGINT)


def _octave(code, timeout=300):
    cmd = [OCTAVE, "--no-gui", "--no-window-system", "--norc", "--quiet", "--eval",
           f"addpath('{REPO / 'clients' / 'matlab'}'); {code}"]
    if OCTAVE.endswith("octave-cli"):
        cmd.remove("--no-gui")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_octave_smoke_test_against_a_real_server(server):
    name = "dir/matlab obs.sqlite"  # a folder and a space in the name: escaped in the path
    res = _octave(f"smoke_test('{server.url}', '{name}')")
    assert res.returncode == 0, res.stdout + res.stderr
    m = re.search(r"smoke_test: ok told (\d+) ids ([\d ]+)", res.stdout)
    assert m, res.stdout + res.stderr
    assert int(m.group(1)) == 4
    ids = [int(i) for i in m.group(2).split()]
    assert len(set(ids)) == 4
    # the Python client sees the same session: 4 trials told, each once, none pending
    st = Client(server.url).request("GET", "/sessions/dir/matlab%20obs.sqlite/status")
    assert st["told"] == 4 and st["pending"] == 0
    assert (server.root / "dir" / "matlab obs.sqlite").exists()
    # the status and close of a session the client never opened created nothing
    assert not (server.root / "never opened.sqlite").exists()


def test_octave_errors_exit_non_zero(server):
    # the 404 of a session the server does not hold (and this client never opened) is a
    # psyphy:http404 error, and Octave ends with a non-zero exit status
    res = _octave(f"c = PsyphyClient('{server.url}'); c.Retries = 0; "
                  "try; c.status('none.sqlite'); catch e; disp(e.identifier); rethrow(e); end")
    assert res.returncode != 0
    assert "psyphy:http404" in res.stdout, res.stdout + res.stderr
