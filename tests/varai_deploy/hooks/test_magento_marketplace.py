"""MagentoMarketplaceHook against the sandbox's EQP API fake, through a real Airflow connection."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator

import pytest

from tests.support.magento_stack import MagentoStack, magento_stack
from varai_deploy.hooks.magento_marketplace import MagentoMarketplaceHook
from varai_deploy.widgets.publishing import PublishAuthError, PublishError

CONN_ENV = "AIRFLOW_CONN_VARAI_MAGENTO_MARKETPLACE"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MagentoStack]:
    with magento_stack(tmp_path_factory.mktemp("marketplace-hook") / "sandbox", ("marketplace",)) as running:
        yield running


@pytest.fixture
def hook(stack: MagentoStack, monkeypatch: pytest.MonkeyPatch) -> MagentoMarketplaceHook:
    monkeypatch.setenv(CONN_ENV, stack.marketplace_env())
    return MagentoMarketplaceHook()


def module_zip(name: str, version: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("composer.json", json.dumps({"name": name, "version": version}))
    return buffer.getvalue()


def package(hook: MagentoMarketplaceHook, name: str, version: str, **fields) -> dict:
    zip_id, guide_id = (
        r["file_upload_id"]
        for r in hook.upload_files(
            [("m.zip", module_zip(name, version), "application/zip"), ("guide.pdf", b"%PDF-1.4", "application/pdf")]
        )
    )
    for file_upload_id in (zip_id, guide_id):
        assert hook.wait_for_malware_scan(file_upload_id)["malware_status"] == "pass"
    return {
        "action": {"technical": "submit"},
        "type": "extension",
        "platform": "M2",
        "name": name,
        "long_description": "demo",
        "version": version,
        "release_notes": "notes",
        "version_compatibility": [{"edition": "CE", "versions": ["2.4"]}],
        "artifact": {"file_upload_id": zip_id},
        "documentation_artifacts": {"user": {"file_upload_id": guide_id}},
        **fields,
    }


def test_a_bad_key_is_refused_naming_the_connection_and_what_to_do(stack, monkeypatch):
    monkeypatch.setenv(CONN_ENV, stack.marketplace_env(password="not-the-secret"))
    with pytest.raises(PublishAuthError) as refused:
        MagentoMarketplaceHook().package_versions("varai/module-ai-discovery")
    message = str(refused.value)
    assert (refused.value.channel, refused.value.destination) == ("magento", "marketplace")
    assert "'varai_magento_marketplace'" in message
    assert "refused the API access key" in message and "regenerate the key" in message
    assert "not-the-secret" not in message


def test_a_connection_without_a_key_is_refused_before_any_call(stack, monkeypatch):
    monkeypatch.setenv(CONN_ENV, stack.marketplace_env(login=None, password=None))
    with pytest.raises(PublishAuthError, match="has no API access key"):
        MagentoMarketplaceHook().package_versions("varai/module-ai-discovery")


def test_an_unreachable_api_fails_naming_the_url_and_connection(stack, monkeypatch):
    monkeypatch.setenv(CONN_ENV, stack.marketplace_env(port=19479))  # in our range, nothing listens there
    with pytest.raises(
        PublishError, match=r"cannot reach the Marketplace API at http://127.0.0.1:19479/.*varai_magento"
    ):
        MagentoMarketplaceHook().package_versions("varai/module-ai-discovery")


def test_submit_then_find_exactly_that_sku_and_version(hook: MagentoMarketplaceHook):
    result = hook.submit_package(package(hook, "acme/widget", "1.0.0"))
    assert result["code"] == 200
    hook.submit_package(package(hook, "acme/widget-pro", "1.0.0"))  # "acme/widget" is a sub-string of its sku

    versions = hook.package_versions("acme/widget")
    assert [(p["sku"], p["version"]) for p in versions] == [("acme/widget", "1.0.0")]
    found = hook.submission("acme/widget", "1.0.0")
    assert found is not None and found["submission_id"] == result["submission_id"]
    assert hook.submission("acme/widget", "1.0") is None  # the API matches versions by sub-string too


def test_a_refused_item_raises_with_the_apis_code_and_message(hook: MagentoMarketplaceHook):
    hook.submit_package(package(hook, "acme/dup", "2.0.0"))
    with pytest.raises(PublishError, match=r"refused acme/dup 2\.0\.0: code 1213: Version 2\.0\.0 of acme/dup"):
        hook.submit_package(package(hook, "acme/dup", "2.0.0", sku="acme/dup"))
    incomplete = package(hook, "acme/incomplete", "1.0.0")
    del incomplete["documentation_artifacts"]
    with pytest.raises(PublishError, match="code 1208: Insufficient information for Technical Submission"):
        hook.submit_package(incomplete)


def test_a_malware_scan_that_never_passes_times_out_with_a_clear_message(hook: MagentoMarketplaceHook):
    [record] = hook.upload_files([("m.zip", module_zip("acme/slow", "1.0.0"), "application/zip")])
    hook.scan_timeout = 0.0  # the fake answers in-progress on the first look only
    with pytest.raises(PublishError, match=r"still 'in-progress' after 0s; retry the task later"):
        hook.wait_for_malware_scan(record["file_upload_id"])
