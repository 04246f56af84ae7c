"""What the public gateway does to a request before any service sees it, as production's must.

The storefront widget calls ``GET <api>/ai/discover`` from a merchant's shop, another origin, with
the merchant's key in ``X-API-Key``. So the gateway:

* answers CORS preflights for the environment's storefront origins (``gateway.allowed_origins``):
  GET only (all the widget sends), ``X-API-Key`` allowed, the ``X-Served-*`` and rate-limit headers
  readable by the widget; any other origin gets a 403 and no CORS headers, so its browser refuses;
* lets health paths and ``/api/status`` through without a key (monitoring and the guide's curls);
* asks every other path for a known, unrevoked key: 401 with a JSON ``error`` and ``code``
  (``api_key_missing``, ``api_key_invalid``, ``api_key_revoked``) otherwise; the key itself is not
  passed on, the merchant is (``X-VarAI-Merchant``);
* limits each key to its plan (token bucket: ``requests`` per ``per_seconds``, bursts up to
  ``requests``): 429 with ``Retry-After`` past it, ``X-RateLimit-Limit``/``-Remaining`` on answers;
* adds security headers to every answer (nosniff, no framing, no referrer, no caching).

The policy (``policy.json``, written from the environment's ``gateway:`` config) and the keys
(api_keys.py) are files re-read when they change, so a revoked key stops working without a restart.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from varai_deploy.config import ConfigError, GatewayPolicy
from varai_deploy.sandbox import api_keys
from varai_deploy.services import SERVICES

PUBLIC_PATHS = frozenset({"/health", "/api/status", *(s.health_path for s in SERVICES.values())})
CORS_METHODS = ("GET",)
CORS_REQUEST_HEADERS = ("x-api-key",)
CORS_EXPOSED = (
    "X-Served-Version",
    "X-Served-Colour",
    "X-Served-Service",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
)
PREFLIGHT_MAX_AGE = "600"
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Cache-Control", "no-store"),
)
MERCHANT_HEADER = "X-VarAI-Merchant"


@dataclass
class Verdict:
    """``answer``: the gateway answers itself (status, JSON body); None: forward the request, with
    ``forward_headers`` in place of the client's. ``headers`` go on whichever answer is sent."""

    answer: tuple[int, dict] | None
    headers: list[tuple[str, str]] = field(default_factory=list)
    forward_headers: list[tuple[str, str]] = field(default_factory=list)


class _Watched:
    """A file parsed again whenever its mtime or size changes."""

    def __init__(self, path: Path, parse: Callable[[Path], object]) -> None:
        self.path, self._parse = path, parse
        self._seen: tuple[int, int] | None = None
        self._value = parse(path)
        self._lock = threading.Lock()

    def get(self):
        try:
            stat = self.path.stat()
            seen = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            seen = None
        with self._lock:
            if seen != self._seen:
                self._seen, self._value = seen, self._parse(self.path)
            return self._value


def read_policy(path: Path) -> GatewayPolicy:
    """The gateway's policy file; missing or broken: the strictest (no browser origin at all)."""
    try:
        return GatewayPolicy.from_section(json.loads(path.read_text(encoding="utf-8")), str(path))
    except (OSError, ValueError, ConfigError):
        return GatewayPolicy()


def write_policy(directory: Path, policy: GatewayPolicy) -> None:
    from varai_deploy.sandbox.state import write_text_atomic

    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(policy.as_dict(), indent=1)
    path = directory / api_keys.POLICY_FILE
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)


def prepare(directory: Path, policy: GatewayPolicy, key_for: Callable[[str], str]) -> None:
    """A gateway's files before it starts: its policy, and the sandbox's own callers' keys
    (``key_for(merchant)``: the plain key, kept with the sandbox's secrets)."""
    write_policy(directory, policy)
    for merchant, plan in api_keys.SANDBOX_MERCHANTS.items():
        api_keys.install(directory / api_keys.KEYS_FILE, merchant, key_for(merchant), plan)


