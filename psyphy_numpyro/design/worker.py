"""Worker processes (a session's refits, the server's read-outs): lower priority, and an
end with their parent. Imports nothing heavy, so a server can name it at start-up."""

from __future__ import annotations

import os
import threading

__all__ = ["become_worker"]


def become_worker(nice: int, parent: int) -> None:  # pragma: no cover - in a child
    """Set up a worker process: its priority lowered by ``nice``, and a watch that ends
    it once its parent ``parent`` (a pid) has ended, even by ``kill -9`` (the refit
    workers, the server's read-out worker)."""
    import time

    if nice:
        try:
            os.nice(nice)
        except (AttributeError, OSError):  # no nice (Windows), or not allowed
            pass

    def orphaned():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
