"""Staging's load balancer in the sandbox: one address, a URL map, as Google's external load balancer fronts
staging (include/terraform/gcp): the widget bucket under ``/widgets/`` (a backend bucket), every other path
to the Cloud Run service that owns its prefix (a serverless NEG per service).

``python -m varai_deploy.sandbox.load_balancer --home H --host 127.0.0.1 --port 18073 --cloudrun URL
--service-name '{service}-staging' --storage URL --bucket B [--shoppers-rps R]``

A request to ``/recommendations?...`` goes to the local Cloud Run's service URL for ``recommendation-staging``
(``<cloudrun>/run/recommendation-staging/recommendations?...``), which splits it by the service's traffic and
counts it as Cloud Run does; the answer comes back as the revision gave it (``X-Served-Version`` ...). A
backend that does not answer is a 502, as the load balancer gives. Before that, staging's API gateway checks
what the widget sends (edge.py: CORS, merchants' keys, rate limits; ``<home>/staging/gateway/``).

``--shoppers-rps``: staging's own steady traffic (the sandbox traffic generator, in this process, logging to
``<home>/staging/requests.jsonl``), so a release's analysis on staging judges real requests; 0: none.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from varai_deploy.sandbox.cdn_server import HEALTH_PATH, Origin
from varai_deploy.sandbox.cdn_server import make_handler as bucket_handler
from varai_deploy.sandbox.cloudrun_fake import OWN_HEADERS, forward
from varai_deploy.sandbox.edge import Edge, Verdict
from varai_deploy.sandbox.gateway import send_verdict
from varai_deploy.sandbox.serving import QuietHandler, SignalFlag, bind_or_explain, serve_until_signalled
from varai_deploy.services import service_for_path

NAME = "load_balancer"
BUCKET_PREFIX = "/widgets/"


def shoppers_log(home: Path) -> Path:
    return home / "staging" / "requests.jsonl"


def make_handler(origin: Origin, cloudrun: str, service_name: str, edge: Edge | None = None) -> type[QuietHandler]:
    target = urlsplit(cloudrun)
    port = target.port or 80

    class Handler(bucket_handler(origin)):
        server_version = "varai-sandbox-load-balancer"

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == HEALTH_PATH or path.startswith(BUCKET_PREFIX):
                if self.command in ("GET", "HEAD"):
                    super().do_GET()
                else:
                    self.send_payload(405, b"method not allowed\n", [("Allow", "GET, HEAD")], "text/plain")
                return
            self._to_cloud_run(path)

        do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

        def _to_cloud_run(self, path: str) -> None:
            verdict = edge.admit(self.command, self.path, list(self.headers.items())) if edge else Verdict(None)
            body = self.read_body()
            if verdict.answer is not None:
                send_verdict(self, verdict, [])
                return
            service = service_name.format(service=service_for_path(path).name)
            sent = verdict.forward_headers if edge else self.headers.items()
            try:
                status, headers, answer = forward(port, self.command, f"/run/{service}{self.path}", sent, body)
            except OSError as exc:
                self.send_payload(502, f"502 {service} did not answer: {exc}\n".encode(), [], "text/plain")
                return
            content_type = next((v for k, v in headers if k.lower() == "content-type"), "text/plain")
            added = {name.lower() for name, _ in verdict.headers}
            kept = [(k, v) for k, v in headers if k.lower() not in OWN_HEADERS and k.lower() not in added]
            self.send_payload(status, answer, [*kept, *verdict.headers], content_type)

    return Handler


def start_shoppers(home: Path, host: str, port: int, rps: float) -> None:
    """The traffic generator against this address, in a daemon thread (it ends with the process)."""
    from varai_deploy.sandbox.traffic import MAX_SECONDS, Generator, RequestLog, shoppers_key

    generator = Generator(host, port, rps, RequestLog(shoppers_log(home)), api_key=shoppers_key(home, "staging"))
    never = SignalFlag(signals=())  # the process's own SIGTERM handling stops the server, and with it this
    threading.Thread(target=generator.run, args=(never, MAX_SECONDS), name="shoppers", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m varai_deploy.sandbox.load_balancer")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--cloudrun", required=True, help="the local Cloud Run's URL")
    parser.add_argument("--service-name", required=True, help="a service's Cloud Run name, e.g. '{service}-staging'")
    parser.add_argument("--storage", required=True, help="the storage emulator's URL")
    parser.add_argument("--bucket", required=True, help="the backend bucket served under /widgets/")
    parser.add_argument("--shoppers-rps", type=float, default=0.0)
    args = parser.parse_args(argv)
    from varai_deploy.sandbox.staging import gateway_dir

    edge = Edge(gateway_dir(args.home))
    handler = make_handler(Origin(args.storage, args.bucket), args.cloudrun, args.service_name, edge)
    server = bind_or_explain(args.host, args.port, handler, NAME)
    if server is None:
        return 2
    if args.shoppers_rps > 0:
        start_shoppers(args.home, args.host, args.port, args.shoppers_rps)
    print(
        f"{NAME}: http://{args.host}:{args.port}: /widgets/ from gs://{args.bucket}, the rest to "
        f"{args.service_name} on {args.cloudrun}; shoppers {args.shoppers_rps:g} req/s",
        flush=True,
    )
    return serve_until_signalled(server, NAME)


if __name__ == "__main__":
    sys.exit(main())
