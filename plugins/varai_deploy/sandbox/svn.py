"""The sandbox's WordPress.org plugin repository: Debian's ``svnserve`` serving one repository.

Like ``https://plugins.svn.wordpress.org/<slug>``: anyone may read, only the plugin's committer
may write, and the repository starts with WordPress.org's layout (``trunk/ tags/ assets/
branches/``). It lives under ``<home>/svn/repos/``; the committer's password is a sandbox secret
and reaches Airflow only through the ``varai_wordpress_svn`` connection.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from varai_deploy.sandbox.components import Component
from varai_deploy.sandbox.credentials import secret
from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.processes import Marker
from varai_deploy.sandbox.settings import SandboxSettings
from varai_deploy.sandbox.state import write_text_atomic
from varai_deploy.widgets.build import WOOCOMMERCE_SLUG

SVNSERVE = "/usr/bin/svnserve"
SVNADMIN = "/usr/bin/svnadmin"
SVN = "/usr/bin/svn"
INSTALL_HINT = "install it with `apt-get install subversion` or run `make setup`"

#: The plugin's slug is its repository's name, as on WordPress.org.
REPO_NAME = WOOCOMMERCE_SLUG
LAYOUT = ("trunk", "tags", "assets", "branches")
USER = "varai-deploy"
CONN_ID = "varai_wordpress_svn"
SECRET_NAME = "svn_password"  # noqa: S105 - the name the secret is kept under, not the secret
#: What every svnserve connection starts with (ra_svn protocol version 2).
GREETING = b"( success ( 2 2 "

SVNSERVE_CONF = """\
# Written by `python -m varai_deploy.sandbox up` (varai_deploy/sandbox/svn.py); rewritten on every up.
# As on WordPress.org: anyone reads, only the committer in ./passwd writes.
[general]
anon-access = read
auth-access = write
password-db = passwd
realm = VarAI sandbox WordPress.org plugin repository
"""


def svn_dir(settings: SandboxSettings) -> Path:
    return settings.home / "svn"


def repos_root(settings: SandboxSettings) -> Path:
    """What svnserve serves (``--root``); also how its process is known as this home's."""
    return svn_dir(settings) / "repos"


def repository(settings: SandboxSettings) -> Path:
    return repos_root(settings) / REPO_NAME


def url(settings: SandboxSettings, port: int) -> str:
    return f"svn://{settings.host}:{port}/{REPO_NAME}"


def check_installed(settings: SandboxSettings) -> None:
    missing = [p for p in (SVNSERVE, SVNADMIN, SVN) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if missing:
        raise SandboxError(f"Subversion is not installed ({', '.join(missing)} missing); {INSTALL_HINT}")


def prepare(settings: SandboxSettings, port: int) -> None:
    """Create the repository once (with its first commit), then (re)write its access config."""
    repo = repository(settings)
    if not (repo / "format").is_file():
        _create(settings, repo)
    write_text_atomic(repo / "conf" / "svnserve.conf", SVNSERVE_CONF, 0o644)
    write_text_atomic(repo / "conf" / "passwd", f"[users]\n{USER} = {secret(settings, SECRET_NAME)}\n", 0o600)


def _create(settings: SandboxSettings, repo: Path) -> None:
    """Build it beside ``--root`` and move it in whole: a crash never leaves half a repository served."""
    repo.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".creating-", dir=svn_dir(settings)))
    try:
        built = staging / REPO_NAME
        _run([SVNADMIN, "create", str(built)])
        with tempfile.TemporaryDirectory(prefix="varai-svn-config-") as config_dir:
            base = built.as_uri()
            message = "WordPress.org plugin layout: trunk, tags, assets, branches"
            _run(
                [SVN, "mkdir", "--non-interactive", "--config-dir", config_dir, "--username", USER, "-m", message]
                + [f"{base}/{folder}" for folder in LAYOUT]
            )
        built.rename(repo)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env={**os.environ, "LC_ALL": "C"})
    if done.returncode != 0:
        raise SandboxError(f"creating the sandbox SVN repository failed: {argv[0]} {argv[1]}: {done.stderr.strip()}")


def marker(settings: SandboxSettings, port: int) -> Marker:
    """Its command line. ``Marker`` holds flag/value pairs, so the two valueless mode switches
    (a daemon that stays in the foreground, the launcher's child) travel as one pair."""
    return Marker(
        "svnserve",
        (
            ("--daemon", "--foreground"),
            ("--root", str(repos_root(settings))),
            ("--listen-host", settings.host),
            ("--listen-port", str(port)),
            ("--log-file", str(svn_dir(settings) / "svnserve.log")),
        ),
        program=SVNSERVE,
    )


def ready(settings: SandboxSettings, port: int) -> bool:
    """Accepts a connection and greets in the svn protocol."""
    try:
        with socket.create_connection((settings.host, port), timeout=0.5) as sock:
            sock.settimeout(0.5)
            greeting = sock.recv(64)
    except OSError:
        return False
    return greeting.startswith(GREETING)


def connections(settings: SandboxSettings, port: int) -> dict[str, dict[str, Any]]:
    return {
        CONN_ID: {
            "conn_type": "generic",
            "host": url(settings, port),
            "login": USER,
            "password": secret(settings, SECRET_NAME),
        }
    }


COMPONENT = Component(
    name="svn",
    offset=3,
    marker=marker,
    ready=ready,
    prepare=prepare,
    connections=connections,
    check_installed=check_installed,
    endpoint=lambda settings, port: f"svn://{settings.host}:{port}",
)
