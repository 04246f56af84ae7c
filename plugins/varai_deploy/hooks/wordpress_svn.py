"""The WordPress.org plugin repository (Subversion) through the real ``svn`` and ``svnmucc`` clients.

WordPress.org installs a plugin from its SVN repository: ``tags/<x.y.z>/`` holds each release and
``trunk/readme.txt``'s ``Stable tag`` names the one sites get. Reads are anonymous, as anyone reads
WordPress.org. Writes log in as the connection's login with the password on stdin
(``--password-from-stdin``), so it never appears in argv, logs or a credentials cache
(``--no-auth-cache`` and a private, throw-away ``--config-dir`` per command).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow.sdk import BaseHook

from varai_deploy.widgets.publishing import PublishAuthError, PublishError

if TYPE_CHECKING:
    from airflow.sdk import Connection

DESTINATION = "svn"
#: Refused credentials: wrong password, no credentials for a write, or authz says no.
_AUTH_FAILED = re.compile(r"E170001|E215004|Authorization failed")
#: ``svn info`` on a path the revision does not have.
_NOT_FOUND = re.compile(r"W170000|W160013|E160013")
_PATH_EXISTS = "E160020"
_SVNMUCC_COMMITTED = re.compile(rb"^r(\d+) committed", re.MULTILINE)
_SVN_COMMITTED = re.compile(rb"^Committed revision (\d+)\.", re.MULTILINE)


class SvnError(PublishError):
    """An svn command failed; ``stderr`` holds Subversion's own messages."""

    def __init__(self, message: str, *, channel: str, destination: str, stderr: str = "") -> None:
        super().__init__(message, channel=channel, destination=destination)
        self.stderr = stderr


class SvnPathExistsError(SvnError):
    """A server-side copy or put found its destination already there; nothing was committed."""


