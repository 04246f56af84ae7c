"""The WooCommerce channel: the WordPress plugin, published the WordPress.org way through its SVN repository.

A release syncs ``trunk/`` to the build (whose ``readme.txt`` carries ``Stable tag: x.y.z``) and
copies it to ``tags/x.y.z/``; sites then install that tag. A tag is never moved or modified: the same
build under an existing tag is ``unchanged``, a different one a conflict. A pre-release (or a release
older than trunk's Stable tag, e.g. a hotfix on an older line) goes straight into its tag and leaves
trunk, and so what sites install, alone. A retry after a crash between the trunk commit and the tag
finds trunk already synced and only tags it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from varai_deploy.hooks.wordpress_svn import DESTINATION, SvnPathExistsError, WordPressSvnHook
from varai_deploy.widgets.manifest import Manifest, WidgetIntegrityError, verify_against_manifest
from varai_deploy.widgets.publishing import ChannelContext, Publication, PublishConflictError, PublishError

CHANNEL = "woocommerce"
#: The role the release DAG maps to this channel's Airflow connection in ``ChannelContext.connections``.
ROLE = "wordpress_svn"
README = "readme.txt"
_STABLE_TAG = re.compile(r"^[ \t]*Stable tag:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)
_RELEASE = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def publish(ctx: ChannelContext) -> list[Publication]:
    hook = WordPressSvnHook(ctx.connection(ROLE), channel=CHANNEL)
    plain = ctx.manifest.package_version
    tag = f"tags/{plain}"
    if hook.exists(tag):
        return [_existing(hook, ctx, tag)]
    files = {a.path: ctx.manifest.location(ctx.build_dir, a) for a in ctx.manifest.files(CHANNEL)}
    stable = _stable_tag(hook)
    try:
        if ctx.prerelease or _is_newer(stable, plain):
            revision = hook.put_tree(files, tag, f"Tag {plain} (VarAI widget {ctx.version}); trunk left as it is")
            why = "a pre-release" if ctx.prerelease else f"older than the stable {stable}"
            detail = f"r{revision}; {why}: trunk untouched, Stable tag stays {stable or 'unset'}"
        else:
            synced = _sync_trunk(hook, ctx, files, plain)
            revision = hook.copy("trunk", tag, f"Tag {plain} (VarAI widget {ctx.version})", revision=synced)
            detail = f"r{revision}; trunk r{synced}, Stable tag {plain}"
    except SvnPathExistsError:  # another run created the tag meanwhile: judge what it holds
        return [_existing(hook, ctx, tag)]
    return [Publication(CHANNEL, DESTINATION, "published", hook.url(tag), detail)]


def verify(ctx: ChannelContext) -> list[str]:
    """Check, as a site would get it, that the tag holds exactly the manifest's files and that sites
    are offered this release (or a later one). Returns what was checked; raises on any difference."""
    hook = WordPressSvnHook(ctx.connection(ROLE), channel=CHANNEL)
    plain = ctx.manifest.package_version
    tag = f"tags/{plain}"
    if not hook.exists(tag):
        raise PublishError(
            f"{CHANNEL}: {hook.url(tag)} does not exist; publish {ctx.version} to the svn destination first",
            channel=CHANNEL,
            destination=DESTINATION,
        )
    checked = _check_tree(ctx.manifest, _export(hook, ctx, tag), hook.url(tag))
    if not ctx.prerelease:
        stable = _stable_tag(hook)
        if stable != plain and not _is_newer(stable, plain):
            raise PublishError(
                f"{CHANNEL}: {hook.url('trunk/' + README)} says Stable tag {stable or '(none)'}, so sites are not "
                f"offered {plain}. Publishing never moves it back (that is how a release is rolled back on "
                f"WordPress.org); if no one meant to, set 'Stable tag: {plain}' in trunk/{README} and commit it",
                channel=CHANNEL,
                destination=DESTINATION,
            )
        checked.append(f"{hook.url('trunk/' + README)}: Stable tag {stable}")
    return checked


def _existing(hook: WordPressSvnHook, ctx: ChannelContext, tag: str) -> Publication:
    """The tag is there: the same build is ``unchanged``; anything else a conflict, the tag left alone."""
    try:
        _check_tree(ctx.manifest, _export(hook, ctx, tag), hook.url(tag))
    except WidgetIntegrityError as exc:
        raise PublishConflictError(
            f"{CHANNEL}: {hook.url(tag)} already holds a different build of {ctx.manifest.package_version} ({exc}); "
            "WordPress.org tags are never changed: release a new version instead",
            channel=CHANNEL,
            destination=DESTINATION,
        ) from exc
    return Publication(CHANNEL, DESTINATION, "unchanged", hook.url(tag), "the tag already holds this build")


def _sync_trunk(hook: WordPressSvnHook, ctx: ChannelContext, files: dict[str, Path], plain: str) -> int:
    """Make trunk the build (new files added, removed ones deleted); returns the revision it is the build at."""
    wc = Path(tempfile.mkdtemp(prefix="trunk-", dir=ctx.scratch_dir))
    revision = hook.checkout("trunk", wc)
    wanted_dirs = {str(p) for rel in files for p in PurePosixPath(rel).parents if str(p) != "."}
    stale = []
    for path in sorted(wc.rglob("*")):
        rel = path.relative_to(wc).as_posix()
        if rel == ".svn" or rel.startswith(".svn/") or any(rel.startswith(s + "/") for s in stale):
            continue
        if (rel not in wanted_dirs) if path.is_dir() else (rel not in files):
            stale.append(rel)
    hook.remove(wc, stale)
    new = [rel for rel in sorted(files) if not (wc / rel).exists()]
    for rel, source in files.items():
        (wc / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, wc / rel)
    hook.add(wc, new)
    committed = hook.commit(wc, f"Release {plain}: VarAI AI Discovery widget {ctx.version}")
    return committed or revision


def _export(hook: WordPressSvnHook, ctx: ChannelContext, path: str) -> Path:
    return hook.export(path, Path(tempfile.mkdtemp(prefix="export-", dir=ctx.scratch_dir)) / "tree")


def _check_paths(manifest: Manifest, found: set[str], where: str) -> None:
    expected = {a.path for a in manifest.files(CHANNEL)}
    missing, extra = sorted(expected - found), sorted(found - expected)
    if missing or extra:
        problems = [f"missing: {', '.join(missing)}"] if missing else []
        problems += [f"not files of the release: {', '.join(extra)}"] if extra else []
        raise WidgetIntegrityError(
            f"{CHANNEL}: {where} does not hold the files of the release manifest of {manifest.version}; "
            + "; ".join(problems),
            channel=CHANNEL,
            path=(missing + extra)[0],
            expected=None,
            actual=None,
        )


def _check_tree(manifest: Manifest, root: Path, where: str) -> list[str]:
    """Exactly the manifest's files, each with its sha256."""
    _check_paths(manifest, {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}, where)
    checked = []
    for artifact in manifest.files(CHANNEL):
        verify_against_manifest(manifest, CHANNEL, root / artifact.path, artifact.path)
        checked.append(f"{where}/{artifact.path}: sha256 {artifact.sha256} as in the manifest")
    return checked


def _stable_tag(hook: WordPressSvnHook) -> str | None:
    readme = hook.cat(f"trunk/{README}")
    match = _STABLE_TAG.search(readme.decode("utf-8", errors="replace")) if readme else None
    return match.group(1) if match else None


def _is_newer(stable: str | None, plain: str) -> bool:
    """Is trunk's Stable tag a later release than ``plain``? Never move what sites install backwards."""
    ours, theirs = _RELEASE.fullmatch(plain.partition("-")[0]), _RELEASE.fullmatch(stable or "")
    if not (ours and theirs):
        return False
    return tuple(map(int, theirs.groups())) > tuple(map(int, ours.groups()))
