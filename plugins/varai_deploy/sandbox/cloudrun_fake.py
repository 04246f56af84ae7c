"""A local Cloud Run: the Cloud Run Admin API v2 (``run.v2``) that runs each revision as a real process.

``python -m varai_deploy.sandbox.cloudrun_fake --home H --host 127.0.0.1 --port 18072``

Staging and production release through ``CloudRunPlatform`` (``google.cloud.run_v2`` clients over REST). Cloud Run
cannot run here, so this server plays the part of it a blue-green release needs, for real, in project
``ml-datadriven-recos``, location ``us-central1``, under ``/v2/projects/<project>/locations/<location>/``:

- ``services`` get, list, create (``serviceId``), patch (``updateMask`` honoured, or the whole spec replaced;
  ``allowMissing``, ``forceNewRevision``; the body's ``etag``, when given, must be the service's: else 409
  ABORTED, as AIP-154 has Google answer a stale etag), delete (``etag`` likewise). A change of ``template``
  creates a revision named ``template.revision`` (prefixed ``<service>-``; a name already used by another
  template is 409 ALREADY_EXISTS, as Cloud Run answers) or ``<service>-<00001>-<abc>``. The traffic list is
  held to Cloud Run's rules (each target a revision or ``TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST``, percentages
  0..100 summing to 100, tags unique and DNS labels, revisions that exist); empty, it is 100 % LATEST;
- ``services.revisions`` get, list (newest first), delete: refused 400 FAILED_PRECONDITION while the revision
  serves traffic, is tagged or is the service's latest (Cloud Run's rule);
- ``operations`` get, wait, list: every change answers a ``google.longrunning.Operation`` (metadata and response
  the Service, or the Revision for a revision's delete). One that starts a revision is done once its process
  answers ``/health`` 200, or done with an error (code 13, Cloud Run's for a revision that cannot serve) when it
  cannot start: the revision's ``Ready`` condition then says why (``CONTAINER_MISSING`` for an image that cannot
  be pulled, ``HEALTH_CHECK_CONTAINER_ERROR`` for a process that exits or never answers healthy) and the
  service's traffic stays as it was. A service applying a change answers ``reconciling`` and refuses another
  change (409 ABORTED) until it is done.

The contract, as in ``cloudsql_fake``: every request is checked against the run.v2 discovery document
(``varai_deploy.google_contract``) and answered 400 INVALID_ARGUMENT naming each problem; then a Service body is
read with run.v2's own proto descriptors (the client sends enums as numbers) and held to the document again; a
path the API lacks is 404, a method not served here 501, an option not supported 400 FAILED_PRECONDITION. Every
answer (a packed Service or Revision inside an Operation included) is checked too: one that breaks the contract
is a 500 naming the problems, never a 200. Errors are Google's JSON for v2 APIs, ``{"error": {"code",
"message", "status", "details"}}``. A Bearer token is accepted and not checked.

Revisions are real: the image ``<region>-docker.pkg.dev/ml-datadriven-recos/varai/<service>:<version>`` is
``python -m varai_deploy.sandbox.service --service <service> --version <version>`` with this home as its
``--home`` (so the sandbox's faults apply to it, and ``sandbox down`` finds it), on a port the kernel picks
(bind to 0; another one when the process loses it). Cloud Run has no colours; service.py needs one, so
revisions alternate blue and green in creation order. Any other image "cannot be pulled".

Serving: the sandbox has no DNS, so a service's URL is a path on this server, ``http://<host>:<port>/run/
<service>``, and a tag's is ``/run/<tag>---<service>``, the way Cloud Run names a tag's host
(``https://<tag>---<service>-<hash>.run.app``): one port whatever the number of services, and no path a service
serves can be mistaken for a tag. The prefix is stripped and the request forwarded to a revision; the answer
comes back with the service's own headers (``X-Served-Version`` ...). The service URL splits by the traffic
percentages with smooth weighted round-robin (nginx's): deterministic, each window of 100 requests gives every
revision exactly its percentage, interleaved; a tag URL reaches only its revision.

Metrics, on ``/metrics`` (Prometheus text format), counted at the proxy as Cloud Run counts them at its front
end, named as Managed Service for Prometheus shows Cloud Monitoring's ``run.googleapis.com/request_count`` and
``request_latencies`` to PromQL (first ``/`` to ``:``, other ``.``/``/`` to ``_``), with the
``cloud_run_revision`` resource's labels: ``run_googleapis_com:request_count`` (exposed untyped, so the name has
no ``_total``: production's PromQL works unchanged; labels ``monitored_resource``, ``project_id``, ``location``,
``service_name``, ``revision_name``, ``response_code``, ``response_code_class`` ``2xx``/``4xx``/``5xx``) and the
histogram ``run_googleapis_com:request_latencies`` in milliseconds (``_bucket``/``_sum``/``_count``; the same
labels but ``response_code``).

Images resolve to a digest when a revision is made (``imageDigest`` in its ``containerStatuses``): ``sha256:`` of
the image's name, or what ``<home>/cloudrun/registry.json`` says the tag was pushed again as.

State, under ``<home>/cloudrun/``: ``services/``, ``revisions/`` and ``operations/`` (a JSON file per record,
rewritten atomically) with each revision's process (pid, start time, command line). A restarted stand-in adopts
the revision processes still running (they are detached and outlive it, as instances outlive Cloud Run's control
plane), starts again those that died, and finishes the operations that were waiting for one. ``stop_revisions``
stops them all (``sandbox down`` does, through the component's ``shutdown``). ``requests.jsonl`` there keeps
every change request as received (method, path, query, JSON body, status), so a test can read the traffic lists
a release really sent.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import http.client
import json
import os
import re
import secrets
import socket
import string
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from varai_deploy import google_contract
from varai_deploy.google_contract import Contract, Match, Problem
from varai_deploy.sandbox import processes
from varai_deploy.sandbox.cloudsql_fake import STATUS_NAMES, Store, parse_body
from varai_deploy.sandbox.processes import SERVICE_MODULE, Marker
from varai_deploy.sandbox.serving import HOP_BY_HOP, QuietHandler, bind_or_explain, serve_until_signalled
from varai_deploy.services import SERVICE_NAMES

NAME = "cloudrun"
API, VERSION = "run", "v2"
PROJECT, LOCATION = "ml-datadriven-recos", "us-central1"
SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"
REVISION_TYPE = "type.googleapis.com/google.cloud.run.v2.Revision"
LATEST = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
BY_REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
UNSPECIFIED = "TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED"
SUCCEEDED, FAILED, RECONCILING = "CONDITION_SUCCEEDED", "CONDITION_FAILED", "CONDITION_RECONCILING"
#: Revision states kept in the record.
PENDING, READY, BROKEN = "PENDING", "READY", "FAILED"
IMAGE = re.compile(
    r"(?P<region>[a-z]+-[a-z]+[0-9]+)-docker\.pkg\.dev/(?P<project>[a-z][-a-z0-9]*)/varai/"
    r"(?P<service>[a-z][-a-z0-9]*):(?P<version>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})"
)
#: Cloud Run's service ids, and its revision names and tags (DNS labels).
SERVICE_ID = re.compile(r"[a-z]([-a-z0-9]{0,47}[a-z0-9])?")
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
RESOURCE = re.compile(
    r"projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"(?:/services/(?P<service>[^/]+)(?:/revisions/(?P<revision>[^/]+))?|/operations/(?P<operation>[^/]+))?"
)
TAG_SEPARATOR = "---"
#: Google's OAuth 2.0 token endpoint (``oauth2.googleapis.com/token``), served here too (google_identity).
TOKEN_PATH = "/token"  # noqa: S105 (a path, not a secret)
#: What Cloud Run fills in when a template leaves it out (so a template read back and sent again is unchanged).
TEMPLATE_DEFAULTS = {"timeout": "300s", "maxInstanceRequestConcurrency": 80, "scaling": {"maxInstanceCount": 100}}
CONTAINER_DEFAULTS = {
    "ports": [{"name": "http1", "containerPort": 8080}],
    "resources": {"limits": {"cpu": "1000m", "memory": "512Mi"}, "cpuIdle": True},
}
STARTUP_SECONDS = 30.0
PORT_ATTEMPTS = 3
WAIT_CAP_SECONDS = 60.0
PROXY_TIMEOUT = 60.0
DEFAULT_PAGE_SIZE = 100
#: Cloud Run's code for an operation whose revision cannot serve ("Error code 13, message: Revision ... is not
#: ready and cannot serve traffic").
REVISION_FAILED_CODE = 13
LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
Json = dict[str, Any]
Params = dict[str, str]


def state_dir(home: Path) -> Path:
    return Path(home) / NAME


def received_log(home: Path) -> Path:
    """Every change request the API received (method, path, query, JSON body, status), one JSON line each."""
    return state_dir(home) / "requests.jsonl"


def resolve_digest(home: Path, image: str) -> str:
    """What the registry holds under ``image``: ``registry.json`` in the state (``{image: digest}``,
    a tag pushed again) or, for an image nobody pushed again, ``sha256:`` of its name."""
    pushed = state_dir(home) / "registry.json"
    again = json.loads(pushed.read_text()) if pushed.is_file() else {}
    return again.get(image) or "sha256:" + hashlib.sha256(image.encode()).hexdigest()


def stamp() -> str:
    """Now in RFC 3339, UTC, microseconds (as Cloud Run's v2 API writes times)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- errors ---------------------------------------------------------------------------------------
class ApiError(Exception):
    """An error answer in Google's JSON shape for v2 APIs (``google.rpc.Status`` with its HTTP code)."""

    def __init__(self, code: int, message: str, problems: Iterable[Problem] = (), status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.problems = list(problems)
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")

    def payload(self) -> Json:
        error: Json = {"code": self.code, "message": self.message, "status": self.status}
        if self.problems:
            violations = [{"field": p.field, "description": p.message} for p in self.problems]
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}]
        return {"error": error}


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, f"Invalid request: {field}: {message}", [Problem(field, message)])


