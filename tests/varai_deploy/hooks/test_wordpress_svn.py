"""WordPressSvnHook against a real svnserve (the sandbox's svn component) through a real Airflow connection."""

from __future__ import annotations

import logging
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.svn_server import SvnServer, running_svnserve
from varai_deploy.hooks.wordpress_svn import SvnError, SvnPathExistsError, WordPressSvnHook
from varai_deploy.sandbox import svn
from varai_deploy.widgets.publishing import PublishAuthError, PublishError

ENV_VAR = "AIRFLOW_CONN_VARAI_WORDPRESS_SVN"


@pytest.fixture
def server(tmp_path: Path, monkeypatch) -> Iterator[SvnServer]:
    with running_svnserve(tmp_path / "sandbox") as srv:
        monkeypatch.setenv(ENV_VAR, srv.connection_env())
        yield srv


@pytest.fixture
def commands(monkeypatch) -> list[dict]:
    """Every command the hook runs: its argv and what it sent on stdin."""
    seen: list[dict] = []
    real_run = subprocess.run

    def spy(cmd, *args, **kwargs):
        seen.append({"argv": list(cmd), "stdin": kwargs.get("input")})
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    return seen


def youngest(server: SvnServer) -> int:
    out = subprocess.run(["svnlook", "youngest", str(svn.repository(server.settings))], capture_output=True, text=True)
    return int(out.stdout)


def commit_files(hook: WordPressSvnHook, wc: Path, files: dict[str, bytes]) -> int | None:
    hook.checkout("trunk", wc)
    for rel, data in files.items():
        (wc / rel).parent.mkdir(parents=True, exist_ok=True)
        (wc / rel).write_bytes(data)
    hook.add(wc, sorted(files))
    return hook.commit(wc, "add files")


def test_commits_reads_back_and_tags_on_the_server(server, tmp_path, commands):
    hook = WordPressSvnHook()
    assert hook.repository_url == server.url
    files = {"readme.txt": b"Stable tag: 1.0.0\n", "assets/js/w.min.js": b"x=1;\n"}
    assert commit_files(hook, tmp_path / "wc", files) == 2
    assert hook.commit(tmp_path / "wc", "again") is None, "nothing to commit is no revision"

    assert hook.ls("trunk", recursive=True) == ["assets/", "assets/js/", "assets/js/w.min.js", "readme.txt"]
    assert hook.cat("trunk/assets/js/w.min.js") == b"x=1;\n"
    assert hook.exists("trunk/readme.txt") and not hook.exists("tags/1.0.0")
    assert hook.cat("trunk/nothing.txt") is None

    assert hook.copy("trunk", "tags/1.0.0", "Tag 1.0.0", revision=2) == 3
    exported = hook.export("tags/1.0.0", tmp_path / "export")
    assert {p.relative_to(exported).as_posix(): p.read_bytes() for p in exported.rglob("*") if p.is_file()} == files
    assert hook.last_changed_revision("tags/1.0.0") == 3
    assert hook.last_changed_revision("trunk") == 2

    writes = [c for c in commands if "--password-from-stdin" in c["argv"]]
    assert len(writes) == 3  # two commits and the copy
    assert all(c["stdin"] == f"{server.password}\n".encode() for c in writes)
    assert not any(server.password in arg for c in commands for arg in c["argv"])
    assert all("--no-auth-cache" in c["argv"] and "--non-interactive" in c["argv"] for c in commands)


def test_a_copy_never_lands_inside_an_existing_tag(server, tmp_path):
    hook = WordPressSvnHook()
    commit_files(hook, tmp_path / "wc", {"readme.txt": b"one\n"})
    hook.copy("trunk", "tags/1.0.0", "Tag 1.0.0")
    before = youngest(server)
    with pytest.raises(SvnPathExistsError) as caught:
        hook.copy("trunk", "tags/1.0.0", "Tag 1.0.0 again")
    assert (caught.value.channel, caught.value.destination) == ("woocommerce", "svn")
    assert youngest(server) == before
    assert hook.ls("tags/1.0.0") == ["readme.txt"], "svn copy would have made tags/1.0.0/trunk"


def test_put_tree_creates_a_folder_of_files_in_one_commit(server, tmp_path):
    hook = WordPressSvnHook()
    (tmp_path / "a.txt").write_bytes(b"a")
    (tmp_path / "b.js").write_bytes(b"b")
    files = {"readme.txt": tmp_path / "a.txt", "assets/js/w.js": tmp_path / "b.js"}
    assert hook.put_tree(files, "tags/2.0.0-rc.1", "pre-release") == 2
    assert hook.ls("tags/2.0.0-rc.1", recursive=True) == ["assets/", "assets/js/", "assets/js/w.js", "readme.txt"]
    assert hook.cat("tags/2.0.0-rc.1/assets/js/w.js") == b"b"
    with pytest.raises(SvnPathExistsError):
        hook.put_tree(files, "tags/2.0.0-rc.1", "again")
    assert youngest(server) == 2


def test_a_wrong_password_names_the_connection_and_never_shows_the_password(
    server, tmp_path, monkeypatch, commands, caplog, capfd
):
    wrong = "wrong-Pa55word-do-not-print"
    monkeypatch.setenv(ENV_VAR, server.connection_env(password=wrong))
    hook = WordPressSvnHook()
    hook.checkout("trunk", tmp_path / "wc")  # reading is anonymous, as on WordPress.org
    (tmp_path / "wc" / "readme.txt").write_text("x")
    hook.add(tmp_path / "wc", ["readme.txt"])
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PublishAuthError) as caught:
        hook.commit(tmp_path / "wc", "should not land")
    message = str(caught.value)
    assert "varai_wordpress_svn" in message and server.url in message
    assert "Password incorrect" in message and "login 'varai-deploy'" in message
    assert (caught.value.channel, caught.value.destination) == ("woocommerce", "svn")
    assert youngest(server) == 1

    with pytest.raises(PublishAuthError):
        hook.copy("trunk", "tags/1.0.0", "Tag")
    assert youngest(server) == 1
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert "svn --non-interactive --no-auth-cache" in logged and "--password-from-stdin commit" in logged
    for text in (message, logged, *(arg for c in commands for arg in c["argv"])):
        assert wrong not in text


def test_a_connection_without_login_cannot_write(server, monkeypatch):
    monkeypatch.setenv(ENV_VAR, f'{{"conn_type": "generic", "host": "{server.url}"}}')
    hook = WordPressSvnHook()
    assert hook.exists("trunk")
    with pytest.raises(PublishAuthError, match="varai_wordpress_svn.*has no login"):
        hook.copy("trunk", "tags/1.0.0", "Tag")


def test_an_unreachable_repository_is_an_error_not_a_missing_path(monkeypatch):
    with socket.socket() as reserved:  # bound, never listening: connections to it are refused
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        monkeypatch.setenv(ENV_VAR, f'{{"conn_type": "generic", "host": "svn://127.0.0.1:{port}/varai-ai-discovery"}}')
        with pytest.raises(
            SvnError, match=rf"svn info on svn://127\.0\.0\.1:{port}/varai-ai-discovery failed.*connect"
        ):
            WordPressSvnHook().exists("tags/1.0.0")


def test_the_connection_host_must_be_the_repository_url(monkeypatch):
    monkeypatch.setenv(ENV_VAR, '{"conn_type": "generic", "host": "plugins.svn.wordpress.org"}')
    with pytest.raises(PublishError, match="must hold the repository URL"):
        WordPressSvnHook().url("trunk")
