"""A recorded-contract stand-in for Atlassian Statuspage's REST API v1: the incidents of one page.

``python -m varai_deploy.sandbox.statuspage_fake --home H --host 127.0.0.1 --port 18069``

Production announces maintenance windows and incidents through https://api.statuspage.io/v1 (the
``varai_deploy.hooks.statuspage`` hook); this server plays that API for the sandbox's one page, whose id
and API key (the sandbox credential ``statuspage_api_key``) it reads from
``<home>/notifications/statuspage.config.json``. It holds callers to the API's contract
(https://developer.statuspage.io, "Incidents") and answers as the API does, in JSON:

- Every ``/v1`` request needs ``Authorization: OAuth <api key>``: else 401 ``{"error": "Could not authenticate"}``.
- ``/v1/pages/<page_id>/incidents...`` (a ``.json`` suffix is optional, as on the API); another page id,
  incident id or path: 404 ``{"error": "The requested resource could not be found."}``; another method: 405.
- ``GET .../incidents`` (``q``: text in the name, status or an update's body; ``limit`` 1-100, default 100;
  ``page`` from 1), ``GET .../incidents/scheduled`` (every scheduled maintenance), ``.../unresolved`` (realtime
  incidents not resolved), ``.../upcoming`` (maintenances still ``scheduled``), ``.../active_maintenance``
  (``in_progress`` or ``verifying``), these four with ``page`` and ``per_page`` (1-100): newest first.
  ``GET .../incidents/<id>``; ``POST .../incidents`` creates (201); ``PATCH`` (or ``PUT``) ``.../incidents/<id>``
  updates (200). A query parameter that is not a whole number in its range: 400.
- A body must be JSON (``Content-Type: application/json``) of the form ``{"incident": {...}}`` with only the
  API's incident fields (``name``, ``status``, ``impact_override``, ``scheduled_for``, ``scheduled_until``,
  ``body``, ``metadata``, ``components``, ``component_ids``, ``deliver_notifications``, the ``scheduled_*``,
  ``auto_transition_*`` and ``auto_tweet_*`` flags, ``backfilled``, ``backfill_date``, ``reminder_intervals``):
  else 400 ``{"error": "..."}``. Wrong types, values outside an enum, times that are not ISO 8601, a window
  whose ``scheduled_until`` is not after its ``scheduled_for``, a status of the other family or one before
  the incident's current status, components the page does not have (it has none): 422
  ``{"error": ["...", ...]}``, every problem named.
- Two families of status. A scheduled maintenance (created with ``scheduled_for`` and ``scheduled_until``, or
  a maintenance status) goes scheduled -> in_progress -> verifying -> completed; a realtime incident
  investigating -> identified -> monitoring -> resolved. A status may repeat (a new update) or move on, never
  back: the stand-in's own rule (the DAGs only ever move forward), stricter than Statuspage.
- ``impact`` is ``impact_override`` when given (none, maintenance, minor, major, critical), else
  ``maintenance`` for a maintenance and ``none`` for an incident (the page has no components to derive it from).
- Each create, status change or ``body`` appends an incident update; ``incident_updates`` is newest first,
  as the API returns it. ``scheduled_auto_in_progress`` / ``scheduled_auto_completed`` move a maintenance
  when its window starts / ends (looked at on every request), as Statuspage does.
- ``shortlink`` is ``http://<host>:<port>/s/<id>``, which answers the incident without a key (the public page).

State, under ``<home>/notifications/`` (see ``notifications``): the page's incidents in
``statuspage.incidents.json`` (0600, rewritten atomically on every change, read back on start, so a restart
keeps them); one JSON line per ``/v1`` request in ``statuspage.jsonl`` (``received_at``, ``method``,
``path``, ``status``, ``answer``: the error, or the incident's id and status, or a list's count; ``body``;
never the key). Faults: ``/__sandbox/fail`` as for the notification stand-ins; a faulted request that is
otherwise valid gets the fault's status (500 ``{"error": "Internal server error"}``) and changes nothing.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import secrets
import string
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

from varai_deploy.sandbox.notifications import REDACTED, Inbox, StandInHandler, directory, parse_body, read_config
from varai_deploy.sandbox.serving import QuietHandler, bind_or_explain, serve_until_signalled
from varai_deploy.sandbox.state import read_json, write_text_atomic

CHANNEL = "statuspage"
#: The sandbox's page (Statuspage ids are 12 lowercase letters and digits).
PAGE_ID = "varaisandbox"
SCHEDULED = ("scheduled", "in_progress", "verifying", "completed")
REALTIME = ("investigating", "identified", "monitoring", "resolved")
IMPACTS = ("none", "maintenance", "minor", "major", "critical")
COMPONENT_STATUSES = ("operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage")
FLAGS = frozenset(
    {
        "deliver_notifications",
        "scheduled_remind_prior",
        "scheduled_auto_in_progress",
        "scheduled_auto_completed",
        "scheduled_auto_transition",
        "auto_transition_deliver_notifications_at_end",
        "auto_transition_deliver_notifications_at_start",
        "auto_transition_to_maintenance_state",
        "auto_transition_to_operational_state",
        "auto_tweet_at_beginning",
        "auto_tweet_on_completion",
        "auto_tweet_on_creation",
        "auto_tweet_one_hour_before",
        "backfilled",
    }
)
TEXTS = frozenset({"name", "body", "backfill_date", "reminder_intervals"})
OTHERS = frozenset({"status", "impact_override", "scheduled_for", "scheduled_until", "metadata", "components"})
#: The incident fields of POST and PATCH ``{"incident": {...}}`` bodies.
FIELDS = FLAGS | TEXTS | OTHERS | {"component_ids"}
#: The flags an incident keeps and shows (the others only steer notifications Statuspage would send).
SHOWN_FLAGS = (
    "scheduled_remind_prior",
    "scheduled_auto_in_progress",
    "scheduled_auto_completed",
    "auto_transition_deliver_notifications_at_end",
    "auto_transition_deliver_notifications_at_start",
    "auto_transition_to_maintenance_state",
    "auto_transition_to_operational_state",
)
LISTS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "scheduled": lambda i: i["scheduled_for"] is not None,
    "unresolved": lambda i: i["scheduled_for"] is None and i["status"] != "resolved",
    "upcoming": lambda i: i["status"] == "scheduled",
    "active_maintenance": lambda i: i["status"] in ("in_progress", "verifying"),
}
MAX_PER_PAGE = 100
NOT_FOUND = "The requested resource could not be found."
AUTO_BODIES = {
    "in_progress": "Scheduled maintenance is currently in progress. We will provide updates as necessary.",
    "completed": "The scheduled maintenance has been completed.",
}
FAULT_ANSWERS = {429: "Rate limit exceeded", 420: "Rate limit exceeded"}
ID_ALPHABET = string.ascii_lowercase + string.digits


def incidents_file(home: Path) -> Path:
    return directory(home) / f"{CHANNEL}.incidents.json"


class ApiError(Exception):
    """What the API answers instead: ``status`` and its ``{"error": ...}`` (a message, or a list of them)."""

    def __init__(self, status: int, error: str | list[str]) -> None:
        super().__init__(error if isinstance(error, str) else "; ".join(error))
        self.status = status
        self.error = error


# -- times and ids ---------------------------------------------------------------------------------
def stamp(when: datetime) -> str:
    """The API's form: UTC, milliseconds, ``Z``."""
    when = when.astimezone(UTC)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{when.microsecond // 1000:03d}Z"


def parse_time(value: str) -> datetime:
    """ISO 8601 (a naive time counts as UTC); ValueError otherwise."""
    when = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def new_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(12))