def precondition(message: str) -> ApiError:
    return ApiError(400, message, (), "FAILED_PRECONDITION")


def unsupported(what: str) -> ApiError:
    return precondition(f"the sandbox's Cloud Run stand-in does not support {what}")


def not_found(what: str) -> ApiError:
    return ApiError(404, f"Resource '{what}' was not found")


class RevisionFailed(Exception):
    """A revision that cannot serve: its Ready condition's ``reason`` field and value, and the message."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason
        self.message = message


# -- requests: names, bodies, traffic ----------------------------------------------------------------
def canonical_service(body: Json, contract: Contract) -> Json:
    """A Service body as Cloud Run reads it: through run.v2's proto descriptors (enum numbers become names,
    defaults drop out), then held to the discovery document as an answer would be (an enum number no name has)."""
    from google.cloud import run_v2
    from google.protobuf import json_format

    message = run_v2.Service.pb()()
    try:
        json_format.ParseDict(body, message)
    except json_format.ParseError as exc:
        raise invalid("body", str(exc).splitlines()[0]) from None
    service = json_format.MessageToDict(message)
    problems = contract.check_schema("GoogleCloudRunV2Service", service)
    if problems:
        raise ApiError(400, "Invalid request: " + "; ".join(map(str, problems)), problems)
    return service


def spec_fields(contract: Contract) -> frozenset[str]:
    """The Service fields a caller sets (not output only), but its name and etag, which identify it."""
    properties = contract.schemas["GoogleCloudRunV2Service"]["properties"]
    return frozenset(k for k, v in properties.items() if not v.get("readOnly")) - {"name", "etag"}


def camel(path: str) -> str:
    """A field mask path in the JSON names (``template.max_instance_request_concurrency`` is accepted too)."""
    return ".".join(re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), part) for part in path.split("."))


def masked(old: Json, new: Json, mask: str, fields: frozenset[str]) -> Json:
    """``old`` with the paths of ``mask`` taken from ``new`` (a path ``new`` lacks is cleared)."""
    spec = copy.deepcopy(old)
    for raw in filter(None, mask.split(",")):
        keys = camel(raw).split(".")
        if keys[0] not in fields:
            raise invalid("updateMask", f"{raw!r} is not a field of a Service that can be updated")
        source, target = new, spec
        for key in keys[:-1]:
            source = source.get(key) if isinstance(source, dict) else None
            target = target.setdefault(key, {})
        if isinstance(source, dict) and keys[-1] in source:
            target[keys[-1]] = copy.deepcopy(source[keys[-1]])
        else:
            target.pop(keys[-1], None)
    return spec


def with_defaults(template: Json) -> Json:
    filled = {**copy.deepcopy(TEMPLATE_DEFAULTS), **copy.deepcopy(template)}
    filled["containers"] = [{**copy.deepcopy(CONTAINER_DEFAULTS), **c} for c in template.get("containers") or []]
    return filled


def check_template(service_id: str, template: Json) -> None:
    containers = template.get("containers") or []
    if not containers or not containers[0].get("image"):
        raise invalid("template.containers", "a revision template needs a container with an image")
    if len(containers) > 1:
        raise unsupported("more than one container (sidecars)")
    name = template.get("revision")
    if name is not None and not (DNS_LABEL.fullmatch(name) and name.startswith(f"{service_id}-")):
        raise invalid(
            "template.revision",
            f"{name!r} must begin with the service's name and a hyphen ({service_id}-...), then lowercase "
            "letters, digits or hyphens, at most 63 characters",
        )


def check_traffic(traffic: list[Json], known: set[str]) -> list[Json]:
    """Cloud Run's rules for a traffic list; the list with each target's type explicit (100 % LATEST if empty)."""
    if not traffic:
        return [{"type": LATEST, "percent": 100}]
    targets, tags = [], set()
    for index, given in enumerate(traffic):
        target, where = dict(given), f"traffic[{index}]"
        kind = target.get("type", UNSPECIFIED)
        if kind == UNSPECIFIED and target.get("revision"):
            kind = BY_REVISION
        if kind == BY_REVISION and not target.get("revision"):
            raise invalid(f"{where}.revision", f"a target of type {BY_REVISION} names its revision")
        if kind == LATEST and target.get("revision"):
            raise invalid(f"{where}.revision", f"a target of type {LATEST} names no revision")
        if kind == UNSPECIFIED:
            raise invalid(f"{where}.type", f"a target names a revision or has type {LATEST}")
        if kind == BY_REVISION and target["revision"] not in known:
            raise invalid(f"{where}.revision", f"revision {target['revision']!r} does not exist in this service")
        if not 0 <= target.get("percent", 0) <= 100:
            raise invalid(f"{where}.percent", f"must be between 0 and 100, got {target['percent']}")
        tag = target.get("tag")
        if tag and not DNS_LABEL.fullmatch(tag):
            raise invalid(f"{where}.tag", f"{tag!r} must be lowercase letters, digits and hyphens (a DNS label)")
        if tag and tag in tags:
            raise invalid(f"{where}.tag", f"tag {tag!r} is given to more than one traffic target")
        tags.add(tag)
        targets.append({**target, "type": kind})
    total = sum(t.get("percent", 0) for t in targets)
    if total != 100:
        raise invalid("traffic", f"the traffic targets' percentages sum to {total}; they must sum to 100")
    return targets


def parse_image(image: str) -> tuple[str, str]:
    """``(service, version)`` of an image this Cloud Run can pull, else RevisionFailed as Cloud Run reports it."""
    found = IMAGE.fullmatch(image)
    if found is None or found["project"] != PROJECT or found["service"] not in SERVICE_NAMES:
        raise RevisionFailed("reason", "CONTAINER_MISSING", f"Image '{image}' not found.")
    return found["service"], found["version"]


# -- revision processes ---------------------------------------------------------------------------------
def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def process_marker(process: Json) -> Marker:
    return Marker(SERVICE_MODULE, tuple(tuple(pair) for pair in process["flags"]))


def process_running(process: Json | None) -> bool:
    return bool(process) and processes.is_ours(process["pid"], process_marker(process), process.get("starttime"))


def stop_process(process: Json | None) -> None:
    if process_running(process):
        processes.stop([process["pid"], process.get("wrapper_pid")])


def stop_revisions(home: Path) -> None:
    """Stop every revision process recorded under ``home`` (``sandbox down``; a test's clean-up)."""
    from varai_deploy.sandbox.state import read_json

    for path in sorted((state_dir(home) / "revisions").glob("*.json")):
        record = read_json(path)
        if isinstance(record, dict):
            stop_process(record.get("process"))


@dataclass
class Launch:
    """One revision's process being started: where it logs and what it is."""

    home: Path
    host: str
    revision: str
    service: str
    version: str
    colour: str

    @property
    def log_file(self) -> Path:
        return state_dir(self.home) / "logs" / f"{self.revision}.log"

    @property
    def exit_file(self) -> Path:
        return state_dir(self.home) / "run" / f"{self.revision}.exit"

    def flags(self, port: int) -> list[list[str]]:
        pairs = {"--service": self.service, "--version": self.version, "--colour": self.colour}
        pairs.update({"--port": str(port), "--home": str(self.home), "--host": self.host})
        return [[flag, value] for flag, value in pairs.items()]

    def spawn(self, port: int) -> Json:
        flags = self.flags(port)
        argv = Marker(SERVICE_MODULE, tuple(tuple(p) for p in flags)).argv()
        spawned = processes.spawn(argv, log_file=self.log_file, exit_file=self.exit_file, cwd=self.home)
        return {
            "port": port,
            "pid": spawned.pid,
            "wrapper_pid": spawned.wrapper_pid,
            "starttime": spawned.starttime,
            "flags": flags,
        }

    def await_healthy(self, process: Json, deadline: float) -> str | None:
        """None once ``/health`` answers 200; ``"port"`` when it lost its port; else RevisionFailed."""
        while time.monotonic() < deadline:
            if processes.http_status(self.host, process["port"], "/health", timeout=1.0) == 200:
                return None
            if not processes.is_alive(process["pid"]):
                return self._exited(process)
            time.sleep(0.05)
        stop_process(process)
        raise RevisionFailed(
            "revisionReason",
            "HEALTH_CHECK_CONTAINER_ERROR",
            f"The user-provided container did not answer its startup probe (GET /health 200) within "
            f"{STARTUP_SECONDS:g}s. Logs for this revision might contain more information: {self.log_file}",
        )

    def _exited(self, process: Json) -> str:
        code = None
        for _ in range(40):  # the wrapper writes the exit code a moment after the process ends
            code = processes.read_exit_code(self.exit_file, process["pid"])
            if code is not None:
                break
            time.sleep(0.05)
        tail = processes.log_tail(self.log_file, 3)
        if code == 2 and any("cannot listen" in line for line in tail):
            return "port"
        raise RevisionFailed(
            "revisionReason",
            "HEALTH_CHECK_CONTAINER_ERROR",
            f"The user-provided container failed to start and listen on the port defined provided by the "
            f"PORT={process['port']} environment variable (exit code {code}): {' | '.join(tail[-2:])}",
        )


# -- serving ------------------------------------------------------------------------------------------
class Picker:
    """Smooth weighted round-robin (nginx's) per route: in every window of ``sum(weights)`` picks each revision
    comes exactly its weight times, spread out; the counters start over when the weights change."""

    def __init__(self) -> None:
        self._routes: dict[str, tuple[tuple[tuple[str, int], ...], dict[str, int]]] = {}

    def pick(self, route: str, weights: tuple[tuple[str, int], ...]) -> str:
        known, current = self._routes.get(route, ((), {}))
        if known != weights:
            current = dict.fromkeys((name for name, _ in weights), 0)
            self._routes[route] = (weights, current)
        for name, weight in weights:
            current[name] += weight
        chosen = max(weights, key=lambda pair: current[pair[0]])[0]
        current[chosen] -= sum(weight for _, weight in weights)
        return chosen


class ProxyMetrics:
    """Cloud Run's request metrics as Managed Service for Prometheus names them (see the module's doc)."""

    REQUEST_COUNT = "run_googleapis_com:request_count"
    REQUEST_LATENCIES = "run_googleapis_com:request_latencies"

    def __init__(self, project: str, location: str) -> None:
        from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics

        disable_created_metrics()
        self.resource = {"monitored_resource": "cloud_run_revision", "project_id": project, "location": location}
        self.registry = CollectorRegistry()
        self.latencies = Histogram(
            self.REQUEST_LATENCIES,
            "Distribution of request latency in milliseconds reaching the revision (run.googleapis.com).",
            [*self.resource, "service_name", "revision_name", "response_code_class"],
            buckets=LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self._counts: dict[tuple[tuple[str, str], ...], int] = {}
        self._lock = threading.Lock()
        self.registry.register(self)

    def observe(self, service: str, revision: str, code: int, milliseconds: float) -> None:
        labels = {**self.resource, "service_name": service, "revision_name": revision}
        code_class = f"{code // 100}xx"
        key = tuple({**labels, "response_code": str(code), "response_code_class": code_class}.items())
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
        self.latencies.labels(**labels, response_code_class=code_class).observe(milliseconds)

    def collect(self) -> Iterable[Any]:
        """The request count, exposed untyped: a counter would gain a ``_total`` production's name lacks."""
        from prometheus_client.core import Metric

        family = Metric(self.REQUEST_COUNT, "Number of requests reaching the revision (run.googleapis.com).", "unknown")
        with self._lock:
            counts = sorted(self._counts.items())
        for labels, value in counts:
            family.add_sample(self.REQUEST_COUNT, dict(labels), value)
        yield family

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class Route:
    service: str
    revision: str
    port: int


# -- the API ------------------------------------------------------------------------------------------
class CloudRun:
    """Services, revisions and operations of one project and location; thread-safe."""

    def __init__(self, home: Path, host: str, url: str, contract: Contract) -> None:
        self.home = Path(home)
        self.host = host
        self.url = url
        self.contract = contract
        self.spec_fields = spec_fields(contract)
        self.revision_fields = frozenset(contract.schemas["GoogleCloudRunV2Revision"]["properties"])
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        root = state_dir(home)
        self.services = Store(root / "services", "id")
        self.revisions = Store(root / "revisions", "id")
        self.operations = Store(root / "operations", "id")
        self.picker = Picker()
        self.metrics = ProxyMetrics(PROJECT, LOCATION)
        self.methods: dict[str, Callable[[str, Params, Json], Json]] = {
            "run.projects.locations.services.get": self.get_service,
            "run.projects.locations.services.list": self.list_services,
            "run.projects.locations.services.create": self.create_service,
            "run.projects.locations.services.patch": self.patch_service,
            "run.projects.locations.services.delete": self.delete_service,
            "run.projects.locations.services.revisions.get": self.get_revision,
            "run.projects.locations.services.revisions.list": self.list_revisions,
            "run.projects.locations.services.revisions.delete": self.delete_revision,
            "run.projects.locations.operations.get": self.get_operation,
            "run.projects.locations.operations.wait": self.wait_operation,
            "run.projects.locations.operations.list": self.list_operations,
        }

    def call(self, match: Match, query: dict[str, list[str]], body: Any) -> Json:
        method = self.methods.get(match.method_id)
        if method is None:
            served = ", ".join(sorted(self.methods))
            raise ApiError(501, f"{match.method_id} is not served by the sandbox's Cloud Run stand-in ({served})")
        name = match.params.get("name") or match.params.get("parent") or ""
        self._where(name)
        return method(name, {k: v[-1] for k, v in query.items()}, body or {})

    def received(self, method: str, path: str, query: str, raw: bytes, status: int) -> None:
        """One change request as it arrived, and the status it got, appended to ``requests.jsonl``."""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        line = {"at": stamp(), "method": method, "path": path, "query": query, "body": body, "status": status}
        with self.lock, open(received_log(self.home), "a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")

    def resume(self) -> None:
        """After a (re)start: adopt running revision processes, start again those that died, finish what waited."""
        for record in self.revisions.all():
            if record["state"] == PENDING or (record["state"] == READY and not process_running(record["process"])):
                self._in_background(record["id"])

    # -- services -----------------------------------------------------------------------------------
    def get_service(self, name: str, query: Params, body: Json) -> Json:
        with self.lock:
            return self._service_view(self._service(name))

    def list_services(self, parent: str, query: Params, body: Json) -> Json:
        refuse_true(query, "showDeleted")
        with self.lock:
            found = [self._service_view(s) for s in sorted(self.services.all(), key=lambda s: s["id"])]
        return page(found, query, "services")

    def create_service(self, parent: str, query: Params, body: Json) -> Json:
        refuse_true(query, "validateOnly")
        service_id = query.get("serviceId") or ""
        if not SERVICE_ID.fullmatch(service_id):
            raise invalid("serviceId", f"{service_id!r} must be lowercase letters, digits and hyphens, 1-49")
        if body.get("name"):
            raise invalid("service.name", "must be empty on create: the service's name comes from serviceId")
        service = canonical_service(body, self.contract)
        with self.lock:
            if self.services.get(service_id) is not None:
                raise ApiError(409, f"Resource '{parent}/services/{service_id}' already exists.", (), "ALREADY_EXISTS")
            now = stamp()
            record = {
                "id": service_id,
                "uid": str(uuid.uuid4()),
                "createTime": now,
                "generation": 0,
                "spec": {"ingress": "INGRESS_TRAFFIC_ALL", "launchStage": "GA", "template": {}},
                "effective": [],
                "latestReady": None,
                "latestCreated": None,
                "revisionCount": 0,
                "status": {"state": SUCCEEDED, "since": now},
            }
            new = {k: v for k, v in service.items() if k in self.spec_fields}
            return self._change(record, {**record["spec"], **new}, force_revision=True)

    def patch_service(self, name: str, query: Params, body: Json) -> Json:
        refuse_true(query, "validateOnly")
        service_id = self._ids(name)["service"]
        with self.lock:
            record = self.services.get(service_id)
        if record is None:
            if query.get("allowMissing") == "true":
                parent = name.rsplit("/services/", 1)[0]
                return self.create_service(parent, {"serviceId": service_id}, {**body, "name": ""})
            raise not_found(name)
        service = canonical_service(body, self.contract)
        with self.lock:
            record = self._service(name)
            self._check_etag(record, service.get("etag"), name)
            if record.get("operation"):
                raise ApiError(409, f"Service '{name}' is still applying a change ({record['operation']}); retry.")
            new = {k: v for k, v in service.items() if k in self.spec_fields}
            mask = query.get("updateMask")
            spec = new if mask is None or mask == "*" else masked(record["spec"], new, mask, self.spec_fields)
            return self._change(record, spec, force_revision=query.get("forceNewRevision") == "true")

    def delete_service(self, name: str, query: Params, body: Json) -> Json:
        refuse_true(query, "validateOnly")
        with self.lock:
            record = self._service(name)
            self._check_etag(record, query.get("etag"), name)
            view = self._service_view(record)
            revisions = [r for r in self.revisions.all() if r["service"] == record["id"]]
            for revision in revisions:
                self._forget(self.revisions, revision["id"])
            self._forget(self.services, record["id"])
            if record.get("operation"):
                self._complete(record["operation"], view, {"code": 10, "message": f"Service '{name}' was deleted."})
        for revision in revisions:
            stop_process(revision.get("process"))
        return self._done_operation(SERVICE_TYPE, view)

    def _change(self, record: Json, spec: Json, force_revision: bool) -> Json:
        """Apply a new spec to a service (caller holds the lock): a revision to start when the template changed,
        else the traffic at once. Answers the operation."""
        service_id = record["id"]
        template = with_defaults(spec.get("template") or {})
        check_template(service_id, template)
        spec = {**spec, "template": template}
        starting = self._new_revision(record, template, force_revision or template != record["spec"].get("template"))
        known = {r["id"] for r in self.revisions.all() if r["service"] == service_id} | {starting or ""}
        spec["traffic"] = check_traffic(spec.get("traffic") or [], known)
        if starting is None:
            self._check_serving(spec["traffic"])
        now = stamp()
        record = {**record, "spec": spec, "generation": record["generation"] + 1, "updateTime": now}
        record["etag"] = etag_of(record)
        if starting is None:
            record = self._apply_traffic(record)
            self.services.put(record)
            return self._done_operation(SERVICE_TYPE, self._service_view(record))
        revision = self._revision_record(record, starting, template, now)
        record.update(latestCreated=starting, revisionCount=revision["ordinal"])
        record["status"] = {"state": RECONCILING, "since": now}
        operation = self._operation(SERVICE_TYPE, self._service_view(record))
        record["operation"] = revision["operation"] = operation["id"]
        self.revisions.put(revision)
        self.services.put(record)
        self._in_background(starting)
        return operation["operation"]

    def _new_revision(self, record: Json, template: Json, changed: bool) -> str | None:
        """The name of the revision a template change creates, None when it creates none."""
        name = template.get("revision")
        existing = self.revisions.get(name) if name else None
        if existing is not None:
            if existing["service"] != record["id"] or existing["template"] != template:
                raise ApiError(
                    409, f"Revision named '{name}' with different configuration already exists.", (), "ALREADY_EXISTS"
                )
            return None
        if not changed:
            return None
        if name:
            return name
        ordinal = record["revisionCount"] + 1
        return f"{record['id']}-{ordinal:05d}-{''.join(secrets.choice(string.ascii_lowercase) for _ in range(3))}"

    def _check_serving(self, traffic: list[Json]) -> None:
        for target in traffic:
            name = target.get("revision")
            found = self.revisions.get(name) if name else None
            if found is not None and found["state"] != READY:
                raise precondition(f"Revision '{name}' is not ready and cannot serve traffic.")

    def _revision_record(self, record: Json, name: str, template: Json, now: str) -> Json:
        ordinal = record["revisionCount"] + 1
        return {
            "id": name,
            "service": record["id"],
            "uid": str(uuid.uuid4()),
            "ordinal": ordinal,
            "colour": "blue" if ordinal % 2 else "green",
            "template": template,
            # Resolved once, as Cloud Run pins a revision to what its image's tag pointed at then.
            "digest": resolve_digest(self.home, template["containers"][0]["image"]),
            "createTime": now,
            "updateTime": now,
            "state": PENDING,
            "failure": None,
            "process": None,
        }

    def _apply_traffic(self, record: Json) -> Json:
        """The spec's traffic is what serves now (every revision it names is ready)."""
        now = stamp()
        return {**record, "effective": record["spec"]["traffic"], "status": {"state": SUCCEEDED, "since": now}}

    def _check_etag(self, record: Json, etag: str | None, name: str) -> None:
        if etag and etag != record["etag"]:
            raise ApiError(409, f"etag {etag} does not match the current etag of '{name}'; read it again.")

    # -- revisions ----------------------------------------------------------------------------------
    def get_revision(self, name: str, query: Params, body: Json) -> Json:
        with self.lock:
            return self._revision_view(self._revision(name))

    def list_revisions(self, parent: str, query: Params, body: Json) -> Json:
        refuse_true(query, "showDeleted")
        with self.lock:
            service = self._service(parent)
            found = [r for r in self.revisions.all() if r["service"] == service["id"]]
            views = [self._revision_view(r) for r in sorted(found, key=lambda r: r["ordinal"], reverse=True)]
        return page(views, query, "revisions")

    def delete_revision(self, name: str, query: Params, body: Json) -> Json:
        refuse_true(query, "validateOnly")
        with self.lock:
            revision = self._revision(name)
            if query.get("etag") and query["etag"] != etag_of(revision):
                raise ApiError(409, f"etag {query['etag']} does not match the current etag of '{name}'.")
            why = self._in_use(self.services.items[revision["service"]], revision["id"])
            if why:
                raise precondition(f"Revision '{revision['id']}' cannot be deleted: {why}.")
            view = self._revision_view(revision)
            self._forget(self.revisions, revision["id"])
        stop_process(revision.get("process"))
        return self._done_operation(REVISION_TYPE, view)

    def _in_use(self, service: Json, revision: str) -> str | None:
        latest = service["latestReady"]
        for target in [*service["effective"], *service["spec"]["traffic"]]:
            resolved = target.get("revision") or latest
            if resolved == revision and target.get("percent"):
                return "it is serving traffic"
            if resolved == revision and target.get("tag"):
                return f"it is referenced by traffic tag '{target['tag']}'"
        if revision in (service["latestCreated"], service["spec"]["template"].get("revision")):
            return "it is the service's latest revision"
        return None

    # -- bringing revisions up -----------------------------------------------------------------------
    def _in_background(self, revision: str) -> None:
        threading.Thread(target=self._bring_up, args=(revision,), name=f"revision-{revision}", daemon=True).start()

    def _bring_up(self, revision_id: str) -> None:
        """Start (or adopt) the revision's process and wait for it; the revision and its service follow."""
        try:
            with self.lock:
                record = self.revisions.get(revision_id)
            if record is None:
                return
            image = record["template"]["containers"][0]["image"]
            service, version = parse_image(image)
            launch = Launch(self.home, self.host, revision_id, service, version, record["colour"])
            self._start(record, launch)
        except RevisionFailed as exc:
            self._finish(revision_id, exc)
        except Exception as exc:  # a bug here: on the revision and in the log, never a silent hang
            traceback.print_exc()
            self._finish(revision_id, RevisionFailed("reason", "INTERNAL", f"the stand-in failed: {exc!r}"))
        else:
            self._finish(revision_id, None)

    def _start(self, record: Json, launch: Launch) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        process = record.get("process")
        if process_running(process) and launch.await_healthy(process, deadline) is None:
            return
        for _ in range(PORT_ATTEMPTS):
            process = launch.spawn(free_port(self.host))
            if not self._record_process(record["id"], process):
                stop_process(process)  # deleted meanwhile
                return
            if launch.await_healthy(process, deadline) is None:
                return
        raise RevisionFailed("revisionReason", "HEALTH_CHECK_CONTAINER_ERROR", "no free port for the container")

    def _record_process(self, revision_id: str, process: Json) -> bool:
        with self.lock:
            record = self.revisions.get(revision_id)
            if record is not None:
                self.revisions.put({**record, "process": process})
            return record is not None

    def _finish(self, revision_id: str, failure: RevisionFailed | None) -> None:
        with self.lock:
            revision = self.revisions.get(revision_id)
            if revision is None:
                return
            state = BROKEN if failure else READY
            fields = {"field": failure.field, "reason": failure.reason, "message": failure.message} if failure else None
            revision = {**revision, "state": state, "failure": fields, "updateTime": stamp()}
            self.revisions.put(revision)
            service = self.services.get(revision["service"])
            if service is None:
                return
            operation = revision.get("operation")
            if operation and service.get("operation") == operation:
                service = self._settle(service, revision, failure)
            self.services.put(service)
            if operation and not self.operations.items[operation]["operation"].get("done"):
                self._complete(operation, self._service_view(service), failure and revision_error(revision_id, failure))

    def _settle(self, service: Json, revision: Json, failure: RevisionFailed | None) -> Json:
        """The service once its new revision is up (the traffic applied) or not (the traffic as it was)."""
        service = {**service, "operation": None}
        if failure is None:
            return self._apply_traffic({**service, "latestReady": revision["id"]})
        message = revision_error(revision["id"], failure)["message"]
        return {**service, "status": {"state": FAILED, "since": stamp(), "message": message}}

    # -- operations ----------------------------------------------------------------------------------
    def get_operation(self, name: str, query: Params, body: Json) -> Json:
        with self.lock:
            return self._find_operation(name)

    def wait_operation(self, name: str, query: Params, body: Json) -> Json:
        timeout = min(float(body.get("timeout", "60s").rstrip("s")), WAIT_CAP_SECONDS)
        with self.changed:
            self.changed.wait_for(lambda: self._find_operation(name).get("done", False), timeout=timeout)
            return self._find_operation(name)

    def list_operations(self, name: str, query: Params, body: Json) -> Json:
        if query.get("filter"):
            raise unsupported("filter on operations.list")
        with self.lock:
            found = sorted(self.operations.all(), key=lambda r: r["created"], reverse=True)
        return page([r["operation"] for r in found], query, "operations")

    def _find_operation(self, name: str) -> Json:
        record = self.operations.get(self._ids(name)["operation"] or "")
        if record is None:
            raise not_found(name)
        return record["operation"]

    def _operation(self, type_url: str, resource: Json) -> Json:
        """A new operation on ``resource``, not done (caller holds the lock): its record."""
        operation_id = str(uuid.uuid4())
        operation = {
            "name": f"projects/{PROJECT}/locations/{LOCATION}/operations/{operation_id}",
            "metadata": {"@type": type_url, **resource},
        }
        return self.operations.put({"id": operation_id, "created": stamp(), "operation": operation})

    def _done_operation(self, type_url: str, resource: Json) -> Json:
        with self.lock:
            record = self._operation(type_url, resource)
            self._complete(record["id"], resource, None)
            return self.operations.items[record["id"]]["operation"]

    def _complete(self, operation_id: str, resource: Json, error: Json | None) -> None:
        record = copy.deepcopy(self.operations.items[operation_id])
        operation = record["operation"]
        type_url = operation["metadata"]["@type"]
        operation.update(done=True, metadata={"@type": type_url, **resource})
        if error is None:
            operation["response"] = {"@type": type_url, **resource}
        else:
            operation["error"] = error
        self.operations.put(record)
        self.changed.notify_all()

    # -- names and views ------------------------------------------------------------------------------
    def _where(self, name: str) -> None:
        ids = self._ids(name)
        if ids["project"] != PROJECT:
            raise ApiError(403, f"Permission denied on resource project {ids['project']}.")
        if ids["location"] != LOCATION:
            raise ApiError(404, f"Location {ids['location']} is not found (this Cloud Run serves {LOCATION}).")

    @staticmethod
    def _ids(name: str) -> dict[str, str | None]:
        found = RESOURCE.fullmatch(name)
        if found is None:
            raise not_found(name)
        return found.groupdict()

    def _service(self, name: str) -> Json:
        record = self.services.get(self._ids(name)["service"] or "")
        if record is None:
            raise not_found(name.split("/revisions/")[0])
        return record

    def _revision(self, name: str) -> Json:
        ids = self._ids(name)
        self._service(name)
        record = self.revisions.get(ids["revision"] or "")
        if record is None or record["service"] != ids["service"]:
            raise not_found(name)
        return record

    def _forget(self, store: Store, key: str) -> None:
        store.items.pop(key, None)
        (store.directory / f"{key}.json").unlink(missing_ok=True)

    def parent(self) -> str:
        return f"projects/{PROJECT}/locations/{LOCATION}"

    def uri(self, service: str, tag: str | None = None) -> str:
        return f"{self.url}/run/{tag}{TAG_SEPARATOR}{service}" if tag else f"{self.url}/run/{service}"

    def _service_view(self, record: Json) -> Json:
        sid, status, now = record["id"], record["status"], record["status"]["since"]
        revision_name = f"{self.parent()}/services/{sid}/revisions/"
        reconciling = status["state"] == RECONCILING
        ready = condition("Ready", status["state"], now, status.get("message"))
        configurations = condition("ConfigurationsReady", status["state"], now, status.get("message"))
        if status["state"] == FAILED:
            ready["reason"] = configurations["reason"] = "REVISION_FAILED"
        view = {
            **copy.deepcopy(record["spec"]),
            "name": f"{self.parent()}/services/{sid}",
            "uid": record["uid"],
            "generation": str(record["generation"]),
            "createTime": record["createTime"],
            "updateTime": record["updateTime"],
            "creator": "sandbox@ml-datadriven-recos.iam.gserviceaccount.com",
            "lastModifier": "sandbox@ml-datadriven-recos.iam.gserviceaccount.com",
            "observedGeneration": str(record["generation"]),
            "terminalCondition": ready,
            "conditions": [condition("RoutesReady", RECONCILING if reconciling else SUCCEEDED, now), configurations],
            "trafficStatuses": [self._traffic_status(sid, t) for t in record["effective"]],
            "uri": self.uri(sid),
            "urls": [self.uri(sid)],
            "reconciling": reconciling,
            "etag": record["etag"],
        }
        for field, revision in (("latestReadyRevision", "latestReady"), ("latestCreatedRevision", "latestCreated")):
            if record[revision]:
                view[field] = revision_name + record[revision]
        return view

    def _traffic_status(self, service: str, target: Json) -> Json:
        status = {k: v for k, v in target.items() if k in ("type", "revision", "percent", "tag")}
        if target.get("tag"):
            status["uri"] = self.uri(service, target["tag"])
        return status

    def _revision_view(self, record: Json) -> Json:
        template, failure = record["template"], record["failure"]
        state = {PENDING: RECONCILING, READY: SUCCEEDED, BROKEN: FAILED}[record["state"]]
        conditions = [condition(kind, state, record["updateTime"]) for kind in ("Ready", "ContainerHealthy")]
        conditions.append(condition("ResourcesAvailable", SUCCEEDED, record["createTime"]))
        if failure:
            for failed in conditions[:2]:
                failed.update({"message": failure["message"], failure["field"]: failure["reason"]})
        view = {k: copy.deepcopy(v) for k, v in template.items() if k in self.revision_fields}
        view.update(
            name=f"{self.parent()}/services/{record['service']}/revisions/{record['id']}",
            uid=record["uid"],
            generation="1",
            observedGeneration="1",
            createTime=record["createTime"],
            updateTime=record["updateTime"],
            launchStage="GA",
            service=f"{self.parent()}/services/{record['service']}",
            conditions=conditions,
            reconciling=record["state"] == PENDING,
            etag=etag_of(record),
            logUri=(state_dir(self.home) / "logs" / f"{record['id']}.log").as_uri(),
        )
        if record["state"] == READY:
            digest = record.get("digest") or resolve_digest(self.home, template["containers"][0]["image"])
            view["containerStatuses"] = [{"name": template["containers"][0].get("name", ""), "imageDigest": digest}]
        return view

    # -- serving --------------------------------------------------------------------------------------
    def route(self, host: str) -> Route:
        """Where a request to ``/run/<host>`` goes: ApiError 404 for no such service or tag, 503 for nothing
        ready to serve."""
        tag, _, service_id = host.rpartition(TAG_SEPARATOR)
        with self.lock:
            service = self.services.get(service_id)
            if service is None:
                raise ApiError(404, f"no Cloud Run service {service_id!r} here")
            latest = service["latestReady"]
            if tag:
                revision = next((t.get("revision") or latest for t in service["effective"] if t.get("tag") == tag), "")
                if not revision:
                    raise ApiError(404, f"service {service_id!r} has no traffic tag {tag!r}")
            else:
                revision = self._pick(service, latest)
            record = self.revisions.get(revision)
            process = record and record.get("process")
        if not process or record["state"] != READY:
            raise ApiError(503, f"revision {revision or '(none)'} of {service_id} is not serving")
        return Route(service_id, revision, process["port"])

    def authorize(self, service_id: str, authorization: str | None) -> None:
        """A private service (``invokerIamDisabled`` not set: IAM decides, and here every account is an
        invoker) serves only a request carrying a Google ID token for one of its URLs or custom audiences:
        403 without one, 401 for one that is not valid, as Cloud Run answers."""
        from varai_deploy.sandbox import google_identity

        with self.lock:
            service = self.services.get(service_id)
            if service is None or service["spec"].get("invokerIamDisabled"):
                return
            audiences = {self.uri(service_id), *service["spec"].get("customAudiences", [])}
            audiences |= {self.uri(service_id, t["tag"]) for t in service["effective"] if t.get("tag")}
        if not authorization or not authorization.startswith("Bearer "):
            raise ApiError(403, f"Your client does not have permission to get URL /run/{service_id}: no ID token")
        try:
            google_identity.verify_id_token(self.home, authorization.removeprefix("Bearer ").strip(), audiences)
        except ValueError as exc:
            raise ApiError(401, f"The ID token is not valid for {service_id}: {exc}") from None

    def _pick(self, service: Json, latest: str | None) -> str:
        weights: dict[str, int] = {}
        for target in service["effective"]:
            revision = target.get("revision") or latest
            if revision and target.get("percent"):
                weights[revision] = weights.get(revision, 0) + target["percent"]
        return self.picker.pick(service["id"], tuple(weights.items())) if weights else ""


def condition(kind: str, state: str, when: str, message: str | None = None) -> Json:
    found = {"type": kind, "state": state, "lastTransitionTime": when}
    if message and state != SUCCEEDED:
        found["message"] = message
    return found


def revision_error(revision: str, failure: RevisionFailed) -> Json:
    message = f"Revision '{revision}' is not ready and cannot serve traffic. {failure.message}"
    return {"code": REVISION_FAILED_CODE, "message": message}


def etag_of(record: Json) -> str:
    digest = hashlib.sha256(f"{record['uid']}:{record.get('generation', 1)}".encode()).hexdigest()
    return f'"{digest[:24]}"'


def refuse_true(query: Params, option: str) -> None:
    if query.get(option) == "true":
        raise unsupported(option)


def page(items: list[Json], query: Params, key: str) -> Json:
    """One page of a list answer (left out when empty, as Google leaves empty lists out), ``nextPageToken``
    while more follow."""
    token = query.get("pageToken") or "0"
    if not token.isdigit():
        raise invalid("pageToken", f"{token!r} is not a page token this API gave")
    start, size = int(token), int(query.get("pageSize") or 0) or DEFAULT_PAGE_SIZE
    answer: Json = {key: items[start : start + size]} if items[start : start + size] else {}
    if start + size < len(items):
        answer["nextPageToken"] = str(start + size)
    return answer


# -- HTTP ---------------------------------------------------------------------------------------------
def forward(port: int, method: str, path: str, headers: Iterable[tuple[str, str]], body: bytes) -> tuple:
    """``method path`` to the revision on ``port``: (status, headers, body); OSError when it does not answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROXY_TIMEOUT)
    try:
        sent = {k: v for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
        conn.request(method, path, body=body or None, headers=sent)
        answer = conn.getresponse()
        return answer.status, answer.getheaders(), answer.read()
    except http.client.HTTPException as exc:
        raise OSError(str(exc)) from exc
    finally:
        conn.close()


#: Headers of a proxied answer this server writes itself.
OWN_HEADERS = HOP_BY_HOP | {"content-length", "content-type", "server", "date"}


def make_handler(api: CloudRun, contract: Contract) -> type[QuietHandler]:
    class Handler(QuietHandler):
        server_version = "cloudrun-sandbox"

        def do_GET(self) -> None:
            target = urlsplit(self.path)
            if target.path == TOKEN_PATH and self.command == "POST":
                self._token()
            elif target.path == "/metrics":
                body, content_type = api.metrics.render()
                self.send_payload(200, body, [], content_type)
            elif target.path == "/run" or target.path.startswith("/run/"):
                self._proxy(target.path.removeprefix("/run").lstrip("/"), target.query)
            else:
                self._api(target.path, target.query)

        do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

        def _api(self, path: str, raw_query: str) -> None:
            raw = self.read_body()
            try:
                status, payload = 200, self._answer(path, raw_query, raw)
            except ApiError as exc:
                status, payload = exc.code, exc.payload()
            except Exception as exc:  # a bug here: loud, in Google's shape
                traceback.print_exc()
                status, payload = 500, ApiError(500, f"the Cloud Run stand-in failed: {exc!r}").payload()
            if self.command != "GET":
                api.received(self.command, path, raw_query, raw, status)
            self.send_json(status, payload, [])

        def _answer(self, path: str, raw_query: str, raw: bytes) -> Json:
            authorization = self.headers.get("Authorization")
            if authorization is not None and not authorization.startswith("Bearer "):
                raise ApiError(401, "Request had invalid authentication credentials.")
            match = contract.match(self.command, path)
            if match is None:
                raise ApiError(404, f"{self.command} {path} is not a method of {contract.name}")
            query = parse_qs(raw_query, keep_blank_values=True)
            body = parse_body(raw)
            problems = contract.check_request(match, query, body)
            if problems:
                raise ApiError(400, "Invalid request: " + "; ".join(map(str, problems)), problems)
            answer = api.call(match, query, body)
            broken = contract.check_response(match, answer)
            if broken:
                message = f"the Cloud Run stand-in broke the {contract.name} contract answering {match.method_id}"
                print(f"{NAME}: {message}: {'; '.join(map(str, broken))}", file=sys.stderr, flush=True)
                raise ApiError(500, message, broken, "INTERNAL")
            return answer

        def _token(self) -> None:
            """Google's OAuth 2.0 token endpoint (``google_identity``): JWT-bearer grants only."""
            from varai_deploy.sandbox import google_identity

            form = {k: v[-1] for k, v in parse_qs(self.read_body().decode("utf-8", "replace")).items()}
            try:
                self.send_json(200, google_identity.exchange(api.home, form, api.url + TOKEN_PATH), [])
            except google_identity.GrantError as exc:
                self.send_json(400, {"error": exc.error, "error_description": exc.description}, [])

        def _proxy(self, rest: str, raw_query: str) -> None:
            started = time.perf_counter()
            host, _, path = rest.partition("/")
            body = self.read_body()
            try:
                route = api.route(host)
                api.authorize(route.service, self.headers.get("Authorization"))
            except ApiError as exc:
                self.send_payload(exc.code, f"{exc.code} {exc.message}\n".encode(), [], "text/plain; charset=utf-8")
                return
            target = "/" + path + (f"?{raw_query}" if raw_query else "")
            try:
                status, headers, answer = forward(route.port, self.command, target, self.headers.items(), body)
            except OSError as exc:
                status, headers, answer = 503, [], f"503 the revision did not answer: {exc}\n".encode()
            content_type = next((v for k, v in headers if k.lower() == "content-type"), "text/plain")
            kept = [(k, v) for k, v in headers if k.lower() not in OWN_HEADERS]
            self.send_payload(status, answer, kept, content_type)
            elapsed_ms = (time.perf_counter() - started) * 1000
            api.metrics.observe(route.service, route.revision, status, elapsed_ms)

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m varai_deploy.sandbox.cloudrun_fake")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    contract = google_contract.load(API, VERSION)
    url = f"http://{args.host}:{args.port}"
    home = Path(os.path.abspath(args.home))  # as SandboxSettings writes it: revisions' --home is found by it
    api = CloudRun(home, args.host, url, contract)
    server = bind_or_explain(args.host, args.port, make_handler(api, contract), NAME)
    if server is None:
        return 2
    api.resume()
    print(f"{NAME}: Cloud Run Admin API stand-in on {url}/v2/{api.parent()}; state in {state_dir(home)}", flush=True)
    return serve_until_signalled(server, NAME)


if __name__ == "__main__":
    sys.exit(main())
