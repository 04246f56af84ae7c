"""Starting, recognising and stopping the sandbox's processes.

Processes must outlive the Airflow task that starts them, and a crash must stay visible to a
long-lived caller, so nothing is the caller's child for long: every process is started through
``launcher`` (a double fork: the caller reaps the launcher at once, a small wrapper waits on the
real process and records its exit code in a file). A pid alone proves nothing (pids are reused,
zombies keep theirs), so a process counts as ours and running only if ``/proc`` shows it alive,
not a zombie, with the start time we recorded and our command line.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.settings import PLUGINS_DIR
from varai_deploy.sandbox.state import read_json

if TYPE_CHECKING:
    from varai_deploy.sandbox.settings import SandboxSettings

SERVICE_MODULE = "varai_deploy.sandbox.service"
GATEWAY_MODULE = "varai_deploy.sandbox.gateway"
LAUNCHER_MODULE = "varai_deploy.sandbox.launcher"
TRAFFIC_MODULE = "varai_deploy.sandbox.traffic"
SUPERVISOR_MODULE = "varai_deploy.sandbox.supervisor"
OUR_MODULES = (SERVICE_MODULE, GATEWAY_MODULE, LAUNCHER_MODULE, TRAFFIC_MODULE, SUPERVISOR_MODULE)

STOP_GRACE_SECONDS = 12.0  # > serving.DRAIN_SECONDS: a draining process is not killed


@dataclass(frozen=True)
class Spawned:
    pid: int
    wrapper_pid: int
    starttime: int | None


@dataclass(frozen=True)
class Marker:
    """What a process's command line must contain to be ours: the module and flag/value pairs.

    ``program`` names an executable that is not one of our Python modules (Prometheus): the
    command line is then ``program`` followed by the pairs, and ``module`` is ignored.
    """

    module: str
    flags: tuple[tuple[str, str], ...]
    program: str | None = None
    #: What starts ``program`` and then execs it (``setpriv``): in the argv, not in the process's command line.
    prefix: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        out = [*self.prefix, self.program] if self.program else [sys.executable, "-m", self.module]
        for flag, value in self.flags:
            out += [flag, value]
        return out

    def matches(self, args: Sequence[str]) -> bool:
        if (self.program or self.module) not in args:
            return False
        pairs = set(itertools.pairwise(args))
        return all((flag, value) in pairs for flag, value in self.flags)


def stand_in_marker(module: str, settings: SandboxSettings, port: int, *extra: tuple[str, str]) -> Marker:
    """A Python stand-in server's command line: ``-m module --home --host --port`` and its own ``extra``."""
    flags = (("--home", str(settings.home)), ("--host", settings.host), ("--port", str(port)), *extra)
    return Marker(module, flags)


# -- /proc ------------------------------------------------------------------------------------
def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) from /proc/<pid>/stat, or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    # NUL-terminated arguments; an empty one (postgres's ``-k ""``) is an argument too.
    return [part.decode(errors="replace") for part in raw.removesuffix(b"\0").split(b"\0")] if raw else []


