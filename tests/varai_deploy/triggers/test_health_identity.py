"""Health probes reach a private Cloud Run service with a Google ID token minted from the connection's account,
against the local Cloud Run (its token endpoint, its ID-token check), never with a token stored anywhere."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import requests

from tests.support.cloud_run import created_by_terraform, local_cloud_run, platform_on
from varai_deploy.probe_identity import ProbeIdentity
from varai_deploy.sandbox.cloudrun_fake import LOCATION, PROJECT, TOKEN_PATH
from varai_deploy.sandbox.google_identity import ACCOUNT, JWT_BEARER, service_account_info
from varai_deploy.triggers.health import HealthStreakTrigger

KEYED = "varai_cloudrun_keyed"


@pytest.fixture
def cloud_run(tmp_path):
    with local_cloud_run(tmp_path / "sandbox") as stand_in:
        yield stand_in


@pytest.fixture
def keyed(cloud_run, monkeypatch) -> str:
    """A connection holding the deploy account's key, as production's may (its token endpoint the stand-in's)."""
    info = service_account_info(cloud_run.settings.home, cloud_run.url + TOKEN_PATH)
    extra = {"project": PROJECT, "location": LOCATION, "api_endpoint": cloud_run.url, "keyfile_dict": json.dumps(info)}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{KEYED.upper()}", json.dumps({"conn_type": "google_cloud_platform", "extra": extra})
    )
    return KEYED


def fire(trigger) -> dict:
    return asyncio.run(anext(trigger.run())).payload


def streak_on(url: str, **identity) -> HealthStreakTrigger:
    return HealthStreakTrigger(url=url, streak=2, interval=0.1, deadline=time.time() + 3, **identity)


def test_a_private_service_answers_only_a_probe_carrying_an_id_token_for_it(cloud_run, keyed, monkeypatch):
    platform = platform_on(cloud_run, monkeypatch)
    created_by_terraform(platform, public=False)  # as include/terraform/gcp leaves the backends
    live = platform.current_revision("recommendation")
    assert live["audience"] == live["url"]  # the service's own URL: what Cloud Run checks a token against
    health = live["url"] + "/health"

    refused = fire(streak_on(health))
    assert refused["status"] == "timeout" and refused["last"].startswith("HTTP 403"), refused

    trigger = streak_on(health, gcp_conn_id=keyed, audience=live["audience"])
    assert "token" not in json.dumps(trigger.serialize()[1]).lower()  # minted in the triggerer, never carried
    assert fire(trigger)["status"] == "healthy"

    # A token for somebody else's service is not this one's.
    elsewhere = ProbeIdentity(keyed).headers(cloud_run.url + "/run/another-service")
    assert requests.get(health, headers=elsewhere, timeout=10).status_code == 401


def test_a_public_service_is_probed_with_or_without_an_identity(cloud_run, keyed, monkeypatch):
    platform = platform_on(cloud_run, monkeypatch)
    created_by_terraform(platform)
    live = platform.current_revision("recommendation")
    assert fire(streak_on(live["url"] + "/health"))["status"] == "healthy"
    assert fire(streak_on(live["url"] + "/health", gcp_conn_id=keyed, audience=live["audience"]))["status"] == "healthy"


def test_an_identity_that_cannot_be_proven_gets_no_token_and_the_probe_says_why(cloud_run, keyed, monkeypatch):
    platform = platform_on(cloud_run, monkeypatch)
    created_by_terraform(platform, public=False)
    live = platform.current_revision("recommendation")
    # A key Google never issued: the token endpoint refuses its assertion.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    info = {
        **service_account_info(cloud_run.settings.home, cloud_run.url + TOKEN_PATH),
        "private_key": stranger.decode(),
    }
    extra = {"project": PROJECT, "location": LOCATION, "api_endpoint": cloud_run.url, "keyfile_dict": json.dumps(info)}
    monkeypatch.setenv(
        "AIRFLOW_CONN_VARAI_STRANGER", json.dumps({"conn_type": "google_cloud_platform", "extra": extra})
    )

    result = fire(streak_on(live["url"] + "/health", gcp_conn_id="varai_stranger", audience=live["audience"]))
    assert result["status"] == "timeout" and "no ID token" in result["last"] and "invalid_grant" in result["last"]
    answer = requests.post(
        cloud_run.url + TOKEN_PATH, data={"grant_type": JWT_BEARER, "assertion": "not.a.jwt"}, timeout=10
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_the_admin_api_is_called_with_the_accounts_access_token(cloud_run, keyed):
    """The same key drives the Admin API (OAuth access tokens from the token endpoint), as the release does."""
    from varai_deploy.hooks.cloud_run import EndpointCloudRunHook

    hook = EndpointCloudRunHook(gcp_conn_id=keyed)
    assert list(hook.services.list_services(parent=hook.parent())) == []
    assert hook.get_credentials().service_account_email == ACCOUNT
