"""Fault registration: what gets stored and what a service process will see (and does, with real processes)."""

from __future__ import annotations

import itertools
import json
import math
import time

import pytest

from varai_deploy.sandbox import Sandbox, SandboxError, SandboxSettings
from varai_deploy.sandbox.faults import ActiveFaults
from varai_deploy.services import SERVICES


@pytest.fixture
def sb(tmp_path) -> Sandbox:
    return Sandbox(SandboxSettings(home=tmp_path / "sbx", gateway_port=19500, service_port_base=19510))


def test_register_list_and_clear(sb: Sandbox) -> None:
    assert sb.faults() == {}
    sb.register_fault("v2.0.0", "crash", ["ai-discovery"])
    sb.register_fault("v2.0.0", "unhealthy")
    sb.register_fault("v2.1.0-rc.1", "errors", rate=0.25)
    sb.register_fault("v2.1.0-rc.1", "slow", ["analytics"], latency_seconds=0.5)
    faults = sb.faults()
    assert faults["v2.0.0"] == [
        {"mode": "crash", "services": ["ai-discovery"]},
        {"mode": "unhealthy", "services": None},
    ]
    assert {"mode": "errors", "services": None, "rate": 0.25} in faults["v2.1.0-rc.1"]
    # The same (version, mode) again replaces the earlier registration.
    sb.register_fault("v2.0.0", "crash", ["recommendation"])
    assert [f for f in sb.faults()["v2.0.0"] if f["mode"] == "crash"] == [
        {"mode": "crash", "services": ["recommendation"]}
    ]
    assert sb.clear_faults("v2.0.0") == 2
    assert list(sb.faults()) == ["v2.1.0-rc.1"]
    assert sb.clear_faults() == 2
    assert sb.faults() == {}


def test_what_a_service_process_sees(sb: Sandbox) -> None:
    sb.register_fault("v2.0.0", "crash", ["ai-discovery"])
    sb.register_fault("v2.0.0", "errors", ["analytics"], rate=0.5)
    sb.register_fault("v2.0.0", "slow", latency_seconds=1.5)
    f = sb.settings.faults_file
    assert ActiveFaults.for_process(f, "v2.0.0", "ai-discovery") == ActiveFaults(crash=True, latency_seconds=1.5)
    assert ActiveFaults.for_process(f, "v2.0.0", "analytics") == ActiveFaults(error_rate=0.5, latency_seconds=1.5)
    assert ActiveFaults.for_process(f, "v1.0.0", "analytics") == ActiveFaults()


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("2.0.0", "crash"), {}, "not a release tag"),
        (("v2.0.0", "explode"), {}, "unknown fault mode"),
        (("v2.0.0", "crash", ["billing"]), {}, "unknown service"),
        (("v2.0.0", "errors"), {}, "needs a rate"),
        (("v2.0.0", "errors"), {"rate": 1.5}, "needs a rate"),
        (("v2.0.0", "slow"), {}, "needs a latency"),
    ],
)
def test_bad_faults_are_refused(sb: Sandbox, args, kwargs, message) -> None:
    with pytest.raises(SandboxError, match=message):
        sb.register_fault(*args, **kwargs)


def test_a_slow_version_is_slow_for_users_but_its_health_probe_is_not(sandbox: Sandbox) -> None:
    import time

    from tests.support.sandbox import request, wait_listening

    sandbox.register_fault("v4.0.0", "slow", ["analytics"], latency_seconds=1.0)
    candidate = sandbox.start_candidate("analytics", "v4.0.0")
    wait_listening(candidate["url"])
    started = time.monotonic()
    assert request(candidate["url"], "/analytics/health")[0] == 200
    assert time.monotonic() - started < 0.5
    started = time.monotonic()
    assert request(candidate["url"], "/analytics/events", method="POST", body={"events": []})[0] == 202
    assert time.monotonic() - started >= 1.0


def test_a_version_whose_search_finds_nothing_looks_healthy_to_everything_but_a_search(sandbox: Sandbox) -> None:
    from tests.support.sandbox import request, wait_listening

    sandbox.register_fault("v4.0.1", "no_results", ["ai-discovery"])
    assert ActiveFaults.for_process(sandbox.settings.home / "faults.json", "v4.0.1", "ai-discovery").describe() == [
        "no_results"
    ]
    candidate = sandbox.start_candidate("ai-discovery", "v4.0.1")
    wait_listening(candidate["url"])
    assert request(candidate["url"], "/ai/health")[0] == 200
    status, _, body = request(candidate["url"], "/ai/discover?q=round+frames")
    assert (status, body["suggestions"]) == (200, [])


def test_a_version_that_refuses_browsers_answers_every_scripted_caller(sandbox: Sandbox) -> None:
    from tests.support.sandbox import request, wait_listening

    sandbox.register_fault("v4.0.2", "browser_refused", ["ai-discovery"])
    candidate = sandbox.start_candidate("ai-discovery", "v4.0.2")
    wait_listening(candidate["url"])
    status, _, body = request(candidate["url"], "/ai/discover?q=round+frames")
    assert status == 200 and body["suggestions"], "a client that sends no Fetch Metadata gets answers"
    assert request(candidate["url"], "/ai/discover?q=round", headers={"Sec-Fetch-Site": "same-origin"})[0] == 200
    for site in ("same-site", "cross-site"):
        status, _, body = request(candidate["url"], "/ai/discover?q=round", headers={"Sec-Fetch-Site": site})
        assert status == 403 and site in body["error"]
    assert request(candidate["url"], "/ai/health", headers={"Sec-Fetch-Site": "cross-site"})[0] == 200


