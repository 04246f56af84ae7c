"""The Magento module's Composer repository: a static one (what Satis writes) under a prefix of a CDN bucket.

``<prefix>/packages.json`` lists every published version with ``dist: {type: zip, url, shasum}``;
each version's zip lies at ``<prefix>/dist/varai/module-ai-discovery/<x.y.z>.zip`` and never changes.
Merchants add ``{"type": "composer", "url": "<public URL of prefix>"}`` to their repositories.

Connection role ``composer``: a Google Cloud connection of :class:`~varai_deploy.hooks.cdn.CdnHook`'s
shape (extras ``bucket``, ``public_url``, optional ``api_endpoint``) plus an optional ``prefix`` extra
(default ``composer``), so the repository can live in the widget CDN's bucket or in its own.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varai_deploy.widgets.build import COMPOSER_PACKAGE
from varai_deploy.widgets.manifest import WidgetIntegrityError, verify_against_manifest
from varai_deploy.widgets.publishing import ChannelContext, Publication, PublishError

if TYPE_CHECKING:
    from varai_deploy.hooks.cdn import CdnHook

CHANNEL = "magento"
DESTINATION = "composer"
DEFAULT_PREFIX = "composer"
INDEX = "packages.json"
#: A version's zip never changes; the index changes with every release and must be revalidated.

INDEX_CACHE_CONTROL = "no-cache"
COMPOSER_TIMEOUT = 300


class Repository:
    """The repository's objects in its bucket, and the URLs Composer reads them from."""

    def __init__(self, ctx: ChannelContext) -> None:
        from airflow.sdk import BaseHook

        from varai_deploy.hooks.cdn import CdnHook

        conn_id = ctx.connection(DESTINATION)
        self.hook: CdnHook = CdnHook(gcp_conn_id=conn_id, channel=CHANNEL)
        prefix = BaseHook.get_connection(conn_id).extra_dejson.get("prefix") or DEFAULT_PREFIX
        self.prefix = str(prefix).strip("/")
        self.index = f"{self.prefix}/{INDEX}"

    @property
    def url(self) -> str:
        """What merchants put in ``repositories`` (Composer appends ``/packages.json``)."""
        return self.hook.public_url(self.index).rsplit("/", 1)[0]

    def dist(self, plain_version: str) -> str:
        return f"{self.prefix}/dist/{COMPOSER_PACKAGE}/{plain_version}.zip"


def publish(ctx: ChannelContext) -> Publication:
    """Upload the zip (immutable), then add its version to ``packages.json``, keeping every other entry.

    The zip goes first, so the index never lists a version it cannot serve. The index is read, changed
    and written back conditionally on the generation read (``put_alias``): on real GCS a concurrent
    writer makes this fail (retry) instead of losing a version; in the sandbox, one release per
    environment at a time (DESIGN.md) keeps writers apart.
    """
    from varai_deploy.hooks.cdn import IMMUTABLE_CACHE_CONTROL

    plain = ctx.manifest.package_version
    data = package_zip(ctx)
    repo = Repository(ctx)
    dist = repo.dist(plain)
    try:
        stored = repo.hook.put_immutable(
            dist, data, content_type="application/zip", cache_control=IMMUTABLE_CACHE_CONTROL, channel=CHANNEL
        )
        index = _read_index(repo)
        entry = {
            **_composer_json(data),
            "version": plain,
            "dist": {"type": "zip", "url": repo.hook.public_url(dist), "shasum": _sha1(data)},
        }
        index.setdefault("packages", {}).setdefault(COMPOSER_PACKAGE, {})[plain] = entry
        listed = repo.hook.put_alias(
            repo.index,
            json.dumps(index, indent=2, sort_keys=True).encode() + b"\n",
            content_type="application/json",
            cache_control=INDEX_CACHE_CONTROL,
            channel=CHANNEL,
        )
    except PublishError as exc:  # the CDN hook names the bucket object; the destination is this repository
        raise type(exc)(str(exc), channel=CHANNEL, destination=DESTINATION) from exc
    outcome = "published" if "published" in (stored, listed) else "unchanged"
    return Publication(
        CHANNEL,
        DESTINATION,
        outcome,
        f"{COMPOSER_PACKAGE}:{plain} from {repo.url}",
        f"dist {repo.hook.public_url(dist)} (zip {stored}, packages.json {listed})",
    )


