"""What `feedback serve` makes sure of before and while it serves: one server per port, one server per
database file, and no worker left serving after its parent is gone."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import socket
from pathlib import Path
from typing import IO

# Set by `feedback serve` for its workers: the pid they must not outlive.
PARENT_ENV = "FEEDBACK_SERVE_PARENT"
_PR_SET_PDEATHSIG = 1


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
