"""Phase 5 through the public gateway as a storefront uses it: the widget's search, and the security the
gateway must enforce (the environment's ``gateway:`` policy).

* :func:`check_search`: the search the widget makes (``GET /ai/discover`` with the key the gateway
  connection holds, from a storefront origin the policy allows) answers suggestions, readable
  cross-origin, from the version just released.
* :func:`check_security`: a CORS preflight from an allowed storefront passes and one from a foreign origin
  does not; no key and a bad key get 401; a burst past the key's limit gets 429 with ``Retry-After``;
  answers carry the security headers; where TLS is required, the endpoint is https with TLS 1.3.

Each check records what it saw; a failure names every check that failed and why.
"""

from __future__ import annotations

import secrets
import socket
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from varai_deploy.config import EnvironmentConfig, GatewayPolicy
from varai_deploy.hooks.gateway import GatewayHook

SEARCH_PATH = "/ai/discover?q=round+frames"
#: The most requests the rate-limit check sends: the check key's plan must be smaller.
MAX_BURST = 200
#: A 429 before the search is waited out, at most this long (a release just before used the key).
MAX_RETRY_WAIT_SECONDS = 15.0
FOREIGN_ORIGINS = ("https://foreign.invalid", "http://foreign.invalid")
REQUIRED_HEADERS = ("X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy")


class GatewayCheckError(RuntimeError):
    pass


def storefront_origin(policy: GatewayPolicy) -> str | None:
    """An origin the policy lets call the API, made from its first pattern (None: no storefront may)."""
    for pattern in policy.allowed_origins:
        if pattern == "*":
            return "https://release-check.example"
        for filler in ("release-check.example", "8443"):
            candidate = pattern.replace("*", filler)
            if policy.origin_allowed(candidate):
                return candidate
    return None


def _hook_and_key(env: EnvironmentConfig) -> tuple[GatewayHook, str]:
    hook = GatewayHook(env.gateway_conn_id)
    key = hook.api_key()
    if not key:
        raise GatewayCheckError(
            f"the connection {env.gateway_conn_id} has no password: it must hold the widget API key the release "
            "checks the gateway with (a key of its own, with a small rate limit)"
        )
    return hook, key


def check_search(
    env: EnvironmentConfig, version: str, released: list[str], sleep: Callable[[float], None] = time.sleep
) -> dict:
    """The widget's search through the gateway; returns what answered it."""
    hook, key = _hook_and_key(env)
    origin = storefront_origin(env.gateway)
    if origin is None:
        raise GatewayCheckError(
            f"gateway.allowed_origins of {env.name} allows no storefront: the widget cannot call the API anywhere"
        )
    headers = {"X-API-Key": key, "Origin": origin, "Accept": "application/json"}
    answer = hook.call("GET", SEARCH_PATH, headers)
    if answer.status_code == 429:
        wait = min(float(answer.headers.get("Retry-After") or 1), MAX_RETRY_WAIT_SECONDS)
        sleep(wait)
        answer = hook.call("GET", SEARCH_PATH, headers)
    where = f"GET {hook.url}{SEARCH_PATH} from {origin}"
    if answer.status_code != 200:
        raise GatewayCheckError(f"{where}: HTTP {answer.status_code}: {answer.text[:300]}")
    try:
        suggestions = answer.json().get("suggestions") or []
    except ValueError:
        suggestions = []
    served = answer.headers.get("X-Served-Version")
    problems = []
    if not suggestions:
        problems.append(f"no suggestions in {answer.text[:200]!r}")
    if answer.headers.get("Access-Control-Allow-Origin") != origin:
        problems.append(
            f"Access-Control-Allow-Origin is {answer.headers.get('Access-Control-Allow-Origin')!r}, so a browser "
            "hides the answer from the widget"
        )
    if "ai-discovery" in released and served != version:
        problems.append(f"answered by {served}, expected {version}")
    if problems:
        raise GatewayCheckError(f"{where}: " + "; ".join(problems))
    return {"status": 200, "suggestions": len(suggestions), "version": served, "origin": origin}


def check_security(env: EnvironmentConfig) -> dict[str, str]:
    """Every check, each as ``ok: ...``, ``skipped: ...`` or ``FAILED: ...``; raises when one failed."""
    hook, key = _hook_and_key(env)
    policy = env.gateway
    report = {
        "cors_storefront": _cors_allowed(hook, policy),
        "cors_foreign_origin": _cors_foreign(hook, policy),
        "api_key_missing": _refused(hook, {}),
        "api_key_invalid": _refused(hook, {"X-API-Key": "vk_" + secrets.token_urlsafe(24)}),
        "rate_limit": _rate_limit(hook, key),
        "security_headers": _security_headers(hook),
        "tls": _tls(hook.url, policy.require_tls),
    }
    failed = {name: result for name, result in report.items() if result.startswith("FAILED")}
    if failed:
        raise GatewayCheckError(
            f"the gateway {hook.url} of {env.name} does not enforce what gateway: in its config asks: "
            + "; ".join(f"{name} {result}" for name, result in failed.items())
        )
    return report


