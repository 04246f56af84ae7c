"""CdnHook against a real storage emulator, read back through the real sandbox CDN server."""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest

from tests.support.cdn_stack import CdnStack, cdn_stack
from varai_deploy.hooks.cdn import CdnHook
from varai_deploy.widgets.publishing import PublishAuthError, PublishConflictError, PublishError

JS = "application/javascript; charset=utf-8"
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdnStack]:
    with cdn_stack(tmp_path_factory.mktemp("cdn") / "sandbox") as running:
        yield running


@pytest.fixture
def hook(stack: CdnStack, monkeypatch: pytest.MonkeyPatch) -> CdnHook:
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_CDN", stack.connection_env())
    return CdnHook()


def emulator_metadata(stack: CdnStack, name: str) -> dict:
    url = f"{stack.storage_url}/storage/v1/b/varai-widgets/o/{quote(name, safe='')}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def cdn_get(url: str, method: str = "GET", headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_an_upload_lands_in_the_emulator_and_the_cdn_serves_it_with_its_headers(hook: CdnHook, stack: CdnStack):
    name = "widgets/html/9.0.0/js/varai-widget.min.js"
    data = b"window.VarAI={v:'9.0.0'};"
    assert hook.put_immutable(name, data, content_type=JS, cache_control=IMMUTABLE, channel="html") == "published"

    stored = emulator_metadata(stack, name)
    assert (stored["contentType"], stored["cacheControl"], stored["size"]) == (JS, IMMUTABLE, str(len(data)))
    assert hook.read(name) == data

    url = hook.public_url(name)
    assert url == f"{stack.cdn_url}/{name}"
    status, headers, body = cdn_get(url)
    assert (status, body) == (200, data)
    assert headers["Content-Type"] == JS
    assert headers["Cache-Control"] == IMMUTABLE
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Content-Length"] == str(len(data))
    assert headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'

    status, headers, body = cdn_get(url, "HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(len(data)))
    status, _, body = cdn_get(url, headers={"If-None-Match": headers["ETag"]})
    assert (status, body) == (304, b"")


def test_the_same_bytes_again_are_unchanged_and_not_uploaded(hook: CdnHook, stack: CdnStack):
    name = "widgets/html/9.0.1/js/varai-widget.min.js"
    hook.put_immutable(name, b"one", content_type=JS, cache_control=IMMUTABLE, channel="html")
    generation = emulator_metadata(stack, name)["generation"]
    assert hook.put_immutable(name, b"one", content_type=JS, cache_control=IMMUTABLE, channel="html") == "unchanged"
    assert emulator_metadata(stack, name)["generation"] == generation


def test_other_bytes_under_a_published_version_are_refused_and_the_cdn_keeps_the_original(
    hook: CdnHook, stack: CdnStack
):
    name = "widgets/html/9.0.2/js/varai-widget.min.js"
    hook.put_immutable(name, b"original", content_type=JS, cache_control=IMMUTABLE, channel="html")
    with pytest.raises(PublishConflictError) as caught:
        hook.put_immutable(name, b"tampered", content_type=JS, cache_control=IMMUTABLE, channel="shopify")
    err = caught.value
    assert (err.channel, err.destination) == ("shopify", "cdn")
    message = str(err)
    assert name in message
    assert hashlib.sha256(b"original").hexdigest() in message
    assert hashlib.sha256(b"tampered").hexdigest() in message
    assert cdn_get(hook.public_url(name))[2] == b"original"


def test_same_bytes_with_stale_headers_converge_without_a_new_upload(hook: CdnHook, stack: CdnStack):
    name = "widgets/html/9.0.3/js/varai-widget.min.js"
    hook.put_alias(name, b"same", content_type="text/plain", cache_control=SHORT)
    generation = emulator_metadata(stack, name)["generation"]
    assert hook.put_immutable(name, b"same", content_type=JS, cache_control=IMMUTABLE, channel="html") == "published"
    status, headers, body = cdn_get(hook.public_url(name))
    assert (status, body, headers["Content-Type"], headers["Cache-Control"]) == (200, b"same", JS, IMMUTABLE)
    assert emulator_metadata(stack, name)["generation"] == generation


def test_an_alias_moves_and_is_unchanged_when_already_there(hook: CdnHook, stack: CdnStack):
    name = "widgets/html/alias-test/js/varai-widget.min.js"
    assert hook.put_alias(name, b"v1", content_type=JS, cache_control=SHORT) == "published"
    assert hook.put_alias(name, b"v1", content_type=JS, cache_control=SHORT) == "unchanged"
    assert hook.put_alias(name, b"v2", content_type=JS, cache_control=SHORT) == "published"
    assert cdn_get(hook.public_url(name))[2] == b"v2"
    assert hook.put_alias(name, b"v2", content_type=JS, cache_control="public, max-age=60") == "published"
    assert cdn_get(hook.public_url(name))[1]["Cache-Control"] == "public, max-age=60"


def test_a_missing_object_reads_as_none_and_the_cdn_answers_404(hook: CdnHook, stack: CdnStack):
    assert hook.read("widgets/html/0.0.0/js/varai-widget.min.js") is None
    status, headers, _ = cdn_get(f"{stack.cdn_url}/widgets/html/0.0.0/js/varai-widget.min.js")
    assert status == 404
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_a_missing_bucket_is_named_with_the_connection(stack: CdnStack, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_CDN", stack.connection_env(bucket="no-such-bucket"))
    hook = CdnHook()
    for attempt in (
        lambda: hook.read("widgets/html/1.0.0/js/varai-widget.min.js"),
        lambda: hook.put_immutable("x.js", b"x", content_type=JS, cache_control=IMMUTABLE, channel="html"),
    ):
        with pytest.raises(PublishError, match=r"bucket 'no-such-bucket'.*'varai_cdn'.*does not exist") as caught:
            attempt()
        assert not isinstance(caught.value, PublishConflictError | PublishAuthError)
        assert (caught.value.channel, caught.value.destination) == ("html", "cdn")


def test_a_connection_that_is_missing_or_incomplete_says_what_to_add(stack: CdnStack, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_VARAI_CDN_STAGING", raising=False)
    with pytest.raises(PublishError, match="'varai_cdn_staging' is not defined"):
        CdnHook("varai_cdn_staging")
    conn = stack.connection()
    del conn["extra"]["public_url"]
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_CDN", json.dumps(conn))
    with pytest.raises(PublishError, match="'varai_cdn' has no extra 'public_url'"):
        CdnHook().public_url("widgets/html/latest/js/varai-widget.min.js")


@pytest.fixture
def refusing_storage() -> Iterator[str]:
    """GCS as it answers an anonymous caller on a private bucket: 401 with its JSON error body."""

    class Handler(BaseHTTPRequestHandler):
        def _refuse(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            message = "Anonymous caller does not have storage.objects.get access to the Google Cloud Storage object."
            body = json.dumps(
                {
                    "error": {
                        "code": 401,
                        "message": message,
                        "errors": [{"message": message, "domain": "global", "reason": "required"}],
                    }
                }
            ).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _refuse

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_refused_credentials_are_an_auth_error_naming_the_connection(
    stack: CdnStack, refusing_storage: str, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_CDN", stack.connection_env(api_endpoint=refusing_storage))
    with pytest.raises(PublishAuthError, match=r"refused the credentials of the Airflow connection 'varai_cdn'"):
        CdnHook().put_immutable("x.js", b"x", content_type=JS, cache_control=IMMUTABLE, channel="html")