class RateLimiter:
    """A token bucket per merchant, shared by the server's request threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float, tuple[int, float]]] = {}

    def take(self, merchant: str, requests: int, per_seconds: float) -> tuple[bool, int, float]:
        """(allowed, tokens left, seconds until the next token)."""
        rate = requests / per_seconds
        now = self._clock()
        with self._lock:
            tokens, then, plan = self._buckets.get(merchant, (float(requests), now, (requests, per_seconds)))
            if plan != (requests, per_seconds):  # a new plan starts full
                tokens = float(requests)
            tokens = min(float(requests), tokens + (now - then) * rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[merchant] = (tokens, now, (requests, per_seconds))
        return allowed, int(tokens), (1.0 - tokens) / rate if tokens < 1.0 else 0.0


class Edge:
    """The gateway's checks, over a directory holding ``policy.json`` and ``api_keys.json``."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = _Watched(directory / api_keys.POLICY_FILE, read_policy)
        self._keys = _Watched(directory / api_keys.KEYS_FILE, api_keys.read)
        self.limiter = RateLimiter(clock)

    @property
    def policy(self) -> GatewayPolicy:
        return self._policy.get()

    def admit(self, method: str, path: str, headers: Mapping[str, str] | list[tuple[str, str]]) -> Verdict:
        policy = self.policy
        given = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        lookup = {k.lower(): v for k, v in given}
        origin = lookup.get("origin")
        allowed = policy.origin_allowed(origin)
        cors = (
            [("Access-Control-Allow-Origin", origin), ("Access-Control-Expose-Headers", ", ".join(CORS_EXPOSED))]
            if allowed
            else []
        )
        out = [*SECURITY_HEADERS, ("Vary", "Origin"), *cors]
        path = path.split("?", 1)[0].rstrip("/") or "/"

        if method == "OPTIONS":
            return self._preflight(origin, allowed, lookup, out, refused=out[: len(out) - len(cors)])
        if path in PUBLIC_PATHS:
            return Verdict(None, out, given)
        if origin and not allowed:
            return Verdict((403, _error("origin_refused", f"origin {origin} may not call this API")), out)
        key = lookup.get("x-api-key")
        if not key:
            return Verdict(
                (401, _error("api_key_missing", "missing API key: send the widget's API key in the X-API-Key header")),
                out,
            )
        record = self._keys.get().get(api_keys.digest(key))
        if record is None:
            return Verdict((401, _error("api_key_invalid", "this API key is not valid")), out)
        if record.revoked:
            return Verdict((401, _error("api_key_revoked", "this API key was revoked")), out)
        requests, per_seconds = record.rate_limit or (policy.rate_limit_requests, policy.rate_limit_per_seconds)
        ok, left, wait = self.limiter.take(record.merchant, requests, per_seconds)
        out += [("X-RateLimit-Limit", str(requests)), ("X-RateLimit-Remaining", str(left))]
        if not ok:
            retry = max(1, math.ceil(wait))
            out.append(("Retry-After", str(retry)))
            return Verdict(
                (
                    429,
                    _error(
                        "rate_limited",
                        f"more than {requests} requests in {per_seconds:g} s with this key; retry in {retry} s",
                    ),
                ),
                out,
            )
        forward = [(k, v) for k, v in given if k.lower() not in ("x-api-key", MERCHANT_HEADER.lower())]
        return Verdict(None, out, [*forward, (MERCHANT_HEADER, record.merchant)])

    @staticmethod
    def _preflight(origin: str | None, allowed: bool, lookup: dict[str, str], out: list, refused: list) -> Verdict:
        """``out``: the headers of an allowed preflight so far; ``refused``: those without CORS ones."""
        wanted_method = lookup.get("access-control-request-method")
        if not origin or not wanted_method:
            return Verdict(
                (405, _error("method_not_allowed", "OPTIONS is only for CORS preflights")),
                [*refused, ("Allow", "GET, HEAD")],
            )
        if not allowed:
            return Verdict((403, _error("origin_refused", f"origin {origin} may not call this API")), refused)
        wanted_headers = {
            h.strip().lower() for h in lookup.get("access-control-request-headers", "").split(",") if h.strip()
        }
        if wanted_method not in CORS_METHODS or wanted_headers - set(CORS_REQUEST_HEADERS) - {"accept"}:
            return Verdict(
                (
                    403,
                    _error(
                        "preflight_refused",
                        f"only {', '.join(CORS_METHODS)} with X-API-Key may be sent from a storefront, "
                        f"not {wanted_method} with {', '.join(sorted(wanted_headers)) or 'no headers'}",
                    ),
                ),
                refused,
            )
        return Verdict(
            (204, {}),
            [
                *out,
                ("Access-Control-Allow-Methods", ", ".join(CORS_METHODS)),
                ("Access-Control-Allow-Headers", "X-API-Key"),
                ("Access-Control-Max-Age", PREFLIGHT_MAX_AGE),
            ],
        )


def _error(code: str, message: str) -> dict[str, str]:
    return {"error": message, "code": code}
