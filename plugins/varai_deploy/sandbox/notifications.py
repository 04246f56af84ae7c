"""What the sandbox's notification stand-ins (``slack``, ``email``) received, and the faults they play.

Both keep their state under ``<home>/notifications/`` (0700), one set of files per channel:

- ``<channel>.jsonl`` (0600): one JSON line per request the stand-in answered, accepted or not:
  ``{"received_at": "<ISO 8601, UTC>", "status": <HTTP status>, "answer": <what it answered>,
  "body": <the request body, parsed JSON or the raw text>}``. ``answer`` is Slack's text (``"ok"``,
  ``"invalid_blocks"``...) for ``slack`` and the JSON object for ``email``. No header, path or
  token is recorded (the channel's secret is replaced by ``[redacted]`` wherever it shows).
- ``<channel>.fault.json`` (0600): the fault it plays, ``{"status": 500, "remaining": N | null}``,
  kept in the server's memory and here, so it survives a restart of the stand-in.
- ``<channel>.config.json`` (0600): the secret the stand-in checks (written by the component's ``prepare``).

A fault is set over HTTP, loopback only, on the stand-in itself: ``POST /__sandbox/fail`` with
``{"status": 500, "count": N}`` (``status`` 400-599, default 500; ``count`` omitted or null: until
cleared) makes the next N contract-valid requests get that status (still recorded);
``DELETE /__sandbox/fail`` clears it; ``GET /__sandbox/fail`` shows it. A request the contract
refuses gets its own answer and uses up nothing.

The first half of this module is the servers' side (``slack_fake``, ``email_endpoint_fake``: standard
library only), the second the sandbox's (``Sandbox.notifications``, ``fail_notifications``,
``clear_notification_faults``, and the CLI's ``notifications`` command).
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.serving import QuietHandler
from varai_deploy.sandbox.state import write_text_atomic

if TYPE_CHECKING:
    from varai_deploy.sandbox.settings import SandboxSettings

#: Channel names, which are also the stand-ins' component names.
CHANNELS = ("slack", "email")
CONTROL_PATH = "/__sandbox/fail"
DIRECTORY = "notifications"
REDACTED = "[redacted]"
JSON_TYPE = "application/json"


def directory(home: Path) -> Path:
    return Path(home) / DIRECTORY


def log_file(home: Path, channel: str) -> Path:
    return directory(home) / f"{channel}.jsonl"


def fault_file(home: Path, channel: str) -> Path:
    return directory(home) / f"{channel}.fault.json"


def config_file(home: Path, channel: str) -> Path:
    return directory(home) / f"{channel}.config.json"


def ensure_directory(home: Path) -> Path:
    path = directory(home)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_config(home: Path, channel: str, config: dict[str, Any]) -> None:
    ensure_directory(home)
    write_text_atomic(config_file(home, channel), json.dumps(config))


def read_config(home: Path, channel: str) -> dict[str, Any]:
    return json.loads(config_file(home, channel).read_text(encoding="utf-8"))


# -- the stand-ins' side -------------------------------------------------------------------------
def parse_body(raw: bytes) -> Any:
    """The body as the record keeps it: parsed JSON, else the raw text."""
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class Inbox:
    """One stand-in's record of what it received, and the fault it plays (thread-safe)."""

    def __init__(self, home: Path, channel: str, secret: str) -> None:
        self.channel = channel
        self.log = log_file(home, channel)
        self.fault_path = fault_file(home, channel)
        self._secret = secret
        self._lock = threading.Lock()
        ensure_directory(home)
        self._fault = self._load_fault()

    def _load_fault(self) -> dict[str, Any] | None:
        try:
            fault = json.loads(self.fault_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if isinstance(fault, dict) and isinstance(fault.get("status"), int):
            return {"status": fault["status"], "remaining": fault.get("remaining")}
        return None

    def _save_fault(self) -> None:
        if self._fault is None:
            self.fault_path.unlink(missing_ok=True)
        else:
            write_text_atomic(self.fault_path, json.dumps(self._fault))

    def record(self, status: int, answer: Any, raw_body: bytes) -> None:
        entry = {
            "received_at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "status": status,
            "answer": answer,
            "body": parse_body(raw_body),
        }
        line = json.dumps(entry, ensure_ascii=False)
        if self._secret:
            line = line.replace(self._secret, REDACTED)
        data = (line + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, data)
            finally:
                os.close(fd)

    def take_fault(self) -> int | None:
        """The status a contract-valid request gets instead of success, using up one of the fault's count."""
        with self._lock:
            if self._fault is None:
                return None
            status = self._fault["status"]
            if self._fault["remaining"] is not None:
                self._fault["remaining"] -= 1
                if self._fault["remaining"] <= 0:
                    self._fault = None
            self._save_fault()
            return status

    def fault(self) -> dict[str, Any] | None:
        with self._lock:
            return dict(self._fault) if self._fault else None

    def control(self, method: str, client: str, raw_body: bytes) -> tuple[int, dict[str, Any]]:
        """``/__sandbox/fail``: (HTTP status, JSON answer)."""
        if not is_loopback(client):
            return 403, {"error": "the sandbox's fault control answers loopback only"}
        if method == "GET":
            return 200, {"channel": self.channel, "fault": self.fault()}
        if method == "DELETE":
            with self._lock:
                cleared, self._fault = self._fault is not None, None
                self._save_fault()
            return 200, {"channel": self.channel, "fault": None, "cleared": cleared}
        if method != "POST":
            return 405, {"error": f"{method} is not allowed here: POST, DELETE or GET"}
        try:
            status, count = fault_request(parse_body(raw_body) if raw_body else {})
        except ValueError as exc:
            return 400, {"error": str(exc)}
        with self._lock:
            self._fault = {"status": status, "remaining": count}
            self._save_fault()
            return 200, {"channel": self.channel, "fault": dict(self._fault)}


class StandInHandler(QuietHandler):
    """A stand-in's HTTP handler: every method reaches :meth:`answer` (which says 405 where the API
    allows none, not http.server's 501), once the loopback fault control at ``CONTROL_PATH`` has
    had its turn. ``inbox`` is set on the subclass."""

    inbox: Inbox

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        raw = self.read_body()
        target = urlsplit(self.path)
        if target.path == CONTROL_PATH:
            status, payload = self.inbox.control(self.command, self.client_address[0], raw)
            self.send_payload(status, json.dumps(payload).encode(), [], JSON_TYPE)
            return
        self.answer(target, raw)

    def answer(self, target: SplitResult, raw: bytes) -> None:
        raise NotImplementedError


def fault_request(body: Any) -> tuple[int, int | None]:
    """``{"status": 400-599 (default 500), "count": N >= 1 | null}`` -> (status, count)."""
    if not isinstance(body, dict):
        raise ValueError('the body must be a JSON object: {"status": 500, "count": N}')
    unknown = sorted(set(body) - {"status", "count"})
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}; expected status and count")
    status, count = body.get("status", 500), body.get("count")
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        raise ValueError(f"status must be an HTTP error status (400-599), got {status!r}")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise ValueError(f"count must be a positive number of requests or null (until cleared), got {count!r}")
    return status, count


