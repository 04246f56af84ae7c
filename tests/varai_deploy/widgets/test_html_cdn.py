"""The HTML channel's CDN publication against a real storage emulator, checked through the sandbox CDN."""

from __future__ import annotations

import hashlib
import itertools
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cdn_stack import CdnStack, cdn_stack
from varai_deploy.hooks.cdn import CdnHook
from varai_deploy.widgets import Manifest, WidgetIntegrityError, build_release, verify_against_manifest
from varai_deploy.widgets.channels import html_cdn
from varai_deploy.widgets.publishing import ChannelContext, PublishConflictError

PINNED = "widgets/html/{}/js/varai-widget.min.js"
LATEST = "widgets/html/latest/js/varai-widget.min.js"


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CdnStack]:
    with cdn_stack(tmp_path / "sandbox") as running:
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_CDN", running.connection_env())
        yield running


@pytest.fixture
def context(tmp_path: Path):
    builds = itertools.count()

    def make(version: str) -> ChannelContext:
        work = tmp_path / f"build-{next(builds)}"
        manifest = build_release(version, work / "build")
        scratch = work / "scratch"
        scratch.mkdir()
        return ChannelContext(version, manifest, work / "build", {"cdn": "varai_cdn"}, scratch)

    return make


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def served(stack: CdnStack, name: str) -> bytes:
    status, _, body = fetch(f"{stack.cdn_url}/{name}")
    assert status == 200, f"{name}: HTTP {status}"
    return body


def test_a_release_is_served_pinned_and_as_latest_with_the_manifest_bytes(stack: CdnStack, context):
    ctx = context("v1.4.2")
    publications = html_cdn.publish(ctx)

    pinned_url, latest_url = f"{stack.cdn_url}/{PINNED.format('1.4.2')}", f"{stack.cdn_url}/{LATEST}"
    assert [(p.channel, p.destination, p.outcome, p.location) for p in publications] == [
        ("html", "cdn", "published", pinned_url),
        ("html", "cdn", "published", latest_url),
    ]
    assert ctx.manifest.cdn_sri in publications[0].detail
    for url, cache_control in (
        (pinned_url, "public, max-age=31536000, immutable"),
        (latest_url, "public, max-age=300"),
    ):
        status, headers, body = fetch(url)
        assert status == 200
        verify_against_manifest(ctx.manifest, "html", body, "dist/varai-widget.min.js")
        assert hashlib.sha256(body).hexdigest() == ctx.manifest.widget_sha256
        assert headers["Content-Type"] == "application/javascript; charset=utf-8"
        assert headers["Cache-Control"] == cache_control
        assert headers["Access-Control-Allow-Origin"] == "*"


def test_publishing_the_same_release_again_changes_nothing(stack: CdnStack, context):
    html_cdn.publish(context("v1.4.2"))
    again = html_cdn.publish(context("v1.4.2"))  # a fresh, byte-identical build
    assert [p.outcome for p in again] == ["unchanged", "unchanged"]


def test_a_prerelease_is_published_pinned_but_latest_stays_on_the_release(stack: CdnStack, context):
    release, candidate = context("v1.4.2"), context("v1.5.0-rc.1")
    html_cdn.publish(release)
    publications = html_cdn.publish(candidate)

    assert [p.outcome for p in publications] == ["published", "skipped"]
    assert "pre-release" in publications[1].detail
    pinned = served(stack, PINNED.format("1.5.0-rc.1"))
    assert hashlib.sha256(pinned).hexdigest() == candidate.manifest.widget_sha256
    assert hashlib.sha256(served(stack, LATEST)).hexdigest() == release.manifest.widget_sha256
    assert candidate.manifest.widget_sha256 != release.manifest.widget_sha256


def test_latest_moves_forward_only(stack: CdnStack, context):
    old, new = context("v1.4.2"), context("v1.5.0")
    html_cdn.publish(old)
    assert [p.outcome for p in html_cdn.publish(new)] == ["published", "published"]
    assert hashlib.sha256(served(stack, LATEST)).hexdigest() == new.manifest.widget_sha256

    rerun = html_cdn.publish(old)  # a re-run of the older release (or a hotfix of its line)
    assert [p.outcome for p in rerun] == ["unchanged", "skipped"]
    assert "1.5.0, newer than 1.4.2" in rerun[1].detail
    assert hashlib.sha256(served(stack, LATEST)).hexdigest() == new.manifest.widget_sha256


def test_other_bytes_under_a_published_version_are_refused_and_the_cdn_keeps_serving_the_original(
    stack: CdnStack, context
):
    ctx = context("v1.4.2")
    original = b"/* an earlier build of 1.4.2 */"
    CdnHook().put_immutable(
        PINNED.format("1.4.2"),
        original,
        content_type=html_cdn.CONTENT_TYPE,
        cache_control="public, max-age=31536000, immutable",
        channel="html",
    )
    with pytest.raises(PublishConflictError, match=ctx.manifest.widget_sha256):
        html_cdn.publish(ctx)
    assert served(stack, PINNED.format("1.4.2")) == original
    assert fetch(f"{stack.cdn_url}/{LATEST}")[0] == 404  # nothing moved either


def test_a_build_that_does_not_match_its_manifest_is_not_uploaded(stack: CdnStack, context):
    ctx = context("v1.4.2")
    script = ctx.build_dir / "html" / "dist" / "varai-widget.min.js"
    script.write_bytes(script.read_bytes() + b"\n/* tampered */")
    with pytest.raises(WidgetIntegrityError, match="does not match the release manifest"):
        html_cdn.publish(ctx)
    assert fetch(f"{stack.cdn_url}/{PINNED.format('1.4.2')}")[0] == 404


def test_the_manifest_the_channel_reads_is_the_release_manifest(context):
    ctx = context("v1.4.2")
    assert Manifest.load(ctx.build_dir) == ctx.manifest
    assert (ctx.manifest.cdn_channel, ctx.manifest.cdn_path) == ("html", "dist/varai-widget.min.js")
