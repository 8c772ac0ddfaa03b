"""This orchestrator process: whether a lease holder's process still runs, and waits that a stop request can cut
short.

`holder_alive` is knowable only for holders on this host. `wait_or_wake(seconds)` is how the targets' clocks wait
(pacing, backoff, the pause between observations): `wake()` — called by the CLI's Ctrl-C/SIGTERM handler — ends every
such wait at once, so a run notices a stop request immediately instead of after a whole poll interval. A wait ended
early is allowed by the clock's contract ("at most `seconds`"); the engine checks what it waits for after each one.
"""

from __future__ import annotations

import os
import socket
import threading

_wake = threading.Event()
_listeners: set[threading.Event] = set()
_listeners_lock = threading.RLock()  # re-entrant: `wake` may run in a signal handler on the thread holding it


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


def wake() -> None:
    """End the waits in progress (safe to call from a signal handler)."""
    _wake.set()
    with _listeners_lock:
        listeners = list(_listeners)
    for event in listeners:
        event.set()


def wait_or_wake(seconds: float) -> bool:
    """Wait `seconds`, or less if `wake()` is called meanwhile; True when woken."""
    woke = _wake.wait(max(0.0, seconds))
    _wake.clear()
    return woke


def wake_also(event: threading.Event, listen: bool = True) -> None:
    """Have `wake()` set `event` too (a pod watch's change event, whose waiter then returns early), or stop."""
    with _listeners_lock:
        if listen:
            _listeners.add(event)
        else:
            _listeners.discard(event)
