"""verify_against_manifest: what a channel serves is checked against the release manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.varai_deploy.widgets.support import magento_zip
from varai_deploy.config import REPO_ROOT
from varai_deploy.widgets import CHANNELS, Manifest, WidgetIntegrityError, verify_against_manifest

WIDGET_ON_DISK = {
    "html": "html/dist/varai-widget.min.js",
    "shopify": "shopify/assets/widget.js",
    "woocommerce": "woocommerce/varai-ai-discovery/assets/js/varai-widget.min.js",
}


@pytest.mark.parametrize("channel", CHANNELS)
def test_the_right_bytes_pass_in_every_channel(out_dir: Path, manifest: Manifest, channel: str) -> None:
    layout = manifest.channels[channel]
    if channel == "magento":
        with magento_zip(out_dir) as archive:
            data = archive.read(layout.widget)
    else:
        data = (out_dir / WIDGET_ON_DISK[channel]).read_bytes()
    artifact = verify_against_manifest(manifest, channel, data, layout.widget)
    assert artifact.sha256 == manifest.widget_sha256
    assert artifact.channel == channel


def test_paths_and_manifest_dicts_are_accepted(out_dir: Path, manifest: Manifest) -> None:
    cdn_file = out_dir / "html/dist/varai-widget.min.js"
    as_xcom = json.loads(manifest.to_json())  # what a task gets back from XCom
    verify_against_manifest(as_xcom, "html", cdn_file, "dist/varai-widget.min.js")
    verify_against_manifest(manifest, "html", str(cdn_file), "./dist/varai-widget.min.js")
    # The Composer zip itself, as uploaded to the Composer repository and the Marketplace.
    zip_path = out_dir / "magento" / manifest.channels["magento"].archive
    verify_against_manifest(manifest, "magento", zip_path, zip_path.name)
    # Any other shipped file, e.g. the plugin's main file exported from the SVN tag.
    plugin = out_dir / "woocommerce/varai-ai-discovery/varai-ai-discovery.php"
    verify_against_manifest(manifest, "woocommerce", plugin.read_bytes(), "varai-ai-discovery.php")


@pytest.mark.parametrize("channel", CHANNELS)
def test_changed_bytes_are_refused_naming_the_channel(out_dir: Path, manifest: Manifest, channel: str) -> None:
    layout = manifest.channels[channel]
    tampered = (out_dir / "html/dist/varai-widget.min.js").read_bytes().replace(b"1.4.2", b"1.4.3", 1)
    with pytest.raises(WidgetIntegrityError) as caught:
        verify_against_manifest(manifest, channel, tampered, layout.widget)
    error = caught.value
    message = str(error)
    assert message.startswith(f"{channel}: ")
    assert layout.widget in message and "v1.4.2" in message
    assert error.expected == manifest.widget_sha256 and error.expected in message
    assert error.actual not in (None, error.expected) and error.actual in message
    assert (error.channel, error.path) == (channel, layout.widget)


def test_unknown_files_and_channels_are_refused(manifest: Manifest) -> None:
    with pytest.raises(WidgetIntegrityError, match=r"^shopify: assets/other\.js is not a file of the release manifest"):
        verify_against_manifest(manifest, "shopify", b"x", "assets/other.js")
    with pytest.raises(WidgetIntegrityError, match=r"^bigcommerce: no such channel"):
        verify_against_manifest(manifest, "bigcommerce", b"x", "widget.js")


def test_manifest_round_trips_and_rejects_foreign_json(out_dir: Path, manifest: Manifest) -> None:
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    assert Manifest.load(out_dir / "manifest.json") == manifest
    with pytest.raises(ValueError, match="not a widget release manifest"):
        Manifest.from_dict({"version": "v1.4.2"})
    broken = manifest.to_dict()
    broken["cdn"]["sri"] = "sha384-AAAA"
    with pytest.raises(ValueError, match=r"cdn\.sri differs"):
        Manifest.from_dict(broken)


def test_manifest_shape(manifest: Manifest) -> None:
    data = manifest.to_dict()
    assert list(data) == ["schema", "version", "package_version", "widget", "cdn", "channels", "artifacts"]
    assert data["schema"] == "varai-widget-release/1"
    assert (data["version"], data["package_version"]) == ("v1.4.2", "1.4.2")
    assert data["widget"]["sri"].startswith("sha384-")
    assert list(data["channels"]) == list(CHANNELS)
    assert data["channels"]["magento"] == {
        "root": "magento",
        "archive": "varai-module-ai-discovery-1.4.2.zip",
        "widget": "view/frontend/web/js/varai-widget.js",
    }
    for entry in data["artifacts"]:
        assert set(entry) <= {"channel", "path", "archive", "sha256", "size"}
        assert len(entry["sha256"]) == 64
    keys = [(a["channel"], a["path"]) for a in data["artifacts"]]
    assert len(keys) == len(set(keys)), "a (channel, path) names one file"


def test_cli_verify(out_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins")}
    good = out_dir / "shopify/assets/widget.js"
    bad = tmp_path / "widget.js"
    bad.write_bytes(good.read_bytes() + b"\n")
    command = [sys.executable, "-m", "varai_deploy.widgets", "verify", "--manifest", str(out_dir)]
    command += ["--channel", "shopify", "--path", "assets/widget.js"]
    ok = subprocess.run([*command, str(good)], capture_output=True, text=True, env=env, check=False)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("shopify: assets/widget.js matches the release manifest")
    refused = subprocess.run([*command, str(bad)], capture_output=True, text=True, env=env, check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: shopify: assets/widget.js does not match the release manifest of v1.4.2")
