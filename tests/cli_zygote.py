"""The command line for tests, at a fraction of its start-up: a process that has imported the app once
forks a child per command, and the child runs `feedback …` as `python -m feedback` would.

Each command is still a process of its own (its own environment, working directory, stdin, stdout,
stderr and exit status; nothing it does stays in the next one), so a test of the command line tests
what an operator runs; only the second of imports each fresh interpreter would pay is saved. Started by
`tests.conftest.run_cli` with the working tree on its path; it reads one JSON request a line on stdin
and answers one JSON line on stdout:

    {"args": [...], "env": {...}, "cwd": "...", "stdin": PATH, "stdout": PATH, "stderr": PATH, "timeout": s}
    -> {"returncode": int} or {"timeout": true}

A long-running command (`feedback serve` under `tests.conftest.ProcessServer`) is asked for with
`"status": PATH` instead of a timeout, and `"append": true` to add to its log (stdout and stderr may
be one file): the answer comes at once, `{"pid": int}`, and when the process ends its exit status is
written to PATH, before the process is reaped (so a pid that is gone always has its status written).
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
    writing = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if request.get("append") else os.O_TRUNC)
    for fd, (path, flags) in enumerate(
        ((request["stdin"], os.O_RDONLY), (request["stdout"], writing), (request["stderr"], writing))
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


# Detached children (pid -> where their exit status goes), reaped when they end.
_detached: dict[int, str] = {}


def _reap_detached(*_signal_args: object) -> None:
    # SIGCHLD held back meanwhile: a second run inside this one would reap a child twice.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    try:
        for pid, path in list(_detached.items()):
            found = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if found is None:
                continue
            status = found.si_status if found.si_code == os.CLD_EXITED else -found.si_status
            with open(path + ".part", "w") as out:
                out.write(str(status))
            os.replace(path + ".part", path)
            os.waitpid(pid, 0)
            del _detached[pid]
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})


def _warm_up() -> None:
    """What every child would otherwise do again: the imports, and the merged gettext catalogues of the
    core and the built-in plugins (parsed from their .po files: 0.4 s of CPU for the four languages)."""
    import feedback.cli  # noqa: F401
    import feedback.web.app  # noqa: F401
    from feedback import i18n
    from feedback.plugins import build_plugin_manager
    from feedback.settings import Settings

    build_plugin_manager(Settings())  # adds the built-in plugins' catalogues
    for lang in i18n.LANGUAGES:
        i18n.translations(lang)


def serve() -> None:
    _warm_up()

    requests = os.dup(0)
    answers = os.dup(1)
    reader = os.fdopen(requests, "rb", buffering=0)
    signal.signal(signal.SIGCHLD, _reap_detached)
    for line in iter(reader.readline, b""):
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _child(request, (requests, answers))
        if "status" in request:
            _detached[pid] = request["status"]
            _reap_detached()  # it may have ended before it was listed
            answer = {"pid": pid}
        else:
            answer = _wait(pid, request["timeout"])
        os.write(answers, json.dumps(answer).encode() + b"\n")


if __name__ == "__main__":
    serve()
