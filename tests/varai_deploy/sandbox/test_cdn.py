"""The sandbox CDN server: the bucket's objects at their public paths, as a browser gets them."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.cdn_stack import CdnStack, cdn_stack
from varai_deploy.hooks.cdn import CdnHook
from varai_deploy.sandbox import components, processes
from varai_deploy.sandbox.cdn import COMPONENT


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CdnStack]:
    with cdn_stack(tmp_path / "sandbox") as running:
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_CDN", running.connection_env())
        yield running


def request(stack: CdnStack, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    port = stack.settings.component_port("cdn")
    conn = http.client.HTTPConnection(stack.settings.host, port, timeout=5)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_the_registry_knows_it_at_offset_one_reading_the_storage_component(stack: CdnStack):
    s = stack.settings
    assert components.load("cdn") is COMPONENT
    marker = COMPONENT.marker(s, s.component_port("cdn"))
    assert ("--storage", stack.storage_url) in marker.flags
    assert ("--home", str(s.home)) in marker.flags
    assert processes.is_ours(stack.pids["cdn"], marker)


def test_object_names_are_served_at_their_paths_with_stored_headers(stack: CdnStack):
    name = "widgets/html/3.0.0/js/a b+c.js"
    CdnHook().put_alias(name, b"abc", content_type="text/javascript", cache_control="no-cache")
    status, headers, body = request(stack, "GET", "/" + quote(name))
    assert (status, body, headers["Content-Type"], headers["Cache-Control"]) == (
        200,
        b"abc",
        "text/javascript",
        "no-cache",
    )


def test_missing_objects_and_directories_are_404(stack: CdnStack):
    CdnHook().put_alias("widgets/html/3.0.1/js/w.js", b"w", content_type="text/javascript", cache_control="no-cache")
    for path in ("/widgets/html/3.0.1/js/", "/widgets/html/3.0.1/js/x.js", "/"):
        status, headers, _ = request(stack, "GET", path)
        assert status == 404, path
        assert headers["Access-Control-Allow-Origin"] == "*"


def test_storage_down_is_a_502_naming_the_storage_not_a_404(stack: CdnStack):
    processes.stop([stack.pids["storage"]])
    status, _, body = request(stack, "GET", "/widgets/html/latest/js/varai-widget.min.js")
    assert status == 502
    assert f"storage at 127.0.0.1:{stack.settings.component_port('storage')}" in body.decode()


def test_writes_are_not_accepted(stack: CdnStack):
    assert request(stack, "PUT", "/widgets/html/latest/js/varai-widget.min.js")[0] == 501
