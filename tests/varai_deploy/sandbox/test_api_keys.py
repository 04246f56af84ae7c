"""Merchants' keys managed from the command line, obeyed by the running gateway without a restart."""

from __future__ import annotations

import json

from tests.support.sandbox import deploy, request, run_cli
from varai_deploy.sandbox import Sandbox, api_keys
from varai_deploy.sandbox.gateway import gateway_dir


def test_a_key_issued_from_the_cli_works_at_once_and_stops_working_once_revoked(sandbox: Sandbox) -> None:
    s = sandbox.settings
    deploy(sandbox, "ai-discovery", "v1.0.0")
    issued = run_cli(s, "api-key", "issue", "frames-and-co", "--requests", "50", "--per-seconds", "60")
    assert issued.returncode == 0, issued.stderr
    merchant, key = issued.stdout.strip().split(": ")
    assert merchant == "frames-and-co" and key.startswith("vk_")
    assert "keeps only its hash" in issued.stderr
    assert key not in (gateway_dir(s.home) / api_keys.KEYS_FILE).read_text()

    code, headers, body = request(s.gateway_url, "/ai/discover?q=round", headers={"X-API-Key": key})
    assert (code, headers["x-ratelimit-limit"], headers["x-served-version"]) == (200, "50", "v1.0.0"), body

    listed = json.loads(run_cli(s, "api-key", "list").stdout)
    assert listed["frames-and-co"] == {"revoked": False, "rate_limit": {"requests": 50, "per_seconds": 60.0}}
    assert {"sandbox-shoppers", "release-check", "demo-storefront"} <= set(listed)  # up made the sandbox's own

    revoked = run_cli(s, "api-key", "revoke", "frames-and-co")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    code, _, body = request(s.gateway_url, "/ai/discover?q=round", headers={"X-API-Key": key})
    assert (code, body["code"]) == (401, "api_key_revoked")


def test_bad_merchant_names_and_unknown_merchants_are_refused_saying_why(sandbox: Sandbox) -> None:
    s = sandbox.settings
    bad = run_cli(s, "api-key", "issue", "Frames & Co; rm -rf /")
    assert bad.returncode == 1 and "must be lowercase letters, digits and '-'" in bad.stderr
    unknown = run_cli(s, "api-key", "revoke", "nobody")
    assert unknown.returncode == 1 and "no API key issued to 'nobody'" in unknown.stderr
    half = run_cli(s, "api-key", "issue", "shop", "--requests", "5")
    assert half.returncode == 1 and "needs requests >= 1 and per_seconds > 0" in half.stderr
