"""The Magento (Adobe Commerce) Marketplace EQP API v1, through an Airflow HTTP connection.

Connection ``varai_magento_marketplace`` (conn_type ``varai_magento_marketplace``, this project's; one of
type ``http`` works the same): host ``commercedeveloper-api.adobe.com``
(schema ``https``) in production, the sandbox's fake locally; login = the API access key's application
ID, password = its application secret (Developer Portal > Manage API Keys). The key pair only buys a
session token (``POST /rest/v1/app/session/token``, HTTP Basic); every other call carries that token as
``Authorization: Bearer``. The provider's ``HttpHook`` supplies the base URL, the connection's extras
(proxies, verify, ...) and the keep-alive adapter; requests are sent on one session per hook.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.http.hooks.http import HttpHook

from varai_deploy.widgets.publishing import PublishAuthError, PublishError

if TYPE_CHECKING:
    from requests import Response, Session

CHANNEL = "magento"
DESTINATION = "marketplace"
SESSION_ENDPOINT = "/rest/v1/app/session/token"
UPLOADS_ENDPOINT = "/rest/v1/files/uploads"
PACKAGES_ENDPOINT = "/rest/v1/products/packages"
#: Long enough for one release's calls; the API caps it at its own maximum.
SESSION_SECONDS = 3600
REQUEST_TIMEOUT = 60.0
#: ``malware_status`` values: Adobe documents pass/fail; release scripts in the wild also see passed/failed.
SCAN_PASSED = frozenset({"pass", "passed"})
SCAN_FAILED = frozenset({"fail", "failed"})
#: Submissions with these statuses no longer hold their version (the version may be submitted again).
CANCELED = frozenset({"canceled_by_developer", "canceled_by_admin"})


class MagentoMarketplaceHook(HttpHook):
    """Upload files, submit package versions and read submissions; failures are :class:`PublishError`\\ s."""

    conn_name_attr = "http_conn_id"
    default_conn_name = "varai_magento_marketplace"
    conn_type = "varai_magento_marketplace"
    hook_name = "Magento Marketplace EQP API"

    def __init__(
        self,
        http_conn_id: str = default_conn_name,
        *,
        scan_timeout: float = 600.0,
        scan_poll_max: float = 10.0,
    ) -> None:
        super().__init__(method="GET", http_conn_id=http_conn_id)
        self.scan_timeout = scan_timeout
        self.scan_poll_max = scan_poll_max
        self._session: Session | None = None

    # -- session --------------------------------------------------------------------------------
    def _authorised(self) -> Session:
        """A session carrying a fresh session token (the key pair goes only to the token endpoint)."""
        if self._session is not None:
            return self._session
        from airflow.exceptions import AirflowNotFoundException
        from airflow.sdk.log import mask_secret

        try:
            conn = self.get_connection(self.http_conn_id)
        except AirflowNotFoundException:
            raise self._error(
                PublishError,
                f"the Airflow connection {self.http_conn_id!r} is not defined; add it (conn_type "
                "varai_magento_marketplace, host commercedeveloper-api.adobe.com, schema https, "
                "login = API application ID, password = its secret)",
            ) from None
        if not conn.login or not conn.password:
            raise self._error(
                PublishAuthError,
                f"the Airflow connection {self.http_conn_id!r} has no API access key: set its login to the "
                "application ID and its password to the application secret (Developer Portal > Manage API Keys)",
            )
        session = self.get_conn()  # base URL, extras, adapters; auth = HTTP Basic with login:password
        response = self._send(
            session, "POST", SESSION_ENDPOINT, json={"grant_type": "session", "expires_in": SESSION_SECONDS}
        )
        if response.status_code == 401:
            raise self._error(
                PublishAuthError,
                f"{self.base_url} refused the API access key of the Airflow connection {self.http_conn_id!r} "
                f"({_reason(response)}); regenerate the key in the Developer Portal (Manage API Keys) and put "
                "its application ID in the connection's login and its secret in the password",
            )
        token = self._json(response, SESSION_ENDPOINT).get("ust")
        if not isinstance(token, str) or not token:
            raise self._error(PublishError, f"{self.base_url}{SESSION_ENDPOINT} answered without a session token")
        mask_secret(token)
        session.auth = None
        session.headers["Authorization"] = f"Bearer {token}"
        self._session = session
        return session

    def _send(self, session: Session, method: str, endpoint: str, **kwargs: Any) -> Response:
        import requests

        url = self.url_from_endpoint(endpoint)
        try:
            return session.request(method, url, timeout=REQUEST_TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise self._error(
                PublishError,
                f"cannot reach the Marketplace API at {url} (Airflow connection {self.http_conn_id!r}): "
                f"{type(exc).__name__}: {exc}",
            ) from exc

    def _call(self, method: str, endpoint: str, **kwargs: Any) -> Any:
        response = self._send(self._authorised(), method, endpoint, **kwargs)
        if response.status_code == 401:
            raise self._error(
                PublishAuthError,
                f"{self.base_url} refused the session token of the Airflow connection {self.http_conn_id!r} for "
                f"{method} {endpoint} ({_reason(response)}); check that the connection's key is for this "
                "environment (sandbox and production keys differ)",
            )
        return self._json(response, f"{method} {endpoint}")

    def _json(self, response: Response, what: str) -> Any:
        if not response.ok:
            raise self._error(PublishError, f"{what} failed with HTTP {response.status_code}: {_reason(response)}")
        try:
            return response.json()
        except ValueError:
            raise self._error(PublishError, f"{what} answered HTTP {response.status_code} without JSON") from None

    @staticmethod
    def _error(kind: type[PublishError], message: str) -> PublishError:
        return kind(f"{CHANNEL} -> {DESTINATION}: {message}", channel=CHANNEL, destination=DESTINATION)

    # -- files ----------------------------------------------------------------------------------
    def upload_files(self, files: Sequence[tuple[str, bytes, str]]) -> list[dict[str, Any]]:
        """Upload ``(filename, data, content_type)``\\ s in one multipart request; their records, in order."""
        parts = [("file[]", (name, data, content_type)) for name, data, content_type in files]
        records = self._call("POST", UPLOADS_ENDPOINT, files=parts)
        if not isinstance(records, list) or len(records) != len(files):
            raise self._error(PublishError, f"the upload of {len(files)} file(s) answered {records!r}")
        return records

    def wait_for_malware_scan(self, file_upload_id: str) -> dict[str, Any]:
        """The file's record once its malware check passed (a package may only reference files that passed)."""
        deadline = time.monotonic() + self.scan_timeout
        pause = 0.5  # doubling up to scan_poll_max: a small zip passes in seconds, a slow scan is not hammered
        while True:
            record = self._call("GET", f"{UPLOADS_ENDPOINT}/{file_upload_id}")
            status = record.get("malware_status")
            if status in SCAN_PASSED:
                return record
            if status in SCAN_FAILED:
                raise self._error(
                    PublishError,
                    f"the Marketplace's malware check failed for {record.get('filename')} "
                    f"(file_upload_id {file_upload_id}); nothing was submitted",
                )
            if time.monotonic() >= deadline:
                raise self._error(
                    PublishError,
                    f"the malware check of {record.get('filename')} (file_upload_id {file_upload_id}) is still "
                    f"{status!r} after {self.scan_timeout:g}s; retry the task later",
                )
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, self.scan_poll_max)

    # -- packages -------------------------------------------------------------------------------
    def package_versions(self, sku: str) -> list[dict[str, Any]]:
        """Every submission of ``sku`` (the API filters by sub-string: the exact match is made here)."""
        found = self._call("GET", PACKAGES_ENDPOINT, params={"sku": sku, "limit": -1})
        if not isinstance(found, list):
            raise self._error(PublishError, f"GET {PACKAGES_ENDPOINT} answered {type(found).__name__}, not a list")
        return [package for package in found if isinstance(package, dict) and package.get("sku") == sku]

    def submission(self, sku: str, version: str) -> dict[str, Any] | None:
        """The live (not canceled) submission of ``sku`` at ``version``, if any."""
        return live_submission(self.package_versions(sku), version)

    def submit_package(self, package: dict[str, Any]) -> dict[str, Any]:
        """POST one package (a batch of one); its item of the batch response, or the item's error."""
        results = self._call("POST", PACKAGES_ENDPOINT, json=[package])
        if not isinstance(results, list) or len(results) != 1 or not isinstance(results[0], dict):
            raise self._error(PublishError, f"the package submission answered {results!r}")
        result = results[0]
        if result.get("code") != 200:
            raise self._error(
                PublishError,
                f"the Marketplace refused {package.get('sku') or package.get('name')} {package.get('version')}: "
                f"code {result.get('code')}: {result.get('message')}",
            )
        return result


def live_submission(packages: Sequence[dict[str, Any]], version: str) -> dict[str, Any] | None:
    """The submission of ``version`` among ``packages`` that still holds it (a canceled one does not)."""
    for package in packages:
        if package.get("version") == version and (package.get("eqp_status") or {}).get("overall") not in CANCELED:
            return package
    return None


def _reason(response: Response) -> str:
    """The API's ``{code, message}`` error body, or the start of whatever else came back."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason
    if isinstance(body, dict) and "message" in body:
        return f"code {body.get('code')}: {body['message']}"
    return str(body)[:200]
