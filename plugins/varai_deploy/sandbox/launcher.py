"""Start a sandbox process detached from its caller and record how it ends.

``python -m varai_deploy.sandbox.launcher --log L --exit-file E -- CMD...``

The caller (an Airflow task, a test, the CLI) reaps this launcher as soon as it prints
``<pid> <wrapper_pid>``, so it never holds a zombie that would hide a crash. The launcher forks
a wrapper that starts CMD with its output appended to L, forwards SIGTERM/SIGINT to it, waits
for it and writes ``{"pid", "exit_code"}`` to E, which is how a crash's exit code is known even
to a process that is not CMD's parent. Standard library only: it starts on every deploy.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time


def _write_exit(path: str, pid: int, code: int) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"pid": pid, "exit_code": code, "ended_at": time.time()}, fh)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: launcher --log FILE --exit-file FILE -- CMD...", file=sys.stderr)
        return 2
    split = argv.index("--")
    opts, cmd = argv[:split], argv[split + 1 :]
    try:
        log_path = opts[opts.index("--log") + 1]
        exit_path = opts[opts.index("--exit-file") + 1]
    except (ValueError, IndexError):
        print("launcher: --log and --exit-file are required", file=sys.stderr)
        return 2

    read_end, write_end = os.pipe()
    if os.fork():
        # The launcher: relay the pids, then exit so the caller can reap us straight away.
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            pids = pipe.read().strip()
        if not pids:
            return 1
        print(pids, flush=True)
        return 0

    # The wrapper: stays around as the real process's parent.
    os.close(read_end)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    # Let go of the caller's pipes: its subprocess.run() must see EOF once the launcher exits.
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    child: subprocess.Popen | None = None

    def forward(signum: int, _frame: object) -> None:
        if child is not None and child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    shown = cmd[1:] if cmd[1:2] == ["-m"] else cmd  # the interpreter's path says nothing
    os.write(log_fd, f"[sandbox] {stamp} starting: {' '.join(shown)}\n".encode())
    try:
        child = subprocess.Popen(cmd, stdin=null_fd, stdout=log_fd, stderr=log_fd, close_fds=True)
    except OSError as exc:
        os.write(log_fd, f"[sandbox] could not start {cmd!r}: {exc}\n".encode())
        _write_exit(exit_path, -1, 127)
        os.write(write_end, b"")
        os.close(write_end)
        os._exit(127)
    os.write(write_end, f"{child.pid} {os.getpid()}\n".encode())
    os.close(write_end)
    code = child.wait()
    _write_exit(exit_path, child.pid, code)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    os.write(log_fd, f"[sandbox] {stamp} pid {child.pid} exited with code {code}\n".encode())
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