def starttime(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def is_alive(pid: int | None) -> bool:
    """Alive and not a zombie (a zombie has exited; only its parent has not reaped it yet)."""
    if not pid or pid <= 0:
        return False
    if not Path("/proc").is_dir():  # pragma: no cover - non-Linux fallback
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X", "x")


def is_ours(pid: int | None, marker: Marker, started: int | None = None) -> bool:
    """Alive, with our command line and (when recorded) the same start time: not a reused pid."""
    if not is_alive(pid):
        return False
    assert pid is not None
    if not Path("/proc").is_dir():  # pragma: no cover - non-Linux fallback
        return True
    if started is not None and starttime(pid) != started:
        return False
    return marker.matches(_cmdline(pid))


def find_ours(home: Path, markers: Iterable[Marker] = ()) -> list[int]:
    """Every live process started for this home, recorded or not (stale state, lost records):
    our Python modules with ``--home <home>``, Prometheus (and its wrapper) reading this
    home's generated config, and whatever matches one of ``markers`` (the stand-ins)."""
    markers = tuple(markers)
    found = []
    me = os.getpid()
    home_pair = ("--home", str(home))
    prometheus_pair = ("--config.file", str(home / "prometheus" / "prometheus.yml"))
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        args = _cmdline(int(entry.name))
        pairs = set(itertools.pairwise(args))
        ours = (
            (any(m in args for m in OUR_MODULES) and home_pair in pairs)
            or prometheus_pair in pairs
            or any(marker.matches(args) for marker in markers)
        )
        if ours and is_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def runs_module(pid: int, module: str) -> bool:
    """Does the process's command line name ``module`` (our wrapper's does too)?"""
    return module in _cmdline(pid)


# -- starting and stopping --------------------------------------------------------------------
def child_env() -> dict[str, str]:
    """The caller's environment minus Airflow's (connections and variables can carry secrets the
    stand-ins have no business seeing), plus the plugins dir on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "_AIRFLOW"))}
    paths = [str(PLUGINS_DIR)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn(argv: Sequence[str], *, log_file: Path, exit_file: Path, cwd: Path) -> Spawned:
    """Start ``argv`` detached (own session, not our child), output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    exit_file.parent.mkdir(parents=True, exist_ok=True)
    exit_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", LAUNCHER_MODULE, "--log", str(log_file), "--exit-file", str(exit_file)]
    cmd += ["--", *argv]
    try:
        done = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            start_new_session=True,
            close_fds=True,
            env=child_env(),
            cwd=cwd,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"could not start {_name(argv)}: {exc}") from exc
    try:
        pid_s, wrapper_s = done.stdout.split()
        pid, wrapper_pid = int(pid_s), int(wrapper_s)
    except ValueError:
        raise SandboxError(
            f"could not start {_name(argv)}: launcher said {(done.stdout + done.stderr).strip()!r}"
        ) from None
    return Spawned(pid=pid, wrapper_pid=wrapper_pid, starttime=starttime(pid))


def _name(argv: Sequence[str]) -> str:
    """``-m module`` for our Python processes, the program otherwise."""
    return " ".join(argv[1:3]) if argv[1:2] == ["-m"] else argv[0]


def stop(pids: Iterable[int | None], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL whatever is left. Pids must be ours."""
    targets = [p for p in dict.fromkeys(pids) if p and is_alive(p)]
    for pid in targets:
        _signal(pid, signal.SIGTERM)
    if wait_gone(targets, grace):
        return
    for pid in targets:
        _signal(pid, signal.SIGKILL)
    wait_gone(targets, 2.0)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not any(is_alive(p) for p in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def read_exit_code(exit_file: Path, pid: int | None) -> int | None:
    """The exit code the wrapper recorded for ``pid`` (negative: killed by that signal)."""
    record = read_json(exit_file)
    if not isinstance(record, dict) or pid is None or record.get("pid") != pid:
        return None
    code = record.get("exit_code")
    return code if isinstance(code, int) else None


def log_tail(path: Path, lines: int = 20) -> list[str]:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-lines:]


# -- ports ------------------------------------------------------------------------------------
def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def port_is_free(host: str, port: int) -> bool:
    """Can a server bind here? SO_REUSEADDR as our servers use it, so TIME_WAIT does not count."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def is_listening(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_status(
    host: str,
    port: int,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 0.5,
) -> int | None:
    """The status a local server answers ``method path`` with, or None when it does not answer:
    how the control plane and every stand-in's ``ready`` tell a started server from a serving one."""
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def wait_listening(host: str, port: int, timeout: float, alive: Callable[[], bool]) -> bool:
    """Wait until the port accepts connections; give up early when the process has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_listening(host, port, timeout=0.2):
            return True
        if not alive():
            return False
        time.sleep(0.05)
    return False


def port_owner(port: int) -> str | None:
    """Best effort "pid N (command)" of the process listening on ``port`` (Linux only)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{cols[9]}]")
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    cmd = " ".join(_cmdline(int(entry.name)))[:120]
                    return f"pid {entry.name} ({cmd})"
            except OSError:
                continue
    return None
