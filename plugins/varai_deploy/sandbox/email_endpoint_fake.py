"""The stand-in for the email notification endpoint (the guide's ``EMAIL_NOTIFICATION_ENDPOINT``).

``python -m varai_deploy.sandbox.email_endpoint_fake --home H --host 127.0.0.1 --port 18068``

The deployment guide only names the endpoint (``EMAIL_NOTIFICATION_ENDPOINT="https://api.example.com/notify"``);
this is its contract, which the email notifier (``varai_deploy.notifiers.email_endpoint``) is held to:

``POST /notify``, ``Authorization: Bearer <token>`` (the sandbox credential ``email_endpoint_token``,
read from ``<home>/notifications/email.config.json``), ``Content-Type: application/json``, a JSON
object with exactly these fields:

=============  ========  ==========================================================================
field          required  value
=============  ========  ==========================================================================
``to``         yes       a non-empty list of at most 50 email addresses (``local@domain.tld``)
``subject``    yes       a non-empty string of at most 200 characters, one line (no CR or LF)
``severity``   yes       ``critical``, ``warning`` or ``info``
``text``       yes       the plain-text body: a non-empty string of at most 100000 characters
``html``       no        the HTML body, a string
``event``      no        the event as data (for filters and tickets), a JSON object
=============  ========  ==========================================================================

Answers (JSON):

- 202 ``{"id": "<uuid4>", "accepted": <number of addresses in to>}``: accepted for delivery;
- 401 ``{"error": "unauthorized"}``: no or another bearer token;
- 400 ``{"error": "invalid JSON ..."}``: the body is not a JSON object (or not sent as JSON);
- 400 ``{"error": "<what is wrong>"}``: a missing, unknown or ill-typed field;
- 404 on another path, 405 on another method (``Allow: POST``);
- a fault's status (``/__sandbox/fail``, see ``notifications``) for a request that is otherwise
  valid: ``{"error": "unavailable"}`` for 5xx, ``{"error": "rate limited"}`` for 429.

Every request is appended to ``<home>/notifications/email.jsonl`` (never the token).
"""

from __future__ import annotations

import argparse
import hmac
import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult

from varai_deploy.sandbox.notifications import JSON_TYPE, Inbox, StandInHandler, read_config
from varai_deploy.sandbox.serving import QuietHandler, bind_or_explain, serve_until_signalled

CHANNEL = "email"
NOTIFY_PATH = "/notify"
SEVERITIES = ("critical", "warning", "info")
REQUIRED = ("to", "subject", "severity", "text")
OPTIONAL = ("html", "event")
MAX_RECIPIENTS = 50
MAX_SUBJECT = 200
MAX_TEXT = 100_000
ADDRESS = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


def check_notification(content_type: str, raw: bytes) -> int:
    """The number of recipients of a valid notification; ValueError saying what is wrong otherwise."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ValueError(f"invalid JSON: send the body as application/json, not {content_type or 'nothing'!r}")
    try:
        body = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError(f"invalid JSON: the body must be an object, not {type(body).__name__}")
    missing = [name for name in REQUIRED if name not in body]
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")
    unknown = sorted(set(body) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(REQUIRED + OPTIONAL)}")
    to = body["to"]
    if not isinstance(to, list) or not 1 <= len(to) <= MAX_RECIPIENTS:
        raise ValueError(f"to must be a list of 1 to {MAX_RECIPIENTS} email addresses")
    for i, address in enumerate(to):
        if not isinstance(address, str) or not ADDRESS.fullmatch(address):
            raise ValueError(f"to[{i}] is not an email address (local@domain.tld): {address!r}")
    subject = body["subject"]
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT:
        raise ValueError(f"subject must be a non-empty string of at most {MAX_SUBJECT} characters")
    if "\n" in subject or "\r" in subject:
        raise ValueError("subject must be one line (no newline)")
    if body["severity"] not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {body['severity']!r}")
    text = body["text"]
    if not isinstance(text, str) or not text or len(text) > MAX_TEXT:
        raise ValueError(f"text must be a non-empty string of at most {MAX_TEXT} characters")
    if "html" in body and not isinstance(body["html"], str):
        raise ValueError("html must be a string")
    if "event" in body and not isinstance(body["event"], dict):
        raise ValueError("event must be a JSON object")
    return len(to)


def fault_answer(status: int) -> dict[str, str]:
    if status == 429:
        return {"error": "rate limited"}
    return {"error": "unavailable" if status >= 500 else f"refused (sandbox fault {status})"}


def make_handler(inbox: Inbox, token: str) -> type[QuietHandler]:
    expected = f"Bearer {token}".encode()

    class Handler(StandInHandler):
        server_version = "email-endpoint-sandbox"

        def answer(self, target: SplitResult, raw: bytes) -> None:
            path = target.path
            headers: list[tuple[str, str]] = []
            if path != NOTIFY_PATH:
                status, answer = 404, {"error": f"no such endpoint: {path}; POST {NOTIFY_PATH}"}
            elif self.command != "POST":
                status, answer, headers = 405, {"error": f"{self.command} is not allowed: POST"}, [("Allow", "POST")]
            elif not hmac.compare_digest(self.headers.get("Authorization", "").encode(), expected):
                status, answer = 401, {"error": "unauthorized"}
                headers = [("WWW-Authenticate", 'Bearer realm="notify"')]
            else:
                status, answer = self._post(raw)
                if status == 429:
                    headers = [("Retry-After", "1")]
            inbox.record(status, answer, raw)
            self.send_payload(status, json.dumps(answer).encode(), headers, JSON_TYPE)

        def _post(self, raw: bytes) -> tuple[int, dict[str, Any]]:
            try:
                accepted = check_notification(self.headers.get("Content-Type", ""), raw)
            except ValueError as exc:
                return 400, {"error": str(exc)}
            fault = inbox.take_fault()
            if fault is not None:
                return fault, fault_answer(fault)
            return 202, {"id": str(uuid.uuid4()), "accepted": accepted}

    Handler.inbox = inbox
    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m varai_deploy.sandbox.email_endpoint_fake")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    try:
        token = read_config(args.home, CHANNEL)["token"]
    except (OSError, ValueError, KeyError) as exc:
        problem = f"email: cannot read its config under {args.home} ({exc}); the sandbox's prepare writes it"
        print(problem, file=sys.stderr)
        return 2
    inbox = Inbox(args.home, CHANNEL, token)
    server = bind_or_explain(args.host, args.port, make_handler(inbox, token), CHANNEL)
    if server is None:
        return 2
    where = f"{args.host}:{args.port}{NOTIFY_PATH}"
    print(f"email: notification endpoint stand-in on {where}; records {inbox.log}", flush=True)
    return serve_until_signalled(server, CHANNEL)


if __name__ == "__main__":
    sys.exit(main())
