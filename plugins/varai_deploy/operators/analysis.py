"""Judge a release after its switch (deferred), and put traffic back when the judgement says so."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from varai_deploy.operators.base import EnvironmentOperator
from varai_deploy.probe_identity import probe_conn_id


def as_list(value: Any) -> list:
    """Airflow hands over a lone mapped result unwrapped, and missing ones as None."""
    if value is None:
        return []
    items = [value] if isinstance(value, dict) else list(value)
    return [item for item in items if item]


def describe_verdict(verdict: dict[str, Any] | None) -> str:
    if not verdict:
        return "the switch or its verification through the gateway failed"
    rule, service, value, threshold = (verdict.get(k) for k in ("rule", "service", "value", "threshold"))
    version = verdict.get("version")
    if rule == "error_rate":
        return (
            f"error rate of {service} {version} was {value:.1%} for {verdict['window_seconds']}s "
            f"(threshold {threshold:.1%})"
        )
    if rule == "latency_p95":
        return (
            f"p95 latency of {service} {version} was {value:.2f}s for {verdict['window_seconds']}s "
            f"(threshold {threshold:g}s)"
        )
    if rule == "health":
        return f"{service} {version} failed {value} consecutive health checks (threshold {threshold})"
    if rule == "search":
        return f"the widget's search through the gateway failed on {service} {version}: {verdict.get('reason')}"
    if rule == "inconclusive":
        return f"analysis inconclusive after {verdict['window_seconds']:g}s, failing safe: {verdict.get('reason')}"
    return f"analysis passed after {verdict.get('seconds_after_switch')}s: " + "; ".join(measurements(verdict))


#: How each metric rule reads in a verdict, and how its value is shown.
RULE_WORDS = {"error_rate": ("error rate", "{:.1%}"), "latency_p95": ("p95 latency", "{:.2f}s")}


def measurements(verdict: dict[str, Any]) -> list[str]:
    """What the analysis measured, per rule and service, against each threshold: why it passed."""
    lines = []
    for rule, (words, shown) in RULE_WORDS.items():
        measured = (verdict.get("measured") or {}).get(rule)
        if not measured:
            lines.append(f"{words} not judged (its window had not passed)")
            continue
        values = ", ".join(
            f"{service} {shown.format(value)}" if value == value else f"{service} no data"  # NaN: no requests
            for service, value in sorted(measured["values"].items())
        )
        threshold = shown.format(measured["threshold"]) if rule == "error_rate" else f"{measured['threshold']:g}s"
        lines.append(f"{words} {values or 'no data'} (threshold {threshold}, over {measured['window_seconds']}s)")
    for service, seen in sorted((verdict.get("health") or {}).items()):
        lines.append(
            f"health {service}: {seen['failed']} of {seen['checks']} checks failed, at most "
            f"{seen['longest_failing_streak']} in a row (threshold {verdict.get('health_failures')} in a row)"
        )
    requests = verdict.get("requests") or {}
    if requests:
        served = ", ".join(f"{service} {count:.0f}" for service, count in sorted(requests.items()))
        lines.append(f"requests {served} (at least {verdict.get('min_requests')} each)")
    return lines


class ReleaseAnalysisOperator(EnvironmentOperator):
    """Defers to :class:`ReleaseAnalysisTrigger` over every service this run switched; returns the verdict.

    A failed rule is a verdict, not an error; the task keeps the DAG's retry for errors, among them
    Airflow 3.3 failing a resumed deferred task on a stale executor event (apache/airflow#72716),
    which would otherwise roll a healthy release back.
    """

    template_fields = ("environment", "switched")

    def __init__(self, *, switched: Any, **kwargs):
        super().__init__(**kwargs)
        self.switched = switched

    def execute(self, context) -> None:
        from varai_deploy.hooks.prometheus import PrometheusHook
        from varai_deploy.triggers.analysis import ReleaseAnalysisTrigger

        switched = as_list(self.switched)
        if not switched:
            raise AirflowSkipException("no service was switched: nothing to analyse")
        policy = self.env_config.analysis
        switched_at = max(datetime.fromisoformat(s["switched_at"]).timestamp() for s in switched)
        health = {s["service"]: s["live"]["url"].rstrip("/") + "/health" for s in switched}
        # Each service is judged on the version it was switched to: one release's, or each its own rebuild.
        versions = {s["service"]: s["live"]["version"] for s in switched}
        self.log.info(
            "Analysing %s %s for %ss (deadline %ss)",
            ", ".join(sorted(health)),
            ", ".join(sorted(set(versions.values()))),
            policy.duration_seconds,
            policy.deadline_seconds,
        )
        self.defer(
            trigger=ReleaseAnalysisTrigger(
                metrics_url=PrometheusHook(self.env_config.metrics_conn_id).url,
                metrics_conn_id=self.env_config.metrics_conn_id,
                version=next(iter(versions.values())) if len(set(versions.values())) == 1 else versions,
                health_urls=health,
                switched_at=switched_at,
                policy=dataclasses.asdict(policy),
                # What the metrics call each switched revision: its version, or (Cloud Run) its name.
                revision_labels={s["service"]: s["live"][policy.series.revision_value] for s in switched},
                gcp_conn_id=probe_conn_id(self.env_config),
                audiences={s["service"]: s["live"]["audience"] for s in switched if s["live"].get("audience")},
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=policy.deadline_seconds + 120),
        )

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        """The verdict, written to the ledger for every switched service before anything acts on it,
        with the switches it judged (what to retire when it passed)."""
        from varai_deploy.ledger import FAILED, PASSED, Actor

        actor = Actor.from_context(context)
        passed = event["verdict"] == "pass"
        if passed:
            event = self._with_search(event)
            passed = event["verdict"] == "pass"
        reason = describe_verdict(event)
        for switch in as_list(self.switched):
            version = switch["live"]["version"]
            self.ledger.record_verdict(actor, switch["service"], version, PASSED if passed else FAILED, reason)
        if passed:  # a line per rule, so each value sits in view next to its threshold
            measured = "\n".join(f"  {line}" for line in measurements(event))
            self.log.info("Verdict pass after %ss, measured:\n%s", event.get("seconds_after_switch"), measured)
        else:
            self.log.info("Verdict %s: %s", event["verdict"], reason)
        return {**event, "switches": as_list(self.switched)}

    def _with_search(self, event: dict[str, Any]) -> dict[str, Any]:
        """The metrics passed; with ai-discovery or the api-gateway switched, the widget's search through the
        gateway must also answer suggestions (from ai-discovery's new version, when that was switched), or the
        verdict is a rollback: a search that finds nothing, or a gateway refusing storefronts, looks healthy
        to every metric rule."""
        from varai_deploy.gateway_checks import check_search

        switched = {s["service"]: s["live"]["version"] for s in as_list(self.switched)}
        searched = [name for name in ("ai-discovery", "api-gateway") if name in switched]
        if not searched:
            return event
        version = switched[searched[0]]
        released = ["ai-discovery"] if "ai-discovery" in switched else []
        try:
            found = check_search(self.env_config, version, released)
        except Exception as exc:  # anything short of suggestions (from the new version) fails safe
            return {
                **event,
                "verdict": "rollback",
                "rule": "search",
                "service": searched[0],
                "version": version,
                "reason": str(exc) or type(exc).__name__,
            }
        self.log.info(
            "The widget's search through the gateway: %s suggestions from %s", found["suggestions"], found["version"]
        )
        return {**event, "search": found}
