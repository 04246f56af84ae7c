"""The Marketplace component and its EQP API fake, spoken to with plain ``requests`` as the real API is documented.

Each contract rule is shown both ways: the documented request succeeds with the documented shape, and
the broken one is refused with the documented error shape (``{code, message}``; batch items in place).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.magento_stack import MagentoStack, magento_stack
from tests.support.stand_ins import start
from varai_deploy.sandbox import credentials, processes
from varai_deploy.sandbox.marketplace import COMPONENT

TOKEN = "/rest/v1/app/session/token"
UPLOADS = "/rest/v1/files/uploads"
PACKAGES = "/rest/v1/products/packages"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MagentoStack]:
    with magento_stack(tmp_path_factory.mktemp("marketplace") / "sandbox", ("marketplace",)) as running:
        yield running


@pytest.fixture(scope="module")
def api(stack: MagentoStack) -> str:
    return stack.url("marketplace")


@pytest.fixture(scope="module")
def keys(stack: MagentoStack) -> tuple[str, str]:
    conn = stack.connection("marketplace", "varai_magento_marketplace")
    return conn["login"], conn["password"]


@pytest.fixture
def bearer(api: str, keys: tuple[str, str]) -> dict[str, str]:
    ust = requests.post(f"{api}{TOKEN}", json={"grant_type": "session"}, auth=keys, timeout=5).json()["ust"]
    return {"Authorization": f"Bearer {ust}"}


def module_zip(name: str = "acme/module-demo", version: str = "1.0.0") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("composer.json", json.dumps({"name": name, "version": version, "type": "magento2-module"}))
        archive.writestr("registration.php", "<?php\n")
    return buffer.getvalue()


def upload(api: str, bearer: dict[str, str], *files: tuple[str, bytes, str], scanned: bool = True) -> list[str]:
    parts = [("file[]", file) for file in files]
    records = requests.post(f"{api}{UPLOADS}", files=parts, headers=bearer, timeout=5).json()
    ids = [record["file_upload_id"] for record in records]
    if scanned:  # the first look finds the malware check running; the next one passed
        for file_upload_id in ids:
            for _ in range(2):
                requests.get(f"{api}{UPLOADS}/{file_upload_id}", headers=bearer, timeout=5)
    return ids


def submission(api: str, bearer: dict[str, str], version: str = "1.0.0", name: str = "acme/module-demo") -> dict:
    """A complete technical submission of a new package, its files uploaded and scanned."""
    zip_id, guide_id = upload(
        api,
        bearer,
        ("demo.zip", module_zip(name, version), "application/zip"),
        ("guide.pdf", b"%PDF-1.4", "application/pdf"),
    )
    return {
        "action": {"technical": "submit", "marketing": "draft"},
        "type": "extension",
        "platform": "M2",
        "name": f"Demo {name}",
        "long_description": "A demo module",
        "version": version,
        "release_notes": "First",
        "version_compatibility": [{"edition": "CE", "versions": ["2.4"]}],
        "artifact": {"file_upload_id": zip_id},
        "documentation_artifacts": {"user": {"file_upload_id": guide_id}},
        "license_type": "mit",
    }


def post_packages(api: str, bearer: dict[str, str], items: Any) -> requests.Response:
    return requests.post(f"{api}{PACKAGES}", json=items, headers=bearer, timeout=5)


# -- the component ------------------------------------------------------------------------------
def test_the_component_serves_a_connection_whose_secrets_only_live_in_0600_files(stack: MagentoStack):
    settings = stack.settings
    port = settings.component_port("marketplace")
    conn = COMPONENT.connections(settings, port)["varai_magento_marketplace"]
    assert (conn["conn_type"], conn["host"], conn["port"], conn["schema"]) == ("http", "127.0.0.1", port, "http")
    assert conn["login"] == credentials.secret(settings, "magento_marketplace_application_id")
    assert conn["password"] == credentials.secret(settings, "magento_marketplace_application_secret")
    keys_file = stack.marketplace_dir / "api_keys.json"
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert json.loads(keys_file.read_text())["application_secret"] == conn["password"]
    argv = COMPONENT.marker(settings, port).argv()
    assert ("--home", str(settings.home)) in itertools.pairwise(argv)
    assert conn["password"] not in " ".join(argv)


# -- session tokens -------------------------------------------------------------------------------
def test_a_session_token_is_granted_for_the_key_pair_in_the_documented_shape(api: str, keys: tuple[str, str]):
    resp = requests.post(f"{api}{TOKEN}", json={"grant_type": "session", "expires_in": 99999}, auth=keys, timeout=5)
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"mage_id", "ust", "expires_in"}
    assert body["expires_in"] == 7200  # capped at the system's maximum, as documented


@pytest.mark.parametrize(
    ("auth", "kwargs", "status"),
    [
        (("wrong", "pair"), {"json": {"grant_type": "session"}}, 401),
        (None, {"json": {"grant_type": "session"}}, 401),
        ("keys", {"json": {"grant_type": "password"}}, 400),
        ("keys", {"json": {"expires_in": 60}}, 400),
        ("keys", {"data": "grant_type=session", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 415),
    ],
    ids=["bad-key", "no-auth", "bad-grant", "no-grant", "not-json"],
)
def test_a_session_token_request_off_the_contract_is_refused(api, keys, auth, kwargs, status):
    resp = requests.post(f"{api}{TOKEN}", auth=keys if auth == "keys" else auth, timeout=5, **kwargs)
    assert resp.status_code == status
    assert set(resp.json()) == {"code", "message"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic c2VjcmV0"}],
    ids=["none", "unknown-token", "basic-instead-of-bearer"],
)
def test_every_other_call_needs_a_live_bearer_token(api: str, headers: dict[str, str], keys: tuple[str, str]):
    for method, path in (("GET", PACKAGES), ("POST", UPLOADS), ("GET", f"{UPLOADS}/x")):
        resp = requests.request(method, f"{api}{path}", headers=headers, timeout=5)
        assert resp.status_code == 401, (method, path)
        assert "session token" in resp.json()["message"]
    # The key pair itself is no bearer: it only buys a session token.
    assert requests.get(f"{api}{PACKAGES}", auth=keys, timeout=5).status_code == 401


def test_unknown_paths_and_methods_get_the_error_shape(api: str, bearer: dict[str, str]):
    assert requests.get(f"{api}/rest/v1/nothing", headers=bearer, timeout=5).status_code == 404
    resp = requests.delete(f"{api}{PACKAGES}", headers=bearer, timeout=5)
    assert resp.status_code == 405
    assert set(resp.json()) == {"code", "message"}


# -- files ----------------------------------------------------------------------------------------
def test_an_upload_answers_records_in_order_and_the_malware_check_passes_after_a_while(api, bearer):
    data = module_zip()
    parts = [("file[]", ("demo.zip", data, "application/zip")), ("file[]", ("guide.pdf", b"%PDF", "application/pdf"))]
    records = requests.post(f"{api}{UPLOADS}", files=parts, headers=bearer, timeout=5).json()
    assert [(r["filename"], r["content_type"], r["size"]) for r in records] == [
        ("demo.zip", "application/zip", len(data)),
        ("guide.pdf", "application/pdf", 4),
    ]
    first = requests.get(f"{api}{UPLOADS}/{records[0]['file_upload_id']}", headers=bearer, timeout=5).json()
    assert first["malware_status"] == "in-progress" and "file_hash" not in first
    later = requests.get(f"{api}{UPLOADS}/{records[0]['file_upload_id']}", headers=bearer, timeout=5).json()
    assert later["malware_status"] == "pass"
    assert later["file_hash"] == hashlib.md5(data).hexdigest()
    assert requests.get(f"{api}{UPLOADS}/nope", headers=bearer, timeout=5).status_code == 404


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"file": "x"}', "application/json"),
        (b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.zip"\r\n\r\nPK\r\n--B--\r\n', None),
        (b'--B\r\nContent-Disposition: form-data; name="file[]"\r\n\r\nPK\r\n--B--\r\n', None),
        (b'--B\r\nContent-Disposition: form-data; name="file[]"; filename="a.zip"\r\n\r\nPK\r\n', None),
    ],
    ids=["not-multipart", "name-not-file[]", "no-filename", "no-closing-boundary"],
)
def test_an_upload_off_the_contract_is_refused(api, bearer, body, content_type):
    headers = {**bearer, "Content-Type": content_type or "multipart/form-data; boundary=B"}
    resp = requests.post(f"{api}{UPLOADS}", data=body, headers=headers, timeout=5)
    assert resp.status_code == 400
    assert set(resp.json()) == {"code", "message"}


# -- packages -------------------------------------------------------------------------------------
def test_a_package_is_submitted_listed_and_a_second_submission_of_its_version_refused(api, bearer, stack):
    item = submission(api, bearer, "2.0.0", "acme/module-first")
    resp = post_packages(api, bearer, [item])
    assert resp.status_code == 200
    [result] = resp.json()
    assert (result["code"], result["message"]) == (200, "Success")
    assert result["eqp_status"] == {"overall": "in_progress", "technical": "in_automation", "marketing": "draft"}

    listed = requests.get(f"{api}{PACKAGES}", params={"sku": "acme/module-first"}, headers=bearer, timeout=5)
    assert listed.headers["X-Total-Count"] == "1"
    [package] = listed.json()
    assert (package["sku"], package["version"], package["submission_id"]) == (
        "acme/module-first",
        "2.0.0",
        result["submission_id"],
    )
    assert package["artifact"]["filename"] == "demo.zip" and package["artifact"]["malware_status"] == "pass"
    one = requests.get(f"{api}{PACKAGES}/{result['submission_id']}", headers=bearer, timeout=5).json()
    assert one == package
    saved = stack.marketplace_state()["packages"][result["submission_id"]]
    assert (saved["sku"], saved["version"], saved["release_notes"]) == ("acme/module-first", "2.0.0", "First")

    again = submission(api, bearer, "2.0.0", "acme/module-first")
    again["sku"] = "acme/module-first"
    [refused] = post_packages(api, bearer, [again]).json()
    assert refused["code"] == 1213 and "already submitted" in refused["message"]

    newer = submission(api, bearer, "2.0.1", "acme/module-first")
    [no_sku] = post_packages(api, bearer, [newer]).json()
    assert no_sku["code"] == 1212  # a new version of an existing package must name its sku
    newer["sku"] = "acme/module-first"
    [accepted] = post_packages(api, bearer, [newer]).json()
    assert accepted["code"] == 200


def _without(item: dict, *keys: str) -> dict:
    return {k: v for k, v in item.items() if k not in keys}


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        (lambda i: _without(i, "documentation_artifacts"), 1208, "documentation_artifacts.user"),
        (lambda i: _without(i, "release_notes"), 1208, "release_notes"),
        (lambda i: _without(i, "name"), 1208, "name"),
        (lambda i: {**i, "sku": "no-slash"}, 1210, "vendor_name/package_name"),
        (lambda i: {**i, "sku": "acme/module-refused"}, 1211, "no previous version"),
        (lambda i: {**i, "version": "3.0.0-rc.1"}, 1201, "major.minor.patch"),
        (lambda i: {**i, "version": "3.0.1"}, 1215, "composer.json"),
        (lambda i: {**i, "platform": "M1"}, 1201, "platform"),
        (lambda i: {**i, "license_type": "wtfpl"}, 1201, "license_type"),
        (lambda i: {**i, "action": {"technical": "publish"}}, 1201, "action"),
        (lambda i: {**i, "version_compatibility": [{"edition": "XX", "versions": ["2.4"]}]}, 1201, "edition"),
        (lambda i: {**i, "artifact": {"file_upload_id": "nope"}}, 1214, "unknown file_upload_id"),
    ],
    ids=[
        "no-user-guide",
        "no-release-notes",
        "new-package-without-name",
        "malformed-sku",
        "sku-without-previous-version",
        "pre-release-version",
        "version-not-the-artifacts",
        "platform",
        "license",
        "action",
        "edition",
        "unknown-artifact",
    ],
)
def test_a_package_off_the_contract_is_refused_in_its_batch_item(api, bearer, change, code, words):
    resp = post_packages(api, bearer, [change(submission(api, bearer, "3.0.0", "acme/module-refused"))])
    assert resp.status_code == 200  # a batch that parses is answered 200; the item carries the failure
    [item] = resp.json()
    assert set(item) == {"code", "message"}
    assert item["code"] == code and words in item["message"]


def test_a_package_may_only_reference_files_whose_malware_check_passed(api, bearer):
    item = submission(api, bearer, "4.0.0", "acme/module-unscanned")
    [fresh] = upload(
        api, bearer, ("demo.zip", module_zip("acme/module-unscanned", "4.0.0"), "application/zip"), scanned=False
    )
    [result] = post_packages(api, bearer, [{**item, "artifact": {"file_upload_id": fresh}}]).json()
    assert result["code"] == 1214 and "malware check" in result["message"]


def test_a_batch_is_answered_item_by_item_in_order(api, bearer):
    good = submission(api, bearer, "5.0.0", "acme/module-batch")
    bad = _without(submission(api, bearer, "5.0.0", "acme/module-batch-two"), "artifact")
    results = post_packages(api, bearer, [bad, good]).json()
    assert [r["code"] for r in results] == [1208, 200]


@pytest.mark.parametrize(
    ("body", "status"),
    [({"type": "extension"}, 400), ([], 400), ("not json", 415)],
    ids=["object-not-array", "empty-batch", "not-json"],
)
def test_a_packages_request_that_is_no_batch_fails_as_a_whole(api, bearer, body, status):
    if status == 415:
        resp = requests.post(f"{api}{PACKAGES}", data=body, headers={**bearer, "Content-Type": "text/plain"}, timeout=5)
    else:
        resp = post_packages(api, bearer, body)
    assert resp.status_code == status
    assert set(resp.json()) == {"code", "message"}


def test_listing_pages_by_20_filters_by_substring_and_refuses_unknown_filters(api, bearer):
    for n in range(3):
        [ok] = post_packages(api, bearer, [submission(api, bearer, "1.0.0", f"acme/module-list{n}")]).json()
        assert ok["code"] == 200
    some = requests.get(f"{api}{PACKAGES}", params={"sku": "acme/module-list"}, headers=bearer, timeout=5)
    assert some.headers["X-Total-Count"] == "3"
    assert sorted(p["sku"] for p in some.json()) == [f"acme/module-list{n}" for n in range(3)]
    page = requests.get(f"{api}{PACKAGES}", params={"sku": "list", "limit": 2, "offset": 2}, headers=bearer, timeout=5)
    assert [p["sku"] for p in page.json()] == ["acme/module-list2"]
    every = requests.get(f"{api}{PACKAGES}", params={"limit": -1}, headers=bearer, timeout=5)
    assert len(every.json()) == int(every.headers["X-Total-Count"])
    assert requests.get(f"{api}{PACKAGES}", params={"colour": "red"}, headers=bearer, timeout=5).status_code == 400
    assert requests.get(f"{api}{PACKAGES}/nope", headers=bearer, timeout=5).status_code == 404


def test_submissions_survive_a_restart_of_the_fake(tmp_path: Path):
    with magento_stack(tmp_path / "sandbox", ("marketplace",)) as running:
        api = running.url("marketplace")
        conn = running.connection("marketplace", "varai_magento_marketplace")
        keys = (conn["login"], conn["password"])
        token = requests.post(f"{api}{TOKEN}", json={"grant_type": "session"}, auth=keys, timeout=5).json()["ust"]
        bearer = {"Authorization": f"Bearer {token}"}
        [ok] = post_packages(api, bearer, [submission(api, bearer, "1.0.0", "acme/module-kept")]).json()
        assert ok["code"] == 200
        pids = processes.find_ours(
            running.settings.home, [COMPONENT.marker(running.settings, running.settings.component_port("marketplace"))]
        )
        processes.stop(pids)
        pid = start(running.settings, COMPONENT)
        try:
            assert (
                requests.get(f"{api}{PACKAGES}", headers=bearer, timeout=5).status_code == 401
            )  # sessions are not kept
            token = requests.post(f"{api}{TOKEN}", json={"grant_type": "session"}, auth=keys, timeout=5).json()["ust"]
            bearer = {"Authorization": f"Bearer {token}"}
            [kept] = requests.get(
                f"{api}{PACKAGES}", params={"sku": "acme/module-kept"}, headers=bearer, timeout=5
            ).json()
            assert kept["submission_id"] == ok["submission_id"]
        finally:
            processes.stop([pid])
