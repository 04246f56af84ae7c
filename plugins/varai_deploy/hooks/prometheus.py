"""Prometheus' query API through an Airflow HTTP connection (``varai_metrics``).

The same PromQL runs against the sandbox's Prometheus and against Google Cloud's Managed Service for
Prometheus, whose query API (``https://monitoring.googleapis.com/v1/projects/<project>/location/global/
prometheus``, the connection's host) wants a Google access token: a connection whose ``gcp_conn_id`` extra
names a Google connection authenticates as that connection's identity (its key, impersonation or the
machine's default credentials, as the Google provider resolves them), on every query, from the workers and
from the triggerer alike. Without that extra, no Authorization is sent.
"""

from __future__ import annotations

import functools
from typing import Any

from airflow.providers.http.hooks.http import HttpHook

#: The extra naming the Google connection whose identity queries Managed Service for Prometheus.
GOOGLE_CONN_EXTRA = "gcp_conn_id"


class PrometheusHook(HttpHook):
    hook_name = "Prometheus query API"

    def __init__(self, http_conn_id: str):
        super().__init__(method="GET", http_conn_id=http_conn_id)

    @property
    def url(self) -> str:
        if not self.base_url:
            self._set_base_url(self.get_connection(self.http_conn_id))
        return self.base_url

    def auth_headers(self) -> dict[str, str]:
        """``Authorization`` with a Google access token when the connection names a Google one, else none."""
        conn_id = self.get_connection(self.http_conn_id).extra_dejson.get(GOOGLE_CONN_EXTRA)
        if not conn_id:
            return {}
        from google.auth.credentials import AnonymousCredentials
        from google.auth.transport.requests import Request

        google = self.get_connection(conn_id)
        credentials = _google_credentials(conn_id, hash((google.extra or "", google.password or "")))
        if isinstance(credentials, AnonymousCredentials):  # an anonymous connection (a stand-in): nothing to send
            return {}
        if not credentials.valid:  # a token is reused until it is about to expire, not fetched per query
            credentials.refresh(Request())
        return {"Authorization": f"Bearer {credentials.token}"}

    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None):
        session = super().get_conn(headers, extra_options)
        session.headers.pop(GOOGLE_CONN_EXTRA, None)  # HttpHook sends unknown extras as headers
        session.headers.update(self.auth_headers())
        return session

    def ready(self) -> bool:
        """The query API answers a query (Managed Service for Prometheus has no ``/-/ready``)."""
        import requests

        try:
            answer = self.run(
                "/api/v1/query", data={"query": "vector(1)"}, extra_options={"check_response": False, "timeout": 5}
            )
            return answer.ok and answer.json().get("status") == "success"
        except (requests.RequestException, ValueError):
            return False


@functools.lru_cache(maxsize=16)
def _google_credentials(conn_id: str, version: int):
    """One credentials object per Google connection, as it is now (``version``: a changed key is a new entry),
    in this process: its token serves every query until it expires, not one token request per query."""
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    return GoogleBaseHook(gcp_conn_id=conn_id).get_credentials()