# -- the contract --------------------------------------------------------------------------------
def read_incident(content_type: str, raw: bytes) -> dict[str, Any]:
    """The ``incident`` object of a request body; :class:`ApiError` 400 unless it has that shape."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(400, f"send the body as JSON (Content-Type: application/json), not {content_type or 'nothing'}")
    try:
        body = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise ApiError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("incident"), dict) or not body["incident"]:
        raise ApiError(400, 'param is missing or the value is empty: incident (send {"incident": {...}})')
    extra = sorted(set(body) - {"incident"})
    if extra:
        raise ApiError(400, f"unknown parameter(s) beside incident: {', '.join(extra)}")
    unknown = sorted(set(body["incident"]) - FIELDS)
    if unknown:
        raise ApiError(
            400, f"unknown incident field(s): {', '.join(unknown)}; the API knows {', '.join(sorted(FIELDS))}"
        )
    return body["incident"]


def field_problems(fields: dict[str, Any]) -> list[str]:
    """Every type and enum problem of the incident's fields (what the API answers 422 with)."""
    problems = []
    for name, value in fields.items():
        if name in FLAGS and not isinstance(value, bool):
            problems.append(f"{name} must be true or false, got {value!r}")
        elif name in TEXTS and not isinstance(value, str):
            problems.append(f"{name} must be a string, got {type(value).__name__}")
    status = fields.get("status")
    if "status" in fields and status not in SCHEDULED + REALTIME:
        problems.append(
            f"status {status!r} is not one of {', '.join(REALTIME)} (incidents) "
            f"or {', '.join(SCHEDULED)} (maintenances)"
        )
    if (
        "impact_override" in fields
        and fields["impact_override"] is not None
        and fields["impact_override"] not in IMPACTS
    ):
        problems.append(f"impact_override {fields['impact_override']!r} is not one of {', '.join(IMPACTS)}")
    for name in ("scheduled_for", "scheduled_until"):
        value = fields.get(name)
        if value is None:
            continue
        try:
            if not isinstance(value, str):
                raise ValueError
            parse_time(value)
        except ValueError:
            problems.append(f"{name} must be an ISO 8601 time such as 2026-01-04T02:00:00Z, got {value!r}")
    metadata = fields.get("metadata")
    if "metadata" in fields and not (
        isinstance(metadata, dict) and all(isinstance(v, dict) for v in metadata.values())
    ):
        problems.append("metadata must be an object whose top-level values are objects")
    components = fields.get("components")
    if "components" in fields:
        if not isinstance(components, dict) or not all(v in COMPONENT_STATUSES for v in components.values()):
            problems.append(f"components must map component ids to one of {', '.join(COMPONENT_STATUSES)}")
        elif components:
            problems.append(f"component(s) {', '.join(sorted(components))} not found: this page has no components")
    ids = fields.get("component_ids")
    if "component_ids" in fields:
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            problems.append("component_ids must be a list of component ids")
        elif ids:
            problems.append(f"component(s) {', '.join(ids)} not found: this page has no components")
    return problems


