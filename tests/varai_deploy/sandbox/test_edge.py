"""The gateway's checks toward the widget (edge.py), over real policy and key files, on a clock the test turns."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from varai_deploy.config import GatewayPolicy
from varai_deploy.sandbox import api_keys, edge

POLICY = GatewayPolicy(
    allowed_origins=("http://127.0.0.1:*", "https://*.myshopify.com"), rate_limit_requests=3, rate_limit_per_seconds=6
)
PREFLIGHT = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-api-key"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def gateway(tmp_path: Path) -> tuple[edge.Edge, Path, Clock, str]:
    edge.write_policy(tmp_path, POLICY)
    key = api_keys.issue(tmp_path / api_keys.KEYS_FILE, "shop-one")
    clock = Clock()
    return edge.Edge(tmp_path, clock), tmp_path, clock, key


def headers_of(verdict: edge.Verdict) -> dict[str, str]:
    return {k.lower(): v for k, v in verdict.headers}


def test_a_storefront_origin_gets_its_preflight_for_get_with_the_key_header(gateway) -> None:
    gw, *_ = gateway
    verdict = gw.admit("OPTIONS", "/ai/discover?q=x", {"Origin": "https://frames.myshopify.com", **PREFLIGHT})
    assert verdict.answer == (204, {})
    given = headers_of(verdict)
    assert given["access-control-allow-origin"] == "https://frames.myshopify.com"
    assert (given["access-control-allow-methods"], given["access-control-allow-headers"]) == ("GET", "X-API-Key")
    assert given["vary"] == "Origin"


@pytest.mark.parametrize(
    ("origin", "request_headers", "code"),
    [
        ("https://evil.example", PREFLIGHT, "origin_refused"),
        ("https://frames.myshopify.com.evil.example", PREFLIGHT, "origin_refused"),
        ("https://frames.myshopify.com", {**PREFLIGHT, "Access-Control-Request-Method": "POST"}, "preflight_refused"),
        (
            "https://frames.myshopify.com",
            {**PREFLIGHT, "Access-Control-Request-Headers": "authorization"},
            "preflight_refused",
        ),
    ],
)
def test_other_origins_methods_and_headers_are_refused_without_cors_headers(
    gateway, origin, request_headers, code
) -> None:
    gw, *_ = gateway
    verdict = gw.admit("OPTIONS", "/ai/discover", {"Origin": origin, **request_headers})
    assert verdict.answer[0] == 403 and verdict.answer[1]["code"] == code
    assert "access-control-allow-origin" not in headers_of(verdict)


def test_health_paths_need_no_key_and_every_answer_carries_the_security_headers(gateway) -> None:
    gw, *_ = gateway
    for path in ("/health", "/ai/health", "/api/status"):
        verdict = gw.admit("GET", path, {})
        assert verdict.answer is None, path
        assert headers_of(verdict)["x-content-type-options"] == "nosniff"
        assert headers_of(verdict)["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_a_missing_unknown_or_revoked_key_is_a_401_with_a_code_the_widget_can_read(gateway) -> None:
    gw, directory, _, key = gateway
    origin = {"Origin": "http://127.0.0.1:8000"}
    assert gw.admit("GET", "/ai/discover", origin).answer[1]["code"] == "api_key_missing"
    missing = gw.admit("GET", "/ai/discover", {**origin, "X-API-Key": "vk_wrong"})
    assert missing.answer[0] == 401 and missing.answer[1]["code"] == "api_key_invalid"
    assert headers_of(missing)["access-control-allow-origin"] == "http://127.0.0.1:8000"  # readable by the widget
    assert gw.admit("GET", "/ai/discover", {"X-API-Key": key}).answer is None

    api_keys.revoke(directory / api_keys.KEYS_FILE, "shop-one")
    revoked = gw.admit("GET", "/ai/discover", {"X-API-Key": key})  # re-read: no restart
    assert revoked.answer == (401, {"error": "this API key was revoked", "code": "api_key_revoked"})


def test_the_key_is_not_passed_on_the_merchant_is(gateway) -> None:
    gw, _, _, key = gateway
    verdict = gw.admit("GET", "/ai/discover?q=x", [("X-API-Key", key), ("X-VarAI-Merchant", "someone-else")])
    assert verdict.forward_headers == [("X-VarAI-Merchant", "shop-one")]


def test_a_key_is_limited_to_its_plan_then_told_when_to_retry_and_refilled_over_time(gateway) -> None:
    gw, _, clock, key = gateway
    answers = [gw.admit("GET", "/ai/discover", {"X-API-Key": key}) for _ in range(4)]
    assert [a.answer is None for a in answers] == [True, True, True, False]
    assert [headers_of(a)["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    refused = answers[3]
    assert refused.answer[0] == 429 and refused.answer[1]["code"] == "rate_limited"
    assert headers_of(refused)["retry-after"] == "2"  # 3 per 6 s: a token every 2 s
    clock.now += 2
    assert gw.admit("GET", "/ai/discover", {"X-API-Key": key}).answer is None
    assert gw.admit("GET", "/ai/discover", {"X-API-Key": key}).answer[0] == 429


def test_a_key_with_its_own_plan_is_limited_by_it_and_keys_do_not_share_a_bucket(gateway) -> None:
    gw, directory, _, key = gateway
    big = api_keys.issue(directory / api_keys.KEYS_FILE, "big-shop", requests=10, per_seconds=1)
    assert all(gw.admit("GET", "/ai/discover", {"X-API-Key": big}).answer is None for _ in range(10))
    assert gw.admit("GET", "/ai/discover", {"X-API-Key": key}).answer is None


def test_keys_are_stored_hashed_private_and_reissuing_replaces_the_old_key(gateway) -> None:
    gw, directory, _, key = gateway
    keys_file = directory / api_keys.KEYS_FILE
    assert key not in keys_file.read_text()
    assert oct(os.stat(keys_file).st_mode & 0o777) == "0o600"
    new = api_keys.issue(keys_file, "shop-one")
    assert gw.admit("GET", "/ai/discover", {"X-API-Key": key}).answer[1]["code"] == "api_key_invalid"
    assert gw.admit("GET", "/ai/discover", {"X-API-Key": new}).answer is None
    assert api_keys.merchants(keys_file) == {"shop-one": {"revoked": False, "rate_limit": None}}


def test_a_missing_policy_allows_no_browser_origin(tmp_path: Path) -> None:
    gw = edge.Edge(tmp_path)
    verdict = gw.admit("OPTIONS", "/ai/discover", {"Origin": "http://127.0.0.1:8000", **PREFLIGHT})
    assert verdict.answer[0] == 403
    (tmp_path / api_keys.POLICY_FILE).write_text(json.dumps(POLICY.as_dict()))
    assert gw.admit("OPTIONS", "/ai/discover", {"Origin": "http://127.0.0.1:8000", **PREFLIGHT}).answer[0] == 204
