"""The sandbox's CDN edge: what a merchant's browser loads the widget from.

``python -m varai_deploy.sandbox.cdn_server --home H --host 127.0.0.1 --port 18061 --storage URL --bucket B``

``GET``/``HEAD /<object name>`` (``/widgets/html/1.4.2/js/varai-widget.min.js``) answers the bucket's
object, read from the storage emulator's JSON and media API, with the object's stored Content-Type
and Cache-Control, an ETag (its MD5), Content-Length and ``Access-Control-Allow-Origin: *`` (the
script is loaded cross-origin with an SRI ``integrity`` attribute, which needs CORS); 404 when there is
no such object, 502 when the storage does not answer. Unlike a real CDN it caches nothing, so an alias
that moved is visible at once; production's Cloud CDN honours the short ``max-age`` of ``latest``.
"""

from __future__ import annotations

import argparse
import base64
import email.utils
import http.client
import json
import sys
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from varai_deploy.sandbox.serving import QuietHandler, bind_or_explain, serve_until_signalled

NAME = "cdn"
HEALTH_PATH = "/_health"
STORAGE_TIMEOUT_SECONDS = 10
#: What GCS serves for a public object without its own Cache-Control.
DEFAULT_CACHE_CONTROL = "public, max-age=3600"
CORS = [("Access-Control-Allow-Origin", "*")]


class OriginError(Exception):
    """The storage emulator did not answer as expected."""


class Origin:
    """One bucket of the storage emulator, read through its JSON API (the CDN's backend bucket)."""

    def __init__(self, storage_url: str, bucket: str) -> None:
        parts = urlsplit(storage_url)
        self.host, self.port, self.bucket = parts.hostname or "127.0.0.1", parts.port or 80, bucket

    def _get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=STORAGE_TIMEOUT_SECONDS)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise OriginError(f"storage at {self.host}:{self.port}: {type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()

    def fetch(self, name: str) -> tuple[dict[str, Any], bytes] | None:
        """(metadata, bytes) of the object, or None when there is none; the two agree (same MD5)."""
        path = f"/storage/v1/b/{quote(self.bucket, safe='')}/o/{quote(name, safe='')}"
        for _ in range(3):  # an overwrite between the two reads: read both again
            status, body = self._get(path)
            if status == 404:
                return None
            if status != 200:
                raise OriginError(f"storage answered {status} for the metadata of {name}")
            meta = json.loads(body)
            status, data = self._get(path + "?alt=media")
            if status == 404:
                return None
            if status != 200:
                raise OriginError(f"storage answered {status} for the content of {name}")
            if meta.get("md5Hash") == base64.b64encode(_md5(data)).decode("ascii"):
                return meta, data
        raise OriginError(f"{name} kept changing while it was read")


def _md5(data: bytes) -> bytes:
    import hashlib

    return hashlib.md5(data, usedforsecurity=False).digest()


def _last_modified(meta: dict[str, Any]) -> str | None:
    try:
        return email.utils.format_datetime(datetime.fromisoformat(meta["updated"].replace("Z", "+00:00")), usegmt=True)
    except (KeyError, AttributeError, ValueError):
        return None


def make_handler(origin: Origin) -> type[QuietHandler]:
    class Handler(QuietHandler):
        server_version = "varai-sandbox-cdn"

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == HEALTH_PATH:
                self.send_payload(200, b"ok\n", [], content_type="text/plain")
                return
            name = unquote(path).lstrip("/")
            try:
                found = origin.fetch(name) if name and not name.endswith("/") else None
            except OriginError as exc:
                self.send_payload(502, f"bad gateway: {exc}\n".encode(), CORS, content_type="text/plain")
                return
            if found is None:
                self.send_payload(404, f"not found: /{name}\n".encode(), CORS, content_type="text/plain")
                return
            meta, data = found
            etag = f'"{_md5(data).hex()}"'
            headers = [*CORS, ("Cache-Control", meta.get("cacheControl") or DEFAULT_CACHE_CONTROL), ("ETag", etag)]
            modified = _last_modified(meta)
            if modified:
                headers.append(("Last-Modified", modified))
            if etag in [tag.strip() for tag in self.headers.get("If-None-Match", "").split(",")]:
                self.send_response(304)
                for header, value in headers:
                    self.send_header(header, value)
                self.end_headers()
                return
            self.send_payload(200, data, headers, content_type=meta.get("contentType") or "application/octet-stream")

        do_HEAD = do_GET

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m varai_deploy.sandbox.cdn_server")
    parser.add_argument("--home", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--storage", required=True, help="the storage emulator's URL")
    parser.add_argument("--bucket", required=True)
    args = parser.parse_args(argv)
    server = bind_or_explain(args.host, args.port, make_handler(Origin(args.storage, args.bucket)), NAME)
    if server is None:
        return 1
    print(f"{NAME}: serving gs://{args.bucket} from {args.storage} on http://{args.host}:{args.port}", flush=True)
    return serve_until_signalled(server, NAME)


if __name__ == "__main__":
    sys.exit(main())