def _window_problems(start: Any, end: Any) -> list[str]:
    """A maintenance's window: both times, the end after the start (times that do not parse are reported
    by :func:`field_problems`)."""
    problems = [
        f"{name} can't be blank for a scheduled maintenance"
        for name, value in (("scheduled_for", start), ("scheduled_until", end))
        if not value
    ]
    try:
        if start and end and parse_time(end) <= parse_time(start):
            problems.append(f"scheduled_until ({end}) must be after scheduled_for ({start})")
    except (TypeError, ValueError, AttributeError):
        pass
    return problems


def _family(incident: dict[str, Any]) -> tuple[str, ...]:
    return SCHEDULED if incident["scheduled_for"] is not None else REALTIME


# -- the page --------------------------------------------------------------------------------------
class Page:
    """The page's incidents, newest first, in memory and in ``statuspage.incidents.json`` (thread-safe)."""

    def __init__(self, home: Path, page_id: str, public_url: str) -> None:
        self.page_id = page_id
        self.public_url = public_url
        self.path = incidents_file(home)
        self.lock = threading.Lock()
        stored = read_json(self.path, {})
        kept = stored.get("incidents") if isinstance(stored, dict) else None
        self.incidents: list[dict[str, Any]] = [i for i in kept or [] if isinstance(i, dict)]

    def _save(self) -> None:
        data = {"page_id": self.page_id, "incidents": self.incidents}
        write_text_atomic(self.path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def find(self, incident_id: str) -> dict[str, Any]:
        for incident in self.incidents:
            if incident["id"] == incident_id:
                return incident
        raise ApiError(404, NOT_FOUND)

    def catch_up(self, now: datetime, save: bool = True) -> None:
        """Statuspage's automatic transitions of maintenances whose window started or ended (caller holds the lock)."""
        changed = False
        for incident in self.incidents:
            if incident["scheduled_for"] is None:
                continue
            start, end = parse_time(incident["scheduled_for"]), parse_time(incident["scheduled_until"])
            if incident["scheduled_auto_in_progress"] and incident["status"] == "scheduled" and now >= start:
                self._move(incident, "in_progress", AUTO_BODIES["in_progress"], start)
                changed = True
            auto_end = incident["scheduled_auto_completed"] and now >= end
            if auto_end and incident["status"] in ("scheduled", "in_progress", "verifying"):
                self._move(incident, "completed", AUTO_BODIES["completed"], end)
                changed = True
        if changed and save:
            self._save()

    def listed(self, kind: str | None, q: str | None) -> list[dict[str, Any]]:
        found = [i for i in self.incidents if kind is None or LISTS[kind](i)]
        if q:
            needle = q.lower()
            found = [i for i in found if needle in _searchable(i)]
        return found

    def create(self, fields: dict[str, Any], now: datetime, fault: Callable[[], None]) -> dict[str, Any]:
        problems = field_problems(fields)
        if not (isinstance(fields.get("name"), str) and fields["name"].strip()):
            problems.append("name can't be blank")
        status = fields.get("status")
        start, end = fields.get("scheduled_for"), fields.get("scheduled_until")
        scheduled = start is not None or end is not None or status in SCHEDULED
        family = SCHEDULED if scheduled else REALTIME
        if status is None:
            status = family[0]
        elif status in (REALTIME if scheduled else SCHEDULED):
            kind = "a scheduled maintenance" if scheduled else "a realtime incident (no scheduled_for)"
            problems.append(f"status {status!r} is not a status of {kind}: {', '.join(family)}")
        if scheduled:
            problems += _window_problems(start, end)
        if problems:
            raise ApiError(422, problems)
        fault()
        incident_id = new_id()
        at = stamp(now)
        impact = fields.get("impact_override") or ("maintenance" if scheduled else "none")
        incident: dict[str, Any] = {
            "id": incident_id,
            "page_id": self.page_id,
            "name": fields["name"],
            "status": status,
            "impact": impact,
            "impact_override": fields.get("impact_override"),
            "created_at": at,
            "updated_at": at,
            "started_at": None if status == "scheduled" else at,
            "monitoring_at": None,
            "resolved_at": None,
            "scheduled_for": stamp(parse_time(start)) if scheduled else None,
            "scheduled_until": stamp(parse_time(end)) if scheduled else None,
            "scheduled_reminded_at": None,
            **{flag: bool(fields.get(flag, False)) for flag in SHOWN_FLAGS},
            "reminder_intervals": fields.get("reminder_intervals"),
            "metadata": fields.get("metadata") or {},
            "components": [],
            "postmortem_body": None,
            "postmortem_body_last_updated_at": None,
            "postmortem_ignored": False,
            "postmortem_notified_subscribers": False,
            "postmortem_notified_twitter": False,
            "postmortem_published_at": None,
            "shortlink": f"{self.public_url}/s/{incident_id}",
            "incident_updates": [],
        }
        self._stamp_status(incident, status, at)
        self._add_update(incident, status, fields.get("body") or "", at, fields.get("deliver_notifications", True))
        self.incidents.insert(0, incident)
        self.catch_up(now, save=False)  # a window that has begun already
        self._save()
        return incident

    def update(
        self, incident_id: str, fields: dict[str, Any], now: datetime, fault: Callable[[], None]
    ) -> dict[str, Any]:
        problems = field_problems(fields)
        incident = self.find(incident_id)
        if "name" in fields and not (isinstance(fields["name"], str) and fields["name"].strip()):
            problems.append("name can't be blank")
        family = _family(incident)
        status = fields.get("status", incident["status"])
        if "status" in fields and status in SCHEDULED + REALTIME:
            if status not in family:
                kind = "a scheduled maintenance" if family is SCHEDULED else "a realtime incident"
                problems.append(
                    f"status {status!r} is not a status of {kind}: {', '.join(family)} "
                    f"(incident {incident_id} is {incident['status']})"
                )
            elif family.index(status) < family.index(incident["status"]):
                problems.append(f"status cannot go back from {incident['status']} to {status} (incident {incident_id})")
        window = {k: fields[k] for k in ("scheduled_for", "scheduled_until") if k in fields}
        if window and family is REALTIME:
            problems.append(f"{', '.join(window)}: a realtime incident has no maintenance window")
        elif window:
            problems += _window_problems(
                window.get("scheduled_for", incident["scheduled_for"]),
                window.get("scheduled_until", incident["scheduled_until"]),
            )
        if problems:
            raise ApiError(422, problems)
        fault()
        at = stamp(now)
        if "name" in fields:
            incident["name"] = fields["name"]
        if "impact_override" in fields:
            incident["impact_override"] = fields["impact_override"]
            incident["impact"] = fields["impact_override"] or ("maintenance" if family is SCHEDULED else "none")
        for name, value in window.items():
            incident[name] = stamp(parse_time(value))
        for flag in SHOWN_FLAGS:
            if flag in fields:
                incident[flag] = fields[flag]
        if "metadata" in fields:
            incident["metadata"] = fields["metadata"]
        if status != incident["status"] or "body" in fields:
            incident["status"] = status
            self._stamp_status(incident, status, at)
            self._add_update(incident, status, fields.get("body") or "", at, fields.get("deliver_notifications", True))
        incident["updated_at"] = at
        self.catch_up(now, save=False)
        self._save()
        return incident

    def _move(self, incident: dict[str, Any], status: str, body: str, edge_time: datetime) -> None:
        """An automatic transition, dated at the window's edge (or the incident's last change, if later)."""
        at = stamp(max(edge_time, parse_time(incident["updated_at"])))
        incident["status"] = status
        self._stamp_status(incident, status, at)
        edge = "end" if status == "completed" else "start"
        self._add_update(incident, status, body, at, incident[f"auto_transition_deliver_notifications_at_{edge}"])
        incident["updated_at"] = at

    @staticmethod
    def _stamp_status(incident: dict[str, Any], status: str, at: str) -> None:
        if status != "scheduled" and incident["started_at"] is None:
            incident["started_at"] = at
        if status == "monitoring" and incident["monitoring_at"] is None:
            incident["monitoring_at"] = at
        if status in ("resolved", "completed"):
            incident["resolved_at"] = at

    @staticmethod
    def _add_update(incident: dict[str, Any], status: str, body: str, at: str, notify: bool) -> None:
        update = {
            "id": new_id(),
            "incident_id": incident["id"],
            "status": status,
            "body": body,
            "created_at": at,
            "updated_at": at,
            "display_at": at,
            "affected_components": None,
            "deliver_notifications": notify,
            "custom_tweet": None,
            "tweet_id": None,
            "twitter_updated_at": None,
            "wants_twitter_update": False,
        }
        incident["incident_updates"].insert(0, update)


def _searchable(incident: dict[str, Any]) -> str:
    texts = [incident["name"], incident["status"], incident.get("postmortem_body") or ""]
    texts += [u.get("body") or "" for u in incident["incident_updates"]]
    return "\n".join(texts).lower()


def whole_number(query: dict[str, list[str]], name: str, default: int, most: int | None = None) -> int:
    raw = query.get(name, [None])[-1]
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1 or (most is not None and value > most):
        where = f"from 1 to {most}" if most else "from 1"
        raise ApiError(400, f"{name} must be a whole number {where}, got {raw!r}")
    return value


# -- the request log -------------------------------------------------------------------------------
class Journal(Inbox):
    """The notification stand-ins' record and fault, with each request's method and path."""

    def record_request(self, method: str, path: str, status: int, answer: Any, raw_body: bytes) -> None:
        entry = {
            "received_at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "method": method,
            "path": path,
            "status": status,
            "answer": answer,
            "body": parse_body(raw_body) if raw_body else None,
        }
        line = json.dumps(entry, ensure_ascii=False)
        if self._secret:
            line = line.replace(self._secret, REDACTED)
        with self._lock:
            fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, (line + "\n").encode("utf-8"))
            finally:
                os.close(fd)


