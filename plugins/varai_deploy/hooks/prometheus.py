"""Prometheus' query API through an Airflow HTTP connection (``varai_metrics``)."""

from __future__ import annotations

from airflow.providers.http.hooks.http import HttpHook


class PrometheusHook(HttpHook):
    hook_name = "Prometheus query API"

    def __init__(self, http_conn_id: str):
        super().__init__(method="GET", http_conn_id=http_conn_id)

    @property
    def url(self) -> str:
        if not self.base_url:
            self._set_base_url(self.get_connection(self.http_conn_id))
        return self.base_url

    def ready(self) -> bool:
        import requests

        try:
            return self.run("/-/ready", extra_options={"check_response": False, "timeout": 5}).ok
        except requests.RequestException:
            return False
