"""Phase 5 of the guide: every health endpoint through the public gateway, and what each now serves."""

from __future__ import annotations

import time
from collections.abc import Callable

from varai_deploy.config import EnvironmentConfig
from varai_deploy.hooks.gateway import GatewayAnswer, GatewayHook
from varai_deploy.services import SERVICES


class PostDeployError(RuntimeError):
    pass


def check_gateway(
    env: EnvironmentConfig, version: str, released: list[str], sleep: Callable[[float], None] = time.sleep
) -> dict[str, dict]:
    """Each service's guide health path must answer 2xx; the released ones must come from ``version``.

    Judged as the analysis judges health, the guide's rollback trigger: a service fails only after
    ``analysis.health_failures`` failed answers in a row, ``analysis.interval_seconds`` apart, so one
    503 from a revision that the analysis saw flap and passed does not fail the release it passed.
    Only the services still failing are asked again.
    """
    hook = GatewayHook(env.gateway_conn_id)
    policy = env.analysis
    answers: dict[str, GatewayAnswer] = {}
    failing = list(env.services)
    for attempt in range(policy.health_failures):
        if attempt:
            sleep(policy.interval_seconds)
        for name in failing:
            answers[name] = hook.probe(SERVICES[name].health_path)
        failing = [name for name in failing if _problem(answers[name], version if name in released else None)]
        if not failing:
            break
    report = {
        name: {"path": a.path, "status": a.status, "version": a.version, "colour": a.colour}
        for name, a in answers.items()
    }
    if failing:
        problems = [_problem(answers[name], version if name in released else None) for name in failing]
        raise PostDeployError(
            f"post-deploy health checks through {hook.url} failed {policy.health_failures} times in a row, "
            f"{policy.interval_seconds:g} s apart: " + "; ".join(problems)
        )
    return report


def _problem(answer: GatewayAnswer, expected_version: str | None) -> str | None:
    if not answer.ok:
        return answer.describe()
    if expected_version and answer.version != expected_version:
        return f"{answer.describe()}, expected {expected_version}"
    return None


def format_summary(report: dict[str, dict]) -> str:
    lines = [f"{'service':16} {'colour':7} version"]
    lines += [f"{name:16} {row['colour'] or '-':7} {row['version'] or '-'}" for name, row in report.items()]
    return "\n".join(lines)
