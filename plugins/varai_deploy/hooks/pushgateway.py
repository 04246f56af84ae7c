"""Prometheus Pushgateway through an Airflow HTTP connection: how a batch job leaves metrics that outlive it.

A task ends before Prometheus could scrape it, so ``database_backup`` pushes gauges (the time of the newest
verified backup, the RPO) to the Pushgateway, which Prometheus scrapes with ``honor_labels``; the alert on
``time() - <timestamp>`` then also fires when the job stops running at all. The connection (the sandbox's
``varai_pushgateway``) is of type ``http``: host, port, schema, and login/password when a gateway sits
behind basic auth.

:meth:`PushgatewayHook.push` POSTs, which replaces only the metrics of the same names in the group
(``/metrics/job/<job>/<label>/<value>...``): a success and a failure timestamp pushed separately keep
each other. Label values that are not plain URL characters travel base64url-encoded (``<label>@base64``,
the Pushgateway README's way for ``/`` and the empty value). Both calls set state, so sending one twice is
harmless: connection errors and 5xx answers are retried through ``HttpHook.run_with_advanced_retry``; what
still fails raises :class:`PushgatewayError` naming the call, the gateway's URL and its answer.
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from airflow.providers.http.hooks.http import HttpHook

if TYPE_CHECKING:
    from requests import Response

CONN_ID = "varai_pushgateway"
#: Prometheus' classic text format, what ``prometheus_client.generate_latest`` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
#: A label value that can stand in a path segment as it is (URL-unreserved characters).
PLAIN_VALUE = re.compile(r"[a-zA-Z0-9_.~-]+")


class PushgatewayError(RuntimeError):
    """A push or delete failed: ``status_code`` is the gateway's HTTP status (None: it was not reached)."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class PushgatewayHook(HttpHook):
    """Push gauges to one group of a Pushgateway, or delete the group."""

    hook_name = "Prometheus Pushgateway"
    default_conn_name = CONN_ID

    def __init__(
        self, http_conn_id: str = CONN_ID, *, timeout: float = 10.0, attempts: int = 3, retry_wait: float = 1.0
    ) -> None:
        super().__init__(method="POST", http_conn_id=http_conn_id)
        self.timeout = timeout
        self.attempts = attempts
        self.retry_wait = retry_wait

    def push(self, job: str, grouping: dict[str, str], gauges: dict[str, tuple[float, str]]) -> None:
        """Set ``gauges`` (metric name -> (value, help text)) in the group ``job`` + ``grouping``; the
        group's other metrics stay."""
        body = exposition(gauges)
        self._call("POST", job, grouping, f"pushing {', '.join(gauges)}", body)

    def delete(self, job: str, grouping: dict[str, str]) -> None:
        """Remove the whole group (every metric pushed to exactly this job and grouping)."""
        self._call("DELETE", job, grouping, "deleting the group")

    def _call(self, method: str, job: str, grouping: dict[str, str], what: str, body: bytes | None = None) -> None:
        import requests
        import tenacity

        endpoint = group_path(job, grouping)
        self.method = method
        retry_args = {
            "stop": tenacity.stop_after_attempt(self.attempts),
            "wait": tenacity.wait_exponential(multiplier=self.retry_wait, max=30),
            "retry": tenacity.retry_if_exception_type((requests.ConnectionError, requests.Timeout))
            | tenacity.retry_if_result(lambda response: response.status_code >= 500),
            # Out of attempts: the last answer for the message below, or the last exception raised.
            "retry_error_callback": lambda state: state.outcome.result(),
        }
        try:
            response: Response = self.run_with_advanced_retry(
                retry_args,
                endpoint,
                data=body,
                headers={"Content-Type": CONTENT_TYPE} if body is not None else None,
                extra_options={"check_response": False, "timeout": self.timeout},
            )
        except requests.RequestException as exc:
            raise PushgatewayError(
                f"{what} for job {job!r} failed: the Pushgateway at {self._where(endpoint)} (Airflow connection "
                f"{self.http_conn_id!r}) did not answer after {self.attempts} attempt(s): {type(exc).__name__}: {exc}"
            ) from exc
        if not response.ok:
            raise PushgatewayError(
                f"{what} for job {job!r} failed: {method} {self._where(endpoint)} answered HTTP "
                f"{response.status_code}: {(response.text or response.reason or '').strip()[:300]}",
                status_code=response.status_code,
            )
        self.log.info("Pushgateway: %s, %s %s: HTTP %s", what, method, endpoint, response.status_code)

    def _where(self, endpoint: str) -> str:
        """The request's URL without any credentials a host field might carry."""
        parts = urlsplit(self.url_from_endpoint(endpoint))
        return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def group_path(job: str, grouping: dict[str, str]) -> str:
    """``metrics/job/<job>{/<label>/<value>}``, each value URL-safe."""
    if not job:
        raise ValueError("the Pushgateway needs a job name")
    parts = ["metrics", *_segment("job", job)]
    for name, value in grouping.items():
        if not LABEL_NAME.fullmatch(name) or name == "job" or name.startswith("__"):
            raise ValueError(f"{name!r} cannot be a grouping label (a Prometheus label name other than job)")
        parts += _segment(name, value)
    return "/".join(parts)


def _segment(name: str, value: str) -> list[str]:
    if PLAIN_VALUE.fullmatch(value) and value.strip("."):  # "." and ".." would be path steps
        return [name, value]
    return [f"{name}@base64", base64.urlsafe_b64encode(value.encode()).decode() or "="]


def exposition(gauges: dict[str, tuple[float, str]]) -> bytes:
    """The gauges in Prometheus' text format (``prometheus_client`` escapes the help texts)."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    if not gauges:
        raise ValueError("nothing to push: give at least one gauge")
    registry = CollectorRegistry(auto_describe=False)
    for name, (value, help_text) in gauges.items():
        if not METRIC_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a Prometheus metric name")
        Gauge(name, help_text, registry=registry).set(value)
    return generate_latest(registry)
