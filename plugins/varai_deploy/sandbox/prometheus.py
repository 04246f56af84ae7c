"""The sandbox's Prometheus: the Debian package's server, scraping every running service slot.

Rollback analysis queries it with PromQL exactly as production does. Its config is generated
under ``<home>/prometheus/`` on every ``up``: job ``varai-sandbox`` discovers its targets from
``<home>/prometheus_targets.json`` (rewritten by the control plane whenever a slot starts or stops)
and scrapes every second; ``honor_labels`` keeps the ``service``, ``version`` and ``colour`` labels
each process puts on its own metrics, whatever the target labels say. Job ``varai-pushgateway``
scrapes the sandbox's Pushgateway (when enabled), keeping the pushed job and grouping labels the
same way; job ``varai-cloudrun`` the local Cloud Run's request metrics (when enabled). The alert
rules (``rules/backups.yml``) are generated beside the config; a running
Prometheus is told to reload (SIGHUP) when either changed, so an ``up`` applies them without a restart.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

from varai_deploy.sandbox import processes
from varai_deploy.sandbox.cloudrun import COMPONENT as CLOUD_RUN
from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.processes import LAUNCHER_MODULE, Marker, http_status
from varai_deploy.sandbox.pushgateway import COMPONENT as PUSHGATEWAY
from varai_deploy.sandbox.settings import SandboxSettings
from varai_deploy.sandbox.state import write_text_atomic

JOB_NAME = "varai-sandbox"
PUSHGATEWAY_JOB_NAME = "varai-pushgateway"
CLOUD_RUN_JOB_NAME = "varai-cloudrun"
SCRAPE_INTERVAL = "1s"
#: A sandbox's history is only needed for the releases of the day; keep the disk use small.
RETENTION_TIME = "2d"
RETENTION_SIZE = "512MB"
INSTALL_HINT = "install it with `apt-get install prometheus` or run `make setup`"


#: The backup job pushes these gauges per (environment, database); series of one database from several
#: pushes (other jobs or instances) collapse to the largest: the newest timestamp.
_NEWEST = "max by (environment, database)"
_SAME_DATABASE = "on (environment, database)"
VERIFIED = f"{_NEWEST} (varai_backup_last_verified_timestamp_seconds)"
FAILED = f"{_NEWEST} (varai_backup_last_failure_timestamp_seconds)"
RPO = f"{_NEWEST} (varai_backup_rpo_seconds)"
_WHERE = "{{ $labels.database }} in {{ $labels.environment }}"
#: The backup alerts have no ``for``: the gauges change only when a backup ends, so there is nothing to
#: smooth over. The last one watches the Pushgateway itself.
BACKUP_ALERTS = (
    {
        "alert": "DatabaseBackupTooOld",
        # Also fires when the job stops running at all: time() moves on, the last timestamp does not.
        "expr": f"time() - {VERIFIED} > {_SAME_DATABASE} {RPO}",
        "labels": {"severity": "critical"},
        "annotations": {
            "summary": f"The newest verified backup of {_WHERE} is older than its RPO",
            "description": (
                f"The newest verified backup of {_WHERE} is {{{{ $value | humanizeDuration }}}} old, beyond its "
                "RPO: a restore now would lose more data than agreed. Find out in Airflow why database_backup "
                "has not verified one since (failing, paused, not scheduled?), fix that and trigger it; the "
                "alert clears once its verify step passes."
            ),
        },
    },
    {
        "alert": "DatabaseBackupFailed",
        # The second branch: failures and no verified backup yet at all.
        "expr": f"({FAILED} > {_SAME_DATABASE} {VERIFIED}) or ({FAILED} unless {_SAME_DATABASE} {VERIFIED})",
        "labels": {"severity": "critical"},
        "annotations": {
            "summary": f"The last backup of {_WHERE} failed",
            "description": (
                f"A backup of {_WHERE} failed at {{{{ $value | humanizeTimestamp }}}}, after the last verified "
                "one (or before any). Read the failed task's log of that database_backup run in Airflow, fix the "
                "cause and run it again before the RPO runs out; the alert clears once a newer backup is verified."
            ),
        },
    },
    {
        "alert": "BackupMetricsUnreachable",
        # The two alerts above judge what the Pushgateway holds: with it unreachable they would stay
        # silent whatever happens to the backups. 15 s: longer than a restart of it, short for a sandbox.
        "expr": 'up{job="varai-pushgateway"} == 0',
        "for": "15s",
        "labels": {"severity": "critical"},
        "annotations": {
            "summary": "Prometheus cannot reach the Pushgateway: the backup alerts are blind",
            "description": (
                "Prometheus has not scraped the Pushgateway ({{ $labels.instance }}) for 15 s, so a late or "
                "failed backup would raise no alert. Start it again (`python -m varai_deploy.sandbox up`); it "
                "keeps what was pushed on disk, and the backup alerts judge again from its next scrape."
            ),
        },
    },
)


#: Users' requests to the services, without the health probes.
_USERS = f'job="{JOB_NAME}",path_group!="health"'
#: The guide's alerting (critical: service down, high error rate; warning: high response time, resource
#: usage) on the services' own series, with its key metrics as thresholds (errors < 1 %, p95 < 2 s); the
#: windows are the sandbox's (seconds), where production's would be minutes.
SERVICE_ALERTS = (
    {
        "alert": "VaraiServiceDown",
        "expr": f'max by (service) (up{{job="{JOB_NAME}"}}) == 0',
        "for": "10s",
        "labels": {"severity": "critical"},
        "annotations": {
            "summary": "{{ $labels.service }} is down: no process of it answers Prometheus",
            "description": (
                "No process of {{ $labels.service }} has answered a scrape for 10 s. Check `varai-sandbox "
                "status` and the service's log under .sandbox/logs/; the supervisor restarts what died."
            ),
        },
    },
    {
        "alert": "VaraiHighErrorRate",
        "expr": (
            f'sum by (service) (rate(varai_http_requests_total{{{_USERS},code=~"5.."}}[30s])) / '
            f"sum by (service) (rate(varai_http_requests_total{{{_USERS}}}[30s])) > 0.01"
        ),
        "for": "30s",
        "labels": {"severity": "critical"},
        "annotations": {
            "summary": "{{ $labels.service }} fails {{ $value | humanizePercentage }} of requests (above 1 %)",
            "description": (
                "More than 1 % of {{ $labels.service }}'s answers to users were server errors for 30 s. "
                "If a release just went out, ai_discovery_rollback puts the previous revision back."
            ),
        },
    },
    {
        "alert": "VaraiHighResponseTime",
        "expr": (
            "histogram_quantile(0.95, sum by (service, le) "
            f"(rate(varai_http_request_duration_seconds_bucket{{{_USERS}}}[30s]))) > 2"
        ),
        "for": "30s",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "{{ $labels.service }} answers in {{ $value | humanizeDuration }} at p95 (above 2 s)",
            "description": "The 95th percentile of {{ $labels.service }}'s answers took more than 2 s for 30 s.",
        },
    },
    {
        "alert": "VaraiHighResourceUsage",
        "expr": (
            f'max by (service) (process_resident_memory_bytes{{job="{JOB_NAME}"}}) > 512e6 or '
            f'max by (service) (rate(process_cpu_seconds_total{{job="{JOB_NAME}"}}[30s])) > 0.9'
        ),
        "for": "60s",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "{{ $labels.service }} uses more than 512 MB or 90 % of a core",
            "description": "A process of {{ $labels.service }} used more than 512 MB or 90 % of a core for a minute.",
        },
    },
)


def rules_file(settings: SandboxSettings) -> Path:
    return settings.prometheus_dir / "rules" / "backups.yml"


def service_rules_file(settings: SandboxSettings) -> Path:
    return settings.prometheus_dir / "rules" / "services.yml"


def rules_text(name: str = "varai-backups", rules: tuple[dict, ...] = BACKUP_ALERTS) -> str:
    """One alert rules file (one group), as ``promtool check rules`` accepts it."""
    import yaml

    groups = {"groups": [{"name": name, "rules": [dict(rule) for rule in rules]}]}
    header = "# Generated by `python -m varai_deploy.sandbox up` (varai_deploy/sandbox/prometheus.py).\n"
    return header + yaml.safe_dump(groups, sort_keys=False, width=1000, allow_unicode=True)


def config_text(settings: SandboxSettings) -> str:
    """prometheus.yml; JSON strings are valid YAML scalars, so paths need no further quoting."""
    targets = json.dumps(str(settings.scrape_targets_file))
    text = (
        "# Generated by `python -m varai_deploy.sandbox up` (varai_deploy/sandbox/prometheus.py);\n"
        "# rewritten on every up, so edits here do not last.\n"
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL}\n"
        f"  scrape_timeout: {SCRAPE_INTERVAL}\n"
        f"  evaluation_interval: {SCRAPE_INTERVAL}\n"
        f"rule_files: [{json.dumps(str(rules_file(settings)))}, {json.dumps(str(service_rules_file(settings)))}]\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB_NAME}\n"
        "    # The services label their own series with service, version and colour: keep them.\n"
        "    honor_labels: true\n"
        "    file_sd_configs:\n"
        f"      - files: [{targets}]\n"
        f"        refresh_interval: {SCRAPE_INTERVAL}\n"
    )
    for component, job, why in (
        (PUSHGATEWAY, PUSHGATEWAY_JOB_NAME, "Pushed series carry the pushing job's name and grouping labels"),
        (CLOUD_RUN, CLOUD_RUN_JOB_NAME, "Cloud Run's request metrics name their service and revision"),
    ):
        if component.name in (settings.components or ()):
            target = json.dumps(f"{settings.host}:{settings.component_port(component.name)}")
            text += (
                f"  - job_name: {job}\n"
                f"    # {why}: keep them.\n"
                "    honor_labels: true\n"
                "    static_configs:\n"
                f"      - targets: [{target}]\n"
            )
    return text


def write_config(settings: SandboxSettings) -> Path:
    """Write the rules and prometheus.yml (rules first: the config names them); when either changed,
    a Prometheus already serving this home reloads them."""
    settings.prometheus_data_dir.mkdir(parents=True, exist_ok=True)
    rules_file(settings).parent.mkdir(parents=True, exist_ok=True)
    path = settings.prometheus_config_file
    rules_changed = _write_changed(rules_file(settings), rules_text())
    rules_changed |= _write_changed(service_rules_file(settings), rules_text("varai-services", SERVICE_ALERTS))
    if _write_changed(path, config_text(settings)) or rules_changed:
        _reload(settings)
    return path


def _write_changed(path: Path, text: str) -> bool:
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except OSError:
        pass
    write_text_atomic(path, text, 0o644)
    return True


def _reload(settings: SandboxSettings) -> None:
    """SIGHUP to this home's running Prometheus, never to its launcher wrapper (which SIGHUP would end)."""
    running = marker(settings, int(settings.prometheus_port or 0))
    for pid in processes.find_ours(settings.home, [running]):
        if processes.is_ours(pid, running) and not processes.runs_module(pid, LAUNCHER_MODULE):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)


def check_installed(settings: SandboxSettings) -> None:
    binary = settings.prometheus_binary
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise SandboxError(f"Prometheus is not installed ({binary} is missing); {INSTALL_HINT}")


def marker(settings: SandboxSettings, port: int) -> Marker:
    """Its command line; ``--config.file <home>/prometheus/prometheus.yml`` is how
    ``processes.find_ours`` knows it belongs to this home."""
    return Marker(
        "prometheus",
        (
            ("--config.file", str(settings.prometheus_config_file)),
            ("--storage.tsdb.path", str(settings.prometheus_data_dir)),
            ("--storage.tsdb.retention.time", RETENTION_TIME),
            ("--storage.tsdb.retention.size", RETENTION_SIZE),
            ("--web.listen-address", f"{settings.host}:{port}"),
        ),
        program=settings.prometheus_binary,
    )


def is_ready(host: str, port: int, timeout: float = 1.0) -> bool:
    """``/-/ready`` answers 200 once the TSDB is open and the config loaded."""
    return http_status(host, port, "/-/ready", timeout=timeout) == 200
