"""build_release: determinism, layout, version stamping in every channel, refusals before any write."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from tests.varai_deploy.widgets.support import PLAIN, VERSION, magento_zip
from varai_deploy.config import REPO_ROOT, ConfigError
from varai_deploy.widgets import CHANNELS, Manifest, WidgetBuildError, build_release, package_version


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_builds_are_byte_identical(tmp_path: Path, out_dir: Path, manifest: Manifest) -> None:
    again = build_release(VERSION, tmp_path / "again")
    assert again == manifest
    first, second = tree(out_dir), tree(tmp_path / "again")
    assert sorted(first) == sorted(second)
    differing = [name for name in first if first[name] != second[name]]
    assert not differing, f"not reproducible: {differing}"
    # A retried task rebuilds over its earlier output and converges to the same bytes.
    build_release(VERSION, tmp_path / "again")
    assert tree(tmp_path / "again") == first


def test_output_layout(out_dir: Path) -> None:
    assert sorted(tree(out_dir)) == [
        "html/README.md",
        "html/dist/varai-widget.js",
        "html/dist/varai-widget.min.js",
        "html/package.json",
        "magento/varai-module-ai-discovery-1.4.2.zip",
        "manifest.json",
        "shopify/assets/widget.js",
        "shopify/blocks/varai_discovery.liquid",
        "shopify/shopify.extension.toml",
        "woocommerce/varai-ai-discovery/assets/js/varai-widget.min.js",
        "woocommerce/varai-ai-discovery/readme.txt",
        "woocommerce/varai-ai-discovery/uninstall.php",
        "woocommerce/varai-ai-discovery/varai-ai-discovery.php",
    ]
    modes = {oct(p.stat().st_mode & 0o777) for p in out_dir.rglob("*") if p.is_file()}
    assert modes == {"0o644"}
    # No staging or retired directory is left beside the output.
    assert [p.name for p in out_dir.parent.iterdir()] == ["release"]


def test_manifest_lists_every_file_with_its_hash(out_dir: Path, manifest: Manifest) -> None:
    on_disk = {name: data for name, data in tree(out_dir).items() if name != "manifest.json"}
    listed = {}
    for artifact in manifest.artifacts:
        if artifact.archive:
            with magento_zip(out_dir) as archive:
                data = archive.read(artifact.path)
        else:
            name = manifest.location(out_dir, artifact).relative_to(out_dir).as_posix()
            data = on_disk[name]
            listed[name] = data
        assert artifact.size == len(data)
        assert artifact.sha256 == hashlib.sha256(data).hexdigest()
    assert sorted(listed) == sorted(on_disk), "every file on disk is in the manifest, and only those"
    with magento_zip(out_dir) as archive:
        assert sorted(a.path for a in manifest.files("magento") if a.archive) == sorted(archive.namelist())
    assert Manifest.load(out_dir) == manifest
    assert json.loads((out_dir / "manifest.json").read_text())["version"] == VERSION


def test_every_channel_ships_the_same_widget_bytes(out_dir: Path, manifest: Manifest) -> None:
    cdn = (out_dir / "html/dist/varai-widget.min.js").read_bytes()
    shipped = {
        "html": cdn,
        "shopify": (out_dir / "shopify/assets/widget.js").read_bytes(),
        "woocommerce": (out_dir / "woocommerce/varai-ai-discovery/assets/js/varai-widget.min.js").read_bytes(),
    }
    with magento_zip(out_dir) as archive:
        shipped["magento"] = archive.read("view/frontend/web/js/varai-widget.js")
    assert set(shipped) == set(CHANNELS)
    assert all(data == cdn for data in shipped.values())
    hashes = {channel: manifest.widget_artifact(channel).sha256 for channel in CHANNELS}
    assert set(hashes.values()) == {manifest.widget_sha256}
    data = manifest.to_dict()
    assert data["cdn"] == {"channel": "html", "path": "dist/varai-widget.min.js", "sri": manifest.widget_sri}


def test_no_placeholder_survives_anywhere(out_dir: Path) -> None:
    for name, data in tree(out_dir).items():
        assert b"__VARAI_" not in data, name
    with magento_zip(out_dir) as archive:
        for member in archive.namelist():
            assert b"__VARAI_" not in archive.read(member), member


def test_widget_script_is_stamped(out_dir: Path) -> None:
    source = (out_dir / "html/dist/varai-widget.js").read_text()
    minified = (out_dir / "html/dist/varai-widget.min.js").read_text()
    for text in (source, minified):
        assert "VERSION = '1.4.2'" in text or "VERSION='1.4.2'" in text
        assert text.startswith("/*! VarAI AI Discovery widget 1.4.2 | MIT License")


def test_npm_package_is_stamped_and_publishable(out_dir: Path) -> None:
    package = json.loads((out_dir / "html/package.json").read_text())
    assert package["name"] == "@varai/widget"
    assert package["version"] == PLAIN
    assert package["main"] == "dist/varai-widget.min.js"
    for listed in package["files"]:
        assert (out_dir / "html" / listed).is_file(), listed
    assert package["publishConfig"] == {"access": "public"}


def test_woocommerce_plugin_is_stamped(out_dir: Path) -> None:
    plugin = (out_dir / "woocommerce/varai-ai-discovery/varai-ai-discovery.php").read_text()
    header = dict(re.findall(r"^ \* ([A-Za-z ]+?):\s+(.+)$", plugin.split("*/", 1)[0], re.MULTILINE))
    assert header["Plugin Name"] == "VarAI AI Discovery"
    assert header["Version"] == PLAIN
    assert header["Requires PHP"] == "8.1"
    assert header["License"] == "GPL-2.0-or-later"
    assert header["Text Domain"] == "varai-ai-discovery"
    assert "const VARAI_AI_DISCOVERY_VERSION          = '1.4.2';" in plugin
    assert "const VARAI_AI_DISCOVERY_SCRIPT = 'assets/js/varai-widget.min.js';" in plugin
    assert "add_settings_field(" in plugin and "wp_enqueue_script(" in plugin

    readme = (out_dir / "woocommerce/varai-ai-discovery/readme.txt").read_text()
    assert readme.startswith("=== VarAI AI Discovery ===\n")
    assert re.findall(r"^Stable tag: (.+)$", readme, re.MULTILINE) == [PLAIN]
    assert re.findall(r"^Requires PHP: (.+)$", readme, re.MULTILINE) == ["8.1"]
    assert f"== Changelog ==\n\n= {PLAIN} =" in readme


def test_magento_zip_is_a_composer_package(out_dir: Path) -> None:
    with magento_zip(out_dir) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names == sorted(names), "entries are sorted"
        assert "composer.json" in names, "composer.json at the zip's root"
        assert not any(name.endswith("/") for name in names)
        for info in archive.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.external_attr >> 16 == 0o100644
            assert info.extra == b""
        assert archive.comment == b""
        composer = json.loads(archive.read("composer.json"))
        module = ET.fromstring(archive.read("etc/module.xml")).find("module")
        registration = archive.read("registration.php").decode()
        layout = archive.read("view/frontend/layout/default.xml").decode()
    assert composer["name"] == "varai/module-ai-discovery"
    assert composer["type"] == "magento2-module"
    assert composer["version"] == PLAIN
    assert composer["autoload"] == {"files": ["registration.php"], "psr-4": {"VarAI\\AIDiscovery\\": ""}}
    assert module.get("name") == "VarAI_AIDiscovery"
    assert module.get("setup_version") == PLAIN
    assert "ComponentRegistrar::register(ComponentRegistrar::MODULE, 'VarAI_AIDiscovery', __DIR__);" in registration
    assert '<script src="VarAI_AIDiscovery::js/varai-widget.js"/>' in layout


def test_shopify_extension(out_dir: Path) -> None:
    config = tomllib.loads((out_dir / "shopify/shopify.extension.toml").read_text())
    assert config["type"] == "theme"
    block = (out_dir / "shopify/blocks/varai_discovery.liquid").read_text()
    assert "{{ 'widget.js' | asset_url }}" in block
    schema = json.loads(block.split("{% schema %}", 1)[1].split("{% endschema %}", 1)[0])
    assert schema["target"] == "section"
    assert {s["id"] for s in schema["settings"]} == {"api_key", "api_base", "label"}
    assert sorted(p.name for p in (out_dir / "shopify/assets").iterdir()) == ["widget.js"]


def test_prerelease_version_is_stamped_without_v(tmp_path: Path) -> None:
    manifest = build_release("v1.5.0-rc.1", tmp_path / "rc")
    assert manifest.package_version == "1.5.0-rc.1"
    assert manifest.channels["magento"].archive == "varai-module-ai-discovery-1.5.0-rc.1.zip"
    with magento_zip(tmp_path / "rc", "1.5.0-rc.1") as archive:
        assert json.loads(archive.read("composer.json"))["version"] == "1.5.0-rc.1"
    assert "Stable tag: 1.5.0-rc.1\n" in (tmp_path / "rc/woocommerce/varai-ai-discovery/readme.txt").read_text()
    assert json.loads((tmp_path / "rc/html/package.json").read_text())["version"] == "1.5.0-rc.1"


@pytest.mark.parametrize(
    ("version", "reason"),
    [
        ("1.4.2", "not a release tag"),
        ("v1.4", "not a release tag"),
        ("v1.4.2\n", "not a release tag"),
        ("v01.4.2", "not a release tag"),
        ("", "not a release tag"),
        (None, "not a release tag"),
        ("v1.5.0-rc.01", "npm refuses"),
        ("v1.5.0-preview.1", "Composer"),
    ],
)
def test_bad_versions_are_refused_before_anything_is_written(tmp_path: Path, version, reason: str) -> None:
    out = tmp_path / "nested" / "out"
    with pytest.raises(ConfigError, match=reason):
        build_release(version, out)
    assert list(tmp_path.iterdir()) == [], "nothing may be written for a bad version"


def test_package_version() -> None:
    assert package_version("v1.4.2") == "1.4.2"
    assert package_version("v2.0.0-beta.3") == "2.0.0-beta.3"


def test_a_foreign_non_empty_directory_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(WidgetBuildError, match="not empty and holds no widget build"):
        build_release(VERSION, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    build_release(VERSION, empty)
    assert (empty / "manifest.json").is_file()


def test_a_broken_template_fails_the_build(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    shutil.copytree(REPO_ROOT / "include" / "widgets", sources)
    (sources / "magento/etc/module.xml").write_text('<config><module name="VarAI_AIDiscovery"></config>')
    with pytest.raises(WidgetBuildError, match=r"module\.xml does not parse"):
        build_release(VERSION, tmp_path / "out", sources=sources)
    assert not (tmp_path / "out").exists()
    (sources / "magento/etc/module.xml").write_text("<config/>")
    (sources / "html/README.md").write_text("version __VARAI_VERSON__\n")
    with pytest.raises(WidgetBuildError, match="placeholder"):
        build_release(VERSION, tmp_path / "out", sources=sources)
    (sources / "html/README.md").write_text("ok\n")
    (sources / "shopify/assets/widget.js").write_text("stale copy")
    with pytest.raises(WidgetBuildError, match="must not contain assets/widget.js"):
        build_release(VERSION, tmp_path / "out", sources=sources)
    assert not (tmp_path / "out").exists()


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins")}
    return subprocess.run(
        [sys.executable, "-m", "varai_deploy.widgets", *args], capture_output=True, text=True, env=env, check=False
    )


def test_cli_build_prints_the_manifest(tmp_path: Path, manifest: Manifest) -> None:
    run = _cli("build", "--version", VERSION, "--out", str(tmp_path / "cli"))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == manifest.to_dict()
    assert run.stdout == (tmp_path / "cli/manifest.json").read_text()


def test_cli_refuses_a_bad_version(tmp_path: Path) -> None:
    run = _cli("build", "--version", "1.4.2", "--out", str(tmp_path / "cli"))
    assert run.returncode == 2
    assert "not a release tag" in run.stderr and "v1.4.2" in run.stderr
    assert not (tmp_path / "cli").exists()
