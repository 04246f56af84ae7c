"""Phase 5 of the guide: every health endpoint through the public gateway, and what each now serves."""

from __future__ import annotations

from varai_deploy.config import EnvironmentConfig
from varai_deploy.hooks.gateway import GatewayHook
from varai_deploy.services import SERVICES


class PostDeployError(RuntimeError):
    pass


def check_gateway(env: EnvironmentConfig, version: str, released: list[str]) -> dict[str, dict]:
    """Each service's guide health path must answer 2xx; the released ones must come from ``version``."""
    hook = GatewayHook(env.gateway_conn_id)
    report, problems = {}, []
    for name in env.services:
        answer = hook.probe(SERVICES[name].health_path)
        report[name] = {
            "path": answer.path,
            "status": answer.status,
            "version": answer.version,
            "colour": answer.colour,
        }
        if not answer.ok:
            problems.append(answer.describe())
        elif name in released and answer.version != version:
            problems.append(f"{answer.describe()}, expected {version}")
    if problems:
        raise PostDeployError(f"post-deploy health checks through {hook.url} failed: " + "; ".join(problems))
    return report


def format_summary(report: dict[str, dict]) -> str:
    lines = [f"{'service':16} {'colour':7} version"]
    lines += [f"{name:16} {row['colour'] or '-':7} {row['version'] or '-'}" for name, row in report.items()]
    return "\n".join(lines)
