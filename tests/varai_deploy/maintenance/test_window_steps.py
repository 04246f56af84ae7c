"""The window's decisions: whether a step may start, what a security update or an emergency fix deploys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from varai_deploy.config import ConfigError, check_revision_version, load_environment
from varai_deploy.maintenance.window_steps import (
    StepDoesNotFit,
    Window,
    check_fits,
    emergency_label,
    patched_image,
    window_label,
    window_of,
)

START = datetime(2027, 1, 3, 2, 0, tzinfo=UTC)


@pytest.fixture
def policy():
    return load_environment("sandbox").maintenance


def test_a_step_starts_only_if_its_whole_budget_fits_before_the_window_closes(policy):
    window = window_of(policy, START)
    assert window == Window(START, START + timedelta(hours=2))
    budget = policy.budget("security_updates")
    assert "fits" in check_fits(policy, "security_updates", window, now=window.end - timedelta(seconds=budget))
    with pytest.raises(StepDoesNotFit, match=r"security_updates needs up to 1.5 min and the window closes in 1.4 min"):
        check_fits(policy, "security_updates", window, now=window.end - timedelta(seconds=budget - 6))
    # Half a second short: 1.49 min, which reads 1.4, never as the budget's 1.5.
    with pytest.raises(StepDoesNotFit, match=r"needs up to 1.5 min and the window closes in 1.4 min"):
        check_fits(policy, "security_updates", window, now=window.end - timedelta(seconds=budget - 0.5))
    with pytest.raises(StepDoesNotFit, match=r"the window closed \(at 04:00:00 UTC\): not started"):
        check_fits(policy, "database", window, now=window.end + timedelta(seconds=1))


def test_a_manual_window_may_be_shorter_never_longer(policy):
    assert window_of(policy, START, 30).end == START + timedelta(minutes=30)
    assert window_of(policy, START, 500).end == START + timedelta(minutes=120)


def test_a_rebuild_keeps_the_release_and_the_repository_and_says_why_in_build_metadata(policy):
    label = window_label(policy, window_of(policy, START))
    assert label == "sec.20270103"
    assert check_revision_version(f"v1.4.2+{label}") == "v1.4.2+sec.20270103"
    registry = "us-central1-docker.pkg.dev/ml-datadriven-recos/varai/recommendation"
    assert patched_image(f"{registry}:v1.4.2", "recommendation", "v1.4.2", label) == f"{registry}:v1.4.2-sec.20270103"
    # A registry with a port is not a tag; a revision without an image gets the service's name.
    assert patched_image("localhost:5000/varai/a", "a", "v1.0.0", label) == "localhost:5000/varai/a:v1.0.0-sec.20270103"
    assert patched_image("", "analytics", "v1.0.0", label) == "analytics:v1.0.0-sec.20270103"


def test_an_emergency_fix_is_named_after_its_cve_or_the_minute_it_was_asked_for():
    assert emergency_label("CVE-2026-12345", START) == "cve-2026-12345"
    assert emergency_label(None, START) == "hotfix.202701030200"
    assert check_revision_version("v1.4.2+cve-2026-12345")


def test_a_revision_version_is_a_release_tag_with_optional_build_metadata():
    for bad in ("v1.4.2+", "v1.4.2+a b", "v1.4.2+sec..1", "1.4.2+sec.1", "v1.4.2+sec.1\n"):
        with pytest.raises(ConfigError, match="is not a release tag"):
            check_revision_version(bad)