# -- the sandbox's side --------------------------------------------------------------------------
def check_channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise SandboxError(f"unknown notification channel {channel!r}; known: {', '.join(CHANNELS)}")
    return channel


def received(settings: SandboxSettings, channel: str | None = None, since: datetime | None = None) -> list[dict]:
    """Every request the stand-ins recorded (each record plus ``"channel"``), oldest first.

    ``since``: only those received at or after it (a naive datetime counts as UTC, as in Airflow).
    A line being written at this moment (not yet whole) is left out.
    """
    channels = CHANNELS if channel is None else (check_channel(channel),)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    found: list[tuple[datetime, int, dict]] = []
    for name in channels:
        try:
            lines = log_file(settings.home, name).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            try:
                record = json.loads(line)
                when = datetime.fromisoformat(record["received_at"])
            except (ValueError, KeyError, TypeError):
                continue
            if since is None or when >= since:
                found.append((when, len(found), {**record, "channel": name}))
    found.sort(key=lambda item: (item[0], item[1]))
    return [record for _, _, record in found]


def control(settings: SandboxSettings, channel: str, method: str, body: dict | None = None) -> dict[str, Any]:
    """Ask a running stand-in's fault control (Slack, email, the status page); ConnectionRefusedError
    when nothing listens on its port."""
    port = settings.component_port(channel)
    conn = http.client.HTTPConnection(settings.host, port, timeout=5)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": JSON_TYPE} if payload is not None else {}
        conn.request(method, CONTROL_PATH, body=payload, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    except ConnectionRefusedError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        raise SandboxError(f"the sandbox {channel} on :{port} did not answer its fault control: {exc}") from exc
    finally:
        conn.close()
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if resp.status != 200 or not isinstance(answer, dict):
        reason = answer.get("error") if isinstance(answer, dict) else raw[:200].decode(errors="replace")
        raise SandboxError(f"the sandbox {channel} on :{port} refused the fault ({resp.status}): {reason}")
    return answer


def fail(settings: SandboxSettings, channel: str, status: int = 500, count: int | None = None) -> dict[str, Any]:
    """Make the channel's next ``count`` contract-valid notifications (None: all, until cleared) get
    ``status``; the running stand-in's answer: ``{"channel", "fault": {"status", "remaining"}}``."""
    check_channel(channel)
    try:
        return control(settings, channel, "POST", {"status": status, "count": count})
    except ConnectionRefusedError:
        raise SandboxError(
            f"the sandbox {channel} is not running on :{settings.component_port(channel)}; "
            "start it with `python -m varai_deploy.sandbox up`"
        ) from None


def clear_faults(settings: SandboxSettings, channel: str | None = None) -> list[str]:
    """Clear the fault of ``channel`` (None: both); the channels that had one. A stand-in that is not
    running has its fault file removed instead, so it starts without the fault."""
    cleared = []
    for name in CHANNELS if channel is None else (check_channel(channel),):
        try:
            if control(settings, name, "DELETE").get("cleared"):
                cleared.append(name)
        except ConnectionRefusedError:
            path = fault_file(settings.home, name)
            if path.exists():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                cleared.append(name)
    return cleared