def summary(status: int, payload: Any) -> Any:
    """What the log keeps of an answer: the error, the incident's id and status, or a list's length."""
    if status >= 400 or not isinstance(payload, dict | list):
        return payload
    if isinstance(payload, list):
        return {"count": len(payload)}
    return {"id": payload.get("id"), "status": payload.get("status")}


# -- HTTP ------------------------------------------------------------------------------------------
def make_handler(page: Page, journal: Journal, api_key: str) -> type[QuietHandler]:
    expected = f"OAuth {api_key}".encode()

    class Handler(StandInHandler):
        server_version = "statuspage-sandbox"

        def answer(self, target: SplitResult, raw: bytes) -> None:
            if target.path.startswith("/s/") and self.command in ("GET", "HEAD"):
                self._public(target.path.removeprefix("/s/"))
                return
            headers: list[tuple[str, str]] = []
            try:
                status, payload = self._api(target.path, parse_qs(target.query), raw)
            except ApiError as exc:
                status, payload = exc.status, {"error": exc.error}
                if status == 405:
                    headers = [("Allow", self._allowed(target.path))]
                elif status in (420, 429):
                    headers = [("Retry-After", "1")]
            journal.record_request(self.command, self.path, status, summary(status, payload), raw)
            self.send_json(status, payload, headers)

        def _public(self, incident_id: str) -> None:
            with page.lock:
                page.catch_up(datetime.now(UTC))
                found = [i for i in page.incidents if i["id"] == incident_id]
            if found:
                self.send_json(200, found[0], [])
            else:
                self.send_json(404, {"error": NOT_FOUND}, [])

        def _api(self, path: str, query: dict[str, list[str]], raw: bytes) -> tuple[int, Any]:
            if not path.startswith("/v1/"):
                raise ApiError(404, NOT_FOUND)
            if not hmac.compare_digest(self.headers.get("Authorization", "").encode(), expected):
                raise ApiError(401, "Could not authenticate")
            parts = path.removesuffix(".json").split("/")[2:]  # "", "v1" dropped
            if len(parts) < 3 or parts[0] != "pages" or parts[2] != "incidents" or len(parts) > 4:
                raise ApiError(404, NOT_FOUND)
            if parts[1] != page.page_id:
                raise ApiError(404, NOT_FOUND)
            now = datetime.now(UTC)
            with page.lock:
                page.catch_up(now)
                if len(parts) == 3:
                    return self._collection(query, raw, now)
                if parts[3] in LISTS:
                    self._only("GET")
                    per_page = whole_number(query, "per_page", MAX_PER_PAGE, MAX_PER_PAGE)
                    return 200, self._page(page.listed(parts[3], None), whole_number(query, "page", 1), per_page)
                return self._incident(parts[3], raw, now)

        def _collection(self, query: dict[str, list[str]], raw: bytes, now: datetime) -> tuple[int, Any]:
            if self.command == "POST":
                fields = read_incident(self.headers.get("Content-Type", ""), raw)
                return 201, page.create(fields, now, self._fault)
            self._only("GET")
            limit = whole_number(query, "limit", MAX_PER_PAGE, MAX_PER_PAGE)
            found = page.listed(None, (query.get("q") or [None])[-1])
            return 200, self._page(found, whole_number(query, "page", 1), limit)

        def _incident(self, incident_id: str, raw: bytes, now: datetime) -> tuple[int, Any]:
            if self.command in ("PATCH", "PUT"):
                fields = read_incident(self.headers.get("Content-Type", ""), raw)
                return 200, page.update(incident_id, fields, now, self._fault)
            self._only("GET")
            incident = page.find(incident_id)
            self._fault()
            return 200, incident

        def _page(self, found: list[dict[str, Any]], number: int, size: int) -> list[dict[str, Any]]:
            self._fault()
            return found[(number - 1) * size : number * size]

        def _only(self, method: str) -> None:
            if self.command != method:
                allowed = self._allowed(urlsplit(self.path).path)
                raise ApiError(405, f"{self.command} is not allowed here: {allowed}")

        @staticmethod
        def _fault() -> None:
            """A valid request meets the fault set on ``/__sandbox/fail``, if any, before anything changes."""
            status = journal.take_fault()
            if status is not None:
                raise ApiError(status, FAULT_ANSWERS.get(status, "Internal server error"))

        @staticmethod
        def _allowed(path: str) -> str:
            parts = path.removesuffix(".json").split("/")
            if len(parts) == 5:
                return "GET, POST"
            return "GET" if parts[-1] in LISTS else "GET, PATCH, PUT"

    Handler.inbox = journal
    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m varai_deploy.sandbox.statuspage_fake")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    try:
        config = read_config(args.home, CHANNEL)
        api_key, page_id = config["api_key"], config["page_id"]
    except (OSError, ValueError, KeyError) as exc:
        problem = f"statuspage: cannot read its config under {args.home} ({exc}); the sandbox's prepare writes it"
        print(problem, file=sys.stderr)
        return 2
    journal = Journal(args.home, CHANNEL, api_key)
    page = Page(args.home, page_id, f"http://{args.host}:{args.port}")
    server = bind_or_explain(args.host, args.port, make_handler(page, journal, api_key), CHANNEL)
    if server is None:
        return 2
    where = f"{args.host}:{args.port}/v1/pages/{page_id}"
    print(f"statuspage: Statuspage API stand-in on {where}; incidents in {page.path}", flush=True)
    return serve_until_signalled(server, CHANNEL)


if __name__ == "__main__":
    sys.exit(main())
