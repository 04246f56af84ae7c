"""A scratch Airflow (its own SQLite metadata DB) and a scratch sandbox on ports apart from the demo's."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.environments import write_environments
from tests.support.stack import GATEWAY_PORT, PORT_BASE
from varai_deploy.config import REPO_ROOT


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """Environment shared by the test process and every Airflow process it starts."""
    root = tmp_path_factory.mktemp("stack")
    env = {
        "VARAI_AIRFLOW_HOME": str(root / "airflow"),
        "VARAI_SANDBOX_HOME": str(root / "sandbox"),
        "VARAI_SANDBOX_GATEWAY_PORT": str(GATEWAY_PORT),
        "VARAI_SANDBOX_PORT_BASE": str(PORT_BASE),
        # The shipped environments, the sandbox's with the tests' short windows (tests/support/environments.py).
        "VARAI_ENVIRONMENTS_DIR": str(write_environments(root / "environments", home=root / "sandbox")),
        # Staging's shoppers stay off: the Cloud Run tests send their own load and count its failures.
        "VARAI_SANDBOX_STAGING_TRAFFIC_RPS": "0",
    }
    derived = ["AIRFLOW_CONN_VARAI_GATEWAY", "AIRFLOW_CONN_VARAI_METRICS"]  # airflow.sh derives them from ports
    saved = {key: os.environ.get(key) for key in [*env, *derived]}
    os.environ.update(env)
    for key in derived:
        os.environ.pop(key, None)
    migrate = subprocess.run(
        [str(REPO_ROOT / "airflow.sh"), "db", "migrate"], capture_output=True, text=True, check=False
    )
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def sandbox(stack):
    from varai_deploy.sandbox import Sandbox

    box = Sandbox()
    box.up()
    # The test process reads the ledger through the same connection the tasks use.
    saved = os.environ.get(LEDGER_ENV)
    os.environ[LEDGER_ENV] = sandbox_connection(box, LEDGER_ENV)
    try:
        yield box
    finally:
        box.down(purge=True)
        if saved is None:
            os.environ.pop(LEDGER_ENV, None)
        else:
            os.environ[LEDGER_ENV] = saved


LEDGER_ENV = "AIRFLOW_CONN_VARAI_LEDGER"


def sandbox_connection(box, env_name: str) -> str:
    """One connection's value from the sandbox's connections.env (what airflow.sh exports)."""
    from varai_deploy.sandbox.components import read_connections_env

    exported = read_connections_env(box.settings)
    assert env_name in exported, f"{env_name} is not in {box.settings.connections_env_file}"
    return exported[env_name]


@pytest.fixture(scope="module")
def airflow_cluster(stack, sandbox, tmp_path_factory):
    """Airflow as separate real processes on the scratch home (api-server, scheduler with its
    LocalExecutor, triggerer, dag-processor), for tests that restart or kill them mid-run; the
    REST API on a free port (19880 is test_rest_api.py's standalone)."""
    from tests.support.airflow_cluster import AirflowCluster, free_port

    log_dir = tmp_path_factory.mktemp("airflow_cluster")
    cluster = AirflowCluster({**os.environ}, api_port=free_port(exclude={19880}), log_dir=log_dir)
    print(f"airflow cluster on {cluster.base_url}, logs in {log_dir}")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
