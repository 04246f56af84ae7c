"""CdnHashTrigger against the real sandbox CDN serving objects published to the storage emulator."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.cdn_stack import CdnStack, cdn_stack
from varai_deploy.hooks.cdn import ALIAS_CACHE_CONTROL, IMMUTABLE_CACHE_CONTROL, CdnHook, expected_cache_control
from varai_deploy.triggers.cdn import CdnHashTrigger

WIDGET = b"(function(){window.VarAI={version:'2.0.0'}})();"
SHA = hashlib.sha256(WIDGET).hexdigest()
PINNED = "widgets/html/2.0.0/js/varai-widget.min.js"
LATEST = "widgets/html/latest/js/varai-widget.min.js"
JS = "application/javascript; charset=utf-8"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdnStack]:
    with cdn_stack(tmp_path_factory.mktemp("cdn") / "sandbox") as running, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_VARAI_CDN", running.connection_env())
        hook = CdnHook()
        hook.put_immutable(PINNED, WIDGET, content_type=JS, cache_control=IMMUTABLE_CACHE_CONTROL, channel="html")
        hook.put_alias(LATEST, WIDGET, content_type=JS, cache_control=ALIAS_CACHE_CONTROL)
        yield running


def outcome(trigger: CdnHashTrigger) -> dict:
    async def run():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(run())


def urls(stack: CdnStack, *names: str) -> list[str]:
    return [f"{stack.cdn_url}/{name}" for name in names]


def test_succeeds_when_every_url_serves_the_bytes_with_the_expected_cache_control(stack: CdnStack):
    pinned, latest = urls(stack, PINNED, LATEST)
    event = outcome(
        CdnHashTrigger(
            [pinned, latest], SHA, {u: expected_cache_control(u) for u in (pinned, latest)}, poll_interval=0.05
        )
    )
    assert event["status"] == "success"
    assert event["polls"] == 1
    assert event["urls"][pinned]["cache_control"] == IMMUTABLE_CACHE_CONTROL
    assert event["urls"][latest]["cache_control"] == ALIAS_CACHE_CONTROL
    assert {seen["sha256"] for seen in event["urls"].values()} == {SHA}
    assert {seen["size"] for seen in event["urls"].values()} == {len(WIDGET)}


def test_times_out_naming_each_url_and_what_it_got_wrong(stack: CdnStack):
    pinned, missing = urls(stack, PINNED, "widgets/html/2.0.1/js/varai-widget.min.js")
    wrong = "0" * 64
    started = time.monotonic()
    event = outcome(CdnHashTrigger([pinned, missing], wrong, None, poll_interval=0.1, timeout=0.5))
    assert time.monotonic() - started < 3
    assert event["status"] == "timeout"
    assert event["polls"] >= 2
    assert f"{pinned}: sha256 {SHA} ({len(WIDGET)} bytes), expected {wrong}" in event["message"]
    assert f"{missing}: HTTP 404" in event["message"]


def test_a_wrong_cache_control_fails_even_with_the_right_bytes(stack: CdnStack):
    (latest,) = urls(stack, LATEST)
    event = outcome(CdnHashTrigger([latest], SHA, {latest: IMMUTABLE_CACHE_CONTROL}, poll_interval=0.1, timeout=0.3))
    assert event["status"] == "timeout"
    assert event["message"] == (
        f"{latest}: Cache-Control {ALIAS_CACHE_CONTROL!r}, expected {IMMUTABLE_CACHE_CONTROL!r}"
    )


def test_waits_for_an_object_that_appears_while_it_polls(stack: CdnStack, monkeypatch: pytest.MonkeyPatch):
    name = "widgets/html/2.0.2/js/varai-widget.min.js"
    (url,) = urls(stack, name)
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_CDN", stack.connection_env())

    async def publish_later():
        await asyncio.sleep(0.3)
        await asyncio.to_thread(
            CdnHook().put_immutable,
            name,
            WIDGET,
            content_type=JS,
            cache_control=IMMUTABLE_CACHE_CONTROL,
            channel="html",
        )

    async def run():
        trigger = CdnHashTrigger([url], SHA, None, poll_interval=0.1, timeout=10)
        publishing = asyncio.create_task(publish_later())
        async for event in trigger.run():
            await publishing
            return event.payload

    event = asyncio.run(run())
    assert event["status"] == "success"
    assert event["polls"] > 1


def test_an_unreachable_cdn_is_reported_as_such():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: refused
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/{PINNED}"
        event = outcome(CdnHashTrigger([url], SHA, None, poll_interval=0.1, timeout=0.3))
    assert event["status"] == "timeout"
    assert event["message"].startswith(f"{url}: ClientConnectorError")


def test_serializes_with_an_absolute_deadline_for_the_triggerer():
    trigger = CdnHashTrigger(["http://cdn/x.js"], SHA, {"http://cdn/x.js": "public"}, poll_interval=1, timeout=60)
    path, kwargs = trigger.serialize()
    assert path == "varai_deploy.triggers.cdn.CdnHashTrigger"
    assert abs(kwargs["deadline"] - (time.time() + 60)) < 5
    assert CdnHashTrigger(**kwargs).serialize() == (path, kwargs)  # a restart does not extend the wait
