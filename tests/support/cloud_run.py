"""The sandbox's local Cloud Run (the run.v2 stand-in) started for real on a free port, with the real
``google.cloud.run_v2`` clients over REST and anonymous credentials, as ``CloudRunPlatform`` drives it."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2

from tests.support.sandbox import wait_for
from tests.support.statuspage_stack import free_port
from varai_deploy.hooks.cloud_run import EndpointCloudRunHook
from varai_deploy.platforms.cloud_run import CloudRunPlatform, revision_name
from varai_deploy.sandbox import processes
from varai_deploy.sandbox.cloudrun import COMPONENT
from varai_deploy.sandbox.cloudrun_fake import LOCATION, PROJECT, state_dir, stop_revisions
from varai_deploy.sandbox.settings import SandboxSettings

PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
ATTEMPTS = 5
SERVICE = "recommendation"
CONN_ID = "varai_cloudrun_test"
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST


def image(version: str, app: str = "recommendation") -> str:
    return f"us-central1-docker.pkg.dev/{PROJECT}/varai/{app}:{version}"


@dataclass
class LocalCloudRun:
    settings: SandboxSettings
    port: int
    pids: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.settings.url_for_port(self.port)

    def clients(self) -> tuple[run_v2.ServicesClient, run_v2.RevisionsClient]:
        options = {"api_endpoint": self.url}
        kwargs = {"credentials": AnonymousCredentials(), "transport": "rest", "client_options": options}
        return run_v2.ServicesClient(**kwargs), run_v2.RevisionsClient(**kwargs)

    def api(self, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        """A raw request under ``/v2/<parent>`` (a JSON body unless ``data=`` is given)."""
        if body is not None and "data" not in kwargs:
            kwargs["json"] = body
        return requests.request(method, f"{self.url}/v2/{PARENT}{path}", timeout=30, **kwargs)

    def revision_record(self, name: str) -> dict[str, Any]:
        return json.loads((state_dir(self.settings.home) / "revisions" / f"{name}.json").read_text())

    def start(self) -> None:
        marker = COMPONENT.marker(self.settings, self.port)
        COMPONENT.prepare(self.settings, self.port)
        spawned = processes.spawn(
            marker.argv(),
            log_file=self.settings.log_file("cloudrun"),
            exit_file=self.settings.exit_file("cloudrun"),
            cwd=self.settings.home,
        )
        self.pids += [spawned.pid, spawned.wrapper_pid]
        while not COMPONENT.ready(self.settings, self.port):
            if not processes.is_alive(spawned.pid):
                raise OSError("\n".join(processes.log_tail(self.settings.log_file("cloudrun"))))
            time.sleep(0.05)

    def stop(self) -> None:
        processes.stop(self.pids)
        self.pids.clear()

    def restart(self) -> None:
        self.stop()
        self.start()


def start_on_a_free_port(settings: SandboxSettings) -> LocalCloudRun:
    for _ in range(ATTEMPTS):
        stand_in = LocalCloudRun(settings, free_port())
        try:
            stand_in.start()
        except OSError:
            stand_in.stop()  # its port was taken under it: another one
            continue
        return stand_in
    pytest.fail(f"the Cloud Run stand-in found no free port in {ATTEMPTS} attempts")


@contextlib.contextmanager
def local_cloud_run(home: Path) -> Iterator[LocalCloudRun]:
    """The stand-in with its home at ``home``; every process it started is gone afterwards."""
    home.mkdir(parents=True, exist_ok=True)
    settings = SandboxSettings(home=home, components=())
    stand_in = start_on_a_free_port(settings)
    try:
        yield stand_in
    finally:
        stop_revisions(home)
        stand_in.stop()
        marker = COMPONENT.marker(settings, stand_in.port)
        wait_for(lambda: not processes.find_ours(home, [marker]), timeout=5, what="nothing left running")


def platform_on(stand_in: LocalCloudRun, monkeypatch: pytest.MonkeyPatch) -> CloudRunPlatform:
    """A CloudRunPlatform on services of the caller's own (``<service>-<id>``), through an Airflow
    connection naming the stand-in's address, as a release's connection names Google's."""
    extra = {"is_anonymous": True, "project": PROJECT, "location": LOCATION, "api_endpoint": stand_in.url}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "google_cloud_platform", "extra": extra})
    )
    return CloudRunPlatform(
        EndpointCloudRunHook(gcp_conn_id=CONN_ID),
        keep_revisions=2,
        operation_timeout=60,
        service_name=f"{{service}}-{uuid.uuid4().hex[:6]}",
    )


def cloud_name(platform: CloudRunPlatform, service: str = SERVICE) -> str:
    return platform.service_name.format(service=service)


def created_by_terraform(
    platform: CloudRunPlatform, version: str = "v1.0.0", service: str = SERVICE, public: bool = True
) -> run_v2.Service:
    """The service as Terraform leaves it: one revision, all traffic through LATEST; callable by anyone, or
    (not ``public``) only with an ID token, as include/terraform/gcp leaves the backends."""
    name = cloud_name(platform, service)
    template = run_v2.RevisionTemplate(
        revision=revision_name(name, version), containers=[run_v2.Container(image=image(version, service))]
    )
    created = platform.hook.services.create_service(
        parent=PARENT, service_id=name, service=run_v2.Service(template=template, invoker_iam_disabled=public)
    ).result(timeout=60)
    assert [(t.type_, t.percent) for t in created.traffic] == [(LATEST, 100)]
    return created
