"""The Shopify channel end to end: the real storage emulator and CDN server, and the Partners API stand-in."""

from __future__ import annotations

import hashlib
import itertools
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.shopify_stack import ShopifyStack, shopify_stack
from varai_deploy.hooks.cdn import ALIAS_CACHE_CONTROL, IMMUTABLE_CACHE_CONTROL
from varai_deploy.hooks.shopify import ShopifyHook
from varai_deploy.widgets import WIDGETS_DIR, build_release, verify_against_manifest
from varai_deploy.widgets.channels import shopify
from varai_deploy.widgets.publishing import ChannelContext, PublishAuthError, PublishConflictError, PublishError

CONNECTIONS = {"cdn": "varai_cdn", "shopify": "varai_shopify"}


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ShopifyStack]:
    with shopify_stack(tmp_path / "sandbox", cdn=True) as running:
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_CDN", running.cdn_connection_env())
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_SHOPIFY", running.connection_env())
        yield running


@pytest.fixture
def context(tmp_path: Path):
    builds = itertools.count()

    def make(version: str, sources: Path = WIDGETS_DIR, connections: dict[str, str] = CONNECTIONS) -> ChannelContext:
        work = tmp_path / f"build-{next(builds)}"
        manifest = build_release(version, work / "build", sources=sources)
        (work / "scratch").mkdir()
        return ChannelContext(version, manifest, work / "build", connections, work / "scratch")

    return make


def fetch(url: str) -> tuple[dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return dict(resp.headers), resp.read()


def by_destination(publications) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in publications:
        out.setdefault(p.destination, []).append(p)
    return out


def test_a_release_is_on_the_cdn_and_a_released_app_version_with_the_manifest_bytes(stack: ShopifyStack, context):
    ctx = context("v1.4.2")
    published = by_destination(shopify.publish(ctx))

    pinned, latest = published["cdn"]
    assert (pinned.outcome, latest.outcome) == ("published", "published")
    assert pinned.location == f"{stack.settings.component_url('cdn')}/widgets/shopify/1.4.2/widget.js"
    assert latest.location.endswith("/widgets/shopify/latest/widget.js")
    for publication, cache_control in ((pinned, IMMUTABLE_CACHE_CONTROL), (latest, ALIAS_CACHE_CONTROL)):
        headers, body = fetch(publication.location)
        verify_against_manifest(ctx.manifest, "shopify", body, "assets/widget.js")
        assert headers["Cache-Control"] == cache_control

    [app] = published["shopify_app"]
    assert app.outcome == "published"
    assert "released" in app.detail
    assert fetch(app.location)[1]  # the version's page answers
    [version] = stack.state()["versions"]
    assert (version["versionTag"], version["status"]) == ("1.4.2", "active")
    [registration] = stack.state()["registrations"]
    assert registration["title"] == "VarAI AI Discovery"
    # What Shopify now holds is the release's extension, byte for byte, without the TOML.
    expected = {
        f"{registration['uuid']}/{a.path}": a.sha256
        for a in ctx.manifest.files("shopify")
        if a.path != "shopify.extension.toml"
    }
    assert version["_bundle_sha256"] == expected

    checked, *urls = shopify.verify(ctx)
    assert urls == shopify.cdn_urls(ctx) == [pinned.location, latest.location]
    assert "version 1.4.2 (active) holds extension sha256" in checked


def test_a_second_run_changes_nothing(stack: ShopifyStack, context):
    shopify.publish(context("v1.4.2"))
    again = shopify.publish(context("v1.4.2"))  # a fresh, byte-identical build
    assert [p.outcome for p in again] == ["unchanged", "unchanged", "unchanged"]
    assert len(stack.state()["versions"]) == 1
    assert again[-1].location == stack.state()["versions"][0]["location"]


def test_a_version_the_list_does_not_show_yet_is_still_recognised(stack: ShopifyStack, context, monkeypatch):
    """The tag is taken although the list lacks it (a long, paginated list; a lost answer to an earlier try)."""
    shopify.publish(context("v1.4.2"))
    monkeypatch.setattr(ShopifyHook, "versions", lambda self: [])
    again = shopify.publish(context("v1.4.2"))
    assert again[-1].outcome == "unchanged"
    assert again[-1].location == stack.state()["versions"][0]["location"]
    assert len(stack.state()["versions"]) == 1


def test_a_different_extension_under_a_published_version_is_refused(stack: ShopifyStack, context, tmp_path: Path):
    shopify.publish(context("v1.4.2"))
    sources = tmp_path / "sources"
    shutil.copytree(WIDGETS_DIR, sources)
    block = sources / "shopify" / "blocks" / "varai_discovery.liquid"
    block.write_text(block.read_text().replace("Find your frames", "Find frames"))

    changed = context("v1.4.2", sources=sources)
    with pytest.raises(PublishConflictError, match=r"already has version 1\.4\.2 with another extension") as refused:
        shopify.publish(changed)
    assert "release a new version" in str(refused.value)
    [version] = stack.state()["versions"]
    assert "Find frames" not in str(version)
    with pytest.raises(PublishConflictError):
        shopify.verify(changed)


def test_a_pre_release_is_an_unreleased_version_and_leaves_latest_alone(stack: ShopifyStack, context):
    release = context("v1.4.2")
    shopify.publish(release)
    rc = context("v1.5.0-rc.1")
    published = by_destination(shopify.publish(rc))

    pinned, latest = published["cdn"]
    assert pinned.outcome == "published"
    assert latest.outcome == "skipped"
    assert "pre-release" in latest.detail
    _, served_latest = fetch(latest.location)
    verify_against_manifest(release.manifest, "shopify", served_latest, "assets/widget.js")

    [app] = published["shopify_app"]
    assert "unreleased" in app.detail
    statuses = {v["versionTag"]: v["status"] for v in stack.state()["versions"]}
    assert statuses == {"1.4.2": "active", "1.5.0-rc.1": "inactive"}
    assert shopify.verify(rc)[1:] == [pinned.location]


def test_a_wrong_token_is_an_auth_error_that_shows_no_token(stack: ShopifyStack, context, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_SHOPIFY", stack.connection_env(password="not-the-token-42"))
    with pytest.raises(PublishAuthError) as refused:
        shopify.publish(context("v1.4.2"))
    message = str(refused.value)
    assert "Airflow connection 'varai_shopify'" in message
    assert "not-the-token-42" not in message
    assert stack.token not in message
    assert stack.state()["versions"] == []


def test_verify_fails_until_the_version_exists(stack: ShopifyStack, context):
    ctx = context("v1.4.2")
    with pytest.raises(PublishError, match="has no version 1.4.2"):
        shopify.verify(ctx)


def test_the_extension_digest_depends_on_every_file_and_path():
    files = {"assets/widget.js": hashlib.sha256(b"a").hexdigest(), "blocks/b.liquid": hashlib.sha256(b"b").hexdigest()}
    digest = shopify.extension_digest(files)
    assert shopify.extension_digest(dict(reversed(files.items()))) == digest
    assert shopify.extension_digest({**files, "blocks/b.liquid": hashlib.sha256(b"c").hexdigest()}) != digest
    assert (
        shopify.extension_digest(
            {"assets/w.js": files["assets/widget.js"], "blocks/b.liquid": files["blocks/b.liquid"]}
        )
        != digest
    )
