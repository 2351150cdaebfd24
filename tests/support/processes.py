"""Finding the Ray Serve replica processes a test started, to kill them on purpose."""

from __future__ import annotations

import psutil


def serve_replicas(root_pid: int, app: str) -> list[psutil.Process]:
    """The replica processes of Serve application ``app`` among the descendants of ``root_pid``
    (the `lorag serve` or `ray start` the test launched: never anything else on the machine)."""
    found = []
    for p in psutil.Process(root_pid).children(recursive=True):
        try:
            if f"ServeReplica:{app}:" in " ".join(p.cmdline()):
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found
