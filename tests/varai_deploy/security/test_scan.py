"""Phase 1's scan of a whole release: the widget sources, every package it would ship and the Terraform
module; findings at or above the environment's fail_on refuse the release, saying what and where."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from tests.support.planted import PUBLIC_BUCKET, aws_key, plant
from varai_deploy.config import SecurityScanPolicy, load_environment
from varai_deploy.security.scan import SecurityScanError, format_report, scan_release
from varai_deploy.widgets.build import SOURCES_ENV, WIDGETS_DIR

ALL = ["html", "shopify", "woocommerce", "magento"]


@pytest.fixture
def planted(tmp_path: Path, monkeypatch) -> tuple[str, int]:
    """The widget sources the release builds from, with an AWS-shaped key on the returned line."""
    sources = tmp_path / "widgets"
    shutil.copytree(WIDGETS_DIR, sources)
    value = aws_key()
    line = plant(sources / "src" / "varai-widget.js", value)
    monkeypatch.setenv(SOURCES_ENV, str(sources))
    return value, line


@pytest.mark.parametrize("environment", ["sandbox", "staging", "production"])
def test_every_environment_releases_what_is_in_the_repository(environment: str):
    env = load_environment(environment)
    report = scan_release(env, "v1.2.3", list(env.marketplaces))
    assert report["counts"] == {"low": 0, "medium": 0, "high": 0, "critical": 0}
    assert report["accepted"] >= 2  # the documented key placeholders, in the sources and in what ships
    text = format_report(report)
    assert "Open findings: 0 low, 0 medium, 0 high, 0 critical (fail on high)" in text
    assert f"include/terraform/{'sandbox' if environment == 'sandbox' else 'gcp'}" in text


def test_a_secret_in_a_widget_source_refuses_the_release_saying_where(planted):
    value, line = planted
    with pytest.raises(SecurityScanError) as refused:
        scan_release(load_environment("sandbox"), "v1.2.3", ALL)
    message = str(refused.value)
    assert "at or above high, nothing was changed" in message
    assert "[critical] secrets AWS Access Key at " in message
    # Where it is in the sources, and in each package that would have shipped it.
    assert f"src/varai-widget.js:{line}" in message
    assert "widgets v1.2.3/html/dist/varai-widget.js:" in message
    assert "widgets v1.2.3/magento/varai-module-ai-discovery-1.2.3.zip!view/frontend/web/js/varai-widget.js:" in message
    assert value not in message
    assert "include/security/accepted.yaml" in message


def test_a_backend_only_release_scans_the_sources_but_builds_nothing(planted):
    with pytest.raises(SecurityScanError) as refused:
        scan_release(load_environment("sandbox"), "v1.2.3", [])
    assert "src/varai-widget.js:" in str(refused.value)
    assert "widgets v1.2.3/" not in str(refused.value)


def test_findings_below_fail_on_are_reported_not_refused(tmp_path: Path):
    (tmp_path / "main.tf").write_text(PUBLIC_BUCKET)
    env = load_environment("sandbox")
    env = dataclasses.replace(env, terraform=dataclasses.replace(env.terraform, module=tmp_path))
    with pytest.raises(SecurityScanError, match=r"\[high\] terraform CKV_GCP_28"):
        scan_release(env, "v1.2.3", [])
    lenient = dataclasses.replace(env, security_scan=SecurityScanPolicy(fail_on="critical", terraform_severity="high"))
    report = scan_release(lenient, "v1.2.3", [])
    assert report["counts"]["high"] >= 2 and report["fail_on"] == "critical"
    assert "CKV_GCP_28" in format_report(report)
