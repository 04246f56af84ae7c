"""Build a widget release: stamp the sources, minify once, package every channel, write one manifest.

Layout of ``out_dir`` (``x.y.z`` is the version without its ``v``)::

    manifest.json
    html/                          the npm package directory, ready for ``npm publish html``
      package.json, README.md
      dist/varai-widget.js         stamped source
      dist/varai-widget.min.js     the widget: uploaded to the CDN, shipped by npm
    shopify/                       the theme app extension (assets/widget.js = the widget)
    woocommerce/varai-ai-discovery/   the WordPress plugin, i.e. SVN trunk (assets/js/varai-widget.min.js)
    magento/varai-module-ai-discovery-x.y.z.zip   the Composer package (view/frontend/web/js/varai-widget.js)

The same input gives byte-identical output: entries are sorted, the zip carries fixed timestamps and
modes, and nothing depends on the clock, the machine or the order the file system lists files in.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from varai_deploy.config import REPO_ROOT
from varai_deploy.widgets.archives import deterministic_zip
from varai_deploy.widgets.channels import CHANNELS
from varai_deploy.widgets.manifest import MANIFEST_NAME, SCHEMA, Artifact, ChannelLayout, Manifest, sha256_of
from varai_deploy.widgets.minify import minify_js, sri
from varai_deploy.widgets.versions import package_version

#: Builds from another checkout of the sources when set (the tests change a published version's bytes).
SOURCES_ENV = "VARAI_WIDGET_SOURCES"
#: The widget sources and the per-channel package templates.
WIDGETS_DIR = REPO_ROOT / "include" / "widgets"
#: Replaced, in every source and template, by the version without its ``v`` (``1.4.2``).
VERSION_PLACEHOLDER = b"__VARAI_VERSION__"
WIDGET_SOURCE = Path("src", "varai-widget.js")

WOOCOMMERCE_SLUG = "varai-ai-discovery"
COMPOSER_PACKAGE = "varai/module-ai-discovery"

HTML_WIDGET = "dist/varai-widget.min.js"
HTML_SOURCE = "dist/varai-widget.js"
SHOPIFY_WIDGET = "assets/widget.js"
WOOCOMMERCE_WIDGET = "assets/js/varai-widget.min.js"
MAGENTO_WIDGET = "view/frontend/web/js/varai-widget.js"

# Files in the templates that only keep empty folders in git.
_IGNORED_NAMES = frozenset({".gitkeep", ".gitattributes", ".DS_Store"})


class WidgetBuildError(RuntimeError):
    """The widget release cannot be built as asked; the message says why and what to do."""


def magento_zip_name(plain_version: str) -> str:
    return f"varai-module-ai-discovery-{plain_version}.zip"


def build_release(
    version: str, out_dir: str | os.PathLike[str], *, sources: str | os.PathLike[str] | None = None
) -> Manifest:
    """Build every channel's artifact for ``version`` (a tag such as ``v1.4.2``) into ``out_dir``.

    ``out_dir`` must be new, empty, or an earlier widget build (which is replaced as a whole, so a
    retried task converges). Nothing is written before the version and the sources are checked.
    """
    plain = package_version(version)
    sources = Path(sources or os.environ.get(SOURCES_ENV) or WIDGETS_DIR)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)

    widget_source = _stamp(_read(sources / WIDGET_SOURCE), plain, WIDGET_SOURCE.as_posix())
    widget = minify_js(widget_source)
    if not widget or len(widget) >= len(widget_source):
        raise WidgetBuildError("minifying the widget did not make it smaller: check src/varai-widget.js")

    zip_name = magento_zip_name(plain)
    layouts = {
        "html": ChannelLayout(root="html", widget=HTML_WIDGET),
        "shopify": ChannelLayout(root="shopify", widget=SHOPIFY_WIDGET),
        "woocommerce": ChannelLayout(root=f"woocommerce/{WOOCOMMERCE_SLUG}", widget=WOOCOMMERCE_WIDGET),
        "magento": ChannelLayout(root="magento", widget=MAGENTO_WIDGET, archive=zip_name),
    }
    trees = {
        "html": _add(_templates(sources / "html", plain), {HTML_SOURCE: widget_source, HTML_WIDGET: widget}),
        "shopify": _add(_templates(sources / "shopify", plain), {SHOPIFY_WIDGET: widget}),
        "woocommerce": _add(
            _templates(sources / "woocommerce" / WOOCOMMERCE_SLUG, plain), {WOOCOMMERCE_WIDGET: widget}
        ),
    }
    magento_module = _add(_templates(sources / "magento", plain), {MAGENTO_WIDGET: widget})
    _check_composer_json(magento_module, plain)
    trees["magento"] = {zip_name: deterministic_zip(magento_module)}

    artifacts = [
        Artifact(channel, path, sha256_of(data), len(data))
        for channel in CHANNELS
        for path, data in sorted(trees[channel].items())
    ]
    # What `composer require` installs: the zip's files, each checkable after installation.
    artifacts += [
        Artifact("magento", member, sha256_of(data), len(data), archive=zip_name)
        for member, data in sorted(magento_module.items())
    ]
    manifest = Manifest(
        version=version,
        package_version=plain,
        widget_sha256=sha256_of(widget),
        widget_sri=sri(widget),
        widget_size=len(widget),
        cdn_channel="html",
        cdn_path=HTML_WIDGET,
        channels=layouts,
        artifacts=tuple(artifacts),
    )
    manifest.check_consistency()

    files = {f"{layouts[channel].root}/{path}": data for channel in CHANNELS for path, data in trees[channel].items()}
    files[MANIFEST_NAME] = manifest.to_json().encode("utf-8")
    _write_atomically(out_dir, files)
    return manifest


# -- sources --------------------------------------------------------------------------------
def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise WidgetBuildError(f"widget source missing: {path} ({exc.strerror})") from exc


def _stamp(data: bytes, plain_version: str, name: str) -> bytes:
    stamped = data.replace(VERSION_PLACEHOLDER, plain_version.encode("ascii"))
    if b"__VARAI_" in stamped:
        raise WidgetBuildError(f"{name}: unknown __VARAI_...__ placeholder left after stamping; only __VARAI_VERSION__")
    return stamped


def _templates(directory: Path, plain_version: str) -> dict[str, bytes]:
    """Every file under ``directory``, stamped and checked, keyed by its POSIX path relative to it."""
    if not directory.is_dir():
        raise WidgetBuildError(f"channel templates missing: {directory} is not a directory")
    tree: dict[str, bytes] = {}
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.name in _IGNORED_NAMES:
            continue
        relative = path.relative_to(directory).as_posix()
        data = _stamp(_read(path), plain_version, f"{directory.name}/{relative}")
        _check_parses(f"{directory.name}/{relative}", data)
        tree[relative] = data
    if not tree:
        raise WidgetBuildError(f"channel templates missing: {directory} has no files")
    return tree


def _add(templates: dict[str, bytes], built: Mapping[str, bytes]) -> dict[str, bytes]:
    """The channel's templates plus the built files; a template never stands in for a built file."""
    clash = sorted(set(templates) & set(built))
    if clash:
        raise WidgetBuildError(f"templates must not contain {', '.join(clash)}: the build writes it")
    return {**templates, **built}


