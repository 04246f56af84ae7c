"""The steady-state hypothesis a drill starts from and recovers to, as users and operators see it.

Holds when every service answers healthy through the public gateway, the services' error ratio
(health probes left out) stays at most ``max_error_ratio`` over the window, and the newest row of
each watched table is at most ``writes_within_seconds`` old: the services are up, serve well, and
keep writing their data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from varai_deploy.config import DrillPolicy, EnvironmentConfig
from varai_deploy.metrics.rules import REQUESTS


@dataclass(frozen=True)
class SteadyState:
    problems: tuple[str, ...]
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        return "steady state holds" if self.holds else "steady state does not hold: " + "; ".join(self.problems)


def error_ratio_query(window_seconds: float) -> tuple[str, str]:
    """(5xx rate, all requests' rate) of every service, health probes left out."""
    window = f"{int(window_seconds)}s"
    errors = f'sum(rate({REQUESTS}{{path_group!="health",code=~"5.."}}[{window}]))'
    total = f'sum(rate({REQUESTS}{{path_group!="health"}}[{window}]))'
    return errors, total


def _gateway(env: EnvironmentConfig) -> tuple[list[str], dict[str, str]]:
    from varai_deploy.hooks.gateway import GatewayHook
    from varai_deploy.services import SERVICES

    hook = GatewayHook(env.gateway_conn_id)
    problems, served = [], {}
    for name in env.services:
        answer = hook.probe(SERVICES[name].health_path)
        served[name] = answer.describe()
        if not answer.ok:
            problems.append(f"{name} is not healthy through the gateway ({answer.describe()})")
    return problems, served


def _scalar(hook: Any, promql: str) -> float | None:
    answer = hook.run("/api/v1/query", data={"query": promql}, extra_options={"timeout": 5})
    result = answer.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _error_ratio(env: EnvironmentConfig, policy: DrillPolicy) -> tuple[list[str], float | None]:
    import requests

    from varai_deploy.hooks.prometheus import PrometheusHook

    hook = PrometheusHook(env.metrics_conn_id)
    errors, total = error_ratio_query(policy.steady_window_seconds)
    try:
        served, failed = _scalar(hook, total), _scalar(hook, errors) or 0.0
    except (requests.RequestException, KeyError, ValueError) as exc:
        return [f"the error ratio cannot be read from {hook.url}: {type(exc).__name__}: {exc}"], None
    if not served:
        return [f"no requests in the last {policy.steady_window_seconds:g} s: nothing to judge"], None
    ratio = failed / served
    if ratio > policy.max_error_ratio:
        return [
            f"error ratio {ratio:.2%} over {policy.steady_window_seconds:g} s, above {policy.max_error_ratio:.2%}"
        ], ratio
    return [], ratio


def newest_rows(env: EnvironmentConfig, policy: DrillPolicy) -> dict[str, datetime | str | None]:
    """Each watched table's newest ``created_at`` (None: empty), or why it could not be read."""
    from psycopg2 import Error, sql

    from varai_deploy.backups.postgres import BackupError, Database

    newest: dict[str, datetime | str | None] = {}
    try:
        conn = Database.from_connection(env.connections[policy.database]).connect()
    except BackupError as exc:  # the database itself is gone or down: no table can be read
        return dict.fromkeys(policy.tables, str(exc))
    conn.autocommit = True
    try:
        for table in policy.tables:
            try:
                with conn.cursor() as cur:
                    cur.execute(sql.SQL("SELECT max(created_at) FROM {}").format(sql.Identifier(table)))
                    newest[table] = cur.fetchone()[0]
            except Error as exc:
                newest[table] = str(exc).strip().splitlines()[0]
    finally:
        conn.close()
    return newest


def _writes(env: EnvironmentConfig, policy: DrillPolicy, now: datetime) -> tuple[list[str], dict[str, float | None]]:
    problems, ages = [], {}
    for table, newest in newest_rows(env, policy).items():
        if isinstance(newest, str):
            problems.append(f"{table} cannot be read: {newest}")
            ages[table] = None
        elif newest is None:
            problems.append(f"{table} is empty: the services write nothing")
            ages[table] = None
        else:
            ages[table] = round((now - newest).total_seconds(), 1)
            if ages[table] > policy.writes_within_seconds:
                problems.append(
                    f"{table}'s newest row is {ages[table]:g} s old (at most {policy.writes_within_seconds:g})"
                )
    return problems, ages


def observe(env: EnvironmentConfig, policy: DrillPolicy) -> SteadyState:
    now = datetime.now(UTC)
    gateway_problems, served = _gateway(env)
    ratio_problems, ratio = _error_ratio(env, policy)
    write_problems, ages = _writes(env, policy, now)
    figures = {"at": now.isoformat(), "gateway": served, "error_ratio": ratio, "newest_row_age_seconds": ages}
    return SteadyState(tuple(gateway_problems + ratio_problems + write_problems), figures)


def gone(env: EnvironmentConfig, policy: DrillPolicy) -> dict[str, Any] | None:
    """The figures of a steady state that does not hold (a break noticed), else None."""
    state = observe(env, policy)
    return None if state.holds else {**state.figures, "holds": False, "problems": list(state.problems)}
