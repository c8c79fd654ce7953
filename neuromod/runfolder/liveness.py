"""Who is running a run folder, and whether that run is still alive.

A running run's ``summary.json`` names its owner (``host``, ``pid``, ``started_at``) and carries a
heartbeat, ``updated_at``, rewritten at every evaluation and checkpoint. A run whose process is gone, or
that has been silent for longer than ``stale_after_s``, is *stale*: killed by a scheduler or the OOM
killer, it can never write ``failed`` itself. Times are Unix seconds. Needs no torch.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

#: A running run silent for longer than this (seconds) is reported as stale. Evaluations and checkpoints
#: beat; a run whose evaluations are further apart than this needs a larger value.
STALE_AFTER_S = 900.0


def owner() -> dict[str, Any]:
    """``host``, ``pid`` and ``started_at`` of this process, for a run's ``summary.json``."""
    now = round(time.time(), 3)
    return {"host": socket.gethostname(), "pid": os.getpid(), "started_at": now, "updated_at": now}


def beat(summary: dict[str, Any]) -> dict[str, Any]:
    """Set the heartbeat ``updated_at`` to now (in place); returns ``summary``."""
    summary["updated_at"] = round(time.time(), 3)
    return summary


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def staleness(
    summary: dict[str, Any],
    now: float | None = None,
    stale_after_s: float = STALE_AFTER_S,
    last_modified: float | None = None,
) -> float | None:
    """Seconds a ``running`` run has been silent, if it is stale; None if it is not running or still alive.

    Stale: its owner process is gone (checked only on the owner's host), or its last heartbeat
    (``updated_at``; for a summary written before heartbeats existed, ``last_modified``, the file's mtime)
    is older than ``stale_after_s``.
    """
    if summary.get("status") != "running":
        return None
    now = time.time() if now is None else now
    last = summary.get("updated_at", summary.get("started_at", last_modified))
    silent = None if last is None else max(0.0, now - float(last))
    pid = summary.get("pid")
    if pid is not None and summary.get("host") == socket.gethostname() and not _alive(int(pid)):
        return silent if silent is not None else 0.0
    if silent is not None and silent > stale_after_s:
        return silent
    return None