# -- flap: health comes and goes by the clock ---------------------------------------------------
def test_flap_is_registered_with_its_period(sb: Sandbox) -> None:
    sb.register_fault("v2.0.0", "flap", ["analytics"], period_seconds=1.5)
    assert sb.faults()["v2.0.0"] == [{"mode": "flap", "services": ["analytics"], "period_seconds": 1.5}]
    f = sb.settings.faults_file
    assert ActiveFaults.for_process(f, "v2.0.0", "analytics") == ActiveFaults(flap_period_seconds=1.5)
    assert ActiveFaults.for_process(f, "v2.0.0", "analytics").describe() == ["flap(period=1.5s)"]
    assert ActiveFaults.for_process(f, "v2.0.0", "recommendation") == ActiveFaults()


def test_flap_phases_healthy_first_then_every_other_period() -> None:
    flap = ActiveFaults(flap_period_seconds=1.0)
    assert [flap.flap_unhealthy(t) for t in (0, 0.99, 1.0, 1.99, 2.0, 2.99, 3.0, 7.5)] == [
        False,
        False,
        True,
        True,
        False,
        False,
        True,
        True,
    ]
    assert not ActiveFaults().flap_unhealthy(1.5)


@pytest.mark.parametrize(
    ("mode", "period", "message"),
    [
        ("flap", None, "fault mode 'flap' needs a period in seconds between 0 \\(exclusive\\) and 3600"),
        ("flap", 0, "needs a period"),
        ("flap", -1, "needs a period"),
        ("flap", 3601, "needs a period"),
        ("crash", 1, "period_seconds only applies to fault mode 'flap', not 'crash'"),
        ("unhealthy", 1, "period_seconds only applies to fault mode 'flap'"),
    ],
)
def test_bad_flap_periods_are_refused(sb: Sandbox, mode, period, message) -> None:
    with pytest.raises(SandboxError, match=message):
        sb.register_fault("v2.0.0", mode, period_seconds=period)
    assert sb.faults() == {}


def test_flap_from_the_command_line(settings: SandboxSettings) -> None:
    from tests.support.sandbox import run_cli

    done = run_cli(settings, "fault", "--version", "v1.2.3", "--mode", "flap", "--period", "1s")
    assert done.returncode == 0, done.stderr
    assert "registered fault flap for v1.2.3 (all services)" in done.stdout
    done = run_cli(
        settings, "fault", "--version", "v1.2.4", "--mode", "flap", "--period", "500ms", "--service", "analytics"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(run_cli(settings, "fault", "--list").stdout) == {
        "v1.2.3": [{"mode": "flap", "services": None, "period_seconds": 1.0}],
        "v1.2.4": [{"mode": "flap", "services": ["analytics"], "period_seconds": 0.5}],
    }
    bad = run_cli(settings, "fault", "--version", "v1.2.3", "--mode", "flap")
    assert bad.returncode == 1 and bad.stderr.startswith("error: fault mode 'flap' needs a period")
    assert "Traceback" not in bad.stderr
    bad = run_cli(settings, "fault", "--version", "v1.2.3", "--mode", "flap", "--period", "0s")
    assert bad.returncode == 1 and "needs a period" in bad.stderr
    bad = run_cli(settings, "fault", "--version", "v1.2.3", "--mode", "flap", "--period", "often")
    assert bad.returncode == 2 and "not a duration" in bad.stderr
    bad = run_cli(settings, "fault", "--version", "v1.2.3", "--mode", "slow", "--latency", "1s", "--period", "1s")
    assert bad.returncode == 1 and "only applies to fault mode 'flap'" in bad.stderr


def _runs(statuses: list[int]) -> list[tuple[int, int]]:
    """Consecutive equal answers: [(status, how many), ...]."""
    runs: list[tuple[int, int]] = []
    for status in statuses:
        if runs and runs[-1][0] == status:
            runs[-1] = (status, runs[-1][1] + 1)
        else:
            runs.append((status, 1))
    return runs


def test_a_flapping_version_alternates_by_the_clock_and_its_other_endpoints_work(sandbox: Sandbox) -> None:
    from tests.support.sandbox import request, wait_listening

    period, step = 0.4, 0.04
    sandbox.register_fault("v4.1.0", "flap", ["analytics"], period_seconds=period)
    candidate = sandbox.start_candidate("analytics", "v4.1.0")
    wait_listening(candidate["url"])
    health, root_health, events, bodies = [], [], [], []
    deadline = time.monotonic() + 6.5 * period
    while time.monotonic() < deadline:
        at = time.monotonic()
        status, _, answer = request(candidate["url"], "/analytics/health")
        health.append((at, status))
        if status == 503:
            bodies.append(answer)
        root_health.append(request(candidate["url"], "/health")[0])
        events.append(request(candidate["url"], "/analytics/events", method="POST", body={"events": [{}]})[0])
        time.sleep(step)

    assert set(events) == {202}, "a flapping version keeps serving its working endpoints"
    assert {s for _, s in health} == {200, 503} and set(root_health) == {200, 503}
    assert bodies[0]["status"] == "unhealthy" and bodies[0]["version"] == "v4.1.0"
    # Runs of 200 and of 503 alternate, each lasting one period (give or take a sampling step).
    changes = [t for (_, prev), (t, s) in itertools.pairwise(health) if s != prev]
    assert len(changes) >= 5, _runs([s for _, s in health])
    spans = [later - earlier for earlier, later in itertools.pairwise(changes)]
    assert all(period - 2 * step - 0.05 <= span <= period + 2 * step + 0.05 for span in spans), spans


@pytest.mark.parametrize(
    ("service", "period", "interval", "most"),
    [
        # Below the analysis' threshold of 3 consecutive failures.
        ("recommendation", 0.5, 0.3, 2),
        ("face-analysis", 1.0, 0.3, 4),
    ],
)
def test_a_prober_sees_at_most_ceil_period_over_interval_consecutive_failures(
    sandbox: Sandbox, service, period, interval, most
) -> None:
    """The analysis' loop (probe, count, sleep the interval) against a real flapping process."""
    from tests.support.sandbox import request, wait_listening

    assert most == math.ceil(period / interval)
    sandbox.register_fault("v4.2.0", "flap", [service], period_seconds=period)
    candidate = sandbox.start_candidate(service, "v4.2.0")
    wait_listening(candidate["url"])
    health_path = SERVICES[service].health_path
    probes: list[tuple[float, bool]] = []
    consecutive = worst = 0
    deadline = time.monotonic() + 7 * period
    while time.monotonic() < deadline:
        at = time.monotonic()
        ok = request(candidate["url"], health_path, timeout=interval)[0] == 200
        probes.append((at, ok))
        consecutive = 0 if ok else consecutive + 1
        worst = max(worst, consecutive)
        time.sleep(interval)

    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(probes)]
    assert interval <= min(gaps) and max(gaps) <= period, f"probes not {interval}-{period}s apart: {gaps}"
    runs = _runs([200 if ok else 503 for _, ok in probes])
    assert sum(1 for status, _ in runs if status == 503) >= 3, runs  # it really flaps
    assert 1 <= worst <= most, runs


