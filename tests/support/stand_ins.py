"""Starting the sandbox's stand-ins for tests the way ``sandbox up`` starts them, and always stopping them.

The one implementation behind the stand-in helpers (``cdn_stack``, ``magento_stack``, ``npm_stack``,
``shopify_stack``, ``svn_server``): a port base whose component ports are all free in the helper's
own block (so test sessions and modules can run side by side), then per component ``check_installed``,
``prepare``, ``processes.spawn`` of its ``marker``'s command line, detached, and a wait until ``ready``
(the log's tail in the error when it never is). On the way out everything started is stopped, and no
process matching the components' markers may be left.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from varai_deploy.sandbox import processes
from varai_deploy.sandbox.components import Component
from varai_deploy.sandbox.processes import Marker, Spawned
from varai_deploy.sandbox.settings import SandboxSettings

HOST = "127.0.0.1"
#: How long stopped processes' launcher wrappers get to exit before anything counts as left behind.
EXIT_WAIT_SECONDS = 5.0


class PortTaken(RuntimeError):
    """The component died because another process bound its port between the check and its own bind."""


@dataclass(frozen=True)
class StandIns:
    settings: SandboxSettings
    components: tuple[Component, ...]
    #: The running process by component; a test that restarts one records the new pid here (stopped at the end).
    pids: dict[str, int]
    #: The launcher wrappers of the processes started here (stopped too).
    wrapper_pids: list[int]

    def port(self, name: str) -> int:
        return self.settings.component_port(name)

    def markers(self) -> list[Marker]:
        return [c.marker(self.settings, self.port(c.name)) for c in self.components]


def spawn(settings: SandboxSettings, component: Component, *, own_port: bool = False) -> Spawned:
    """Check, prepare, spawn and wait until ready, as ``sandbox up`` does; stopped again if it never is.

    ``own_port``: ready only once the process itself listens on the port (not a server another session
    started there first), and :class:`PortTaken` when it died while another process holds the port.
    """
    port = settings.component_port(component.name)
    if component.check_installed:
        component.check_installed(settings)
    if component.prepare:
        component.prepare(settings, port)
    log_file = settings.log_file(component.name)
    spawned = processes.spawn(
        component.marker(settings, port).argv(),
        log_file=log_file,
        exit_file=settings.exit_file(component.name),
        cwd=settings.home,
    )
    deadline = time.monotonic() + component.start_timeout
    while not (component.ready(settings, port) and (not own_port or _listens(spawned.pid, port))):
        alive = processes.is_alive(spawned.pid)
        if alive and time.monotonic() <= deadline:
            time.sleep(0.05)
            continue
        processes.stop([spawned.pid, spawned.wrapper_pid])
        if own_port and not alive and not processes.port_is_free(HOST, port):
            raise PortTaken(f"{component.name}: port {port} was taken by {processes.port_owner(port)}")
        log = "\n".join(processes.log_tail(log_file))
        raise RuntimeError(f"{component.name} did not become ready on {port}:\n{log}")
    return spawned


def start(settings: SandboxSettings, component: Component) -> int:
    """:func:`spawn`, for a test that (re)starts one component itself: the pid."""
    return spawn(settings, component).pid


@contextmanager
def running(
    home: Path,
    components: Sequence[Component],
    ports: range,
    *,
    bases: Iterable[int] | None = None,
    own_port: bool = False,
    forks: bool = False,
    **settings_fields: Any,
) -> Iterator[StandIns]:
    """``components`` running for a sandbox home, on ports in ``ports``; always stopped afterwards.

    ``bases``: the ``component_port_base`` candidates, in order (default: every base that keeps the
    components' ports in ``ports``). ``own_port``: see :func:`spawn`; a port lost to another process is
    then not an error but a reason to try the next base. ``forks``: the component forks a child per
    connection (svnserve), so whatever of it still runs after the stop is stopped too.
    ``settings_fields``: further :class:`SandboxSettings` fields.
    """
    components = tuple(components)
    home.mkdir(parents=True, exist_ok=True)
    for base in _free_bases(components, ports, bases):
        settings = SandboxSettings(
            home=home, component_port_base=base, components=tuple(c.name for c in components), **settings_fields
        )
        started = StandIns(settings, components, {}, [])
        try:
            if _start_all(started, own_port):
                yield started
                return
        finally:
            _stop(started, forks)
    names = ", ".join(c.name for c in components)
    raise RuntimeError(f"no free ports in {ports.start}-{ports.stop - 1} for {names}")


def _free_bases(components: tuple[Component, ...], ports: range, bases: Iterable[int] | None) -> Iterator[int]:
    """Each candidate base whose component ports are all free at the moment it is reached."""
    offsets = [c.offset for c in components]
    if bases is None:
        bases = range(ports.start - min(offsets), ports.stop - max(offsets))
    for base in bases:
        wanted = [base + offset for offset in offsets]
        assert all(port in ports for port in wanted), f"base {base} puts ports {wanted} outside {ports}"
        if all(processes.port_is_free(HOST, port) for port in wanted):
            yield base


def _start_all(started: StandIns, own_port: bool) -> bool:
    """Start each component in order; False when another process took one's port (``own_port``)."""
    for component in started.components:
        try:
            spawned = spawn(started.settings, component, own_port=own_port)
        except PortTaken:
            return False
        started.pids[component.name] = spawned.pid
        started.wrapper_pids.append(spawned.wrapper_pid)
    return True


def _stop(started: StandIns, forks: bool) -> None:
    home, markers = started.settings.home, started.markers()
    processes.stop([*started.pids.values(), *started.wrapper_pids])
    if forks:
        processes.stop(processes.find_ours(home, markers))
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    while (left := processes.find_ours(home, markers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes left behind: {left}"


def _listens(pid: int, port: int) -> bool:
    """Is ``pid`` the process listening on ``port``?"""
    return (processes.port_owner(port) or "").startswith(f"pid {pid} ")