class WordPressSvnHook(BaseHook):
    """One plugin's Subversion repository; the connection's ``host`` is its URL
    (``https://plugins.svn.wordpress.org/<slug>``, ``svn://127.0.0.1:18063/<slug>`` in the sandbox), its
    login and password the committer's. Its conn_type is ``varai_wordpress_svn`` (this project's); one of
    type ``generic`` works the same."""

    conn_name_attr = "svn_conn_id"
    default_conn_name = "varai_wordpress_svn"
    conn_type = "varai_wordpress_svn"
    hook_name = "WordPress.org plugin SVN"

    def __init__(
        self, svn_conn_id: str = default_conn_name, *, channel: str = "woocommerce", timeout: float = 300.0
    ) -> None:
        super().__init__()
        self.svn_conn_id = svn_conn_id
        self.channel = channel
        self.timeout = timeout

    @cached_property
    def connection(self) -> Connection:
        return self.get_connection(self.svn_conn_id)

    @property
    def repository_url(self) -> str:
        url = (self.connection.host or "").rstrip("/")
        if "://" not in url:
            raise PublishError(
                f"{self.channel}: Airflow connection {self.svn_conn_id!r} must hold the repository URL in its host, "
                f"e.g. https://plugins.svn.wordpress.org/varai-ai-discovery (got {url!r})",
                channel=self.channel,
                destination=DESTINATION,
            )
        return url

    def url(self, path: str = "") -> str:
        """The URL of ``path`` (``tags/1.4.2``) in the repository; ``@`` is escaped so svn never reads a peg."""
        quoted = quote(path.strip("/"), safe="/")
        return f"{self.repository_url}/{quoted}" if quoted else self.repository_url

    # -- reads (anonymous) -----------------------------------------------------------------
    def exists(self, path: str) -> bool:
        try:
            self._svn("info", "--show-item", "kind", "--", self.url(path))
        except SvnError as exc:
            if _NOT_FOUND.search(exc.stderr):
                return False
            raise
        return True

    def ls(self, path: str = "", *, recursive: bool = False) -> list[str]:
        """Entries under ``path``; directories end with ``/``."""
        out = self._svn("list", *(["--recursive"] if recursive else []), "--", self.url(path))
        return [line for line in out.decode("utf-8").splitlines() if line]

    def cat(self, path: str) -> bytes | None:
        """The file's bytes, or None when there is no such file."""
        try:
            return self._svn("cat", "--", self.url(path))
        except SvnError as exc:
            if _NOT_FOUND.search(exc.stderr):
                return None
            raise

    def export(self, path: str, dest: Path) -> Path:
        """A clean copy (no ``.svn``) of ``path`` at ``dest``, which must not exist yet."""
        self._svn("export", "--quiet", "--", self.url(path), str(dest))
        return dest

    def last_changed_revision(self, path: str = "") -> int:
        return int(self._svn("info", "--show-item", "last-changed-revision", "--", self.url(path)))

    def checkout(self, path: str, dest: Path) -> int:
        """Check ``path`` out into ``dest``; returns the revision checked out."""
        self._svn("checkout", "--quiet", "--", self.url(path), str(dest))
        return int(self._svn("info", "--show-item", "revision", "--", str(dest)))

    # -- a working copy --------------------------------------------------------------------
    def add(self, working_copy: Path, paths: Sequence[str]) -> None:
        """Schedule new files (relative to the working copy) and their new parent folders."""
        if paths:
            self._svn("add", "--parents", "--", *paths, cwd=working_copy)

    def remove(self, working_copy: Path, paths: Sequence[str]) -> None:
        if paths:
            self._svn("delete", "--", *paths, cwd=working_copy)

    def commit(self, working_copy: Path, message: str) -> int | None:
        """Commit the working copy; the new revision, or None when there was nothing to commit."""
        out = self._svn("commit", "--message", message, cwd=working_copy, auth=True)
        match = _SVN_COMMITTED.search(out)
        return int(match.group(1)) if match else None

    # -- server-side, one commit each (svnmucc) --------------------------------------------
    def copy(self, source: str, dest: str, message: str, *, revision: int | None = None) -> int:
        """Copy ``source@revision`` to ``dest`` on the server. Unlike ``svn copy``, which copies *into*
        an existing folder, this refuses (:class:`SvnPathExistsError`) when ``dest`` exists."""
        return self._mucc(message, "cp", str(revision or "HEAD"), self.url(source), self.url(dest))

    def put_tree(self, files: Mapping[str, Path], dest: str, message: str) -> int:
        """Create the folder ``dest`` holding ``files`` (path inside ``dest`` -> local file) in one commit;
        refuses (:class:`SvnPathExistsError`) when ``dest`` exists."""
        folders = {str(p) for rel in files for p in PurePosixPath(rel).parents if str(p) != "."}
        actions = ["mkdir", self.url(dest)]
        for folder in sorted(folders):  # a parent sorts before its children
            actions += ["mkdir", self.url(f"{dest}/{folder}")]
        for rel, local in sorted(files.items()):
            actions += ["put", str(local), self.url(f"{dest}/{rel}")]
        return self._mucc(message, *actions)

    # -- running the clients ---------------------------------------------------------------
    def _svn(self, subcommand: str, *args: str, cwd: Path | None = None, auth: bool = False) -> bytes:
        return self._run("svn", [subcommand, *args], cwd=cwd, auth=auth)

    def _mucc(self, message: str, *actions: str) -> int:
        out = self._run("svnmucc", ["--message", message, *actions], cwd=None, auth=True)
        match = _SVNMUCC_COMMITTED.search(out)
        if not match:
            raise SvnError(
                f"{self.channel}: svnmucc on {self.repository_url} reported no commit: {out.decode(errors='replace')}",
                channel=self.channel,
                destination=DESTINATION,
            )
        return int(match.group(1))

    def _run(self, program: str, args: list[str], *, cwd: Path | None, auth: bool) -> bytes:
        password = ""
        with tempfile.TemporaryDirectory(prefix="varai-svn-config-") as config_dir:
            cmd = [program, "--non-interactive", "--no-auth-cache", "--config-dir", config_dir]
            if auth:
                login, password = self._credentials()
                cmd += ["--username", login, "--password-from-stdin"]
            cmd += args
            self.log.info("%s", shlex.join(cmd))
            try:
                done = subprocess.run(
                    cmd,
                    input=f"{password}\n".encode() if auth else b"",
                    capture_output=True,
                    cwd=cwd,
                    env=_env(),
                    timeout=self.timeout,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SvnError(
                    f"{self.channel}: {program} {args[0]} on {self.repository_url} did not complete: {exc}. "
                    "Is Subversion installed (`apt-get install subversion`) and the repository reachable?",
                    channel=self.channel,
                    destination=DESTINATION,
                ) from None
        if done.returncode != 0:
            raise self._error(program, args[0], done.stderr.decode(errors="replace"), password)
        return done.stdout

    def _credentials(self) -> tuple[str, str]:
        conn = self.connection
        if not conn.login:
            raise PublishAuthError(
                f"{self.channel}: Airflow connection {self.svn_conn_id!r} has no login; set the plugin committer's "
                f"WordPress.org username and password to write to {self.repository_url}",
                channel=self.channel,
                destination=DESTINATION,
            )
        return conn.login, conn.password or ""

    def _error(self, program: str, what: str, stderr: str, password: str) -> PublishError:
        said = " ".join(line.strip() for line in stderr.splitlines() if line.strip())
        if password:
            said = said.replace(password, "***")
        if _AUTH_FAILED.search(stderr):
            return PublishAuthError(
                f"{self.channel}: {self.repository_url} refused the credentials of Airflow connection "
                f"{self.svn_conn_id!r} (login {self.connection.login!r}) for {program} {what}: {said} "
                "Fix the connection's login and password (the plugin's committer) and retry.",
                channel=self.channel,
                destination=DESTINATION,
            )
        kind = SvnPathExistsError if _PATH_EXISTS in stderr else SvnError
        return kind(
            f"{self.channel}: {program} {what} on {self.repository_url} failed: {said} "
            f"Check that connection {self.svn_conn_id!r} points at the plugin's repository and that it is reachable.",
            channel=self.channel,
            destination=DESTINATION,
            stderr=stderr,
        )


def _env() -> dict[str, str]:
    """English messages (parsed above), and none of Airflow's variables (they can carry secrets)."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")}
    return {**env, "LC_ALL": "C"}
