"""What the API server does with a request to start a release or a rollback (a root middleware).

Whoever starts one, the form, CI or a script, goes through ``POST /api/v2/dags/<dag_id>/dagRuns``.
For the project's operations DAGs this middleware, registered in plugins/varai_deploy_plugin.py:

- names a run that was given no id by what it does, ``release__v1.4.2__staging__20261202T153012.345``
  (``rollback__previous__sandbox__...`` for a rollback), so the runs list tells them apart; an id
  the caller chose is kept;
- gives a run that was given no note one that says what it is about, shown in the run's header:
  ``Release v1.4.2 to staging: all services, widgets to all marketplaces``;
- says in words why a param was refused: Airflow answers ``400`` with jsonschema's dump (the
  regex, the schema, the instance); the answer keeps its first line, with a pattern put in words.

Only values that already pass the params' own rules go into a run id; anything else is left as it
came, for Airflow to refuse. Every other request passes through untouched.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from varai_deploy.config import ENVIRONMENTS, VERSION_PATTERN
from varai_deploy.rollback import REASON_PATTERN, TARGET_PATTERN

RELEASE_DAG_ID = "ai_discovery_release"
ROLLBACK_DAG_ID = "ai_discovery_rollback"
_TRIGGER_PATH = re.compile(r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/?$")
_VERSION = re.compile(VERSION_PATTERN)
_TARGET = re.compile(TARGET_PATTERN)

#: Each param pattern in words, as the refusal says it ("'1.0' is not ...").
PATTERN_WORDS = {
    VERSION_PATTERN: (
        "a release tag: v, then MAJOR.MINOR.PATCH in digits, e.g. v1.4.2 (a pre-release adds a suffix, "
        "e.g. v1.5.0-rc.1)"
    ),
    TARGET_PATTERN: (
        "'previous' or a release tag such as v1.4.1 (v, then MAJOR.MINOR.PATCH; "
        "a maintenance rebuild adds +sec.YYYYMMDD)"
    ),
    REASON_PATTERN: "a reason: say in a few words why (it is recorded with who and when)",
}
_PARAM_ERROR = re.compile(r"^Invalid input for param (?P<param>[^:]+): (?P<why>[^\n]*)")
_PATTERN_MISMATCH = re.compile(r"^(?P<instance>.*) does not match (?P<pattern>'.*'|\".*\")$")


def run_id_for(dag_id: str, conf: dict[str, Any], now: datetime) -> str | None:
    """The id a run of ``dag_id`` with ``conf`` is given, or None when its conf cannot name it."""
    environment = conf.get("environment", "sandbox")
    if environment not in ENVIRONMENTS:
        return None
    now = now.astimezone(UTC)  # to the millisecond: two requests in one second still get two runs
    stamp = f"{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}"
    if dag_id == RELEASE_DAG_ID:
        version = conf.get("version")
        if isinstance(version, str) and _VERSION.fullmatch(version):
            return f"release__{version}__{environment}__{stamp}"
    if dag_id == ROLLBACK_DAG_ID:
        target = conf.get("target", "previous")
        if isinstance(target, str) and _TARGET.fullmatch(target):
            return f"rollback__{target}__{environment}__{stamp}"
    return None


def _services(conf: dict[str, Any]) -> str:
    services = conf.get("services")
    if not isinstance(services, list):
        return "all services"
    return ", ".join(str(s) for s in services) or "no service"


def _widgets(conf: dict[str, Any]) -> str:
    if "marketplaces" not in conf:
        return "widgets to all marketplaces"
    marketplaces = conf["marketplaces"]
    if not marketplaces:
        return "backend only (no widgets)"
    return "widgets to " + ", ".join(str(m) for m in marketplaces) if isinstance(marketplaces, list) else ""


def note_for(dag_id: str, conf: dict[str, Any]) -> str | None:
    """What the run is about, for its header (Markdown), or None for a DAG this does not know."""
    environment = conf.get("environment", "sandbox")
    if dag_id == RELEASE_DAG_ID:
        dry = "Dry run, changing nothing: " if conf.get("dry_run") is True else ""
        return f"{dry}Release {conf.get('version')} to {environment}: {_services(conf)}, {_widgets(conf)}"
    if dag_id == ROLLBACK_DAG_ID:
        reason = " ".join(str(conf.get("reason", "")).split())[:200]
        target = conf.get("target", "previous")
        return f"Rollback of {environment} to {target}: {_services(conf)}. Reason: {reason}"
    return None


def name_request(dag_id: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
    """``body`` of a trigger request with a run id and a note where it had none."""
    conf = body.get("conf") if isinstance(body.get("conf"), dict) else {}
    named = dict(body)
    if not body.get("dag_run_id") and (run_id := run_id_for(dag_id, conf, now)):
        named["dag_run_id"] = run_id
    if not body.get("note") and (note := note_for(dag_id, conf)):
        named["note"] = note
    return named


def in_words(detail: str) -> str:
    """A param refusal's first line, its pattern said in words; any other detail as it was."""
    match = _PARAM_ERROR.match(detail)
    if not match:
        return detail
    why = match["why"]
    if (mismatch := _PATTERN_MISMATCH.match(why)) and (words := _words_for(mismatch["pattern"])):
        why = f"{mismatch['instance']} is not {words}"
    return f"Invalid input for param {match['param']}: {why}"


def _words_for(quoted_pattern: str) -> str | None:
    return next((w for p, w in PATTERN_WORDS.items() if repr(p) == quoted_pattern), None)


class RunRequests:
    """ASGI middleware: names and notes the project's runs, and words their param refusals."""

    def __init__(self, app, dag_ids: tuple[str, ...] = (RELEASE_DAG_ID, ROLLBACK_DAG_ID)) -> None:
        self.app = app
        self.dag_ids = dag_ids

    async def __call__(self, scope, receive, send) -> None:
        match = _TRIGGER_PATH.search(scope.get("path", "")) if scope["type"] == "http" else None
        if not match or scope["method"] != "POST" or match["dag_id"] not in self.dag_ids:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        if isinstance(request, dict):
            body = json.dumps(name_request(match["dag_id"], request, datetime.now(UTC))).encode()
        scope = {**scope, "headers": _with_length(scope["headers"], len(body))}
        await self.app(scope, _replay(body, receive), _worded(send))


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _with_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in headers if k.lower() != b"content-length"] + [(b"content-length", str(length).encode())]


def _worded(send):
    """``send`` that rewrites a 400's ``detail`` in words (the answer is small: it is held whole)."""
    start: dict | None = None
    chunks: list[bytes] = []

    async def worded(message) -> None:
        nonlocal start
        if message["type"] == "http.response.start" and message["status"] == 400:
            start = message
            return
        if start is None or message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(chunks)
        try:
            answer = json.loads(body)
            if isinstance(answer, dict) and isinstance(answer.get("detail"), str):
                answer["detail"] = in_words(answer["detail"])
                body = json.dumps(answer).encode()
        except ValueError:
            pass
        await send({**start, "headers": _with_length(start.get("headers", []), len(body))})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return worded
