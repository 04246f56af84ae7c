"""An npm registry through the real ``npm`` CLI: publish a package directory, view, pack.

Connection ``varai_npm`` (conn_type ``varai_npm``, this project's; one of type ``generic`` works the
same): ``host`` is the registry URL (``https://registry.npmjs.org/`` in
production). Its ``password`` is the npm automation token; when ``login`` is set as well (the
sandbox's Verdaccio), the password is that user's and is exchanged for a token the way
``npm login`` does (``PUT /-/user/org.couchdb.user:<login>``), so publishing is always a bearer-token
call, as in production.

The token never reaches a command line or a file: each npm run gets a throw-away user config (0600,
in a temporary directory removed afterwards) holding ``_authToken=${NPM_TOKEN}``, which npm expands
from the environment of that one process. Reads (``view``, ``pack``, :meth:`published`) are anonymous,
as a merchant's ``npm install`` is. Every run also gets its own cache, so what it reads is the
registry's answer now, not a cached one.

npm is the project's pinned one, run by the project's node (:mod:`varai_deploy.nodejs`: the wheel in
this venv), never an ``npm`` or ``node`` that happens to be on PATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseHook

from varai_deploy import nodejs
from varai_deploy.widgets.publishing import PublishAuthError, PublishConflictError, PublishError

DESTINATION = "npm"
TOKEN_ENV = "NPM_TOKEN"  # noqa: S105 - the name of the variable npm reads the token from
#: Seconds: a publish uploads one small tarball; a registry that does not answer fails the task.
PUBLISH_TIMEOUT = 300.0
READ_TIMEOUT = 120.0
HTTP_TIMEOUT = 30.0

_AUTH_CODES = frozenset({"E401", "E403", "ENEEDAUTH"})
_CONFLICT_CODES = frozenset({"E409", "EPUBLISHCONFLICT"})
#: npm 11 refuses a republish itself, before any upload, with this message and no code; npmjs.com
#: answers the same with E403.
_CONFLICT_TEXT = re.compile(r"cannot publish over (the )?previously published version", re.IGNORECASE)
#: Not for npm: Airflow's (connections can carry secrets) and npm settings that would override ours.
_FOREIGN_ENV = ("AIRFLOW_", "_AIRFLOW", "NPM_CONFIG_")
_ERROR_CODE = re.compile(r"^npm (?:error|ERR!) code (\S+)", re.MULTILINE)


class NpmRegistryHook(BaseHook):
    """Publish to and read from the npm registry of connection ``npm_conn_id``.

    Errors are :class:`PublishError`\\ s naming ``channel`` (the widget channel that publishes) and
    the connection.
    """

    conn_name_attr = "npm_conn_id"
    default_conn_name = "varai_npm"
    conn_type = "varai_npm"
    hook_name = "VarAI npm registry"

    def __init__(self, npm_conn_id: str = default_conn_name, *, channel: str = "html") -> None:
        super().__init__()
        self.npm_conn_id = npm_conn_id
        self.channel = channel
        self._conn: Any = None
        self._token: str | None = None

    # -- connection -------------------------------------------------------------------------
    @property
    def connection(self) -> Any:
        if self._conn is None:
            from airflow.sdk.exceptions import AirflowNotFoundException

            try:
                self._conn = self.get_connection(self.npm_conn_id)
            except AirflowNotFoundException:
                raise self._error(
                    f"the Airflow connection {self.npm_conn_id!r} is not defined; add it (conn_type varai_npm, "
                    "host: the registry URL, password: an npm automation token with publish rights on @varai)"
                ) from None
        return self._conn

    @property
    def registry_url(self) -> str:
        host = (self.connection.host or "").strip()
        if not host.startswith(("http://", "https://")):
            raise self._error(
                f"the host of Airflow connection {self.npm_conn_id!r} must be the registry URL "
                f"(https://registry.npmjs.org/), got {host!r}"
            )
        return host.rstrip("/") + "/"

    @property
    def token(self) -> str:
        """The publish token: the connection's password, or what logging in with login + password gives."""
        if self._token is None:
            conn = self.connection
            if not conn.password:
                raise PublishAuthError(
                    f"{self.channel} -> npm: Airflow connection {self.npm_conn_id!r} has no password; set it to "
                    "an npm automation token with publish rights on @varai",
                    channel=self.channel,
                    destination=DESTINATION,
                )
            self._token = self._login(conn.login, conn.password) if conn.login else conn.password
        return self._token

    def _login(self, login: str, password: str) -> str:
        import requests

        url = f"{self.registry_url}-/user/org.couchdb.user:{quote(login, safe='')}"
        body = {"name": login, "password": password}
        try:
            resp = requests.put(url, json=body, auth=(login, password), timeout=HTTP_TIMEOUT)
        except requests.RequestException as exc:
            raise self._error(f"cannot reach the registry {self.registry_url} to log in: {exc}") from None
        token = None
        if resp.status_code == 201:
            with contextlib.suppress(ValueError, AttributeError):
                token = resp.json().get("token")
        if not token:
            raise PublishAuthError(
                f"{self.channel} -> npm: the registry {self.registry_url} refused the login {login!r} of Airflow "
                f"connection {self.npm_conn_id!r} (HTTP {resp.status_code}); check the connection's password "
                "(for the sandbox, `python -m varai_deploy.sandbox up` rewrites the connections)",
                channel=self.channel,
                destination=DESTINATION,
            )
        from airflow.sdk.log import mask_secret

        mask_secret(token)
        return token

    # -- reads --------------------------------------------------------------------------------
    def published(self, name: str, version: str) -> dict[str, Any] | None:
        """The packument entry of ``name@version`` (with ``dist.integrity``, ``dist.shasum``,
        ``dist.tarball``), or None when the registry does not have that version."""
        import requests

        url = self.registry_url + quote(name, safe="@")
        try:
            resp = requests.get(url, headers={"Accept": "application/json"}, timeout=HTTP_TIMEOUT)
        except requests.RequestException as exc:
            raise self._error(f"cannot read {name} from the registry {self.registry_url}: {exc}") from None
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._error(f"the registry {self.registry_url} answered HTTP {resp.status_code} for {name}")
        return resp.json().get("versions", {}).get(version)

    def view(self, spec: str, *fields: str) -> Any:
        """``npm view <spec> <fields> --json``: one field's value, or a dict of several; None when absent."""
        proc = self._npm("view", spec, *fields, timeout=READ_TIMEOUT)
        if proc.returncode != 0:
            code, summary = _npm_error(proc)
            if code == "E404":
                return None
            raise self._error(f"`npm view {spec}` failed against {self.registry_url}: {code or ''} {summary}")
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def pack(self, spec: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
        """``npm pack <spec> --pack-destination <dest>``: the tarball's path (npm checks a registry
        tarball against the registry's ``dist.integrity`` while downloading it)."""
        Path(dest).mkdir(parents=True, exist_ok=True)
        proc = self._npm("pack", str(spec), "--pack-destination", str(dest), timeout=READ_TIMEOUT)
        return Path(dest) / self._packed(proc, spec)["filename"]

    def pack_info(self, package_dir: str | os.PathLike[str]) -> dict[str, Any]:
        """What ``npm pack`` makes of a local directory, without writing it: ``integrity``, ``shasum``
        and ``files`` (each with its ``path``)."""
        proc = self._npm("pack", str(Path(package_dir).resolve()), "--dry-run", timeout=READ_TIMEOUT)
        return self._packed(proc, package_dir)

    def _packed(self, proc: subprocess.CompletedProcess, spec: object) -> dict[str, Any]:
        if proc.returncode != 0:
            code, summary = _npm_error(proc)
            raise self._error(f"`npm pack {spec}` failed against {self.registry_url}: {code or ''} {summary}")
        return json.loads(proc.stdout)[0]

    def audit(self, package_json: str | os.PathLike[str]) -> dict[str, Any]:
        """``npm audit --json`` of a package's dependencies as this registry resolves them (a lockfile made
        with ``--package-lock-only``: nothing is installed, no script runs). Its report, or
        ``{"error": {"code", "summary"}}`` when the registry does not answer audits."""
        with tempfile.TemporaryDirectory(prefix="varai-npm-audit-") as tmp:
            shutil.copyfile(package_json, Path(tmp, "package.json"))
            locked = self._npm("install", "--prefix", tmp, "--package-lock-only", timeout=READ_TIMEOUT)
            if locked.returncode != 0:
                code, summary = _npm_error(locked)
                raise self._error(f"cannot resolve the dependencies of {package_json}: {code or ''} {summary}")
            proc = self._npm("audit", "--prefix", tmp, "--audit-level", "none", timeout=READ_TIMEOUT)
        try:
            report = json.loads(proc.stdout)
        except ValueError:
            report = None
        if isinstance(report, dict) and proc.returncode == 0 and "error" not in report:
            return report
        code, summary = _npm_error(proc)
        warned = [line.removeprefix("npm warn audit ") for line in proc.stderr.splitlines() if "warn audit" in line]
        return {"error": {"code": code, "summary": " ".join(warned) or summary}}

    # -- publishing ---------------------------------------------------------------------------
    def publish(self, package_dir: str | os.PathLike[str], *, tag: str) -> None:
        """``npm publish <package_dir> --tag <tag>`` (a directory, or a tarball npm packed); never
        overwrites: the registry refuses any second publish of a version."""
        package_dir = Path(package_dir).resolve()
        spec = _spec(package_dir)
        proc = self._npm("publish", str(package_dir), "--tag", tag, token=self.token, timeout=PUBLISH_TIMEOUT)
        if proc.returncode == 0:
            self.log.info("npm: published %s to %s with dist-tag %s", spec, self.registry_url, tag)
            return
        code, summary = _npm_error(proc)
        if code in _CONFLICT_CODES or _CONFLICT_TEXT.search(summary):
            raise PublishConflictError(
                f"{self.channel} -> npm: the registry {self.registry_url} already has {spec} ({summary}); npm "
                "versions are immutable and nothing was overwritten: release a new version",
                channel=self.channel,
                destination=DESTINATION,
            )
        if code in _AUTH_CODES:
            raise PublishAuthError(
                f"{self.channel} -> npm: the registry {self.registry_url} refused the token of Airflow connection "
                f"{self.npm_conn_id!r} to publish {spec} ({code}: {summary}); set the connection's password to a "
                "valid npm automation token with publish rights on @varai",
                channel=self.channel,
                destination=DESTINATION,
            )
        raise self._error(f"`npm publish` of {spec} to {self.registry_url} failed: {code or 'no error code'} {summary}")

    # -- running npm --------------------------------------------------------------------------
    def _npm(self, *args: str, token: str | None = None, timeout: float) -> subprocess.CompletedProcess:
        try:
            npm = nodejs.npm_command()
            env = nodejs.node_env({k: v for k, v in os.environ.items() if not k.upper().startswith(_FOREIGN_ENV)})
        except nodejs.NodeNotFoundError as exc:
            raise self._error(f"cannot run npm: {exc}") from None
        with self._npm_config(token) as (userconfig, cache):
            argv = [*npm, *args, "--json", "--registry", self.registry_url, "--userconfig", str(userconfig)]
            argv += ["--cache", str(cache), "--ignore-scripts"]
            env.pop(TOKEN_ENV, None)
            if token is not None:
                env[TOKEN_ENV] = token
            self.log.info("npm %s", " ".join(args))
            try:
                proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                raise self._error(f"`npm {args[0]}` against {self.registry_url} took over {timeout:.0f}s") from None
        if proc.returncode != 0:
            # npm's debug log was in the temporary cache, gone now: do not point at it.
            output = [line for line in proc.stderr.splitlines() if "A complete log of this run" not in line]
            self.log.warning("npm %s exited %s:\n%s", args[0], proc.returncode, "\n".join(output)[-2000:])
        return proc

    @contextlib.contextmanager
    def _npm_config(self, token: str | None) -> Iterator[tuple[Path, Path]]:
        """A user config that only names the registry (and, to publish, where the token comes from)."""
        with tempfile.TemporaryDirectory(prefix="varai-npm-") as tmp:
            lines = [f"registry={self.registry_url}", "update-notifier=false", "fund=false", "audit=false"]
            if token is not None:
                lines.append(f"{_nerf_dart(self.registry_url)}:_authToken=${{{TOKEN_ENV}}}")
            userconfig = Path(tmp, "npmrc")
            fd = os.open(userconfig, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
            yield userconfig, Path(tmp, "cache")

    def _error(self, message: str) -> PublishError:
        return PublishError(f"{self.channel} -> npm: {message}", channel=self.channel, destination=DESTINATION)


def _nerf_dart(registry_url: str) -> str:
    """npm's key for per-registry settings: ``//host[:port]/path/``."""
    parts = urlsplit(registry_url)
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return f"//{parts.netloc}{path}"


def _spec(package_dir: Path) -> str:
    """``name@version`` from the package's package.json, for messages; the directory if unreadable."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        manifest = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
        return f"{manifest['name']}@{manifest['version']}"
    return str(package_dir)


def _npm_error(proc: subprocess.CompletedProcess) -> tuple[str | None, str]:
    """(code, summary) of a failed npm run: its ``--json`` error, else its ``npm error`` lines."""
    with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
        error = json.loads(proc.stdout)["error"]
        return error.get("code"), str(error.get("summary") or "").strip()
    match = _ERROR_CODE.search(proc.stderr)
    lines = [line.split(" ", 2)[-1] for line in proc.stderr.splitlines() if line.startswith("npm error")]
    summary = " ".join(line for line in lines if not line.startswith(("code ", "A complete log")))
    return (match.group(1) if match else None), summary.strip() or proc.stderr.strip()[-500:]
