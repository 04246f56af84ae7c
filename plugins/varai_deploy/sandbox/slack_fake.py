"""A recorded-contract stand-in for a Slack incoming webhook (``hooks.slack.com/services/T.../B.../...``).

``python -m varai_deploy.sandbox.slack_fake --home H --host 127.0.0.1 --port 18067``

Slack cannot run locally, so this server plays one incoming webhook, checks every request against
the webhook contract (https://api.slack.com/messaging/webhooks, "Handling errors") and Block Kit's
documented limits (https://api.slack.com/reference/block-kit/blocks, .../composition-objects,
.../block-elements), and answers as Slack does: ``text/html`` bodies of one word.

- Only ``POST /services/T0SANDBOX/B0SANDBOX/<secret>`` (the whole path; the secret is the sandbox
  credential ``slack_webhook_token``, read from ``<home>/notifications/slack.config.json``).
  Another path: 404 ``no_service``; another method: 405.
- The body must be JSON (``Content-Type: application/json``, as slack_sdk's ``WebhookClient`` sends)
  and a JSON object: else 400 ``invalid_payload``.
- It needs a non-empty ``text`` or non-empty ``blocks``: else 400 ``no_text``; ``text`` at most 40000
  characters: else 400 ``msg_too_long``.
- ``blocks``: at most 50, each of a known ``type`` (section, header, context, divider, actions, image,
  rich_text) with only that type's fields; text objects ``{"type": "plain_text"|"mrkdwn", "text": ...}``
  (plus ``emoji`` for plain_text, ``verbatim`` for mrkdwn); section text <= 3000, section needs text or
  fields, fields <= 10 of <= 2000 each; header text plain_text <= 150; context 1-10 elements; actions
  1-25 elements, a button with plain_text text <= 75, url <= 3000, action_id <= 255, value <= 2000,
  style primary|danger; block_id <= 255. Any violation: 400 ``invalid_blocks`` (why: in the log).
- Success: 200 ``ok``.

Every request (whatever its path or method; 405 answers ``invalid_method``) is appended to
``<home>/notifications/slack.jsonl``, except those to ``/__sandbox/fail``, which injects faults (see ``notifications``):
a faulted contract-valid request gets the fault's status with Slack's body for it (500
``rollup_error``).
"""

from __future__ import annotations

import argparse
import hmac
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult

from varai_deploy.sandbox.notifications import Inbox, StandInHandler, read_config
from varai_deploy.sandbox.serving import QuietHandler, bind_or_explain, serve_until_signalled

CHANNEL = "slack"
TEAM, BOT = "T0SANDBOX", "B0SANDBOX"
HTML_TYPE = "text/html"
MAX_TEXT = 40000
MAX_BLOCKS = 50
BLOCK_TYPES = {
    "section": {"text", "fields", "accessory", "expand"},
    "header": {"text"},
    "context": {"elements"},
    "divider": set(),
    "actions": {"elements"},
    "image": {"image_url", "slack_file", "alt_text", "title"},
    "rich_text": {"elements"},
}
BUTTON_FIELDS = {"type", "text", "action_id", "url", "value", "style", "confirm", "accessibility_label"}
#: What Slack answers a faulted request with, by status.
FAULT_ANSWERS = {500: "rollup_error", 503: "service_unavailable", 429: "rate_limited", 403: "invalid_token"}


def webhook_path(secret: str) -> str:
    """The path part of the connection's password, and the only path this server accepts."""
    return f"{TEAM}/{BOT}/{secret}"


class Refused(ValueError):
    """The request breaks the contract: ``answer`` is Slack's error, the message says why."""

    def __init__(self, answer: str, why: str) -> None:
        super().__init__(why)
        self.answer = answer


