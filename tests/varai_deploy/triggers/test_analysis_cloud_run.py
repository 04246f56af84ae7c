"""ReleaseAnalysisTrigger judging Cloud Run revisions on Cloud Run's own metrics, as staging and
production configure them (``analysis.series``): the sandbox's Prometheus scraping the local Cloud Run,
which counts requests per service and revision, code class and latency in ms as Cloud Monitoring does."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.support.cloud_run import SERVICE, LocalCloudRun, created_by_terraform, image, platform_on
from tests.support.pushgateway_stack import free_settings
from varai_deploy.config import AnalysisPolicy, load_environment
from varai_deploy.sandbox import Sandbox
from varai_deploy.sandbox.cloudrun import COMPONENT
from varai_deploy.services import SERVICES
from varai_deploy.triggers.analysis import ReleaseAnalysisTrigger

STAGING = load_environment("staging").analysis.series


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[Sandbox, LocalCloudRun]]:
    settings = free_settings(tmp_path_factory.mktemp("analysis-cloudrun") / "sandbox", COMPONENT)
    box = Sandbox(settings)
    try:
        box.up()
        yield box, LocalCloudRun(settings, settings.component_port(COMPONENT.name))
    finally:
        box.down()


@pytest.fixture
def platform(stack, monkeypatch):
    return platform_on(stack[1], monkeypatch)


@contextlib.contextmanager
def users(url: str) -> Iterator[None]:
    """Users on ``url`` (the service's), ~20 requests a second, for the ``with`` block."""
    stop = threading.Event()
    method, path = SERVICES[SERVICE].probe

    def use() -> None:
        while not stop.is_set():
            with contextlib.suppress(requests.RequestException):
                requests.request(method, url + path, timeout=2)
            stop.wait(0.05)

    thread = threading.Thread(target=use, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def policy(platform) -> dict:
    series = dataclasses.replace(STAGING, service_value=platform.service_name)
    return dataclasses.asdict(
        AnalysisPolicy(
            interval_seconds=1,
            duration_seconds=9,
            deadline_seconds=25,
            min_requests=5,
            rate_window_seconds=3,
            error_rate_for_seconds=4,
            latency_p95_for_seconds=6,
            series=series,
        )
    )


def release(platform, version: str) -> tuple[dict, float]:
    candidate = platform.deploy_candidate(SERVICE, version, image(version, SERVICE))
    platform.switch_traffic(SERVICE, candidate, platform.current_revision(SERVICE))
    return candidate, time.time()


def judge(box: Sandbox, platform, live: dict, switched_at: float) -> dict:
    trigger = ReleaseAnalysisTrigger(
        box.settings.prometheus_url,
        live["version"],
        {SERVICE: live["url"] + "/health"},
        switched_at,
        policy(platform),
        revision_labels={SERVICE: live["name"]},
    )
    return asyncio.run(anext(trigger.run())).payload


def test_a_good_revision_passes_on_its_request_count_and_a_latency_read_in_seconds(stack, platform):
    box, _ = stack
    with users(created_by_terraform(platform).uri):
        live, at = release(platform, "v1.1.0")
        verdict = judge(box, platform, live, at)
    assert verdict["verdict"] == "pass", verdict
    assert verdict["requests"][SERVICE] >= 5, verdict
    error, latency = verdict["measured"]["error_rate"], verdict["measured"]["latency_p95"]
    assert error["values"] == {SERVICE: 0.0}, error
    # Cloud Run's histogram is in ms; a local request takes a few, so unscaled this would be above 0.5.
    assert 0 < latency["values"][SERVICE] < 0.5, latency


def test_a_revision_failing_half_its_requests_rolls_back_on_its_5xx_class(stack, platform):
    box, _ = stack
    box.register_fault("v1.2.0", "errors", [SERVICE], rate=0.5)
    with users(created_by_terraform(platform).uri):
        live, at = release(platform, "v1.2.0")
        verdict = judge(box, platform, live, at)
    assert (verdict["verdict"], verdict["rule"], verdict["service"]) == ("rollback", "error_rate", SERVICE), verdict
    assert verdict["value"] > 0.05
