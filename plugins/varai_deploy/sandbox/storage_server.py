"""The sandbox's Google Cloud Storage: ``gcp-storage-emulator`` in the foreground, data under the home.

``python -m varai_deploy.sandbox.storage_server --home H --host 127.0.0.1 --port 18060 --bucket varai-widgets
[--bucket varai-backups ...]``

It speaks the GCS JSON and upload APIs the Google provider's ``GCSHook`` uses, keeps objects on disk
under ``<home>/storage`` (a restarted sandbox still serves what was published) and creates the buckets
when missing. Stops cleanly on SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from varai_deploy.sandbox.processes import port_is_free
from varai_deploy.sandbox.serving import SignalFlag

NAME = "storage"


def data_dir(home: Path) -> Path:
    return Path(home) / "storage"


def _create_bucket(host: str, port: int, bucket: str) -> None:
    """Through the emulator's own JSON API, as a client would; one already there is left as it is."""
    import http.client
    import json

    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", f"/storage/v1/b/{bucket}")
        found = conn.getresponse()
        found.read()
        if found.status == 200:
            return
        body = json.dumps({"name": bucket})
        conn.request("POST", "/storage/v1/b?project=varai-sandbox", body, {"Content-Type": "application/json"})
        created = conn.getresponse()
        created.read()
        if created.status != 200:
            raise RuntimeError(f"creating bucket {bucket}: HTTP {created.status}")
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m varai_deploy.sandbox.storage_server")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--bucket", required=True, action="append", help="repeat for more buckets")
    args = parser.parse_args(argv)
    # The emulator logs every request at INFO; warnings and errors are what a log tail should show.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from gcp_storage_emulator.server import create_server

    # The emulator binds in a thread and would wait forever for a bind that failed: check first.
    if not port_is_free(args.host, args.port):
        print(f"{NAME}: cannot listen on {args.host}:{args.port}: address in use", file=sys.stderr, flush=True)
        return 1
    stopping = SignalFlag()
    directory = data_dir(args.home).resolve()
    first, *others = args.bucket
    server = create_server(args.host, args.port, in_memory=False, default_bucket=first, data_dir=str(directory))
    server.start()
    for bucket in others:
        _create_bucket(args.host, args.port, bucket)
    print(
        f"{NAME}: serving buckets {', '.join(args.bucket)} on http://{args.host}:{args.port} from {directory}",
        flush=True,
    )
    try:
        while not stopping.sleep(3600):
            pass
    finally:
        server.stop()
    print(f"{NAME}: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