def _check_parses(name: str, data: bytes) -> None:
    """A stamped JSON, XML or TOML template that no longer parses never ships."""
    suffix = Path(name).suffix
    try:
        if suffix == ".json":
            json.loads(data)
        elif suffix == ".xml":
            ET.fromstring(data)  # noqa: S314 - our own templates, not untrusted input
        elif suffix == ".toml":
            tomllib.loads(data.decode("utf-8"))
    except (ValueError, ET.ParseError, UnicodeDecodeError) as exc:
        raise WidgetBuildError(f"{name} does not parse after stamping: {exc}") from exc


def _check_composer_json(module: Mapping[str, bytes], plain_version: str) -> None:
    if "composer.json" not in module:
        raise WidgetBuildError("magento/composer.json missing: the Composer zip needs it at its root")
    composer = json.loads(module["composer.json"])
    expected = {"name": COMPOSER_PACKAGE, "type": "magento2-module", "version": plain_version}
    wrong = {key: composer.get(key) for key, value in expected.items() if composer.get(key) != value}
    if wrong:
        raise WidgetBuildError(f"magento/composer.json: expected {expected}, found {wrong}")


# -- output ---------------------------------------------------------------------------------
def _is_widget_build(directory: Path) -> bool:
    try:
        return json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8")).get("schema") == SCHEMA
    except (OSError, ValueError, AttributeError):
        return False


def _check_out_dir(out_dir: Path) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise WidgetBuildError(f"output directory {out_dir} exists and is not a directory")
    if any(out_dir.iterdir()) and not _is_widget_build(out_dir):
        raise WidgetBuildError(
            f"output directory {out_dir} is not empty and holds no widget build (no {MANIFEST_NAME}): "
            "use a new or empty directory, so no stray file is ever published"
        )


def _write_atomically(out_dir: Path, files: Mapping[str, bytes]) -> None:
    """Write into a sibling staging directory, then swap it in: ``out_dir`` is never half-built."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        os.chmod(staging, 0o755)  # noqa: S103 - published files are meant to be world-readable
        for relative, data in sorted(files.items()):
            target = staging / relative
            for parent in reversed(target.relative_to(staging).parents[:-1]):
                folder = staging / parent
                if not folder.is_dir():
                    folder.mkdir()
                    os.chmod(folder, 0o755)  # noqa: S103 - as above
            target.write_bytes(data)
            os.chmod(target, 0o644)
        if out_dir.exists():
            _check_out_dir(out_dir)  # still ours, or empty, just before it is replaced
            retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            out_dir.rename(retired / "build")
            try:
                staging.rename(out_dir)
            except OSError:
                (retired / "build").rename(out_dir)
                raise
            shutil.rmtree(retired)
        else:
            staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
