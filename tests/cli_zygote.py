"""The command line for tests, at a fraction of its start-up: a process that has imported the app once
forks a child per command, and the child runs `feedback …` as `python -m feedback` would.

Each command is still a process of its own (its own environment, working directory, stdin, stdout,
stderr and exit status; nothing it does stays in the next one), so a test of the command line tests
what an operator runs; only the second of imports each fresh interpreter would pay is saved. Started by
`tests.conftest.run_cli` with the working tree on its path; it reads one JSON request a line on stdin
and answers one JSON line on stdout:

    {"args": [...], "env": {...}, "cwd": "...", "stdin": PATH, "stdout": PATH, "stderr": PATH, "timeout": s}
    -> {"returncode": int} or {"timeout": true}
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import time
import traceback


def _child(request: dict, channel: tuple[int, int]) -> None:
    """In the forked child: become `feedback ARGS` with the request's environment and files, then exit."""
    for fd in channel:
        os.close(fd)
    os.setsid()  # a process group of its own, as a fresh `subprocess.run` child is killed alone
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    for fd, (path, flags) in enumerate(
        (
            (request["stdin"], os.O_RDONLY),
            (request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
            (request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        )
    ):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    sys.argv = ["feedback", *request["args"]]
    code = 0
    try:
        from feedback.cli import main

        main()
    except SystemExit as done:
        if done.code is None:
            code = 0
        elif isinstance(done.code, int):
            code = done.code
        else:
            print(done.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - reported on stderr, as the interpreter would
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _wait(pid: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {"returncode": os.waitstatus_to_exitcode(status)}
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"timeout": True}
        time.sleep(0.005)


def serve() -> None:
    import feedback.cli  # noqa: F401 - the imports every child would otherwise pay for
    import feedback.web.app  # noqa: F401

    requests = os.dup(0)
    answers = os.dup(1)
    reader = os.fdopen(requests, "rb", buffering=0)
    for line in iter(reader.readline, b""):
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request, (requests, answers))
        os.write(answers, json.dumps(_wait(pid, request["timeout"])).encode() + b"\n")


if __name__ == "__main__":
    serve()
