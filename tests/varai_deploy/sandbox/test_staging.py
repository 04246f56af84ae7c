"""The sandbox's staging: the environment file it is released with, and its load balancer in front of the local
Cloud Run (a real one, with a real revision process)."""

from __future__ import annotations

import sys
import uuid

import pytest
import requests
import yaml

from tests.support.cloud_run import created_by_terraform, local_cloud_run, platform_on
from tests.support.sandbox import wait_for
from tests.support.statuspage_stack import free_port
from varai_deploy.config import ENVIRONMENTS_DIR, load_environment
from varai_deploy.sandbox import processes
from varai_deploy.sandbox.staging import IMAGE_REGISTRY, write_environments


def test_staging_is_the_shipped_file_but_its_terraform_and_windows(tmp_path, monkeypatch):
    shipped = yaml.safe_load((ENVIRONMENTS_DIR / "staging.yaml").read_text())
    sandbox = yaml.safe_load((ENVIRONMENTS_DIR / "sandbox.yaml").read_text())
    written = yaml.safe_load((write_environments(tmp_path / "envs", tmp_path / "home") / "staging.yaml").read_text())
    for same in ("platform", "services", "connections", "cloud_run", "widgets", "backups", "requires_approval"):
        assert written[same] == shipped[same], same
    assert written["release"] == sandbox["release"]
    assert written["analysis"]["series"] == shipped["analysis"]["series"]  # Cloud Run's own metrics
    assert written["analysis"]["duration_seconds"] == sandbox["analysis"]["duration_seconds"]

    monkeypatch.setenv("VARAI_ENVIRONMENTS_DIR", str(tmp_path / "envs"))
    env = load_environment("staging")
    assert env.terraform.module.name == "sandbox" and env.terraform.backend == "local"
    assert env.terraform.state_path == tmp_path / "home" / "terraform" / "staging" / "terraform.tfstate"
    assert env.terraform.variables == {"image_registry": IMAGE_REGISTRY}
    assert load_environment("production").terraform.backend == "gcs"  # the others as shipped


def test_the_load_balancer_routes_each_prefix_to_its_cloud_run_service(tmp_path, monkeypatch):
    with local_cloud_run(tmp_path / "sandbox") as cloud_run:
        platform = platform_on(cloud_run, monkeypatch)
        created_by_terraform(platform)  # recommendation-<id>, public
        suffix = platform.service_name.removeprefix("{service}")
        port = free_port()
        spawned = processes.spawn(
            [
                sys.executable,
                "-m",
                "varai_deploy.sandbox.load_balancer",
                *("--home", str(cloud_run.settings.home), "--port", str(port)),
                *("--cloudrun", cloud_run.url, "--service-name", "{service}" + suffix),
                *("--storage", f"http://127.0.0.1:{free_port()}", "--bucket", f"b-{uuid.uuid4().hex[:6]}"),
            ],
            log_file=tmp_path / "lb.log",
            exit_file=tmp_path / "lb.exit",
            cwd=tmp_path,
        )
        lb = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: requests.get(lb + "/_health", timeout=1).ok, timeout=20, what="the load balancer")
            answer = requests.get(lb + "/recommendations/health", timeout=10)
            assert answer.status_code == 200 and answer.headers["X-Served-Version"] == "v1.0.0"
            assert answer.headers["X-Served-Service"] == "recommendation"
            # A prefix whose service does not exist: Cloud Run's 404 comes back as it is.
            assert requests.get(lb + "/ai/health", timeout=10).status_code == 404
            # The bucket only reads; its storage does not answer here: the load balancer's 502.
            assert requests.post(lb + "/widgets/x.js", timeout=10).status_code == 405
            assert requests.get(lb + "/widgets/x.js", timeout=10).status_code == 502
        finally:
            processes.stop([spawned.pid, spawned.wrapper_pid])


@pytest.mark.parametrize("missing", ["cloudrun", "postgres"])
def test_staging_needs_the_stand_ins_it_points_at(tmp_path, missing):
    from varai_deploy.sandbox.errors import SandboxError
    from varai_deploy.sandbox.settings import SandboxSettings
    from varai_deploy.sandbox.staging import COMPONENT, NEEDS

    kept = (*(n for n in NEEDS if n != missing), "staging")
    settings = SandboxSettings(home=tmp_path, components=kept)
    with pytest.raises(SandboxError, match=f"needs the component.*{missing}"):
        COMPONENT.prepare(settings, settings.component_port("staging"))
