"""The HTML widget's npm publication against a real Verdaccio, checked from the consumer side."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.npm_stack import NpmStack, npm_stack
from varai_deploy.hooks.npm import NpmRegistryHook
from varai_deploy.widgets import build_release
from varai_deploy.widgets.channels import html_npm
from varai_deploy.widgets.manifest import WidgetIntegrityError
from varai_deploy.widgets.publishing import ChannelContext, PublishConflictError, PublishError


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NpmStack]:
    with npm_stack(tmp_path_factory.mktemp("npm") / "sandbox") as stack:
        yield stack


@pytest.fixture(autouse=True)
def conn(registry: NpmStack, monkeypatch) -> NpmStack:
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_NPM", registry.connection_env())
    return registry


def context(tmp_path: Path, version: str, name: str = "build") -> ChannelContext:
    build_dir = tmp_path / f"{name}-{version}"
    manifest = build_release(version, build_dir)
    scratch = tmp_path / f"scratch-{name}-{version}"
    scratch.mkdir()
    return ChannelContext(version, manifest, build_dir, {"npm": "varai_npm"}, scratch)


def dist_tags() -> dict[str, str]:
    return NpmRegistryHook().view("@varai/widget", "dist-tags")


def test_a_release_is_published_as_latest_and_verified(conn: NpmStack, tmp_path: Path):
    ctx = context(tmp_path, "v1.4.2")
    [publication] = html_npm.publish(ctx)

    assert (publication.channel, publication.destination, publication.outcome) == ("html", "npm", "published")
    assert publication.location == f"@varai/widget@1.4.2 ({conn.url})"
    assert dist_tags()["latest"] == "1.4.2"
    checks = html_npm.verify(ctx)
    assert any("4 files match the manifest" in check for check in checks)
    assert any("dist-tag latest -> 1.4.2" in check for check in checks)
    assert not any(ctx.scratch_dir.iterdir()), "npm pack's download is cleaned up"


def test_publishing_again_is_a_quick_no_op(tmp_path: Path, monkeypatch):
    html_npm.publish(context(tmp_path, "v1.4.3"))

    def no_publish(*args, **kwargs):
        raise AssertionError("an unchanged version must not be published again")

    monkeypatch.setattr(NpmRegistryHook, "publish", no_publish)
    rebuilt = context(tmp_path, "v1.4.3", name="rebuild")  # a fresh build of the same version
    started = time.monotonic()
    [publication] = html_npm.publish(rebuilt)
    assert publication.outcome == "unchanged"
    assert "dist.integrity sha512-" in publication.detail
    assert time.monotonic() - started < 5  # one packument read and one `npm pack --dry-run`: ~0.3 s
    html_npm.verify(rebuilt)


def test_different_bytes_under_a_published_version_are_refused(tmp_path: Path):
    ctx = context(tmp_path, "v1.4.4")
    html_npm.publish(ctx)
    hook = NpmRegistryHook()
    original = hook.published("@varai/widget", "1.4.4")["dist"]

    tampered = context(tmp_path, "v1.4.4", name="tampered")
    (tampered.build_dir / "html" / "dist" / "varai-widget.min.js").write_text("alert('not the widget')\n")
    with pytest.raises(PublishConflictError, match=r"@varai/widget@1.4.4 is already on .* dist/varai-widget.min.js"):
        html_npm.publish(tampered)

    assert hook.published("@varai/widget", "1.4.4")["dist"] == original
    html_npm.verify(ctx)


def test_the_same_files_packed_by_another_npm_are_unchanged(tmp_path: Path):
    """Another npm (or Node's zlib) may pack the same files into other tarball bytes: not a conflict."""
    ctx = context(tmp_path, "v1.4.5")
    package = ctx.build_dir / "html"
    tarball = tmp_path / "repacked.tgz"
    with tarfile.open(tarball, "w:gz", compresslevel=1) as archive:
        for path in sorted(p for p in package.rglob("*") if p.is_file()):
            info = tarfile.TarInfo("package/" + path.relative_to(package).as_posix())
            data = path.read_bytes()
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            archive.addfile(info, io.BytesIO(data))
    hook = NpmRegistryHook()
    hook.publish(tarball, tag="latest")  # npm publishes a tarball as it is
    assert hook.published("@varai/widget", "1.4.5")["dist"]["integrity"] != hook.pack_info(package)["integrity"]

    [publication] = html_npm.publish(ctx)
    assert publication.outcome == "unchanged"
    assert "same files" in publication.detail
    html_npm.verify(ctx)


def test_a_prerelease_gets_next_and_leaves_latest_alone(tmp_path: Path):
    html_npm.publish(context(tmp_path, "v1.6.0"))
    ctx = context(tmp_path, "v1.7.0-rc.1")

    [publication] = html_npm.publish(ctx)

    assert publication.outcome == "published"
    assert publication.detail == "dist-tag next"
    tags = dist_tags()
    assert (tags["next"], tags["latest"]) == ("1.7.0-rc.1", "1.6.0")
    assert "dist-tag next -> 1.7.0-rc.1" in html_npm.verify(ctx)[-1]


def test_verify_catches_a_package_that_is_not_the_release(tmp_path: Path):
    """Published behind the channel's back with another widget: the consumer-side check refuses it."""
    ctx = context(tmp_path, "v1.8.0")
    other = context(tmp_path, "v1.8.0", name="other")
    (other.build_dir / "html" / "dist" / "varai-widget.min.js").write_text("/* someone else's widget */\n")
    NpmRegistryHook().publish(other.build_dir / "html", tag="latest")

    with pytest.raises(WidgetIntegrityError, match=r"html: dist/varai-widget.min.js does not match"):
        html_npm.verify(ctx)


def test_a_build_that_is_not_the_version_is_not_published(tmp_path: Path):
    ctx = context(tmp_path, "v1.8.1")
    package_json = ctx.build_dir / "html" / "package.json"
    package_json.write_text(package_json.read_text().replace('"1.8.1"', '"1.8.2"'))
    with pytest.raises(PublishError, match=r"describes @varai/widget@1.8.2, not @varai/widget@1.8.1"):
        html_npm.publish(ctx)
    assert NpmRegistryHook().published("@varai/widget", "1.8.2") is None


def test_verify_fails_for_a_version_never_published(tmp_path: Path):
    with pytest.raises(PublishError, match=r"@varai/widget@1.9.0 on .* is not published"):
        html_npm.verify(context(tmp_path, "v1.9.0"))


def test_an_older_version_released_again_verifies_with_latest_left_on_the_newer(tmp_path: Path):
    older, newer = context(tmp_path, "v1.7.0"), context(tmp_path, "v1.7.1")
    html_npm.publish(older)
    html_npm.publish(newer)
    assert dist_tags()["latest"] == "1.7.1"
    [again] = html_npm.publish(context(tmp_path, "v1.7.0", name="again"))
    assert again.outcome == "unchanged"
    checks = html_npm.verify(older)
    assert "npm: dist-tag latest -> 1.7.1, newer than 1.7.0 (latest only moves forward)" in checks
    assert dist_tags()["latest"] == "1.7.1"
