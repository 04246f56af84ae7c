"""Shopify app versions through the Partners API, as ``shopify app deploy`` creates them.

Connection ``varai_shopify`` (conn_type ``varai_shopify``, this project's; one of type ``http`` works the
same): ``host`` (``partners.shopify.com``; the sandbox's
stand-in locally), ``schema`` and ``port`` as usual, ``password`` the Partners access token, extra
``api_key`` the app's client id. Every call is one GraphQL request to ``/api/cli/graphql`` carrying
the token the way Shopify CLI does (``Authorization`` and ``X-Shopify-Access-Token``); the documents
are the CLI's own (see ``varai_deploy.sandbox.shopify_fake`` for the recorded contract and its sources).
The bundle goes to the signed upload URL the API hands out, without the token.

Errors are :class:`PublishError`\\ s naming the connection: a refused token is a
:class:`PublishAuthError`, a taken version tag a :class:`PublishConflictError`. The token is never
part of a message or a log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow.sdk import BaseHook

from varai_deploy.widgets.publishing import PublishAuthError, PublishConflictError, PublishError

CHANNEL = "shopify"
DESTINATION = "shopify_app"
GRAPHQL_PATH = "/api/cli/graphql"
USER_AGENT = "varai-deploy (Shopify CLI compatible)"
#: Seconds per request; creating a version validates the bundle server-side and is slower.
TIMEOUT = 30.0
DEPLOY_TIMEOUT = 120.0
BUNDLE_FORMAT_ZIP = 1

EXTENSION_REGISTRATIONS = """
query allAppExtensionRegistrations($apiKey: String!) {
  app(apiKey: $apiKey) { extensionRegistrations { id uuid title type } }
}"""
EXTENSION_CREATE = """
mutation ExtensionCreate($apiKey: String!, $type: ExtensionType!, $title: String!, $config: JSON!,
                         $context: String, $handle: String) {
  extensionCreate(input: {apiKey: $apiKey, type: $type, title: $title, config: $config, context: $context,
                          handle: $handle}) {
    extensionRegistration { id uuid type title }
    userErrors { field message }
  }
}"""
GENERATE_SIGNED_UPLOAD_URL = """
mutation GenerateSignedUploadUrl($apiKey: String!, $bundleFormat: Int!) {
  appVersionGenerateSignedUploadUrl(input: {apiKey: $apiKey, bundleFormat: $bundleFormat}) {
    signedUploadUrl
    userErrors { field message }
  }
}"""
APP_DEPLOY = """
mutation AppDeploy($apiKey: String!, $bundleUrl: String, $appModules: [AppModuleSettings!], $skipPublish: Boolean,
                   $message: String, $versionTag: String, $commitReference: String) {
  appDeploy(input: {apiKey: $apiKey, bundleUrl: $bundleUrl, appModules: $appModules, skipPublish: $skipPublish,
                    message: $message, versionTag: $versionTag, commitReference: $commitReference}) {
    appVersion { uuid id message versionTag location }
    userErrors { message field category details }
  }
}"""
APP_VERSIONS = """
query AppVersionsQuery($apiKey: String!) {
  app(apiKey: $apiKey) {
    id
    appVersions { nodes { createdAt message status versionTag } pageInfo { totalResults } }
  }
}"""
APP_VERSION_BY_TAG = """
query AppVersionByTag($apiKey: String!, $versionTag: String!) {
  app(apiKey: $apiKey) { appVersion(versionTag: $versionTag) { id uuid versionTag location message } }
}"""


@dataclass(frozen=True)
class AppVersion:
    version_tag: str
    message: str
    status: str = ""
    location: str = ""


class ShopifyHook(BaseHook):
    """Registers the theme app extension, uploads bundles and creates and lists app versions."""

    conn_name_attr = "shopify_conn_id"
    default_conn_name = "varai_shopify"
    conn_type = "varai_shopify"
    hook_name = "VarAI Shopify app (Partners API)"

    def __init__(self, shopify_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.shopify_conn_id = shopify_conn_id
        self._conn: Any = None

    # -- connection ---------------------------------------------------------------------------
    @property
    def connection(self) -> Any:
        if self._conn is None:
            from airflow.sdk.exceptions import AirflowNotFoundException

            try:
                self._conn = self.get_connection(self.shopify_conn_id)
            except AirflowNotFoundException:
                raise self._error(
                    f"the Airflow connection {self.shopify_conn_id!r} is not defined; add it (conn_type "
                    "varai_shopify, host partners.shopify.com, password: a Partners access token, extra api_key: "
                    "the app's client id)"
                ) from None
        return self._conn

    @property
    def base_url(self) -> str:
        conn = self.connection
        host = (conn.host or "").strip().rstrip("/")
        if not host:
            raise self._error(f"the Airflow connection {self.shopify_conn_id!r} has no host (partners.shopify.com)")
        if "://" in host:
            return host
        return f"{conn.schema or 'https'}://{host}{f':{conn.port}' if conn.port else ''}"

    @property
    def api_key(self) -> str:
        key = self.connection.extra_dejson.get("api_key")
        if not key:
            raise self._error(
                f"the Airflow connection {self.shopify_conn_id!r} has no extra 'api_key' (the app's client id, "
                "from the Partner Dashboard or `shopify app info`)"
            )
        return str(key)

    def _error(self, what: str) -> PublishError:
        return PublishError(f"{CHANNEL} -> {DESTINATION}: {what}", channel=CHANNEL, destination=DESTINATION)

    # -- the API ------------------------------------------------------------------------------
    def graphql(self, document: str, variables: dict[str, Any], *, timeout: float = TIMEOUT) -> dict[str, Any]:
        """``data`` of one Partners API request; HTTP, auth and GraphQL errors raise PublishErrors."""
        import requests

        token = self.connection.password
        if not token:
            raise PublishAuthError(
                f"{CHANNEL} -> {DESTINATION}: the Airflow connection {self.shopify_conn_id!r} has no password; "
                "set it to the Partners access token",
                channel=CHANNEL,
                destination=DESTINATION,
            )
        auth = token if token.startswith("shpat") else f"Bearer {token}"
        url = self.base_url + GRAPHQL_PATH
        headers = {"User-Agent": USER_AGENT, "Authorization": auth, "X-Shopify-Access-Token": auth}
        operation = document.split("(", 1)[0].split()[-1]
        try:
            resp = requests.post(
                url, json={"query": document, "variables": variables}, headers=headers, timeout=timeout
            )
        except requests.RequestException as exc:
            raise self._error(
                f"{operation}: cannot reach {url} (Airflow connection {self.shopify_conn_id!r}): {exc}"
            ) from None
        if resp.status_code in (401, 403):
            raise PublishAuthError(
                f"{CHANNEL} -> {DESTINATION}: {url} refused the access token of Airflow connection "
                f"{self.shopify_conn_id!r} (HTTP {resp.status_code}); put a valid Partners token with access to "
                f"app {self.api_key} in its password",
                channel=CHANNEL,
                destination=DESTINATION,
            )
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code != 200 or not isinstance(body, dict):
            raise self._error(f"{operation}: {url} answered HTTP {resp.status_code}: {resp.text[:300]}")
        if body.get("errors"):
            errors = body["errors"] if isinstance(body["errors"], list) else [body["errors"]]
            messages = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
            raise self._error(f"{operation} was refused by {url}: {messages}")
        return body.get("data") or {}

    def _app(self, data: dict[str, Any]) -> dict[str, Any]:
        app = data.get("app")
        if app is None:
            raise self._error(
                f"no app with api key {self.api_key} is visible to the token of Airflow connection "
                f"{self.shopify_conn_id!r}; check the extra 'api_key' and that the token's organization owns the app"
            )
        return app

    def _payload(self, data: dict[str, Any], field: str, what: str) -> dict[str, Any]:
        payload = data.get(field) or {}
        errors = payload.get("userErrors") or []
        if errors:
            if any("version_tag" in (e.get("field") or []) and "taken" in e.get("message", "") for e in errors):
                raise PublishConflictError(
                    f"{CHANNEL} -> {DESTINATION}: {what}: the version tag already exists in app {self.api_key}",
                    channel=CHANNEL,
                    destination=DESTINATION,
                )
            raise self._error(f"{what} was refused: {'; '.join(_describe(e) for e in errors)}")
        return payload

    def theme_extension(self, title: str, handle: str) -> str:
        """The uuid of the app's theme app extension called ``title``; registered first when it is new."""
        data = self.graphql(EXTENSION_REGISTRATIONS, {"apiKey": self.api_key})
        for registration in self._app(data).get("extensionRegistrations") or []:
            if registration["type"] == "THEME_APP_EXTENSION" and registration["title"] == title:
                return registration["uuid"]
        variables = {
            "apiKey": self.api_key,
            "type": "THEME_APP_EXTENSION",
            "title": title,
            "config": "{}",
            "context": "",
            "handle": handle,
        }
        created = self._payload(
            self.graphql(EXTENSION_CREATE, variables), "extensionCreate", "registering the extension"
        )
        self.log.info("Registered theme app extension %r in app %s", title, self.api_key)
        return created["extensionRegistration"]["uuid"]

    def upload_bundle(self, bundle: bytes) -> str:
        """Put ``bundle`` (a zip) where the API says; returns the signed URL that names it in :meth:`deploy`."""
        import requests

        data = self.graphql(GENERATE_SIGNED_UPLOAD_URL, {"apiKey": self.api_key, "bundleFormat": BUNDLE_FORMAT_ZIP})
        url = self._payload(data, "appVersionGenerateSignedUploadUrl", "getting an upload URL")["signedUploadUrl"]
        where = url.split("?", 1)[0]
        try:
            resp = requests.put(url, data=bundle, headers={"Content-Type": "application/zip"}, timeout=DEPLOY_TIMEOUT)
        except requests.RequestException as exc:
            raise self._error(f"uploading the bundle to {where} failed: {type(exc).__name__}") from None
        if resp.status_code != 200:
            raise self._error(f"uploading the bundle to {where} failed: HTTP {resp.status_code} {resp.text[:300]}")
        return url

    def deploy(
        self, *, bundle_url: str, modules: list[dict[str, Any]], version_tag: str, message: str, release: bool
    ) -> AppVersion:
        """Create app version ``version_tag`` from an uploaded bundle; ``release=False`` leaves it unreleased."""
        variables = {
            "apiKey": self.api_key,
            "bundleUrl": bundle_url,
            "appModules": modules,
            "skipPublish": not release,
            "message": message,
            "versionTag": version_tag,
        }
        data = self.graphql(APP_DEPLOY, variables, timeout=DEPLOY_TIMEOUT)
        version = self._payload(data, "appDeploy", f"creating app version {version_tag}")["appVersion"]
        self.log.info("Created app version %s of app %s: %s", version_tag, self.api_key, version["location"])
        return AppVersion(version["versionTag"], version.get("message") or "", location=version["location"])

    def versions(self) -> list[AppVersion]:
        """The app's versions, newest first."""
        app = self._app(self.graphql(APP_VERSIONS, {"apiKey": self.api_key}))
        return [
            AppVersion(node["versionTag"], node.get("message") or "", node.get("status") or "")
            for node in app["appVersions"]["nodes"]
        ]

    def version(self, version_tag: str) -> AppVersion:
        """Version ``version_tag`` with its message and where the Partner Dashboard shows it; it must exist
        (the list of :meth:`versions` may be paginated on a long-lived app, this lookup is not)."""
        data = self.graphql(APP_VERSION_BY_TAG, {"apiKey": self.api_key, "versionTag": version_tag})
        found = self._app(data)["appVersion"]
        return AppVersion(found["versionTag"], found.get("message") or "", location=found["location"])


def _describe(error: dict[str, Any]) -> str:
    field = ".".join(str(f) for f in error.get("field") or [])
    return f"{field}: {error.get('message')}" if field and field != "base" else str(error.get("message"))