def test_a_slow_switch_is_applied_at_once_and_answers_late(sandbox: Sandbox) -> None:
    """What a worker killed mid-switch leaves behind: traffic moved, the caller never heard."""
    import threading

    from tests.support.sandbox import deploy, request, wait_for

    deploy(sandbox, "analytics", "v5.0.0")
    sandbox.register_fault("v5.0.1", "slow_switch", ["analytics"], latency_seconds=3)
    candidate = deploy(sandbox, "analytics", "v5.0.1", switch=False)
    started = time.monotonic()
    done: list[float] = []
    switching = threading.Thread(
        target=lambda: (sandbox.switch("analytics", candidate["colour"]), done.append(time.monotonic() - started))
    )
    switching.start()
    wait_for(
        lambda: request(sandbox.settings.gateway_url, "/analytics/health")[1].get("x-served-version") == "v5.0.1",
        timeout=2,
        what="the gateway to serve v5.0.1 while the switch call is still out",
    )
    assert not done, "the switch answered before its latency"
    switching.join()
    assert done[0] >= 3
    # A switch back (to a version without the fault) answers at once.
    started = time.monotonic()
    sandbox.switch("analytics", "blue")
    assert time.monotonic() - started < 1


def test_faults_applied_to_a_serving_version_take_effect_now_and_only_there(sandbox: Sandbox) -> None:
    """A revision that goes bad while it serves: registered after it started, a fault does nothing
    until applied; then its running process has it as soon as the signal lands (SIGHUP is
    asynchronous: under load a request can overtake it by a few milliseconds), and another
    version's does not."""
    from tests.support.sandbox import request, wait_listening

    good = sandbox.start_candidate("analytics", "v4.2.0")
    other = sandbox.start_candidate("recommendation", "v4.3.0")
    for candidate in (good, other):
        wait_listening(candidate["url"])
    sandbox.register_fault("v4.2.0", "unhealthy", ["analytics"])
    sandbox.register_fault("v4.3.0", "errors", ["recommendation"], rate=1.0)
    assert request(good["url"], "/analytics/health")[0] == 200  # read at start: not yet

    assert sandbox.apply_faults("v4.2.0") == ["analytics-" + good["colour"]]
    deadline = time.monotonic() + 2
    while (status := request(good["url"], "/analytics/health")[0]) == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status == 503
    assert request(good["url"], "/analytics/events", method="POST", body={"events": [{}]})[0] == 202
    assert request(other["url"], "/recommendations?face_shape=oval")[0] == 200  # v4.3.0 was not told
    assert sandbox.apply_faults("v9.9.9") == []
