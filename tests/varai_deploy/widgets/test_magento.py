"""The Magento channel end to end: the real storage emulator and CDN hold the Composer repository, a real
``composer`` installs from it, and the Marketplace fake checks every EQP call against the documented contract."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.magento_stack import MagentoStack, magento_stack
from varai_deploy.widgets import build_release
from varai_deploy.widgets.build import WIDGETS_DIR
from varai_deploy.widgets.channels import magento, magento_composer, magento_marketplace
from varai_deploy.widgets.manifest import WidgetIntegrityError
from varai_deploy.widgets.publishing import ChannelContext, PublishConflictError

PACKAGE = "varai/module-ai-discovery"
CONNECTIONS = {"composer": "varai_composer", "magento_marketplace": "varai_magento_marketplace"}
_runs = itertools.count()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MagentoStack]:
    with magento_stack(tmp_path_factory.mktemp("magento") / "sandbox") as running:
        yield running


@pytest.fixture(autouse=True)
def connections(stack: MagentoStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_COMPOSER", stack.composer_env())
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_MAGENTO_MARKETPLACE", stack.marketplace_env())


def context(tmp_path: Path, version: str, sources: Path = WIDGETS_DIR) -> ChannelContext:
    """What the release operator hands the channel: a fresh build, its manifest and an empty scratch dir."""
    run = tmp_path / f"run-{next(_runs)}"
    manifest = build_release(version, run / "build", sources=sources)
    (run / "scratch").mkdir()
    return ChannelContext(version, manifest, run / "build", CONNECTIONS, run / "scratch")


def changed_sources(tmp_path: Path) -> Path:
    """The widget sources with one more line in the Magento module's README: another zip, same version."""
    sources = tmp_path / "changed-sources"
    shutil.copytree(WIDGETS_DIR, sources)
    with (sources / "magento" / "README.md").open("a", encoding="utf-8") as readme:
        readme.write("\nChanged after release.\n")
    return sources


