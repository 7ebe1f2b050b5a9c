"""Session server latency: ask + tell round trips of four clients on four sessions at once.

A real server process (``python -m psyphy_numpyro serve``) hosts four sessions;
four client processes (the standard-library :mod:`psyphy_numpyro.client`),
one per session, run ``--trials`` trials each as fast as the server answers
(``--pace S``: with a pause of S seconds on average after each, as an observer
answers): ``ask(1)``, a simulated response, ``tell``. Session 0 refits by the default
policy (the default WPPM, hyperparameters from the data, refits in the
server's background thread) from trial ``--num-initial`` on, every
``--refit-every`` responses, so refits run while the clients ask and tell;
``--all-refit`` lets every session refit.

Printed: the machine line, the command, p50 / p99 / max of the ask + tell
round trip (milliseconds, measured by the clients), over all trials and over
the trials answered while a refit was running (the server says so in each
reply's ``refit.state``), and the refits that finished.

Usage: ``python benchmarks/server_latency.py [--trials 1000] [--clients 4]
[--num-initial 300] [--refit-every 200] [--all-refit] [--no-refit] [--pace S]
[--durability process|power]`` (the server's ``--durability``).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _client(url, name, trials, settings, seed, out, pace=0.0):
    sys.path.insert(0, str(REPO))
    import random

    from psyphy_numpyro.client import Client

    rng = random.Random(seed)
    s = Client(url, timeout=60).session(name, **settings)
    times, refitting = [], []
    for _ in range(trials):
        t0 = time.perf_counter()
        ids, st = s.ask(1)
        d = math.dist(st[0][0], st[0][1])
        p = 1 / 3 + (2 / 3) * (1 - math.exp(-((d / 0.08) ** 2)))
        reply = s.tell(ids, [int(rng.random() < p)])
        times.append(time.perf_counter() - t0)
        refitting.append(reply["refit"]["state"] == "running")
        if pace:  # the observer looks and answers: uniform over 0 to twice the mean
            time.sleep(rng.uniform(0.0, 2.0 * pace))
    out.put((name, times, refitting, s.status()))


def _cpu_seconds(pid):
    """User + system CPU seconds of process ``pid`` and its children so far (Linux's
    /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(f) for f in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def _quantile(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))
    return xs[k]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--num-initial", type=int, default=300)
    ap.add_argument("--refit-every", type=int, default=200)
    ap.add_argument("--all-refit", action="store_true")
    ap.add_argument("--no-refit", action="store_true", help="no session refits (a baseline)")
    ap.add_argument("--pace", type=float, default=0.0, metavar="SECONDS",
                    help="mean pause between a tell and the next ask (an observer's "
                    "response time, uniform over 0 to twice it; default 0: back to back)")
    ap.add_argument("--durability", choices=("process", "power"), default="process",
                    help="the server's --durability (default: process)")
    args = ap.parse_args(argv)

    load0 = os.getloadavg()[0]
    root = tempfile.mkdtemp(prefix="server_latency_")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    server = subprocess.Popen([sys.executable, "-m", "psyphy_numpyro", "serve", "--port", "0",
                               "--root", root, "--durability", args.durability],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = None
    for line in server.stdout:
        m = re.search(r"at (http://\S+)", line)
        if m:
            url = m.group(1)
            break
    if url is None:
        raise SystemExit("the server did not start")
    try:
        out = mp.get_context("spawn").Queue()
        procs = []
        for k in range(args.clients):
            refits = (k == 0 or args.all_refit) and not args.no_refit
            settings = {"seed": k, "num_initial": args.num_initial if refits else 10**6,
                        "refit_every": args.refit_every if refits else 10**6}
            procs.append(mp.get_context("spawn").Process(
                target=_client, args=(url, f"s{k}.sqlite", args.trials, settings, k, out,
                                     args.pace)))
        t0, cpu0 = time.perf_counter(), _cpu_seconds(server.pid)
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        wall, cpu1 = time.perf_counter() - t0, _cpu_seconds(server.pid)
        for p in procs:
            p.join()
    finally:
        server.terminate()
        server.wait(60)

    times = [t * 1000 for _, ts, _, _ in results for t in ts]
    during = [t * 1000 for _, ts, rf, _ in results for t, r in zip(ts, rf, strict=True) if r]
    fits = sum(st["fits"] for *_, st in results)

    import psyphy_numpyro as pn

    try:
        from _machine import machine_line

        line = machine_line()
    except Exception:  # noqa: BLE001 - no JAX here: the machine without it
        line = f"# {platform.processor() or platform.machine()}, psyphy_numpyro {pn.__version__}"
    import fastapi
    import uvicorn

    print(line + f", {os.cpu_count()} CPUs, Python {platform.python_version()}, fastapi "
          f"{fastapi.__version__}, uvicorn {uvicorn.__version__}")
    print("# python benchmarks/server_latency.py " + " ".join(argv or sys.argv[1:]))
    print(f"# load average (1 min) at the start {load0:.1f}, at the end {os.getloadavg()[0]:.1f}")
    print(f"# {args.clients} clients x {args.trials} trials, {len(during)} answered during "
          f"a refit, {fits} refits finished, {wall:.1f} s wall")
    if cpu0 is not None and cpu1 is not None:  # the refit worker is a process of its own
        print(f"# the server process's CPU: {1000 * (cpu1 - cpu0) / len(times):.2f} ms per "
              "round trip (its refit worker process not counted)")
    print("| round trip (ask + tell) | trials | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for label, xs in (("all trials", times), ("during a refit", during)):
        print(f"| {label} | {len(xs)} | {_quantile(xs, 0.5):.1f} | {_quantile(xs, 0.99):.1f} "
              f"| {max(xs) if xs else float('nan'):.1f} |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
