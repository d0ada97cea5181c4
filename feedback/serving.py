"""What `feedback serve` makes sure of before and while it serves: one server per port, one server per
database file, no worker left serving after its parent is gone, and a stop that ends the requests that
would otherwise hold it up."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import fcntl
import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

# Set by `feedback serve` for its workers: the pid they must not outlive.
PARENT_ENV = "FEEDBACK_SERVE_PARENT"
_PR_SET_PDEATHSIG = 1
# How long a stopping worker may take to finish the requests in flight and flush its writer before
# the serving process kills it: within the 10 s a stop may take (systemd's TimeoutStopSec is 15).
STOP_GRACE_SECONDS = 8


class PortInUse(Exception):
    """Something already listens on the address `serve` was asked to take."""


class DatabaseInUse(Exception):
    """A running server holds the database file open."""


def refuse_port_in_use(host: str, port: int) -> None:
    """Bind a plain socket to the address once, so an address another server listens on is refused.

    The ASGI server binds with SO_REUSEPORT (one socket per worker), so a second server on the same
    port would bind too and the kernel would spread connections over both; a socket without
    SO_REUSEPORT cannot share a port with a listening one. SO_REUSEADDR lets the probe pass over
    connections of an earlier server still in TIME_WAIT, which are no reason to refuse."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUse(f"port {port} on {host} is in use: another server listens there") from None
            raise PortInUse(f"cannot listen on {host}:{port}: {error.strerror}") from None


def hold_database(path: str) -> IO[bytes]:
    """A shared lock on the database file for as long as the returned file stays open.

    Every running server holds one (its workers inherit it), so `feedback demo --force` can tell
    that a file is in use. flock() locks are apart from the POSIX locks SQLite takes, so they never
    interfere with it, and the kernel drops them when the last process holding them dies."""
    handle = open(path, "rb")  # noqa: SIM115 - held open for the life of the server on purpose
    fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
    return handle


def refuse_database_in_use(path: str) -> None:
    """Raise DatabaseInUse when a running server holds `path` open (see hold_database)."""
    if not Path(path).exists():
        return
    with open(path, "rb") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseInUse(f"{path} is open in a running `feedback serve`; stop that server first") from None
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def die_with_parent() -> None:
    """In a worker: ask the kernel to kill this process when the serving parent dies.

    Without it a worker whose parent was killed with SIGKILL keeps its socket and serves on alone.
    The parent may already be gone by the time this runs; then the worker ends at once."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or os.getpid() == int(parent):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != int(parent):
        os.kill(os.getpid(), signal.SIGKILL)


def stopping(store: Any) -> asyncio.Event:
    """Set once the server running this app (its `Store`) begins to stop: long-polls and event streams
    answer at once, so their clients reconnect, to another node behind a load balancer."""
    return store.local("stopping", asyncio.Event)


def serve_to_a_clean_stop(server: Any) -> bool:
    """Run granian's `server.serve()`; True when it stopped on a signal yet reported a crash (status 1).

    systemd stops a unit by signalling every process of it at once (`KillMode=control-group`), so a
    worker may finish its graceful stop before granian's main process has told it to stop; granian's
    watcher then takes the worker for crashed, and the main process exits with status 1, which systemd
    logs as a failed stop. A stop asked for by a signal is a clean one however the two race: that
    status 1 becomes 0 here. Without a signal (a worker crash loop) it stays 1."""
    signalled: list[int] = []
    # granian installs its signal handlers just before it calls its startup hooks: this one chains to them.
    server.on_startup(lambda: on_stop_signal(lambda: signalled.append(1)))
    try:
        server.serve()
    except SystemExit as exit:
        if exit.code == 1 and signalled:
            return True
        raise
    return False


def on_stop_signal(callback: Callable[[], None]) -> bool:
    """Call `callback` when this process is told to stop (SIGTERM, or SIGINT), then the handler the ASGI
    server installed for it. Only in the main thread of a process of our own; False where it cannot.

    granian stops a worker on SIGTERM by closing its listener and letting each connection finish the
    request under way; the app's lifespan shutdown (the writer's flush) runs only once every connection
    has ended. A kiosk's long-poll (up to a minute) or a manager's event stream (endless) would hold the
    stop up, so the app must hear of the signal first, itself. `callback` runs inside a signal handler:
    it may only hand work to the event loop (`loop.call_soon_threadsafe`)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue  # nobody handles it here: its default (ending the process) stays

        def chained(number: int, frame: Any, previous: Callable[..., Any] = previous) -> None:
            try:
                callback()
            finally:
                previous(number, frame)

        signal.signal(signum, chained)
    return True
