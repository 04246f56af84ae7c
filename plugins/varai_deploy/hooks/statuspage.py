"""Atlassian Statuspage (REST API v1) through an Airflow HTTP connection: maintenance windows and incidents.

The connection (its id is the caller's: the environment's ``connections.statuspage``, ``varai_statuspage``)
is of type ``http``: host ``api.statuspage.io``, schema ``https``, password = an API key (Statuspage > API
info; sent as ``Authorization: OAuth <key>``, masked, never logged), extra ``{"page_id": "<the page's id>"}``.
The sandbox's stand-in serves the same API on loopback behind a connection with the same fields.

Every write is idempotent, so an Airflow retry after a lost answer converges instead of announcing twice:
a maintenance is found again by name and start, an open incident by name, and an update that the incident
already shows (same status, same last message) is not posted again. An answer other than 2xx raises
:class:`StatusPageError` naming the call, the HTTP status and the API's own message.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.http.hooks.http import HttpHook

if TYPE_CHECKING:
    from requests import Response, Session

#: What :meth:`StatusPageHook.incidents` lists, by the API's endpoint.
KINDS = {"all": "incidents", "scheduled": "incidents/scheduled", "unresolved": "incidents/unresolved"}
SCHEDULED_STATUSES = ("scheduled", "in_progress", "verifying", "completed")
OPEN_STATUSES = ("investigating", "identified", "monitoring")
PAGE_ID_EXTRA = "page_id"
#: The API's largest page (``limit`` / ``per_page``).
PAGE_SIZE = 100
REQUEST_TIMEOUT = 30.0


class StatusPageError(RuntimeError):
    """A Statuspage call failed: ``status_code`` is the HTTP status (None: the API was not reached or the
    connection is incomplete), ``api_error`` the API's message."""

    def __init__(self, message: str, *, status_code: int | None = None, api_error: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.api_error = api_error


class StatusPageHook(HttpHook):
    """Schedule and move maintenance windows, open and move incidents, read them back."""

    hook_name = "Atlassian Statuspage"

    def __init__(self, http_conn_id: str, *, timeout: float = REQUEST_TIMEOUT, page_size: int = PAGE_SIZE) -> None:
        super().__init__(method="GET", http_conn_id=http_conn_id)
        self.timeout = timeout
        self.page_size = page_size
        self._session: Session | None = None
        self._page_id: str | None = None

    # -- the API ----------------------------------------------------------------------------------
    def schedule_maintenance(
        self,
        name: str,
        body: str,
        scheduled_for: datetime | str,
        scheduled_until: datetime | str,
        *,
        impact: str = "maintenance",
        auto_transitions: bool = False,
    ) -> dict[str, Any]:
        """The scheduled maintenance ``name`` starting at ``scheduled_for``: the one already on the page, or
        a new one. ``impact`` is the API's ``impact_override``; ``auto_transitions`` lets Statuspage move it
        to in progress and completed at the window's edges (and the components with it) by itself, which
        only suits a window nobody drives. Naive times count as UTC."""
        start, end = _utc(scheduled_for), _utc(scheduled_until)
        # The scheduled list first (a retry soon after); then a search by name, which finds it whatever
        # its status and whichever maintenances the API counts as scheduled.
        for incident in itertools.chain(self._listed("scheduled"), self._listed("all", q=name)):
            if incident.get("name") == name and _same_time(incident.get("scheduled_for"), start):
                self.log.info(
                    "Statuspage: maintenance %r at %s is already scheduled (%s, %s); not posting it again",
                    name,
                    _iso(start),
                    incident.get("id"),
                    incident.get("status"),
                )
                return incident
        created = self._call(
            "POST",
            "incidents",
            incident={
                "name": name,
                "status": "scheduled",
                "impact_override": impact,
                "scheduled_for": _iso(start),
                "scheduled_until": _iso(end),
                "body": body,
                "scheduled_auto_in_progress": auto_transitions,
                "scheduled_auto_completed": auto_transitions,
                "auto_transition_to_maintenance_state": auto_transitions,
                "auto_transition_to_operational_state": auto_transitions,
                "deliver_notifications": True,
            },
        )
        self.log.info("Statuspage: scheduled maintenance %r %s..%s as %s", name, _iso(start), _iso(end), created["id"])
        return created

    def open_incident(
        self, name: str, body: str, *, status: str = "investigating", impact: str = "major"
    ) -> dict[str, Any]:
        """The unresolved realtime incident ``name``: the one already open, or a new one with ``status``
        (investigating, identified or monitoring: a resolved one could not be found again on a retry)."""
        if status not in OPEN_STATUSES:
            raise ValueError(f"open an incident as one of {', '.join(OPEN_STATUSES)}, not {status!r}; then update it")
        for incident in self._listed("unresolved"):
            if incident.get("name") == name and not incident.get("scheduled_for"):
                self.log.info(
                    "Statuspage: incident %r is already open (%s, %s); not posting it again",
                    name,
                    incident.get("id"),
                    incident.get("status"),
                )
                return incident
        created = self._call(
            "POST",
            "incidents",
            incident={"name": name, "status": status, "impact_override": impact, "body": body},
        )
        self.log.info("Statuspage: opened incident %r as %s (%s)", name, created["id"], status)
        return created

    def update(self, incident_id: str, status: str, body: str) -> dict[str, Any]:
        """Move the incident to ``status`` with the update ``body``; nothing is posted when the incident
        already shows both (the retry of an update whose answer was lost)."""
        current = self.get(incident_id)
        updates = current.get("incident_updates") or []
        if current.get("status") == status and updates and updates[0].get("body") == body:
            self.log.info("Statuspage: %s already shows %s with this update; nothing to post", incident_id, status)
            return current
        updated = self._call("PATCH", f"incidents/{incident_id}", incident={"status": status, "body": body})
        self.log.info("Statuspage: %s %r is now %s", incident_id, updated.get("name"), updated.get("status"))
        return updated

    def incidents(self, kind: str = "all", *, q: str | None = None) -> list[dict[str, Any]]:
        """Every incident of the page (``all``; ``q``: only those with this text in their name, status or
        updates), every scheduled maintenance (``scheduled``) or every unresolved incident (``unresolved``),
        newest first, as the API lists them."""
        return list(self._listed(kind, q=q))

    def get(self, incident_id: str) -> dict[str, Any]:
        return self._call("GET", f"incidents/{incident_id}")

    @property
    def page_id(self) -> str:
        self._authorised()
        assert self._page_id is not None
        return self._page_id

    # -- plumbing ---------------------------------------------------------------------------------
    def _listed(self, kind: str, q: str | None = None) -> Iterator[dict[str, Any]]:
        """The list page by page, fetched only as far as the caller reads."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if q is not None and kind != "all":
            raise ValueError(f"the API searches (q) only the list of all incidents, not {kind!r}")
        size = "limit" if kind == "all" else "per_page"
        query = {} if q is None else {"q": q}
        number = 1
        while True:
            batch = self._call("GET", KINDS[kind], params={**query, size: self.page_size, "page": number})
            if not isinstance(batch, list):
                raise StatusPageError(f"Statuspage GET {KINDS[kind]} answered a {type(batch).__name__}, not a list")
            yield from batch
            if len(batch) < self.page_size:
                return
            number += 1

    def _authorised(self) -> Session:
        """A session carrying the key (the provider's session: base URL, extras, keep-alive adapter)."""
        if self._session is not None:
            return self._session
        from airflow.exceptions import AirflowNotFoundException
        from airflow.sdk.log import mask_secret

        try:
            conn = self.get_connection(self.http_conn_id)
        except AirflowNotFoundException:
            raise StatusPageError(
                f"the Airflow connection {self.http_conn_id!r} is not defined; add it (conn_type http, host "
                'api.statuspage.io, schema https, password = a Statuspage API key, extra {"page_id": "..."})'
            ) from None
        page_id = conn.extra_dejson.get(PAGE_ID_EXTRA)
        if not conn.password:
            raise StatusPageError(
                f"the Airflow connection {self.http_conn_id!r} has no API key: set its password to a "
                "Statuspage API key (Statuspage > API info)"
            )
        if not isinstance(page_id, str) or not page_id:
            raise StatusPageError(
                f'the Airflow connection {self.http_conn_id!r} names no page: set its extra to {{"page_id": "..."}} '
                "(the id in the page's API info)"
            )
        mask_secret(conn.password)
        session = self.get_conn()
        session.auth = None
        session.headers["Authorization"] = f"OAuth {conn.password}"
        session.headers["Accept"] = "application/json"
        self._session, self._page_id = session, page_id
        return session

    def _configure_session_from_extra(self, session: Session, connection: Any, extra_options: dict) -> Session:
        # The provider sends a connection's unknown extras as headers; the page id is not one.
        session = super()._configure_session_from_extra(session, connection, extra_options)
        session.headers.pop(PAGE_ID_EXTRA, None)
        return session

    def _call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, incident: dict | None = None
    ) -> Any:
        """One request under ``v1/pages/<page_id>/``; its JSON, or :class:`StatusPageError`."""
        import requests

        session = self._authorised()
        endpoint = f"v1/pages/{self._page_id}/{path}"
        url = self.url_from_endpoint(endpoint)
        payload = None if incident is None else {"incident": incident}
        try:
            response = session.request(method, url, params=params, json=payload, timeout=self.timeout)
        except requests.RequestException as exc:
            raise StatusPageError(
                f"cannot reach Statuspage at {url} (Airflow connection {self.http_conn_id!r}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not response.ok:
            message = _api_error(response)
            raise StatusPageError(
                f"Statuspage {method} /{endpoint} failed with HTTP {response.status_code}: {message}",
                status_code=response.status_code,
                api_error=message,
            )
        try:
            return response.json()
        except ValueError:
            raise StatusPageError(
                f"Statuspage {method} /{endpoint} answered HTTP {response.status_code} without JSON",
                status_code=response.status_code,
            ) from None


def _api_error(response: Response) -> str:
    """The API's ``{"error": "..."}`` or ``{"error": ["...", ...]}``, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = (body.get("error") or body.get("message")) if isinstance(body, dict) else None
    if isinstance(error, list):
        return "; ".join(str(e) for e in error)
    if error:
        return str(error)
    return (response.text or response.reason or "").strip()[:300]


def _utc(value: datetime | str) -> datetime:
    when = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).replace(microsecond=0)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _same_time(text: Any, when: datetime) -> bool:
    """Does the API's ``scheduled_for`` name the same second as ``when``?"""
    try:
        return isinstance(text, str) and _utc(text) == when
    except ValueError:
        return False
