"""What the maintenance window decides: its bounds, whether a step fits, what a security update deploys.

Pure functions over the environment's config and the platform, so the DAG stays wiring and the
rules are tested without Airflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from varai_deploy.config import EnvironmentConfig, MaintenancePolicy, release_of


class StepDoesNotFit(Exception):
    """A step's budget does not fit before the window closes: it must not start."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Window:
        return cls(datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"]))

    def describe(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M}-{self.end:%H:%M} UTC"


def policy_of(env: EnvironmentConfig) -> MaintenancePolicy:
    from varai_deploy.config import ConfigError

    if env.maintenance is None:
        raise ConfigError(f"{env.name} has no maintenance window: add a maintenance section to its config")
    return env.maintenance


def opened_at(data_interval_start: datetime | None, run_after: datetime | None) -> datetime:
    """When a run's window opens: its data interval's start (scheduled; or manual with a logical
    date), else when the run was created (a manual run without a logical date has no interval)."""
    return data_interval_start or run_after or datetime.now(UTC)


def window_of(policy: MaintenancePolicy, start: datetime, length_minutes: float | None = None) -> Window:
    """The window opening at ``start``: the configured length, or shorter for a manual window."""
    minutes = policy.length_minutes if length_minutes is None else min(float(length_minutes), policy.length_minutes)
    start = start.astimezone(UTC)
    return Window(start, start + timedelta(minutes=minutes))


def check_fits(policy: MaintenancePolicy, step: str, window: Window, now: datetime | None = None) -> str:
    """Raises :class:`StepDoesNotFit` unless ``step``'s whole budget fits before the window closes."""
    now = now or datetime.now(UTC)
    budget = policy.budget(step)
    left = (window.end - now).total_seconds()
    if left < budget:
        # Rounded down: a window a moment short of the budget never reads as long as the budget.
        closes = "closed" if left <= 0 else f"closes in {math.floor(left / 6) / 10:.1f} min"
        raise StepDoesNotFit(
            f"{step} needs up to {budget / 60:g} min and the window {closes} "
            f"(at {window.end:%H:%M:%S} UTC): not started"
        )
    return f"{step}: {budget / 60:g} min budget fits, {left / 60:.1f} min left in the window"


def patched_image(image: str, service: str, release: str, label: str) -> str:
    """The image of ``release`` rebuilt with the month's security updates: same repository, tag
    ``<release>-<label>`` (CI pushes it; an image tag cannot carry semver's ``+``)."""
    repository = image.rsplit(":", 1)[0] if image and ":" in image.rsplit("/", 1)[-1] else (image or service)
    return f"{repository}:{release}-{label}"


def window_label(policy: MaintenancePolicy, window: Window) -> str:
    """The build metadata of a window's rebuilds: ``sec.20261206``."""
    return f"{policy.patch_label}.{window.start:%Y%m%d}"


def emergency_label(cve: str | None, at: datetime) -> str:
    """The build metadata of an emergency fix: the CVE it fixes (``cve-2026-12345``), else ``hotfix.<minute>``."""
    return cve.lower() if cve else f"hotfix.{at:%Y%m%d%H%M}"


def patch_targets(
    env: EnvironmentConfig, platform: Any, label: str, services: list[str] | tuple[str, ...] | None = None
) -> list[dict[str, Any]]:
    """One target per chosen service that serves something: its live release, rebuilt as ``label``
    (``v1.4.2+<label>``). A service already on that rebuild is targeted too: the deploy step finds
    it live and passed, a no-op."""
    targets = []
    for service in env.services:
        if services is not None and service not in services:
            continue
        live = platform.current_revision(service)
        if not live:
            continue
        release = release_of(live["version"])
        targets.append(
            {
                "service": service,
                "version": f"{release}+{label}",
                "infra": {"images": {service: patched_image(live.get("image", ""), service, release, label)}},
            }
        )
    return targets