# -- the contract ---------------------------------------------------------------------------------
def check_message(content_type: str, raw: bytes) -> None:
    """Raise :class:`Refused` unless ``raw`` is a message Slack would post."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise Refused("invalid_payload", f"Content-Type {content_type or 'none'!r} is not application/json")
    try:
        message = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise Refused("invalid_payload", f"the body is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise Refused("invalid_payload", f"the body is a JSON {type(message).__name__}, not an object")
    text, blocks = message.get("text"), message.get("blocks")
    if text is not None and not isinstance(text, str):
        raise Refused("invalid_payload", "text must be a string")
    if not text and not blocks:
        raise Refused("no_text", "neither text nor blocks")
    if text and len(text) > MAX_TEXT:
        raise Refused("msg_too_long", f"text has {len(text)} characters, more than {MAX_TEXT}")
    if blocks is not None:
        try:
            check_blocks(blocks)
        except ValueError as exc:
            raise Refused("invalid_blocks", str(exc)) from None


def check_blocks(blocks: Any) -> None:
    if not isinstance(blocks, list):
        raise ValueError("blocks must be a list")
    if len(blocks) > MAX_BLOCKS:
        raise ValueError(f"{len(blocks)} blocks, more than {MAX_BLOCKS}")
    for index, block in enumerate(blocks):
        where = f"blocks[{index}]"
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise ValueError(f"{where}: unknown block type {kind!r}")
        kind = block["type"]
        unknown = sorted(set(block) - BLOCK_TYPES[kind] - {"type", "block_id"})
        if unknown:
            raise ValueError(f"{where}: {kind} blocks have no field(s) {', '.join(unknown)}")
        if "block_id" in block:
            _string(block["block_id"], f"{where}.block_id", 255)
        CHECKS[kind](block, where)


def _string(value: Any, where: str, limit: int) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where} must be a non-empty string")
    if len(value) > limit:
        raise ValueError(f"{where} has {len(value)} characters, more than {limit}")


def _text_object(value: Any, where: str, limit: int, plain_only: bool = False) -> None:
    if not isinstance(value, dict) or value.get("type") not in ("plain_text", "mrkdwn"):
        raise ValueError(f'{where} must be a text object {{"type": "plain_text" | "mrkdwn", "text": ...}}')
    if plain_only and value["type"] != "plain_text":
        raise ValueError(f"{where} must be plain_text, not {value['type']}")
    optional = {"emoji"} if value["type"] == "plain_text" else {"verbatim"}
    unknown = sorted(set(value) - {"type", "text"} - optional)
    if unknown:
        raise ValueError(f"{where}: a {value['type']} text object has no field(s) {', '.join(unknown)}")
    for flag in optional & set(value):
        if not isinstance(value[flag], bool):
            raise ValueError(f"{where}.{flag} must be true or false")
    _string(value.get("text"), f"{where}.text", limit)


def _elements(block: dict, where: str, most: int) -> list:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= most:
        raise ValueError(f"{where}.elements must be a list of 1 to {most} elements")
    return elements


def _section(block: dict, where: str) -> None:
    if "text" not in block and "fields" not in block:
        raise ValueError(f"{where}: a section needs text or fields")
    if "text" in block:
        _text_object(block["text"], f"{where}.text", 3000)
    if "fields" in block:
        fields = block["fields"]
        if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
            raise ValueError(f"{where}.fields must be a list of 1 to 10 text objects")
        for i, field in enumerate(fields):
            _text_object(field, f"{where}.fields[{i}]", 2000)
    if "accessory" in block:
        _element(block["accessory"], f"{where}.accessory")


def _header(block: dict, where: str) -> None:
    _text_object(block.get("text"), f"{where}.text", 150, plain_only=True)


def _context(block: dict, where: str) -> None:
    for i, element in enumerate(_elements(block, where, 10)):
        if isinstance(element, dict) and element.get("type") == "image":
            _image_element(element, f"{where}.elements[{i}]")
        else:
            _text_object(element, f"{where}.elements[{i}]", 3000)


def _divider(block: dict, where: str) -> None:
    pass


def _actions(block: dict, where: str) -> None:
    for i, element in enumerate(_elements(block, where, 25)):
        _element(element, f"{where}.elements[{i}]")


def _image(block: dict, where: str) -> None:
    _image_element(block, where)
    if "title" in block:
        _text_object(block["title"], f"{where}.title", 2000, plain_only=True)


def _rich_text(block: dict, where: str) -> None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not all(
        isinstance(e, dict) and isinstance(e.get("type"), str) for e in elements
    ):
        raise ValueError(f"{where}.elements must be a list of rich text elements")


def _image_element(element: dict, where: str) -> None:
    if "image_url" in element:
        _string(element["image_url"], f"{where}.image_url", 3000)
    elif not isinstance(element.get("slack_file"), dict):
        raise ValueError(f"{where}: an image needs image_url or slack_file")
    _string(element.get("alt_text"), f"{where}.alt_text", 2000)


def _element(element: Any, where: str) -> None:
    """An interactive element; buttons in full, the others by their type and action_id."""
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        raise ValueError(f"{where} must be an element with a type")
    if "action_id" in element:
        _string(element["action_id"], f"{where}.action_id", 255)
    if element["type"] == "image":
        _image_element(element, where)
    if element["type"] != "button":
        return
    unknown = sorted(set(element) - BUTTON_FIELDS)
    if unknown:
        raise ValueError(f"{where}: a button has no field(s) {', '.join(unknown)}")
    _text_object(element.get("text"), f"{where}.text", 75, plain_only=True)
    if "url" in element:
        _string(element["url"], f"{where}.url", 3000)
    if "value" in element:
        _string(element["value"], f"{where}.value", 2000)
    if "style" in element and element["style"] not in ("primary", "danger"):
        raise ValueError(f"{where}.style must be primary or danger")


CHECKS = {
    "section": _section,
    "header": _header,
    "context": _context,
    "divider": _divider,
    "actions": _actions,
    "image": _image,
    "rich_text": _rich_text,
}


# -- HTTP -----------------------------------------------------------------------------------------
def make_handler(inbox: Inbox, secret: str) -> type[QuietHandler]:
    expected = f"/services/{webhook_path(secret)}"

    class Handler(StandInHandler):
        server_version = "slack-webhook-sandbox"

        def answer(self, target: SplitResult, raw: bytes) -> None:
            path = target.path
            headers: list[tuple[str, str]] = []
            if not hmac.compare_digest(path.encode(), expected.encode()):
                status, answer = 404, "no_service"
            elif self.command != "POST":
                status, answer, headers = 405, "invalid_method", [("Allow", "POST")]
            else:
                status, answer = self._post(raw)
                if status == 429:
                    headers = [("Retry-After", "1")]
            inbox.record(status, answer, raw)
            self.send_payload(status, answer.encode(), headers, HTML_TYPE)

        def _post(self, raw: bytes) -> tuple[int, str]:
            try:
                check_message(self.headers.get("Content-Type", ""), raw)
            except Refused as exc:
                self.log_error("slack: 400 %s: %s", exc.answer, exc)
                return 400, exc.answer
            fault = inbox.take_fault()
            if fault is not None:
                return fault, FAULT_ANSWERS.get(fault, "rollup_error")
            return 200, "ok"

    Handler.inbox = inbox
    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m varai_deploy.sandbox.slack_fake")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    try:
        secret = read_config(args.home, CHANNEL)["secret"]
    except (OSError, ValueError, KeyError) as exc:
        problem = f"slack: cannot read its config under {args.home} ({exc}); the sandbox's prepare writes it"
        print(problem, file=sys.stderr)
        return 2
    inbox = Inbox(args.home, CHANNEL, secret)
    server = bind_or_explain(args.host, args.port, make_handler(inbox, secret), CHANNEL)
    if server is None:
        return 2
    print(f"slack: incoming webhook stand-in on {args.host}:{args.port}; records {inbox.log}", flush=True)
    return serve_until_signalled(server, CHANNEL)


if __name__ == "__main__":
    sys.exit(main())
