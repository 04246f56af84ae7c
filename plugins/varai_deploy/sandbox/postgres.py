"""The sandbox's PostgreSQL: Debian's server on loopback, holding the release ledger and the
services' own data (see app_data.py).

A cluster of its own under ``<home>/postgres/data`` (``initdb`` on first ``up``), password
(SCRAM) authentication only, TCP on the sandbox host and a Unix socket under the home (where its path fits). The
databases are created while a new cluster is still offline (single-user mode), so they are
there before anything can connect; a cluster made before one of them existed gets it once the
server answers, on every ``up``. Staging and production point the same ``varai_ledger`` and
``varai_app_db`` connections at Cloud SQL.

PostgreSQL refuses to run as root: as root, the server and ``initdb`` run as the ``postgres``
user the Debian package creates (through ``setpriv``, which execs, so the recorded pid is the
server's), and the directories on the way to the data are made traversable (execute only).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from varai_deploy.sandbox import app_data
from varai_deploy.sandbox.components import Component
from varai_deploy.sandbox.credentials import secret
from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.processes import Marker
from varai_deploy.sandbox.settings import SandboxSettings

CONN_ID = "varai_ledger"
USER = "varai"
DATABASES = ("varai_ledger", app_data.DATABASE)
SYSTEM_USER = "postgres"
ENV_BINDIR = "VARAI_SANDBOX_POSTGRES_BINDIR"
INSTALL_HINT = "install it with `apt-get install postgresql` or run `make setup`"
#: Small: a sandbox on a laptop, beside Airflow and a dozen other processes.
SERVER_SETTINGS = (
    "shared_buffers = 32MB\n"
    "max_connections = 200\n"
    "password_encryption = scram-sha-256\n"
    "log_min_messages = warning\n"
    "log_line_prefix = '%m [%p] '\n"
)


def bindir() -> Path:
    """The newest Debian PostgreSQL (``/usr/lib/postgresql/<major>/bin``), or ``$VARAI_SANDBOX_POSTGRES_BINDIR``."""
    override = os.environ.get(ENV_BINDIR)
    candidates = [Path(override)] if override else []
    installed = Path("/usr/lib/postgresql")
    if installed.is_dir():
        majors = sorted((p for p in installed.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True)
        candidates += [p / "bin" for p in majors]
    for candidate in candidates:
        if (candidate / "postgres").is_file() and (candidate / "initdb").is_file():
            return candidate
    raise SandboxError(f"the sandbox ledger needs PostgreSQL's server (initdb, postgres): {INSTALL_HINT}")


def home_dir(settings: SandboxSettings) -> Path:
    return settings.home / "postgres"


def data_dir(settings: SandboxSettings) -> Path:
    return home_dir(settings) / "data"


def socket_dir(settings: SandboxSettings) -> Path:
    return home_dir(settings) / "run"


#: The longest path of a Unix socket (sun_path less its NUL); PostgreSQL will not start with a longer one.
MAX_SOCKET_PATH = 107


def socket_dir_flag(settings: SandboxSettings, port: int) -> str:
    """The ``-k`` directory; none (TCP only, which is all anything here uses) when the home lies so
    deep that the socket's path would be too long, as under a test's temp dir."""
    directory = socket_dir(settings)
    return str(directory) if len(str(directory / f".s.PGSQL.{port}")) <= MAX_SOCKET_PATH else ""


def _as_root() -> bool:
    return os.geteuid() == 0


def _system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise SandboxError(
            f"running as root, the sandbox PostgreSQL needs the {SYSTEM_USER!r} user: {INSTALL_HINT}"
        ) from None


def _drop_privileges() -> list[str]:
    """The argv prefix that runs a PostgreSQL program as the ``postgres`` user when we are root."""
    if not _as_root():
        return []
    _system_user()
    return ["setpriv", f"--reuid={SYSTEM_USER}", f"--regid={SYSTEM_USER}", "--init-groups", "--"]


def _own(path: Path) -> None:
    """As root: the server's directories belong to the user it runs as, and can be reached by it."""
    if not _as_root():
        return
    user = _system_user()
    os.chown(path, user.pw_uid, user.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.chown(name, user.pw_uid, user.pw_gid)
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _run(argv: list[str], what: str, stdin: str | None = None) -> None:
    proc = subprocess.run(
        [*_drop_privileges(), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SandboxError(f"sandbox PostgreSQL: {what} failed (exit {proc.returncode}): {' | '.join(tail)}")


def marker(settings: SandboxSettings, port: int) -> Marker:
    flags = (
        ("-D", str(data_dir(settings))),
        ("-p", str(port)),
        ("-h", settings.host),
        ("-k", socket_dir_flag(settings, port)),
    )
    try:
        program = str(bindir() / "postgres")
    except SandboxError:  # not installed: nothing of ours can be running either
        program = "postgres"
    return Marker("postgres", flags, program=program, prefix=tuple(_drop_privileges()))


def prepare(settings: SandboxSettings, port: int) -> None:
    """initdb (once per home) with the ledger user's password, then create the databases offline.

    The services' DSN file is written first: the service processes this ``up`` restarts start
    before the server answers, and read it only at start.
    """
    app_data.write_dsn(settings, _dsn(settings, port, app_data.DATABASE))
    data = data_dir(settings)
    socket_dir(settings).mkdir(parents=True, exist_ok=True)
    if (data / "PG_VERSION").is_file():
        _own(home_dir(settings))
        return
    if data.exists():  # a half-finished initdb (the machine died): start over, nothing is in it yet
        shutil.rmtree(data)
    data.mkdir(parents=True, mode=0o700)
    _own(home_dir(settings))
    password = secret(settings, "postgres_password")
    with tempfile.NamedTemporaryFile("w", dir=home_dir(settings), prefix=".pw", delete=False) as handle:
        handle.write(password + "\n")
        pwfile = Path(handle.name)
    try:
        pwfile.chmod(0o600)
        _own(pwfile)
        _run(
            [
                str(bindir() / "initdb"),
                "-D",
                str(data),
                "--username",
                USER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
            "initdb",
        )
    finally:
        pwfile.unlink(missing_ok=True)
    with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write("\n# varai sandbox\n" + SERVER_SETTINGS)
    for database in DATABASES:
        _run(
            [str(bindir() / "postgres"), "--single", "-D", str(data), "-j", "postgres"],
            f"creating database {database}",
            stdin=f"CREATE DATABASE {database} OWNER {USER};\n",
        )


def ready(settings: SandboxSettings, port: int) -> bool:
    """Accepting password logins to the ledger's database."""
    import psycopg2

    try:
        conn = psycopg2.connect(**_dsn(settings, port), connect_timeout=1)
    except psycopg2.Error:
        return False
    conn.close()
    return True


def after_start(settings: SandboxSettings, port: int) -> None:
    """Once it answers, on every ``up``: the databases an older cluster lacks, the application's
    schema, and the services' DSN file."""
    import psycopg2
    from psycopg2 import errors, sql

    conn = psycopg2.connect(**_dsn(settings, port, "postgres"), connect_timeout=5)
    conn.autocommit = True  # CREATE DATABASE refuses to run in a transaction
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database")
            existing = {name for (name,) in cur.fetchall()}
            for database in (d for d in DATABASES if d not in existing):
                create = sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(USER))
                with contextlib.suppress(errors.DuplicateDatabase):  # another `up` made it meanwhile
                    cur.execute(create)
    finally:
        conn.close()
    app = _dsn(settings, port, app_data.DATABASE)
    app_data.migrate(app)
    app_data.write_dsn(settings, app)


def _dsn(settings: SandboxSettings, port: int, dbname: str = DATABASES[0]) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": port,
        "user": USER,
        "password": secret(settings, "postgres_password"),
        "dbname": dbname,
    }


def connections(settings: SandboxSettings, port: int) -> dict[str, dict[str, Any]]:
    password = secret(settings, "postgres_password")
    return {
        conn_id: {
            "conn_type": "postgres",
            "host": settings.host,
            "port": port,
            "login": USER,
            "password": password,
            "schema": database,
        }
        for conn_id, database in ((CONN_ID, DATABASES[0]), (app_data.CONN_ID, app_data.DATABASE))
    }


def check_installed(settings: SandboxSettings) -> None:
    bindir()
    if _as_root():
        _system_user()
        if shutil.which("setpriv") is None:
            raise SandboxError("running as root, the sandbox PostgreSQL needs setpriv (Debian package util-linux)")


def shutdown(settings: SandboxSettings, record: dict[str, Any]) -> None:
    """Fast shutdown (SIGINT): sessions are ended and the cluster is left clean, never killed halfway."""
    import signal

    from varai_deploy.sandbox import processes

    pid = record.get("pid")
    if processes.is_ours(pid, marker(settings, int(record["port"])), record.get("starttime")):
        os.kill(pid, signal.SIGINT)
        processes.wait_gone([pid], 30.0)


COMPONENT = Component(
    name="postgres",
    offset=6,
    marker=marker,
    ready=ready,
    prepare=prepare,
    after_start=after_start,
    connections=connections,
    check_installed=check_installed,
    shutdown=shutdown,
    start_timeout=60.0,
    endpoint=lambda settings, port: f"postgresql://{settings.host}:{port}/{DATABASES[0]}",
)
