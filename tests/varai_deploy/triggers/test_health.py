"""HealthStreakTrigger against real HTTP answers on loopback."""

import asyncio
import socket
import time

from tests.support.scripted_http import scripted_server
from varai_deploy.triggers.health import HealthStreakTrigger


def first_event(trigger):
    async def run():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(run())


def test_fires_after_the_streak_of_healthy_answers():
    with scripted_server([503, 503], headers={"X-Served-Version": "v1.0.1"}) as srv:
        event = first_event(HealthStreakTrigger(srv["url"] + "/health", 3, 0.01, time.time() + 10))
    assert event["status"] == "healthy"
    assert event["probes"] == 5
    assert event["last"] == "HTTP 200 from v1.0.1"


def test_a_flapping_candidate_never_counts_as_a_streak():
    # healthy, unhealthy, healthy, ... never three in a row.
    with scripted_server([200, 200, 503] * 20, then=503) as srv:
        event = first_event(HealthStreakTrigger(srv["url"], 3, 0.01, time.time() + 1.5))
    assert event["status"] == "timeout"
    assert event["best_streak"] == 2


def test_refused_connections_time_out_with_the_reason():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        started = time.monotonic()
        event = first_event(HealthStreakTrigger(f"http://127.0.0.1:{port}/health", 3, 0.05, time.time() + 0.5))
    assert event["status"] == "timeout"
    assert "ClientConnectorError" in event["last"]
    assert time.monotonic() - started < 3


def test_serializes_to_its_import_path_for_the_triggerer():
    trigger = HealthStreakTrigger("http://x/health", 3, 0.5, 123.0)
    path, kwargs = trigger.serialize()
    assert path == "varai_deploy.triggers.health.HealthStreakTrigger"
    assert HealthStreakTrigger(**kwargs).serialize() == (path, kwargs)
