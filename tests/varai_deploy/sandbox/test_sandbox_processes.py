"""Recognising our processes: zombies, reused pids and foreign listeners do not count as ours."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from tests.support.sandbox import wait_for
from varai_deploy.sandbox import processes
from varai_deploy.sandbox.processes import SERVICE_MODULE, Marker


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Not reaped yet: the pid still exists, as a zombie.
        processes.wait_gone([child.pid], 10)
        assert os.path.exists(f"/proc/{child.pid}")
        assert not processes.is_alive(child.pid)
    finally:
        child.wait()


def test_a_live_process_with_another_command_line_or_start_time_is_not_ours() -> None:
    me = os.getpid()
    assert processes.is_alive(me)
    assert not processes.is_ours(me, Marker(SERVICE_MODULE, (("--port", "19500"),)))
    # Our own command line as the marker: ours with the right start time, not with another one
    # (which is what a recycled pid looks like).
    marker = Marker(processes._cmdline(me)[-1], ())
    started = processes.starttime(me)
    assert started is not None
    assert processes.is_ours(me, marker, started)
    assert not processes.is_ours(me, marker, started + 1)


def test_marker_matches_flag_value_pairs() -> None:
    marker = Marker(SERVICE_MODULE, (("--service", "analytics"), ("--port", "19530")))
    args = ["python", "-m", SERVICE_MODULE, "--service", "analytics", "--port", "19530"]
    assert marker.matches(args)
    assert not marker.matches([*args[:-1], "19531"])
    assert not marker.matches(["python", "-m", "other", *args[3:]])


def test_a_program_marker_and_find_ours_know_prometheus_by_its_config(tmp_path) -> None:
    config = tmp_path / "prometheus" / "prometheus.yml"
    marker = Marker("prometheus", (("--config.file", str(config)),), program="/usr/bin/prometheus")
    assert marker.argv() == ["/usr/bin/prometheus", "--config.file", str(config)]
    assert marker.matches(marker.argv())
    assert not marker.matches(["/usr/bin/prometheus", "--config.file", "/elsewhere/prometheus.yml"])
    # A stand-in "prometheus" (any program) with this home's config on its command line is ours.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "--config.file", str(config)])
    try:
        wait_for(lambda: child.pid in processes.find_ours(tmp_path), timeout=5, what="the stand-in to be found")
        assert child.pid not in processes.find_ours(tmp_path / "other")
    finally:
        child.kill()
        child.wait()


def test_a_taken_port_is_seen_with_its_owner() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not processes.port_is_free("127.0.0.1", port)
        owner = processes.port_owner(port)
        assert owner is not None and owner.startswith(f"pid {os.getpid()} ")
    assert processes.port_is_free("127.0.0.1", port)
