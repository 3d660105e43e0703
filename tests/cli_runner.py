"""`notification-hub` commands for the tests, each forked from a process that imported the hub
once.

Most tests need a product, and make it with `products create` against their hub. As a fresh
`python -m hub.cli` each command spent about 1.7 s of CPU, nearly all of it importing the hub:
494 of them were a third of the whole suite's CPU. Here a forkserver process imports `hub.cli`
once, and each command is a child forked from it that runs the module as `python -m hub.cli`
does, with its own arguments, environment, working directory, stdin, stdout, stderr and exit
status; the answer is the `subprocess.CompletedProcess` a real process would give.

What only a fresh process shows (the installed `notification-hub` script, errors at start,
what reaches a terminal) is tested with real subprocesses: tests/test_package.py,
tests/test_config_errors.py and the `serve` tests start `python -m hub.cli` themselves.
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

# A forkserver, not a plain fork: the pytest process runs threads (xdist's among them), and a
# fork of a threaded process may inherit a lock some other thread held. The server is a fresh
# single-threaded process; it is started on the first command and lives as long as pytest.
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["hub.cli"])

_STREAMS = (("stdin", 0, os.O_RDONLY), ("stdout", 1, os.O_WRONLY), ("stderr", 2, os.O_WRONLY))


def run_cli(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    input: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """`python -m hub.cli ARGS` in `cwd` with exactly `env`, fed `input` on stdin."""
    command = [sys.executable, "-m", "hub.cli", *args]
    with tempfile.TemporaryDirectory(prefix="hub-cli-") as scratch:
        paths = {name: str(Path(scratch, name)) for name, _, _ in _STREAMS}
        Path(paths["stdin"]).write_text(input or "", encoding="utf-8")
        for name in ("stdout", "stderr"):
            Path(paths[name]).touch()
        child = _CONTEXT.Process(target=_command, args=(list(args), str(cwd), dict(env), paths))
        child.start()
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired(command, timeout)
        stdout = Path(paths["stdout"]).read_text(encoding="utf-8")
        stderr = Path(paths["stderr"]).read_text(encoding="utf-8")
    return subprocess.CompletedProcess(command, child.exitcode, stdout, stderr)


def _command(args: list[str], cwd: str, env: dict[str, str], paths: dict[str, str]) -> None:
    """The forked child: becomes `python -m hub.cli ARGS` and exits with its status."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for name, fd, flags in _STREAMS:
        opened = os.open(paths[name], flags)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = open(0, encoding="utf-8", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
    sys.argv = ["", *args]  # runpy puts the module's path first, as `python -m` does
    status = 0
    try:
        runpy.run_module("hub.cli", run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        status = _exit_status(exit.code)
    except BaseException:
        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # no atexit handlers of the forkserver's, no multiprocessing cleanup


def _exit_status(code: object) -> int:
    """What the interpreter makes of `sys.exit(code)`: None is 0, a message is printed and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1
