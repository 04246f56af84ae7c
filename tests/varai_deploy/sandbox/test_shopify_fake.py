"""The Shopify stand-in holds requests to the Partners API's contract and answers in its shapes.

The documents are the Shopify CLI's own (``varai_deploy.hooks.shopify`` sends them verbatim), so a
request the stand-in accepts is one the CLI makes, and what it refuses it refuses the real way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.shopify_stack import ShopifyStack, shopify_stack
from varai_deploy.hooks.shopify import (
    APP_DEPLOY,
    APP_VERSION_BY_TAG,
    APP_VERSIONS,
    EXTENSION_CREATE,
    GENERATE_SIGNED_UPLOAD_URL,
)
from varai_deploy.widgets.archives import deterministic_zip

THEME_CONFIG = json.dumps({"theme_extension": {"files": {}}})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopifyStack]:
    with shopify_stack(tmp_path_factory.mktemp("shopify") / "sandbox") as running:
        yield running


@pytest.fixture(scope="module")
def extension(stack: ShopifyStack) -> str:
    variables = {
        "apiKey": stack.api_key,
        "type": "THEME_APP_EXTENSION",
        "title": "Contract test extension",
        "config": "{}",
        "context": "",
        "handle": "contract-test",
    }
    answer = stack.graphql(EXTENSION_CREATE, variables).json()
    assert answer["data"]["extensionCreate"]["userErrors"] == []
    return answer["data"]["extensionCreate"]["extensionRegistration"]["uuid"]


def signed_url(stack: ShopifyStack) -> str:
    answer = stack.graphql(GENERATE_SIGNED_UPLOAD_URL, {"apiKey": stack.api_key, "bundleFormat": 1}).json()
    assert answer["data"]["appVersionGenerateSignedUploadUrl"]["userErrors"] == []
    return answer["data"]["appVersionGenerateSignedUploadUrl"]["signedUploadUrl"]


def upload(stack: ShopifyStack, files: dict[str, bytes]) -> str:
    url = signed_url(stack)
    assert requests.put(url, data=deterministic_zip(files), timeout=10).status_code == 200
    return url


def deploy(stack: ShopifyStack, extension: str, bundle_url: str | None, tag: str, **variables) -> dict:
    module = {
        "uuid": extension,
        "handle": "contract-test",
        "context": "",
        "config": THEME_CONFIG,
        "specificationIdentifier": "THEME_APP_EXTENSION",
    }
    body = {"apiKey": stack.api_key, "bundleUrl": bundle_url, "appModules": [module], "versionTag": tag}
    answer = stack.graphql(APP_DEPLOY, {**body, "message": f"test {tag}", **variables})
    assert answer.status_code == 200
    return answer.json()["data"]["appDeploy"]


def theme_files(extension: str) -> dict[str, bytes]:
    return {f"{extension}/assets/widget.js": b"console.log(1)", f"{extension}/blocks/b.liquid": b"<div></div>"}


def statuses(stack: ShopifyStack) -> dict[str, str]:
    answer = stack.graphql(APP_VERSIONS, {"apiKey": stack.api_key}).json()
    return {node["versionTag"]: node["status"] for node in answer["data"]["app"]["appVersions"]["nodes"]}


# -- authentication and transport ---------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "", "X-Shopify-Access-Token": ""},
        {"Authorization": "Bearer wrong", "X-Shopify-Access-Token": "Bearer wrong"},
        {"X-Shopify-Access-Token": "Bearer wrong"},  # one right header does not excuse a wrong one
        {"Authorization": "{token}", "X-Shopify-Access-Token": "{token}"},  # not a shpat_ token: Bearer needed
    ],
    ids=["none", "wrong", "one-wrong", "no-bearer"],
)
def test_a_missing_or_wrong_token_gets_401_in_shopifys_shape(stack: ShopifyStack, headers: dict[str, str]):
    headers = {k: v.format(token=stack.token) for k, v in headers.items()}
    answer = stack.graphql(APP_VERSIONS, {"apiKey": stack.api_key}, **headers)
    assert answer.status_code == 401
    assert answer.json() == {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}


def test_a_body_that_is_not_json_gets_400(stack: ShopifyStack):
    auth = {"Authorization": f"Bearer {stack.token}", "X-Shopify-Access-Token": f"Bearer {stack.token}"}
    form = requests.post(f"{stack.url}/api/cli/graphql", data={"query": APP_VERSIONS}, headers=auth, timeout=10)
    assert form.status_code == 400
    broken = requests.post(
        f"{stack.url}/api/cli/graphql", data=b"{", headers={**auth, "Content-Type": "application/json"}, timeout=10
    )
    assert broken.status_code == 400
    assert "errors" in broken.json()


# -- GraphQL validation -------------------------------------------------------------------------
def test_a_variable_of_the_wrong_type_is_refused_with_graphql_rubys_problems(stack: ShopifyStack):
    answer = stack.graphql(GENERATE_SIGNED_UPLOAD_URL, {"apiKey": stack.api_key, "bundleFormat": "1"}).json()
    assert "data" not in answer
    [error] = answer["errors"]
    assert error["message"] == "Variable $bundleFormat of type Int! was provided invalid value"
    assert error["extensions"] == {
        "value": "1",
        "problems": [{"path": [], "explanation": 'Could not coerce value "1" to Int'}],
    }


def test_a_missing_required_variable_and_a_bad_module_are_refused_naming_their_paths(stack: ShopifyStack):
    missing = stack.graphql(APP_VERSIONS, {}).json()
    assert missing["errors"][0]["extensions"]["problems"] == [
        {"path": [], "explanation": "Expected value to not be null"}
    ]
    bad_module = stack.graphql(APP_DEPLOY, {"apiKey": stack.api_key, "appModules": [{"handle": 3}]}).json()
    problems = bad_module["errors"][0]["extensions"]["problems"]
    assert {"path": [0, "handle"], "explanation": "Could not coerce value 3 to String"} in problems
    assert {"path": [0, "config"], "explanation": "Expected value to not be null"} in problems


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            "query Q($apiKey: String!) { app(apiKey: $apiKey) { id bundle } }",
            "Field 'bundle' doesn't exist on type 'App'",
        ),
        (
            "query Q($apiKey: String) { app(apiKey: $apiKey) { id } }",
            "Nullability mismatch on variable $apiKey and argument apiKey (String / String!)",
        ),
        ("query Q { app(apiKey: $apiKey) { id } }", "Variable $apiKey is used by Q but not declared"),
        ("query Q($apiKey: String!) { app { id } }", "Field 'app' is missing required arguments: apiKey"),
        (
            "mutation M($apiKey: String!) { appVersionGenerateSignedUploadUrl(input: {apiKey: $apiKey}) "
            "{ signedUploadUrl } }",
            "Argument 'bundleFormat' on InputObject 'AppVersionGenerateSignedUploadUrlInput' is required. "
            "Expected type Int!",
        ),
        (
            "query Q($apiKey: String!) { app(apiKey: $apiKey) { appVersions } }",
            "Field must have selections (field 'appVersions' returns AppVersionConnection but has no selections. "
            "Did you mean 'appVersions { ... }'?)",
        ),
        ("query Q($apiKey: String!) { app(apiKey: $apiKey) { id }", 'Parse error on "end of file" (EOF) at [1, 56]'),
    ],
    ids=[
        "unknown-field",
        "nullability",
        "undeclared",
        "missing-argument",
        "missing-input-field",
        "no-selection",
        "parse",
    ],
)
def test_documents_the_schema_does_not_allow_are_refused(stack: ShopifyStack, document: str, message: str):
    answer = stack.graphql(document, {"apiKey": stack.api_key})
    assert answer.status_code == 200
    assert message in [e["message"] for e in answer.json()["errors"]]
    assert "data" not in answer.json()


# -- the signed upload --------------------------------------------------------------------------
def test_the_upload_url_takes_no_token_and_no_forgery(stack: ShopifyStack, extension: str):
    url = signed_url(stack)
    bundle = deterministic_zip(theme_files(extension))
    with_token = requests.put(url, data=bundle, headers={"Authorization": f"Bearer {stack.token}"}, timeout=10)
    assert with_token.status_code == 400
    assert "<Code>InvalidArgument</Code>" in with_token.text
    forged = requests.put(url.replace("X-Goog-Expires=3600", "X-Goog-Expires=99999"), data=bundle, timeout=10)
    assert forged.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in forged.text
    unsigned = requests.put(url.split("?")[0], data=bundle, timeout=10)
    assert (unsigned.status_code, "<Code>AccessDenied</Code>" in unsigned.text) == (403, True)


def test_a_version_needs_its_bundle_really_uploaded(stack: ShopifyStack, extension: str):
    never_uploaded = deploy(stack, extension, signed_url(stack), "9.0.1")
    assert never_uploaded["appVersion"] is None
    assert never_uploaded["userErrors"][0]["field"] == ["bundle_url"]
    assert "nothing was uploaded" in never_uploaded["userErrors"][0]["message"]

    url = signed_url(stack)
    assert requests.put(url, data=b"not a zip", timeout=10).status_code == 200
    not_a_zip = deploy(stack, extension, url, "9.0.1")
    assert "not a valid zip" in not_a_zip["userErrors"][0]["message"]

    elsewhere = deploy(stack, extension, "https://example.com/bundle.zip", "9.0.1")
    assert "not a signed upload URL" in elsewhere["userErrors"][0]["message"]
    assert "9.0.1" not in statuses(stack)


def test_a_bundle_breaking_the_theme_extension_rules_is_refused(stack: ShopifyStack, extension: str):
    files = {
        **theme_files(extension),
        f"{extension}/shopify.extension.toml": b'name = "x"\ntype = "theme"\n',
        f"{extension}/assets/readme.md": b"#",
        "someone-else/assets/x.js": b"1",
    }
    refused = deploy(stack, extension, upload(stack, files), "9.0.2")
    messages = [e["message"] for e in refused["userErrors"]]
    assert any("unsupported directory, shopify.extension.toml" in m for m in messages)
    assert "Invalid filename in your theme app extension: assets/readme.md" in messages
    assert any("no deployed app module" in m and "someone-else" in m for m in messages)
    theme_errors = [e for e in refused["userErrors"] if e["details"]]
    assert theme_errors[0]["details"] == [
        {"extension_id": theme_errors[0]["details"][0]["extension_id"], "extension_title": "Contract test extension"}
    ]
    assert refused["appVersion"] is None


# -- versions -----------------------------------------------------------------------------------
def test_a_version_is_created_listed_and_its_tag_never_reused(stack: ShopifyStack, extension: str):
    created = deploy(stack, extension, upload(stack, theme_files(extension)), "9.1.0", skipPublish=False)
    assert created["userErrors"] == []
    version = created["appVersion"]
    assert version["versionTag"] == "9.1.0"
    assert version["message"] == "test 9.1.0"
    page = requests.get(version["location"], timeout=10)
    assert page.status_code == 200
    assert page.json()["versionTag"] == "9.1.0"

    again = deploy(stack, extension, upload(stack, theme_files(extension)), "9.1.0")
    assert again == {
        "appVersion": None,
        "userErrors": [{"message": "has already been taken", "field": ["version_tag"], "category": "", "details": []}],
    }
    by_tag = stack.graphql(APP_VERSION_BY_TAG, {"apiKey": stack.api_key, "versionTag": "9.1.0"}).json()
    assert by_tag["data"]["app"]["appVersion"]["location"] == version["location"]
    recorded = next(v for v in stack.state()["versions"] if v["versionTag"] == "9.1.0")
    assert sorted(recorded["_bundle_sha256"]) == sorted(theme_files(extension))


def test_skip_publish_creates_a_version_without_releasing_it(stack: ShopifyStack, extension: str):
    assert deploy(stack, extension, upload(stack, theme_files(extension)), "9.2.0")["userErrors"] == []
    unreleased = deploy(stack, extension, upload(stack, theme_files(extension)), "9.3.0-rc.1", skipPublish=True)
    assert unreleased["userErrors"] == []
    now = statuses(stack)
    assert (now["9.2.0"], now["9.3.0-rc.1"]) == ("active", "inactive")


def test_an_unknown_version_tag_is_a_field_error_with_its_path(stack: ShopifyStack):
    answer = stack.graphql(APP_VERSION_BY_TAG, {"apiKey": stack.api_key, "versionTag": "0.0.0"}).json()
    assert answer["data"] == {"app": {"appVersion": None}}
    assert answer["errors"][0]["path"] == ["app", "appVersion"]


def test_the_stand_in_keeps_its_state_across_a_restart(tmp_path: Path):
    with shopify_stack(tmp_path / "sandbox") as first:
        variables = {"apiKey": first.api_key, "type": "THEME_APP_EXTENSION", "title": "Kept", "config": "{}"}
        assert first.graphql(EXTENSION_CREATE, variables).json()["data"]["extensionCreate"]["userErrors"] == []
    with shopify_stack(tmp_path / "sandbox") as second:
        query = "query Q($apiKey: String!) { app(apiKey: $apiKey) { extensionRegistrations { title } } }"
        answer = second.graphql(query, {"apiKey": second.api_key}).json()
        assert answer["data"]["app"]["extensionRegistrations"] == [{"title": "Kept"}]