def verify(ctx: ChannelContext) -> str:
    """``composer require`` the version from the repository into a scratch project; check every installed file."""
    plain = ctx.manifest.package_version
    repo = Repository(ctx)
    project = ctx.scratch_dir / "composer-project"
    project.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {}
    if repo.url.startswith("http://"):
        config["secure-http"] = False  # the sandbox's CDN; production's repository is https
    (project / "composer.json").write_text(
        json.dumps(
            {
                "name": "varai/release-check",
                "type": "project",
                "require": {},
                "repositories": [{"type": "composer", "url": repo.url}, {"packagist.org": False}],
                "config": config,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    _composer(ctx.scratch_dir, project, f"{COMPOSER_PACKAGE}:{plain}")
    installed = project / "vendor" / COMPOSER_PACKAGE
    version = _installed_version(project)
    if version != plain:
        raise PublishError(
            f"{CHANNEL} -> {DESTINATION}: composer installed {COMPOSER_PACKAGE} {version}, not {plain}, "
            f"from {repo.url}",
            channel=CHANNEL,
            destination=DESTINATION,
        )
    count = check_installed_files(ctx, installed)
    return (
        f"composer require {COMPOSER_PACKAGE}:{plain} from {repo.url} installed {count} files, all as in the manifest"
    )


def package_zip(ctx: ChannelContext) -> bytes:
    """The build's Composer zip, refused unless it is the one the release manifest lists."""
    layout = ctx.manifest.channels[CHANNEL]
    data = (ctx.build_dir / layout.root / layout.archive).read_bytes()
    verify_against_manifest(ctx.manifest, CHANNEL, data, layout.archive)
    return data


def check_installed_files(ctx: ChannelContext, installed: Path) -> int:
    """Every file of the installed package is the manifest's, and every manifest file is there."""
    expected = {a.path: a for a in ctx.manifest.files(CHANNEL) if a.archive}
    found = {p.relative_to(installed).as_posix(): p for p in installed.rglob("*") if p.is_file()}
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or extra:
        raise WidgetIntegrityError(
            f"{CHANNEL}: the package installed in {installed} is not the release manifest's: "
            f"missing {', '.join(missing) or 'nothing'}; not in the manifest: {', '.join(extra) or 'nothing'}",
            channel=CHANNEL,
            path=(missing or extra)[0],
            expected=expected[missing[0]].sha256 if missing else None,
            actual=None,
        )
    for relative, path in sorted(found.items()):
        verify_against_manifest(ctx.manifest, CHANNEL, path, relative)
    return len(found)


def _read_index(repo: Repository) -> dict[str, Any]:
    current = repo.hook.read(repo.index, channel=CHANNEL)
    if current is None:
        return {"packages": {}}
    try:
        index = json.loads(current)
    except ValueError:
        index = None
    if not isinstance(index, dict) or not isinstance(index.get("packages", {}), dict):
        raise PublishError(
            f"{CHANNEL} -> {DESTINATION}: gs://{repo.hook.bucket}/{repo.index} is not a Composer repository "
            "index; nothing was changed: restore it (or delete it to start an empty repository), then retry",
            channel=CHANNEL,
            destination=DESTINATION,
        )
    return index


def _sha1(data: bytes) -> str:
    """Composer's dist checksum is sha1 (it checks the download against it)."""
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def _composer_json(data: bytes) -> dict[str, Any]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return json.loads(archive.read("composer.json"))


def _composer(scratch: Path, project: Path, requirement: str) -> None:
    """A real ``composer require``, isolated: its home and cache in the scratch dir, no plugins, no scripts.

    Platform requirements (the PHP version) are the merchant's, not this worker's, so they are ignored.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(scratch),
        "LANG": "C.UTF-8",
        "COMPOSER_HOME": str(scratch / "composer-home"),
        "COMPOSER_CACHE_DIR": str(scratch / "composer-cache"),
        "COMPOSER_ALLOW_SUPERUSER": "1",
    }
    env.update({k: v for k, v in os.environ.items() if k.lower() in ("http_proxy", "https_proxy", "no_proxy")})
    argv = [
        "composer",
        "require",
        requirement,
        "--working-dir",
        str(project),
        "--no-interaction",
        "--no-plugins",
        "--no-scripts",
        "--no-progress",
        "--no-audit",
        "--no-ansi",
        "--ignore-platform-reqs",
    ]
    try:
        done = subprocess.run(
            argv, env=env, cwd=project, capture_output=True, text=True, timeout=COMPOSER_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise PublishError(
            f"{CHANNEL} -> {DESTINATION}: composer is not installed on this worker; "
            "install it (Debian: apt-get install composer php-cli php-zip)",
            channel=CHANNEL,
            destination=DESTINATION,
        ) from None
    except subprocess.TimeoutExpired:
        raise PublishError(
            f"{CHANNEL} -> {DESTINATION}: composer require {requirement} took over {COMPOSER_TIMEOUT}s",
            channel=CHANNEL,
            destination=DESTINATION,
        ) from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise PublishError(
            f"{CHANNEL} -> {DESTINATION}: composer require {requirement} failed (exit {done.returncode}):\n{tail}",
            channel=CHANNEL,
            destination=DESTINATION,
        )


def _installed_version(project: Path) -> str | None:
    installed = json.loads((project / "vendor" / "composer" / "installed.json").read_text(encoding="utf-8"))
    packages = installed.get("packages", []) if isinstance(installed, dict) else installed
    return next((p.get("version") for p in packages if p.get("name") == COMPOSER_PACKAGE), None)
