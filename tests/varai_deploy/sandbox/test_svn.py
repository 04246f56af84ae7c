"""The sandbox's WordPress.org SVN repository: a real svnserve, as anonymous readers and the committer see it."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from tests.support.svn_server import running_svnserve
from varai_deploy.sandbox import svn
from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.settings import SandboxSettings

ENV = {**os.environ, "LC_ALL": "C"}


def run_svn(*args: str, config_dir: Path, stdin: str = "") -> subprocess.CompletedProcess:
    cmd = ["svn", "--non-interactive", "--no-auth-cache", "--config-dir", str(config_dir), *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=ENV, check=False)


def youngest(settings: SandboxSettings) -> int:
    out = subprocess.run(["svnlook", "youngest", str(svn.repository(settings))], capture_output=True, text=True)
    return int(out.stdout)


@pytest.fixture
def home_settings(tmp_path: Path) -> SandboxSettings:
    return SandboxSettings(home=tmp_path / "sandbox", component_port_base=19440, components=("svn",))


def test_prepare_creates_the_wordpress_layout_once_and_restores_the_access_config(home_settings):
    svn.prepare(home_settings, 19443)
    repo = svn.repository(home_settings)
    tree = subprocess.run(["svnlook", "tree", "--full-paths", str(repo)], capture_output=True, text=True).stdout
    assert sorted(tree.split()) == ["/", "assets/", "branches/", "tags/", "trunk/"]
    assert youngest(home_settings) == 1
    passwd = repo / "conf" / "passwd"
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o600
    password = svn.connections(home_settings, 19443)[svn.CONN_ID]["password"]
    assert f"{svn.USER} = {password}" in passwd.read_text()

    (repo / "conf" / "svnserve.conf").write_text("[general]\nanon-access = write\n")
    svn.prepare(home_settings, 19443)
    assert youngest(home_settings) == 1, "a second prepare must not recreate or recommit"
    conf = (repo / "conf" / "svnserve.conf").read_text()
    assert "anon-access = read" in conf and "auth-access = write" in conf
    assert [p.name for p in svn.svn_dir(home_settings).iterdir()] == ["repos"], "no staging left behind"


def test_the_command_line_is_a_foreground_daemon_serving_the_homes_repositories(home_settings):
    marker = svn.marker(home_settings, 19443)
    argv = marker.argv()
    assert argv[:3] == ["/usr/bin/svnserve", "--daemon", "--foreground"]
    assert marker.matches(argv)
    root = argv[argv.index("--root") + 1]
    assert Path(root).is_relative_to(home_settings.home)
    assert argv[argv.index("--listen-port") + 1] == "19443"
    assert argv[argv.index("--listen-host") + 1] == "127.0.0.1"


def test_a_missing_subversion_names_the_install_command(home_settings, monkeypatch, tmp_path):
    monkeypatch.setattr(svn, "SVNSERVE", str(tmp_path / "no-svnserve"))
    with pytest.raises(SandboxError, match=r"apt-get install subversion.*make setup"):
        svn.check_installed(home_settings)


def test_ready_only_for_an_svn_server(home_settings):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        threading.Thread(target=lambda: listener.accept()[0].sendall(b"HTTP/1.1 200 OK\r\n\r\n"), daemon=True).start()
        assert not svn.ready(home_settings, port), "a listener that does not speak svn is not ready"
    assert not svn.ready(home_settings, port), "nothing listening"


def test_anyone_reads_only_the_committer_writes(tmp_path):
    with running_svnserve(tmp_path / "sandbox") as server:
        assert server.url == f"svn://127.0.0.1:{server.port}/varai-ai-discovery"
        cfg = tmp_path / "cfg"
        listing = run_svn("list", server.url, config_dir=cfg)
        assert listing.returncode == 0, listing.stderr
        assert sorted(listing.stdout.split()) == ["assets/", "branches/", "tags/", "trunk/"]

        anonymous = run_svn("mkdir", "-m", "anon", f"{server.url}/tags/9.9.9", config_dir=cfg)
        assert anonymous.returncode != 0
        assert "E170001" in anonymous.stderr

        wrong = run_svn(
            "mkdir", "-m", "x", "--username", server.login, "--password-from-stdin", f"{server.url}/tags/9.9.9",
            config_dir=cfg, stdin="not-the-password\n",
        )  # fmt: skip
        assert wrong.returncode != 0
        assert "Password incorrect" in wrong.stderr
        assert youngest(server.settings) == 1

        committer = run_svn(
            "mkdir", "-m", "x", "--username", server.login, "--password-from-stdin", f"{server.url}/tags/9.9.9",
            config_dir=cfg, stdin=server.password + "\n",
        )  # fmt: skip
        assert committer.returncode == 0, committer.stderr
        assert youngest(server.settings) == 2
