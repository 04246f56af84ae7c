"""The HTML widget on npm: ``npm install @varai/widget``, published from the build's ``html`` package.

A version on npm is immutable. Already there with the same content is a quick ``unchanged``: the
registry's ``dist.integrity`` equals what ``npm pack`` makes of the build (npm packs reproducibly:
fixed timestamps and sorted entries, and the build writes fixed modes). Should an npm or Node upgrade
pack the same files into different tarball bytes, the registry's tarball is compared file by file
instead, so a re-run never fails on a false conflict. Different content raises
:class:`PublishConflictError`; nothing is ever republished or unpublished. A pre-release gets the
dist-tag ``next``, a release ``latest``.
"""

from __future__ import annotations

import base64
import hashlib
import tarfile
import tempfile
from pathlib import Path

from varai_deploy.widgets.manifest import verify_against_manifest
from varai_deploy.widgets.publishing import ChannelContext, Publication, PublishConflictError, PublishError
from varai_deploy.widgets.versions import release_key

CHANNEL = "html"
DESTINATION = "npm"
ROLE = "npm"
PACKAGE = "@varai/widget"
#: npm puts a package's files under this folder in its tarball.
TARBALL_ROOT = "package/"


def dist_tag(ctx: ChannelContext) -> str:
    return "next" if ctx.prerelease else "latest"


def publish(ctx: ChannelContext) -> list[Publication]:
    from varai_deploy.hooks.npm import NpmRegistryHook

    hook = NpmRegistryHook(ctx.connection(ROLE), channel=CHANNEL)
    version = ctx.manifest.package_version
    spec = f"{PACKAGE}@{version}"
    location = f"{spec} ({hook.registry_url})"
    package_dir = ctx.build_dir / ctx.manifest.channels[CHANNEL].root
    ours = hook.pack_info(package_dir)
    if (ours.get("name"), ours.get("version")) != (PACKAGE, version):
        raise PublishError(
            f"{CHANNEL} -> npm: {package_dir}/package.json describes {ours.get('name')}@{ours.get('version')}, "
            f"not {spec}: rebuild the widget release for {ctx.version}",
            channel=CHANNEL,
            destination=DESTINATION,
        )
    existing = hook.published(PACKAGE, version)
    if existing is None:
        tag = dist_tag(ctx)
        hook.publish(package_dir, tag=tag)
        return [Publication(CHANNEL, DESTINATION, "published", location, f"dist-tag {tag}")]

    theirs = existing.get("dist") or {}
    if ours["integrity"] == theirs.get("integrity"):
        return [Publication(CHANNEL, DESTINATION, "unchanged", location, f"dist.integrity {ours['integrity']}")]
    with tempfile.TemporaryDirectory(dir=ctx.scratch_dir) as scratch:
        registry_files = tarball_files(hook.pack(spec, scratch))
    local_files = {f["path"]: (package_dir / f["path"]).read_bytes() for f in ours["files"]}
    differing = sorted(
        p for p in registry_files.keys() | local_files.keys() if registry_files.get(p) != local_files.get(p)
    )
    if differing:
        raise PublishConflictError(
            f"{CHANNEL} -> npm: {spec} is already on {hook.registry_url} with other content "
            f"(differs in {', '.join(differing)}); npm versions are immutable, nothing was overwritten: "
            "release a new version",
            channel=CHANNEL,
            destination=DESTINATION,
        )
    detail = "same files as the registry's tarball (packed by another npm: dist.integrity differs)"
    return [Publication(CHANNEL, DESTINATION, "unchanged", location, detail)]


def verify(ctx: ChannelContext) -> list[str]:
    """As a merchant gets it: ``npm view`` and ``npm pack`` from the registry, every file checked
    against the release manifest, and the dist-tag pointing at this version (read by the same view)."""
    from varai_deploy.hooks.npm import NpmRegistryHook

    hook = NpmRegistryHook(ctx.connection(ROLE), channel=CHANNEL)
    version = ctx.manifest.package_version
    spec = f"{PACKAGE}@{version}"
    where = f"{spec} on {hook.registry_url}"
    viewed = hook.view(spec, "version", "dist.integrity", "dist-tags")
    if not viewed or viewed.get("version") != version or not viewed.get("dist.integrity"):
        raise _failed(f"{where} is not published (npm view answered {viewed!r}): run the publish step")
    integrity = viewed["dist.integrity"]

    with tempfile.TemporaryDirectory(dir=ctx.scratch_dir) as scratch:
        tarball = hook.pack(spec, scratch)
        if _integrity(tarball.read_bytes()) != integrity:
            raise _failed(f"{where}: the tarball npm downloaded does not match the registry's dist.integrity")
        files = tarball_files(tarball)

    expected = {artifact.path for artifact in ctx.manifest.files(CHANNEL)}
    missing, extra = sorted(expected - files.keys()), sorted(files.keys() - expected)
    if missing or extra:
        raise _failed(
            f"{where} does not ship the release's files: missing {', '.join(missing) or 'none'}, "
            f"not in the release manifest {', '.join(extra) or 'none'}"
        )
    for path in sorted(expected):
        verify_against_manifest(ctx.manifest, CHANNEL, files[path], path)
    checks = [f"npm: {where} has dist.integrity {integrity}", f"npm: {len(expected)} files match the manifest"]

    tag = dist_tag(ctx)
    tags = viewed.get("dist-tags") or {}
    current = tags.get(tag)
    if ctx.prerelease and tags.get("latest") == version:
        raise _failed(f"{where}: a pre-release must not be the 'latest' dist-tag")
    if current == version:
        checks.append(f"npm: dist-tag {tag} -> {version}")
    elif tag == "latest" and release_key(current) > release_key(version):
        # Released again after a newer one: 'latest' stays on the newest, as the CDN's alias does.
        checks.append(f"npm: dist-tag latest -> {current}, newer than {version} (latest only moves forward)")
    else:
        raise _failed(f"{where}: dist-tag {tag!r} points at {current!r}, not {version}")
    return checks


def tarball_files(tarball: Path) -> dict[str, bytes]:
    """The package's regular files by their path in the package (``dist/varai-widget.min.js``)."""
    files: dict[str, bytes] = {}
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            if not member.name.startswith(TARBALL_ROOT):
                raise _failed(f"{tarball.name}: {member.name} lies outside {TARBALL_ROOT}")
            handle = archive.extractfile(member)
            assert handle is not None  # a regular file always has content to read
            files[member.name[len(TARBALL_ROOT) :]] = handle.read()
    return files


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def _failed(message: str) -> PublishError:
    return PublishError(f"{CHANNEL} -> npm: {message}", channel=CHANNEL, destination=DESTINATION)