def fetch(url: str) -> tuple[bytes, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read(), resp.headers["Cache-Control"]


def zip_bytes(ctx: ChannelContext) -> bytes:
    layout = ctx.manifest.channels["magento"]
    return (ctx.build_dir / layout.root / layout.archive).read_bytes()


def index(stack: MagentoStack) -> dict:
    return json.loads(fetch(f"{stack.url('cdn')}/composer/packages.json")[0])["packages"][PACKAGE]


def submissions(stack: MagentoStack, version: str) -> list[dict]:
    packages = stack.marketplace_state()["packages"].values()
    return [p for p in packages if p["sku"] == PACKAGE and p["version"] == version]


def test_publish_then_composer_require_verifies_and_a_second_run_is_unchanged(stack, tmp_path):
    ctx = context(tmp_path, "v1.4.2")
    data = zip_bytes(ctx)
    extension_exists = any(p["sku"] == PACKAGE for p in stack.marketplace_state()["packages"].values())
    composer, marketplace = magento.publish(ctx)

    repo_url = f"{stack.url('cdn')}/composer"
    assert (composer.destination, composer.outcome) == ("composer", "published")
    assert composer.location == f"{PACKAGE}:1.4.2 from {repo_url}"
    entry = index(stack)["1.4.2"]
    assert (entry["name"], entry["type"], entry["version"]) == (PACKAGE, "magento2-module", "1.4.2")
    assert entry["dist"]["type"] == "zip"
    assert entry["dist"]["shasum"] == hashlib.sha1(data).hexdigest()
    assert fetch(entry["dist"]["url"]) == (data, "public, max-age=31536000, immutable")
    assert fetch(f"{repo_url}/packages.json")[1] == "no-cache"

    assert (marketplace.destination, marketplace.outcome) == ("marketplace", "published")
    [submitted] = submissions(stack, "1.4.2")
    assert marketplace.location.endswith(f"/rest/v1/products/packages/{submitted['submission_id']}")
    uploads = stack.marketplace_state()["uploads"]
    artifact = uploads[submitted["artifact_id"]]
    assert (artifact["filename"], artifact["md5"]) == (
        "varai-module-ai-discovery-1.4.2.zip",
        hashlib.md5(data).hexdigest(),
    )
    guide = (stack.marketplace_dir / "files" / submitted["documentation_ids"]["user"]).read_bytes()
    assert guide.startswith(b"%PDF-1.4") and guide.rstrip().endswith(b"%%EOF")
    assert b"composer require varai/module-ai-discovery:1.4.2" in guide
    assert ctx.manifest.widget_sha256 in submitted["release_notes"]
    if extension_exists:  # another test of this module published a version first
        assert "name" not in submitted, "a new version of an existing extension only names its sku"
    else:
        assert submitted["name"] == "VarAI AI Discovery"  # the first version names the new extension

    checks = magento.verify(ctx)
    files = len([a for a in ctx.manifest.files("magento") if a.archive])
    assert (
        checks[0] == f"composer require {PACKAGE}:1.4.2 from {repo_url} installed {files} files, all as in the manifest"
    )
    assert f"submission {submitted['submission_id']} of 1.4.2 holds the release's zip" in checks[1]

    again = magento.publish(context(tmp_path, "v1.4.2"))
    assert [(p.destination, p.outcome) for p in again] == [("composer", "unchanged"), ("marketplace", "unchanged")]
    assert len(submissions(stack, "1.4.2")) == 1


def test_a_new_version_joins_the_repository_and_is_submitted_under_the_existing_sku(stack, tmp_path):
    first = context(tmp_path, "v2.0.0")
    magento.publish(first)
    second = context(tmp_path, "v2.0.1")
    assert [p.outcome for p in magento.publish(second)] == ["published", "published"]

    listed = index(stack)
    assert {"2.0.0", "2.0.1"} <= set(listed)
    assert listed["2.0.0"]["dist"]["shasum"] == hashlib.sha1(zip_bytes(first)).hexdigest()
    [submitted] = submissions(stack, "2.0.1")  # the fake refuses a known package's new version without its sku
    assert "name" not in submitted
    # Each version still installs as it was published.
    assert "files, all as in the manifest" in magento_composer.verify(first)
    assert "files, all as in the manifest" in magento_composer.verify(second)


def test_a_changed_zip_under_a_published_version_is_refused_and_the_original_still_served(stack, tmp_path):
    original = context(tmp_path, "v3.0.0")
    magento.publish(original)
    changed = context(tmp_path, "v3.0.0", changed_sources(tmp_path))
    assert zip_bytes(changed) != zip_bytes(original)

    with pytest.raises(PublishConflictError) as conflict:
        magento.publish(changed)
    assert (conflict.value.channel, conflict.value.destination) == ("magento", "composer")
    assert "composer/dist/varai/module-ai-discovery/3.0.0.zip is already published with different bytes" in str(
        conflict.value
    )
    entry = index(stack)["3.0.0"]
    assert entry["dist"]["shasum"] == hashlib.sha1(zip_bytes(original)).hexdigest()
    assert fetch(entry["dist"]["url"])[0] == zip_bytes(original)

    with pytest.raises(PublishConflictError, match="already submitted .* with another zip") as refused:
        magento_marketplace.publish(changed)
    assert refused.value.destination == "marketplace"
    assert len(submissions(stack, "3.0.0")) == 1

    assert "files, all as in the manifest" in magento.verify(original)[0]
    with pytest.raises(WidgetIntegrityError, match="does not match the release manifest"):
        magento_composer.verify(changed)  # what merchants install is not the changed build


def test_a_prerelease_is_installable_with_composer_and_not_submitted_to_the_marketplace(stack, tmp_path):
    ctx = context(tmp_path, "v4.0.0-rc.1")
    composer, marketplace = magento.publish(ctx)
    assert composer.outcome == "published"
    assert (marketplace.outcome, marketplace.detail) == (
        "skipped",
        "pre-release: the Marketplace takes stable versions only",
    )
    assert not [p for p in stack.marketplace_state()["packages"].values() if p["version"].startswith("4.0.0")]
    checks = magento.verify(ctx)
    assert checks[0].startswith(f"composer require {PACKAGE}:4.0.0-rc.1 ")
    assert "pre-release, not submitted" in checks[1]


def test_verify_refuses_an_installed_package_that_is_not_the_manifests(stack, tmp_path):
    ctx = context(tmp_path, "v5.0.0")
    magento_composer.publish(ctx)
    magento_composer.verify(ctx)
    installed = ctx.scratch_dir / "composer-project" / "vendor" / PACKAGE

    widget = installed / "view/frontend/web/js/varai-widget.js"
    widget.write_bytes(widget.read_bytes() + b"\n")
    with pytest.raises(WidgetIntegrityError, match="view/frontend/web/js/varai-widget.js does not match"):
        magento_composer.check_installed_files(ctx, installed)
    widget.unlink()
    (installed / "extra.php").write_text("<?php\n")
    with pytest.raises(
        WidgetIntegrityError, match="missing view/frontend/web/js/varai-widget.js; not in the manifest: extra.php"
    ):
        magento_composer.check_installed_files(ctx, installed)


def test_the_user_guide_pdf_is_reproducible_and_escapes_pdf_syntax():
    text = "Install (with composer)\\ and\tenable.\n" + "x" * 250
    pdf = magento_marketplace.user_guide_pdf(text)
    assert pdf == magento_marketplace.user_guide_pdf(text)
    assert b"(Install \\(with composer\\)\\\\ and    enable.) '" in pdf
    assert pdf.count(b"/Type /Page ") == 1
    many = magento_marketplace.user_guide_pdf("line\n" * 130)
    assert many.count(b"/Type /Page ") == 3 and b"/Count 3" in many
    xref = int(many.rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    assert many[xref:].startswith(b"xref\n0 ")
