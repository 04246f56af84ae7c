"""The five backend services of the AI Discovery platform and how the gateway reaches them.

This is product knowledge (the deployment guide's "Services Deployed" and "Health Check
Endpoints"), identical in every environment, so it lives in code rather than in per-environment
config.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    name: str
    #: Path prefix the gateway routes to this service ("" = the gateway's own paths).
    prefix: str
    #: Health path as seen through the gateway (the guide's curl list).
    health_path: str
    #: One working endpoint, as seen through the gateway: (method, path).
    probe: tuple[str, str]


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service("ai-discovery", "/ai", "/ai/health", ("GET", "/ai/discover?q=round+glasses")),
        Service("face-analysis", "/face", "/face/health", ("POST", "/face/analyze")),
        Service(
            "recommendation",
            "/recommendations",
            "/recommendations/health",
            ("GET", "/recommendations?face_shape=oval"),
        ),
        Service("analytics", "/analytics", "/analytics/health", ("POST", "/analytics/events")),
        Service("api-gateway", "", "/health", ("GET", "/api/status")),
    )
}

SERVICE_NAMES: tuple[str, ...] = tuple(SERVICES)


def service_for_path(path: str) -> Service:
    """The service whose prefix owns ``path``; everything else belongs to the api-gateway."""
    for svc in SERVICES.values():
        if svc.prefix and (
            path == svc.prefix or path.startswith(svc.prefix + "/") or path.startswith(svc.prefix + "?")
        ):
            return svc
    return SERVICES["api-gateway"]
