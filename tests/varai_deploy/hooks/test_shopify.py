"""ShopifyHook against the sandbox's Partners API stand-in, through an Airflow connection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.shopify_stack import ShopifyStack, shopify_stack
from varai_deploy.hooks.shopify import ShopifyHook
from varai_deploy.widgets.archives import deterministic_zip
from varai_deploy.widgets.publishing import PublishAuthError, PublishConflictError, PublishError

THEME_MODULE = {
    "context": "",
    "config": '{"theme_extension":{"files":{}}}',
    "specificationIdentifier": "THEME_APP_EXTENSION",
}


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ShopifyStack]:
    with shopify_stack(tmp_path / "sandbox") as running:
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_SHOPIFY", running.connection_env())
        yield running


def deploy(hook: ShopifyHook, tag: str, *, release: bool = True, body: bytes = b"console.log(1)"):
    uuid = hook.theme_extension("VarAI AI Discovery", "varai-ai-discovery")
    bundle = deterministic_zip({f"{uuid}/assets/widget.js": body, f"{uuid}/blocks/varai.liquid": b"<div></div>"})
    module = {"uuid": uuid, "handle": "varai-ai-discovery", **THEME_MODULE}
    return hook.deploy(
        bundle_url=hook.upload_bundle(bundle), modules=[module], version_tag=tag, message=f"m {tag}", release=release
    )


def test_the_extension_is_registered_once_and_found_again(stack: ShopifyStack):
    hook = ShopifyHook()
    first = hook.theme_extension("VarAI AI Discovery", "varai-ai-discovery")
    assert ShopifyHook().theme_extension("VarAI AI Discovery", "varai-ai-discovery") == first
    [registration] = stack.state()["registrations"]
    assert (registration["uuid"], registration["type"]) == (first, "THEME_APP_EXTENSION")
    assert registration["draftVersion"]["handle"] == "varai-ai-discovery"


def test_a_deployed_version_is_listed_with_its_message_and_location(stack: ShopifyStack):
    hook = ShopifyHook()
    created = deploy(hook, "1.0.0")
    assert created.version_tag == "1.0.0"
    assert created.location.startswith(stack.url)
    assert hook.version("1.0.0") == created
    unreleased = deploy(hook, "1.1.0-rc.1", release=False)
    listed = {v.version_tag: (v.message, v.status) for v in hook.versions()}
    assert listed == {"1.0.0": ("m 1.0.0", "active"), "1.1.0-rc.1": ("m 1.1.0-rc.1", "inactive")}
    assert unreleased.location != created.location
    [stored] = [v for v in stack.state()["versions"] if v["versionTag"] == "1.0.0"]
    assert any(name.endswith("/assets/widget.js") for name in stored["_bundle_sha256"])


def test_a_taken_version_tag_is_a_conflict(stack: ShopifyStack):
    hook = ShopifyHook()
    deploy(hook, "1.0.0")
    with pytest.raises(PublishConflictError, match="version tag already exists"):
        deploy(hook, "1.0.0", body=b"console.log(2)")
    assert [v.version_tag for v in hook.versions()] == ["1.0.0"]


def test_a_refused_token_names_the_connection_and_never_shows_a_token(stack: ShopifyStack, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_SHOPIFY_STALE", stack.connection_env(password="stale-token-123"))
    with pytest.raises(PublishAuthError) as refused:
        ShopifyHook("varai_shopify_stale").versions()
    message = str(refused.value)
    assert "'varai_shopify_stale'" in message
    assert "HTTP 401" in message
    assert "stale-token-123" not in message
    assert stack.token not in message
    assert (refused.value.channel, refused.value.destination) == ("shopify", "shopify_app")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"extra": {"api_key": "0" * 32}}, "no app with api key 00000000000000000000000000000000"),
        ({"password": None}, "has no password"),
        ({"port": 1}, "cannot reach"),
    ],
    ids=["unknown-app", "no-token", "unreachable"],
)
def test_a_misconfigured_connection_says_what_to_fix(stack: ShopifyStack, monkeypatch, fields, expected):
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_SHOPIFY", stack.connection_env(**fields))
    with pytest.raises(PublishError, match=expected) as failed:
        ShopifyHook().versions()
    assert stack.token not in str(failed.value)


def test_an_undefined_connection_is_named(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_VARAI_SHOPIFY_NOWHERE", raising=False)
    with pytest.raises(PublishError, match="'varai_shopify_nowhere' is not defined"):
        ShopifyHook("varai_shopify_nowhere").versions()


def test_graphql_errors_and_user_errors_reach_the_message(stack: ShopifyStack):
    hook = ShopifyHook()
    with pytest.raises(PublishError, match="Field 'nope' doesn't exist on type 'App'"):
        hook.graphql("query Q($apiKey: String!) { app(apiKey: $apiKey) { nope } }", {"apiKey": hook.api_key})
    uuid = hook.theme_extension("VarAI AI Discovery", "varai-ai-discovery")
    stray = deterministic_zip({f"{uuid}/shopify.extension.toml": b'type = "theme"'})
    module = {"uuid": uuid, "handle": "varai-ai-discovery", **THEME_MODULE}
    with pytest.raises(PublishError, match="bundle_url: Your theme app extension includes files in an unsupported"):
        hook.deploy(
            bundle_url=hook.upload_bundle(stray), modules=[module], version_tag="2.0.0", message="", release=True
        )
    assert hook.versions() == []
    assert json.loads((stack.settings.home / "shopify" / "state.json").read_text())["versions"] == []
