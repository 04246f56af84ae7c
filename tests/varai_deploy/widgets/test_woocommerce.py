"""The WooCommerce channel the WordPress.org way, against a real svnserve (the sandbox's svn component)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.svn_server import SvnServer, running_svnserve
from varai_deploy.hooks.wordpress_svn import WordPressSvnHook
from varai_deploy.sandbox import svn
from varai_deploy.widgets import WIDGETS_DIR, Manifest, WidgetIntegrityError, build_release
from varai_deploy.widgets.channels import woocommerce
from varai_deploy.widgets.publishing import ChannelContext, PublishAuthError, PublishConflictError, PublishError

PLUGIN = "woocommerce/varai-ai-discovery"


@pytest.fixture
def server(tmp_path: Path, monkeypatch) -> Iterator[SvnServer]:
    with running_svnserve(tmp_path / "sandbox") as srv:
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_WORDPRESS_SVN", srv.connection_env())
        yield srv


@pytest.fixture
def release(tmp_path: Path) -> Callable[..., ChannelContext]:
    """``release("v1.4.2", edit=...)``: a fresh build (of sources changed by ``edit(plugin_dir)``) as a context."""
    count = iter(range(1000))

    def make(version: str, edit: Callable[[Path], None] | None = None) -> ChannelContext:
        n = next(count)
        sources = WIDGETS_DIR
        if edit is not None:
            sources = tmp_path / f"sources-{n}"
            shutil.copytree(WIDGETS_DIR, sources)
            edit(sources / PLUGIN)
        build_dir = tmp_path / f"build-{n}"
        manifest = build_release(version, build_dir, sources=sources)
        scratch = tmp_path / f"scratch-{n}"
        scratch.mkdir()
        return ChannelContext(version, manifest, build_dir, {"wordpress_svn": "varai_wordpress_svn"}, scratch)

    return make


def youngest(server: SvnServer) -> int:
    out = subprocess.run(["svnlook", "youngest", str(svn.repository(server.settings))], capture_output=True, text=True)
    return int(out.stdout)


def stable_tag(hook: WordPressSvnHook) -> str:
    return re.search(r"^Stable tag: (\S+)", hook.cat("trunk/readme.txt").decode(), re.M).group(1)


def shipped(manifest: Manifest) -> list[str]:
    return sorted(a.path for a in manifest.files("woocommerce"))


def files_under(hook: WordPressSvnHook, path: str) -> list[str]:
    return sorted(e for e in hook.ls(path, recursive=True) if not e.endswith("/"))


def test_a_release_lands_in_trunk_and_its_tag_and_verifies(server, release):
    ctx = release("v1.4.2")
    [publication] = woocommerce.publish(ctx)
    assert (publication.channel, publication.destination, publication.outcome) == ("woocommerce", "svn", "published")
    assert publication.location == f"{server.url}/tags/1.4.2"

    hook = WordPressSvnHook()
    assert stable_tag(hook) == "1.4.2"
    assert files_under(hook, "tags/1.4.2") == files_under(hook, "trunk") == shipped(ctx.manifest)
    widget = ctx.manifest.widget_artifact("woocommerce")
    assert hook.cat(f"tags/1.4.2/{widget.path}") == (ctx.build_dir / PLUGIN / widget.path).read_bytes()

    checked = woocommerce.verify(ctx)
    assert len(checked) == len(shipped(ctx.manifest)) + 1
    assert checked[-1].endswith("trunk/readme.txt: Stable tag 1.4.2")


def test_publishing_the_same_build_again_is_unchanged_and_commits_nothing(server, release):
    woocommerce.publish(release("v1.4.2"))
    before = youngest(server)
    [again] = woocommerce.publish(release("v1.4.2"))  # a retried task rebuilds: same bytes
    assert again.outcome == "unchanged"
    assert again.location == f"{server.url}/tags/1.4.2"
    assert youngest(server) == before


def test_a_different_build_under_a_published_tag_is_refused_and_nothing_moves(server, release):
    woocommerce.publish(release("v1.4.2"))
    hook = WordPressSvnHook()
    tag_rev, trunk_rev = hook.last_changed_revision("tags/1.4.2"), hook.last_changed_revision("trunk")
    before = youngest(server)

    def edit(plugin: Path) -> None:
        (plugin / "readme.txt").write_text((plugin / "readme.txt").read_text() + "\nA late change.\n")

    with pytest.raises(PublishConflictError) as caught:
        woocommerce.publish(release("v1.4.2", edit))
    assert (caught.value.channel, caught.value.destination) == ("woocommerce", "svn")
    assert "tags/1.4.2" in str(caught.value) and "readme.txt" in str(caught.value)
    assert "release a new version" in str(caught.value)
    assert youngest(server) == before
    assert hook.last_changed_revision("tags/1.4.2") == tag_rev
    assert hook.last_changed_revision("trunk") == trunk_rev


def test_the_next_version_gets_its_own_tag_and_moves_the_stable_tag(server, release):
    first = release("v1.4.2")
    woocommerce.publish(first)
    hook = WordPressSvnHook()
    first_tag_rev = hook.last_changed_revision("tags/1.4.2")

    def edit(plugin: Path) -> None:  # the next version drops a file and adds one in a new folder
        (plugin / "uninstall.php").unlink()
        (plugin / "assets" / "css").mkdir(parents=True)
        (plugin / "assets" / "css" / "varai.css").write_text(".varai{display:block}\n")

    second = release("v1.5.0", edit)
    [publication] = woocommerce.publish(second)
    assert publication.outcome == "published"
    assert publication.location == f"{server.url}/tags/1.5.0"
    assert stable_tag(hook) == "1.5.0"
    assert files_under(hook, "trunk") == shipped(second.manifest)
    assert "uninstall.php" not in files_under(hook, "trunk") and "assets/css/varai.css" in files_under(hook, "trunk")
    assert files_under(hook, "tags/1.4.2") == shipped(first.manifest)
    assert hook.last_changed_revision("tags/1.4.2") == first_tag_rev
    woocommerce.verify(second)
    woocommerce.verify(first)  # still intact; a later stable release is fine


def test_a_pre_release_gets_a_tag_and_leaves_trunk_alone(server, release):
    woocommerce.publish(release("v1.4.2"))
    hook = WordPressSvnHook()
    trunk_rev = hook.last_changed_revision("trunk")
    ctx = release("v1.5.0-rc.1")
    [publication] = woocommerce.publish(ctx)
    assert publication.outcome == "published"
    assert publication.location == f"{server.url}/tags/1.5.0-rc.1"
    assert "trunk untouched" in publication.detail
    assert hook.last_changed_revision("trunk") == trunk_rev
    assert stable_tag(hook) == "1.4.2"
    assert files_under(hook, "tags/1.5.0-rc.1") == shipped(ctx.manifest)
    checked = woocommerce.verify(ctx)
    assert not any("Stable tag" in line for line in checked)
    assert woocommerce.publish(release("v1.5.0-rc.1"))[0].outcome == "unchanged"


def test_an_older_release_after_a_newer_one_never_moves_the_stable_tag_back(server, release):
    woocommerce.publish(release("v1.5.0"))
    hook = WordPressSvnHook()
    trunk_rev = hook.last_changed_revision("trunk")
    hotfix = release("v1.4.3")
    [publication] = woocommerce.publish(hotfix)
    assert publication.outcome == "published" and "older than the stable 1.5.0" in publication.detail
    assert hook.last_changed_revision("trunk") == trunk_rev
    assert stable_tag(hook) == "1.5.0"
    woocommerce.verify(hotfix)


def test_a_retry_after_a_crash_between_the_trunk_commit_and_the_tag_converges(server, release, monkeypatch):
    ctx = release("v1.4.2")

    def crash(*args, **kwargs):
        raise RuntimeError("worker lost")

    with monkeypatch.context() as patched:
        patched.setattr(WordPressSvnHook, "copy", crash)
        with pytest.raises(RuntimeError):
            woocommerce.publish(ctx)
    hook = WordPressSvnHook()
    assert stable_tag(hook) == "1.4.2" and not hook.exists("tags/1.4.2")
    trunk_rev = hook.last_changed_revision("trunk")

    [publication] = woocommerce.publish(release("v1.4.2"))
    assert publication.outcome == "published"
    assert hook.last_changed_revision("trunk") == trunk_rev, "trunk was already the build: no second commit"
    woocommerce.verify(ctx)


def test_verify_catches_a_tag_changed_behind_our_back(server, release, tmp_path):
    ctx = release("v1.4.2")
    woocommerce.publish(ctx)
    hook = WordPressSvnHook()
    wc = tmp_path / "tag-wc"
    hook.checkout("tags/1.4.2", wc)
    (wc / "readme.txt").write_text("tampered\n")
    hook.commit(wc, "tamper")
    with pytest.raises(WidgetIntegrityError, match="readme.txt does not match the release manifest"):
        woocommerce.verify(ctx)

    (wc / "extra.php").write_text("<?php\n")
    hook.add(wc, ["extra.php"])
    hook.commit(wc, "add a file")
    with pytest.raises(WidgetIntegrityError, match="not files of the release: extra.php"):
        woocommerce.verify(ctx)


def test_verify_refuses_a_release_sites_are_not_offered(server, release, tmp_path):
    ctx = release("v1.4.2")
    woocommerce.publish(ctx)
    hook = WordPressSvnHook()
    wc = tmp_path / "trunk-wc"
    hook.checkout("trunk", wc)
    readme = wc / "readme.txt"
    readme.write_text(readme.read_text().replace("Stable tag: 1.4.2", "Stable tag: 1.4.1"))
    hook.commit(wc, "someone moved the Stable tag back")
    with pytest.raises(
        PublishError, match=r"trunk/readme\.txt says Stable tag 1\.4\.1, so sites are not offered 1\.4\.2"
    ):
        woocommerce.verify(ctx)


def test_a_tag_another_run_created_meanwhile_is_judged_not_copied_into(server, release, monkeypatch):
    woocommerce.publish(release("v1.4.2"))
    hook = WordPressSvnHook()
    before = youngest(server)
    monkeypatch.setattr(WordPressSvnHook, "exists", lambda self, path: False)  # as if checked just before the other run
    [publication] = woocommerce.publish(release("v1.4.2"))
    assert publication.outcome == "unchanged"
    assert youngest(server) == before
    assert files_under(hook, "tags/1.4.2") == shipped(release("v1.4.2").manifest)


def test_verify_of_an_unpublished_version_says_so(server, release):
    with pytest.raises(PublishError, match=r"tags/1\.4\.2 does not exist; publish v1\.4\.2"):
        woocommerce.verify(release("v1.4.2"))


def test_a_wrong_password_is_refused_before_anything_changes(server, release, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_WORDPRESS_SVN", server.connection_env(password="not-it-123"))
    with pytest.raises(PublishAuthError) as caught:
        woocommerce.publish(release("v1.4.2"))
    assert "varai_wordpress_svn" in str(caught.value) and "not-it-123" not in str(caught.value)
    assert (caught.value.channel, caught.value.destination) == ("woocommerce", "svn")
    assert youngest(server) == 1