def format_report(report: dict[str, str]) -> str:
    return "\n".join(f"  {name:20} {result}" for name, result in report.items())


def _preflight(hook: GatewayHook, origin: str):
    return hook.call(
        "OPTIONS",
        SEARCH_PATH,
        {"Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-api-key"},
    )


def _cors_allowed(hook: GatewayHook, policy: GatewayPolicy) -> str:
    origin = storefront_origin(policy)
    if origin is None:
        return "FAILED: gateway.allowed_origins allows no storefront origin"
    answer = _preflight(hook, origin)
    allowed_headers = answer.headers.get("Access-Control-Allow-Headers", "").lower()
    if (
        answer.status_code >= 300
        or answer.headers.get("Access-Control-Allow-Origin") != origin
        or "x-api-key" not in allowed_headers
        or "GET" not in answer.headers.get("Access-Control-Allow-Methods", "")
    ):
        return (
            f"FAILED: the preflight from {origin} got HTTP {answer.status_code}, Allow-Origin "
            f"{answer.headers.get('Access-Control-Allow-Origin')!r}, Allow-Headers {allowed_headers!r}: the widget's "
            "search would be blocked by the browser"
        )
    return f"ok: preflight from {origin} allowed (GET, X-API-Key)"


def _cors_foreign(hook: GatewayHook, policy: GatewayPolicy) -> str:
    foreign = next((o for o in FOREIGN_ORIGINS if not policy.origin_allowed(o)), None)
    if foreign is None:
        return "skipped: gateway.allowed_origins allows every origin"
    answer = _preflight(hook, foreign)
    granted = answer.headers.get("Access-Control-Allow-Origin")
    if granted in (foreign, "*"):
        return f"FAILED: a preflight from {foreign}, which the policy does not allow, got Allow-Origin {granted!r}"
    return f"ok: preflight from {foreign} refused (HTTP {answer.status_code}, no Allow-Origin)"


def _refused(hook: GatewayHook, headers: dict[str, str]) -> str:
    what = "a bad key" if headers else "no key"
    answer = hook.call("GET", SEARCH_PATH, headers)
    try:
        error = answer.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if answer.status_code != 401 or not error:
        got = f"HTTP {answer.status_code} {answer.text[:120]!r}"
        return f"FAILED: a search with {what} got {got}, expected 401 with an error"
    return f"ok: {what} gets 401 ({error})"


def _rate_limit(hook: GatewayHook, key: str) -> str:
    headers = {"X-API-Key": key}
    first = hook.call("GET", SEARCH_PATH, headers)
    limit = first.headers.get("X-RateLimit-Limit")
    if first.status_code == 429:
        answer, sent = first, 1
    else:
        if not limit or not limit.isdigit():
            return f"FAILED: HTTP {first.status_code} without X-RateLimit-Limit: no rate limit applies to this key"
        if int(limit) >= MAX_BURST:
            return f"FAILED: the check key's limit ({limit}) is too high to verify; give it a plan under {MAX_BURST}"
        answer, sent = first, 1
        while answer.status_code != 429 and sent <= int(limit):
            answer = hook.call("GET", SEARCH_PATH, headers)
            sent += 1
    retry = answer.headers.get("Retry-After", "")
    if answer.status_code != 429:
        return f"FAILED: {sent} requests in a burst, none refused, although the key's limit is {limit}"
    if not retry.isdigit() or int(retry) < 1:
        return f"FAILED: the 429 after {sent} requests has no usable Retry-After ({retry!r})"
    return f"ok: request {sent} of a burst got 429, Retry-After {retry} s (limit {limit or '?'})"


def _security_headers(hook: GatewayHook) -> str:
    answer = hook.call("GET", "/health")
    missing = [name for name in REQUIRED_HEADERS if not answer.headers.get(name)]
    if answer.headers.get("X-Content-Type-Options", "nosniff").lower() != "nosniff":
        missing.append("X-Content-Type-Options: nosniff")
    if urlsplit(hook.url).scheme == "https" and not answer.headers.get("Strict-Transport-Security"):
        missing.append("Strict-Transport-Security")
    if missing:
        return f"FAILED: /health answers without {', '.join(missing)}"
    return f"ok: {', '.join(REQUIRED_HEADERS)} present"


def _tls(url: str, required: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https":
        if required:
            return f"FAILED: {url} is plain HTTP; the guide asks TLS 1.3 in transit"
        return "skipped: plain HTTP, allowed by gateway.require_tls: false (the sandbox's loopback)"
    context = ssl.create_default_context()
    try:
        with (
            socket.create_connection((parts.hostname, parts.port or 443), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
        ):
            negotiated = tls.version()
    except (OSError, ssl.SSLError) as exc:
        return f"FAILED: TLS handshake with {parts.hostname}: {exc}"
    if negotiated != "TLSv1.3":
        return f"FAILED: {parts.hostname} negotiated {negotiated}, not TLS 1.3"
    return f"ok: {parts.hostname} negotiated TLS 1.3"
