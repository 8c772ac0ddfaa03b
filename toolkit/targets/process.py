"""Whether a lease holder's process still runs: knowable only for holders on this host."""

from __future__ import annotations

import os
import socket


def holder_alive(holder: str, host: str | None = None) -> bool:
    """False only when `holder` (user@host/pid) names this host and no process with that pid runs."""
    host = host or socket.gethostname()
    named, _, pid = holder.rpartition("/")
    if named.rpartition("@")[2] != host or not pid.isdigit():
        return True  # another host: unknowable from here; the lease's expiry decides
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
