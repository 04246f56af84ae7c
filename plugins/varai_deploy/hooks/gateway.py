"""The platform's public gateway (api.varai.ai in production) through an Airflow HTTP connection."""

from __future__ import annotations

from dataclasses import dataclass

from airflow.providers.http.hooks.http import HttpHook


@dataclass(frozen=True)
class GatewayAnswer:
    path: str
    status: int
    version: str | None
    colour: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and 200 <= self.status < 300

    def describe(self) -> str:
        if self.error:
            return f"{self.path}: {self.error}"
        return f"{self.path}: HTTP {self.status} from {self.version or '?'} ({self.colour or '?'})"


class GatewayHook(HttpHook):
    """Asks the gateway a path and reports which revision answered (X-Served-* headers)."""

    hook_name = "VarAI gateway"

    def __init__(self, http_conn_id: str, timeout: float = 5.0):
        super().__init__(method="GET", http_conn_id=http_conn_id)
        self.timeout = timeout

    @property
    def url(self) -> str:
        if not self.base_url:
            self._set_base_url(self.get_connection(self.http_conn_id))
        return self.base_url

    def probe(self, path: str) -> GatewayAnswer:
        import requests

        try:
            resp = self.run(path, extra_options={"check_response": False, "timeout": self.timeout})
        except requests.RequestException as exc:
            reason = "connection refused" if "refused" in str(exc) else str(exc)[:200]
            return GatewayAnswer(path, 0, None, None, error=f"{type(exc).__name__}: {reason}")
        return GatewayAnswer(
            path, resp.status_code, resp.headers.get("X-Served-Version"), resp.headers.get("X-Served-Colour")
        )

    def api_key(self) -> str | None:
        """The widget API key the connection holds (its password), which the release's checks use."""
        return self.get_connection(self.http_conn_id).password or None

    def call(self, method: str, path: str, headers: dict[str, str] | None = None):
        """One request as a storefront's browser or the widget would send it: the raw ``requests`` answer."""
        session = self.get_conn()
        return session.request(method, self.url + path, headers=headers or {}, timeout=self.timeout)
