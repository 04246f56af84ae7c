"""A recorded-contract stand-in for the Shopify Partners API that ``shopify app deploy`` uses.

``python -m varai_deploy.sandbox.shopify_fake --home H --host 127.0.0.1 --port P``

Shopify cannot run locally, so this server plays the two hosts an app deploy talks to, checks every
request against the real contract and answers in the real shapes. State lives under ``<home>/shopify/``.

The contract, recorded from Shopify CLI 3.x (``PartnersClient``; a full trace of a real deploy of an app
with a theme app extension is in https://github.com/Shopify/cli/issues/6069):

``POST https://partners.shopify.com/api/cli/graphql`` (cli-kit ``api/partners.ts``), JSON body
``{"query": ..., "variables": {...}}``, headers ``Content-Type: application/json`` and the access token as
``Authorization: Bearer <token>`` and ``X-Shopify-Access-Token: Bearer <token>`` (cli-kit
``private/node/api/headers.ts``; a ``shpat_`` token goes without ``Bearer``). The operations, from
``packages/app/src/cli/api/graphql/`` in https://github.com/Shopify/cli::

    query allAppExtensionRegistrations($apiKey: String!) {
      app(apiKey: $apiKey) { extensionRegistrations { id uuid title type } } }
    mutation ExtensionCreate($apiKey: String!, $type: ExtensionType!, $title: String!, $config: JSON!,
                             $context: String, $handle: String) {
      extensionCreate(input: {apiKey: $apiKey, type: $type, title: $title, config: $config,
                              context: $context, handle: $handle}) {
        extensionRegistration { id uuid type title draftVersion { config handle registrationId } }
        userErrors { field message } } }
    mutation GenerateSignedUploadUrl($apiKey: String!, $bundleFormat: Int!) {      # bundleFormat 1: zip
      appVersionGenerateSignedUploadUrl(input: {apiKey: $apiKey, bundleFormat: $bundleFormat}) {
        signedUploadUrl userErrors { field message } } }
    mutation AppDeploy($apiKey: String!, $bundleUrl: String, $appModules: [AppModuleSettings!],
                       $skipPublish: Boolean, $message: String, $versionTag: String, $commitReference: String) {
      appDeploy(input: {apiKey: $apiKey, bundleUrl: $bundleUrl, appModules: $appModules, skipPublish: $skipPublish,
                        message: $message, versionTag: $versionTag, commitReference: $commitReference}) {
        appVersion { uuid id message versionTag location
                     appModuleVersions { uuid registrationUuid validationErrors { message field } } }
        userErrors { message field category details } } }
    query AppVersionsQuery($apiKey: String!) {
      app(apiKey: $apiKey) { id organizationId title
        appVersions { nodes { createdAt distributionPercentage createdBy { displayName } message status versionTag }
                      pageInfo { totalResults } } } }
    query AppVersionByTag($apiKey: String!, $versionTag: String!) {
      app(apiKey: $apiKey) { appVersion(versionTag: $versionTag) { id uuid versionTag location message } } }

A theme module in ``appModules`` is ``{"uuid": <registration uuid>, "handle": ..., "context": "",
"config": "{\\"theme_extension\\":{\\"files\\":{}}}", "specificationIdentifier": "THEME_APP_EXTENSION"}``. The
bundle is a zip of ``<registration uuid>/<theme files>``: the CLI copies the extension's files without its
``*.toml`` (``bundleThemeExtension``), which only feeds the module's handle and the registration's title.
Theme files live in ``assets`` (.jpg .jpeg .json .js .css .png .svg .wasm), ``blocks`` and ``snippets``
(.liquid) and ``locales`` (.json), at most 10 MB in all and 500 kB of liquid (``specifications/theme.ts``).
The bundle goes by ``PUT`` to the signed URL (a V4-signed Google Cloud Storage URL,
``.../deployments/<app id>/<uuid>/bundle.zip?X-Goog-Algorithm=...&X-Goog-Signature=...``), with no token.

Answers: ``{"data": ...}``; GraphQL errors as ``{"errors": [{"message", "locations", "path", "extensions"}]}``
with graphql-ruby's wording (the Partners API is a Rails app; parsing, validation and execution against
:data:`SCHEMA` are in ``shopify_graphql``); userErrors in the payloads, a taken version
tag as ``{"field": ["version_tag"], "message": "has already been taken", "category": "", "details": []}``
(the CLI matches that text, ``services/deploy/upload.ts``). A missing or wrong token gets HTTP 401 (the CLI
reports "The Partners GraphQL API responded unsuccessfully with the HTTP status 401", Shopify/cli#3156);
its body is not published, so this server answers with the Admin API's documented 401 body
``{"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}``. A body that is
not ``application/json`` gets 400 (https://shopify.dev/docs/api/usage/response-codes). Upload errors are
Cloud Storage's XML ``<Error><Code>...</Code>``. Where the real wording is not public (an unknown api key, a
bundle that was never uploaded, a broken zip) the message is this server's, in the same shape.

Shopify is moving app deploys to the App Management API (``appVersionCreate`` on
``app.shopify.com/app_management/unstable/organizations/<org>/graphql.json``); the Partners API above is
the one with a public record of every request and answer. ``hooks/shopify.py`` is the only client.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import io
import json
import os
import re
import sys
import threading
import uuid as uuidlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

from varai_deploy.sandbox.serving import QuietHandler, bind_or_explain, serve_until_signalled
from varai_deploy.sandbox.shopify_graphql import FieldError, Refused, Schema, execute, prepare

GRAPHQL_PATH = "/api/cli/graphql"
CONFIG_NAME = "config.json"
STATE_NAME = "state.json"
THEME = "THEME_APP_EXTENSION"
UPLOAD_EXPIRES_SECONDS = 3600
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
UNAUTHORIZED = "[API] Invalid API key or access token (unrecognized login or wrong password)"
JSON_TYPE = "application/json; charset=utf-8"
XML_TYPE = "application/xml; charset=UTF-8"
_UPLOAD_PATH = re.compile(r"^/deployments/(?P<app>\d+)/(?P<uuid>[0-9a-f-]{36})/bundle\.zip$")
_VERSION_PAGE = re.compile(r"^/(?P<org>\d+)/apps/(?P<app>\d+)/versions/(?P<id>\d+)$")
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
#: Theme app extension files: folder -> allowed suffixes (Shopify CLI ``specifications/theme.ts``).
THEME_FILES = {
    "assets": (".jpg", ".jpeg", ".json", ".js", ".css", ".png", ".svg", ".wasm"),
    "blocks": (".liquid",),
    "locales": (".json",),
    "snippets": (".liquid",),
}

#: The part of the Partners CLI API an app deploy uses, field for field as the CLI's documents select it.
SCHEMA = Schema.from_sdl(
    """
    scalar JSON
    enum ExtensionType { THEME_APP_EXTENSION CHECKOUT_UI_EXTENSION WEB_PIXEL_EXTENSION }
    type Query { app(apiKey: String!): App }
    type Mutation {
      extensionCreate(input: ExtensionCreateInput!): ExtensionCreatePayload
      appVersionGenerateSignedUploadUrl(input: AppVersionGenerateSignedUploadUrlInput!):
        AppVersionGenerateSignedUploadUrlPayload
      appDeploy(input: AppDeployInput!): AppDeployPayload
    }
    input ExtensionCreateInput {
      apiKey: String! type: ExtensionType! title: String! config: JSON! context: String handle: String
    }
    input AppVersionGenerateSignedUploadUrlInput { apiKey: String! bundleFormat: Int! }
    input AppDeployInput {
      apiKey: String! bundleUrl: String appModules: [AppModuleSettings!] skipPublish: Boolean message: String
      versionTag: String commitReference: String
    }
    input AppModuleSettings {
      uuid: String handle: String! config: JSON! context: String specificationIdentifier: String
    }
    type App {
      id: ID! title: String! apiKey: String! organizationId: ID!
      extensionRegistrations: [ExtensionRegistration!]!
      appVersions: AppVersionConnection!
      appVersion(versionTag: String!): AppVersion
    }
    type ExtensionRegistration {
      id: ID! uuid: String! title: String! type: String! draftVersion: ExtensionDraftVersion
    }
    type ExtensionDraftVersion {
      config: JSON context: String handle: String registrationId: ID! lastUserInteractionAt: String
      validationErrors: [ValidationError!]!
    }
    type AppVersionConnection { nodes: [AppVersion!]! pageInfo: PageInfo! }
    type PageInfo { totalResults: Int! }
    type AppVersion {
      id: ID! uuid: String! versionTag: String message: String location: String! status: String!
      createdAt: String! distributionPercentage: Int! createdBy: Account appModuleVersions: [AppModuleVersion!]!
    }
    type Account { displayName: String }
    type AppModuleVersion {
      uuid: String! registrationUuid: String! registrationId: ID! registrationTitle: String! type: String!
      config: JSON validationErrors: [ValidationError!]!
    }
    type ValidationError { field: [String!]! message: String! }
    type UserError { field: [String!] message: String! }
    type AppDeployUserError { field: [String!] message: String! category: String! details: [JSON!]! }
    type ExtensionCreatePayload { extensionRegistration: ExtensionRegistration userErrors: [UserError!]! }
    type AppVersionGenerateSignedUploadUrlPayload { signedUploadUrl: String userErrors: [UserError!]! }
    type AppDeployPayload { appVersion: AppVersion userErrors: [AppDeployUserError!]! }
    """
)


@dataclass(frozen=True)
class Config:
    """Written by the sandbox component's ``prepare`` (0600): the app, and the secrets this server checks."""

    api_key: str
    app_id: str
    organization_id: str
    title: str
    access_token: str
    signing_key: str

    @classmethod
    def load(cls, directory: Path) -> Config:
        return cls(**json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8")))


@dataclass
class Fake:
    """The app's registrations and versions (``state.json``) and uploaded bundles, under ``directory``."""

    directory: Path
    config: Config
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- state --------------------------------------------------------------------------------
    def load(self) -> dict[str, Any]:
        try:
            return json.loads((self.directory / STATE_NAME).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"next_id": 1, "registrations": [], "versions": []}

    def save(self, state: dict[str, Any]) -> None:
        tmp = self.directory / f".{STATE_NAME}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.directory / STATE_NAME)

    def upload_file(self, upload_uuid: str) -> Path:
        return self.directory / "uploads" / upload_uuid / "bundle.zip"

    # -- signed upload URLs (Cloud Storage V4 style, HMAC with the sandbox's key) ---------------
    def _signature(self, path: str, date: str, expires: str) -> str:
        message = f"PUT\n{path}\n{date}\n{expires}".encode()
        return hmac.new(self.config.signing_key.encode(), message, hashlib.sha256).hexdigest()

    def signed_url(self, base: str) -> str:
        path = f"/deployments/{self.config.app_id}/{uuidlib.uuid4()}/bundle.zip"
        date, expires = dt.datetime.now(dt.UTC).strftime(_DATE_FORMAT), str(UPLOAD_EXPIRES_SECONDS)
        return (
            f"{base}{path}?X-Goog-Algorithm=GOOG4-HMAC-SHA256&X-Goog-Credential=sandbox%2Fauto%2Fstorage"
            f"&X-Goog-Date={date}&X-Goog-Expires={expires}&X-Goog-SignedHeaders=host"
            f"&X-Goog-Signature={self._signature(path, date, expires)}"
        )

    def refuse_signed(self, path: str, query: str) -> tuple[int, str, str] | None:
        """None for a URL this server signed that has not expired, else (HTTP status, Code, Details)."""
        params = {k: v[0] for k, v in parse_qs(query).items()}
        date, expires, signature = (params.get(k) for k in ("X-Goog-Date", "X-Goog-Expires", "X-Goog-Signature"))
        if not (date and expires and signature):
            return 403, "AccessDenied", "Anonymous caller does not have storage.objects.create access."
        if not hmac.compare_digest(signature, self._signature(path, date, expires)):
            return 403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature."
        try:
            deadline = dt.datetime.strptime(date, _DATE_FORMAT).replace(tzinfo=dt.UTC)
            deadline += dt.timedelta(seconds=int(expires))
        except ValueError:
            return 400, "InvalidArgument", "X-Goog-Date or X-Goog-Expires is malformed."
        if dt.datetime.now(dt.UTC) > deadline:
            return 400, "ExpiredToken", f"The provided token has expired. Request signature expired at: {deadline}"
        return None

    # -- GraphQL ------------------------------------------------------------------------------
    def graphql(self, body: Any, base: str) -> dict[str, Any]:
        try:
            op, variables = prepare(SCHEMA, body)
        except Refused as exc:
            return {"errors": exc.errors}
        with self.lock:
            state = self.load()
            if op.kind == "query":
                root = {"app": lambda args: self._app(state) if args["apiKey"] == self.config.api_key else None}
            else:
                root = {
                    "extensionCreate": lambda args: self._extension_create(state, args["input"]),
                    "appVersionGenerateSignedUploadUrl": lambda args: self._signed_upload(args["input"], base),
                    "appDeploy": lambda args: self._app_deploy(state, args["input"], base),
                }
            answer = execute(SCHEMA, op, variables, root)
            if op.kind == "mutation":
                self.save(state)
        return answer

    def _app(self, state: dict) -> dict[str, Any]:
        versions = [_public(v) for v in reversed(state["versions"])]

        def by_tag(args: dict) -> dict:
            for version in versions:
                if version["versionTag"] == args["versionTag"]:
                    return version
            raise FieldError(f"Couldn't find AppVersion with versionTag {args['versionTag']!r}")

        return {
            "id": self.config.app_id,
            "title": self.config.title,
            "apiKey": self.config.api_key,
            "organizationId": self.config.organization_id,
            "extensionRegistrations": state["registrations"],
            "appVersions": {"nodes": versions, "pageInfo": {"totalResults": len(versions)}},
            "appVersion": by_tag,
        }

    def _unknown_app(self, api_key: str) -> list[dict]:
        if api_key == self.config.api_key:
            return []
        return [{"field": ["api_key"], "message": "App not found for this API key", "category": "", "details": []}]

    def _extension_create(self, state: dict, data: dict) -> dict:
        errors = self._unknown_app(data["apiKey"])
        handle = data.get("handle") or re.sub(r"[^a-z0-9]+", "-", data["title"].lower()).strip("-")
        if any(r["draftVersion"]["handle"] == handle for r in state["registrations"]):
            errors.append({"field": ["handle"], "message": "has already been taken"})
        if not data["title"].strip():
            errors.append({"field": ["title"], "message": "can't be blank"})
        if errors:
            return {"extensionRegistration": None, "userErrors": [_user_error(e) for e in errors]}
        reg_id = _next_id(state)
        registration = {
            "id": reg_id,
            "uuid": str(uuidlib.uuid4()),
            "title": data["title"],
            "type": data["type"],
            "draftVersion": {
                "config": data["config"],
                "context": data.get("context") or "",
                "handle": handle,
                "registrationId": reg_id,
                "lastUserInteractionAt": _now(),
                "validationErrors": [],
            },
        }
        state["registrations"].append(registration)
        return {"extensionRegistration": registration, "userErrors": []}

    def _signed_upload(self, data: dict, base: str) -> dict:
        errors = self._unknown_app(data["apiKey"])
        if not errors and data["bundleFormat"] != 1:
            errors = [{"field": ["bundle_format"], "message": "only zip bundles (bundleFormat 1) are accepted here"}]
        if errors:
            return {"signedUploadUrl": None, "userErrors": [_user_error(e) for e in errors]}
        return {"signedUploadUrl": self.signed_url(base), "userErrors": []}

    def _app_deploy(self, state: dict, data: dict, base: str) -> dict:
        errors = self._unknown_app(data["apiKey"])
        if errors:
            return {"appVersion": None, "userErrors": errors}
        tag = data.get("versionTag")
        if tag and any(v["versionTag"] == tag for v in state["versions"]):
            errors.append(
                {"field": ["version_tag"], "message": "has already been taken", "category": "", "details": []}
            )
        bundle: dict[str, bytes] = {}
        if data.get("bundleUrl"):
            bundle, problem = self._bundle(data["bundleUrl"])
            if problem:
                errors.append(_invalid(["bundle_url"], problem))
        modules = data.get("appModules") or []
        registrations = {r["uuid"]: r for r in state["registrations"]}
        for index, module in enumerate(modules):
            registration = registrations.get(module.get("uuid") or "")
            if registration is None:
                errors.append(_invalid(["app_modules", str(index), "uuid"], "Extension registration not found"))
                continue
            spec = module.get("specificationIdentifier") or registration["type"]
            if spec != registration["type"]:
                errors.append(_invalid(["app_modules", str(index)], f"{spec} is not {registration['type']}"))
            elif spec == THEME:
                errors += _theme_errors(module, registration, bundle)
        strays = sorted({name.split("/", 1)[0] for name in bundle} - {m.get("uuid") for m in modules})
        if strays:
            errors.append(_invalid(["bundle_url"], f"the bundle holds files of no deployed app module: {strays}"))
        if errors:
            return {"appVersion": None, "userErrors": errors}
        version_id, release = _next_id(state), not data.get("skipPublish")
        if release:
            for old in state["versions"]:
                old.update(status="inactive", distributionPercentage=0)
        version = {
            "id": version_id,
            "uuid": str(uuidlib.uuid4()),
            "versionTag": tag or f"{re.sub(r'[^a-z0-9]+', '-', self.config.title.lower())}-{version_id}",
            "message": data.get("message"),
            "location": f"{base}/{self.config.organization_id}/apps/{self.config.app_id}/versions/{version_id}",
            "status": "active" if release else "inactive",
            "createdAt": _now(),
            "distributionPercentage": 100 if release else 0,
            "createdBy": {"displayName": "VarAI release (sandbox)"},
            "appModuleVersions": [
                {
                    "uuid": str(uuidlib.uuid4()),
                    "registrationUuid": m["uuid"],
                    "registrationId": registrations[m["uuid"]]["id"],
                    "registrationTitle": registrations[m["uuid"]]["title"],
                    "type": registrations[m["uuid"]]["type"],
                    "config": m["config"],
                    "validationErrors": [],
                }
                for m in modules
            ],
            #: What Shopify would now serve, for tests and curious operators: sha256 of every bundled file.
            "_bundle_sha256": {name: hashlib.sha256(content).hexdigest() for name, content in bundle.items()},
        }
        state["versions"].append(version)
        return {"appVersion": _public(version), "userErrors": []}

    def _bundle(self, url: str) -> tuple[dict[str, bytes], str | None]:
        parts = urlsplit(url)
        match = _UPLOAD_PATH.match(parts.path)
        if not match or match["app"] != self.config.app_id or self.refuse_signed(parts.path, parts.query):
            return {}, "is not a signed upload URL this API generated for the app"
        path = self.upload_file(match["uuid"])
        if not path.is_file():
            return {}, "nothing was uploaded to the signed upload URL: PUT the bundle there first"
        try:
            with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
                files = {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}
        except (zipfile.BadZipFile, OSError) as exc:
            return {}, f"the bundle is not a valid zip archive ({exc})"
        unsafe = [n for n in files if n.startswith("/") or "\\" in n or ".." in PurePosixPath(n).parts]
        if unsafe:
            return {}, f"the bundle holds unsafe paths: {unsafe}"
        return files, None


def _theme_errors(module: dict, registration: dict, bundle: dict[str, bytes]) -> list[dict]:
    """Shopify's rules for a theme app extension's files (``specifications/theme.ts``) and config."""
    details = [{"extension_id": int(registration["id"]), "extension_title": registration["title"]}]
    errors = []
    try:
        config = json.loads(module["config"]) if isinstance(module["config"], str) else module["config"]
    except ValueError:
        config = None
    if not isinstance(config, dict) or "theme_extension" not in config:
        errors.append(_invalid(["config"], "must be a JSON object with a 'theme_extension' key", details))
    prefix = f"{registration['uuid']}/"
    files = {name[len(prefix) :]: data for name, data in bundle.items() if name.startswith(prefix)}
    if not files:
        errors.append(_invalid(["bundle_url"], f"the bundle holds no files under {prefix}", details))
    for name in sorted(files):
        folder, _, rest = name.partition("/")
        if folder not in THEME_FILES or not rest or "/" in rest:
            message = (
                f"Your theme app extension includes files in an unsupported directory, {name}. Make sure all theme "
                f"app extension files are in the supported directories: {', '.join(THEME_FILES)}"
            )
            errors.append(_invalid(["bundle_url"], message, details))
        elif not rest.endswith(THEME_FILES[folder]):
            errors.append(_invalid(["bundle_url"], f"Invalid filename in your theme app extension: {name}", details))
    if sum(map(len, files.values())) > 10 * 1024 * 1024:
        errors.append(
            _invalid(["bundle_url"], "Your theme app extension exceeds the file size limit (10 MB).", details)
        )
    if sum(len(d) for n, d in files.items() if n.split("/")[0] in ("blocks", "snippets")) > 500 * 1024:
        message = "Your theme app extension exceeds the total liquid file size limit (500 kB)."
        errors.append(_invalid(["bundle_url"], message, details))
    return errors


def _invalid(field_path: list[str], message: str, details: list | None = None) -> dict:
    return {"field": field_path, "message": message, "category": "invalid", "details": details or []}


def _user_error(error: dict) -> dict:
    return {"field": error["field"], "message": error["message"]}


def _public(version: dict) -> dict:
    return {k: v for k, v in version.items() if not k.startswith("_")}


def _next_id(state: dict) -> str:
    state["next_id"] += 1
    return str(state["next_id"] - 1)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _gcs_error(code: str, detail: str) -> bytes:
    return (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{code}</Message>"
        f"<Details>{detail}</Details></Error>"
    ).encode()


# -- HTTP -----------------------------------------------------------------------------------------
def make_handler(fake: Fake) -> type[QuietHandler]:
    class Handler(QuietHandler):
        server_version = "shopify-partners-sandbox"

        def _base(self) -> str:
            host, port = self.server.server_address[:2]
            return f"http://{self.headers.get('Host') or f'{host}:{port}'}"

        def _authorised(self) -> bool:
            """The CLI sends ``Bearer <token>`` in both headers; a ``shpat_`` token may come bare."""
            token = fake.config.access_token
            accepted = [f"Bearer {token}", *([token] if token.startswith("shpat") else [])]
            given = [self.headers.get(name) for name in ("Authorization", "X-Shopify-Access-Token")]
            given = [value for value in given if value is not None]
            return bool(given) and all(
                any(hmac.compare_digest(value.encode(), ok.encode()) for ok in accepted) for value in given
            )

        def _json(self, status: int, payload: Any) -> None:
            self.send_payload(status, json.dumps(payload).encode(), [], JSON_TYPE)

        def do_POST(self) -> None:
            body = self.read_body()
            if urlsplit(self.path).path != GRAPHQL_PATH:
                self._json(404, {"errors": [{"message": "Not Found"}]})
            elif not self._authorised():
                self._json(401, {"errors": UNAUTHORIZED})
            elif self.headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
                self._json(400, {"errors": "Content-Type must be application/json"})
            else:
                try:
                    payload = json.loads(body or b"null")
                except ValueError as exc:
                    self._json(400, {"errors": f"Invalid JSON in the request body: {exc}"})
                    return
                try:
                    answer = fake.graphql(payload, self._base())
                except Exception as exc:  # a bug here must answer like a server error, not drop the connection
                    self.log_error("GraphQL request failed: %r", exc)
                    self._json(500, {"errors": [{"message": "Internal error"}]})
                    return
                self._json(200, answer)

        def do_PUT(self) -> None:
            parts = urlsplit(self.path)
            match = _UPLOAD_PATH.match(parts.path)
            refused = fake.refuse_signed(parts.path, parts.query) if match else None
            if not match or match["app"] != fake.config.app_id:
                refused = (404, "NoSuchBucket", "The specified bucket does not exist.")
            elif self.headers.get("Authorization") or self.headers.get("X-Shopify-Access-Token"):
                # A signed URL carries its own authority: a Partners token must never travel to storage.
                refused = (400, "InvalidArgument", "A signed URL request must not carry other credentials.")
            elif int(self.headers.get("Content-Length") or 0) > MAX_UPLOAD_BYTES:
                refused = (400, "EntityTooLarge", "Your proposed upload is larger than the maximum object size.")
            if refused:
                self.read_body()
                self.send_payload(refused[0], _gcs_error(*refused[1:]), [], XML_TYPE)
                return
            data = self.read_body()
            target = fake.upload_file(match["uuid"])  # type: ignore[index]
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
            etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
            self.send_payload(200, b"", [("ETag", f'"{etag}"')], "text/html; charset=UTF-8")

        def do_GET(self) -> None:
            """The version pages ``location`` points at (the Partner Dashboard's, as JSON here)."""
            match = _VERSION_PAGE.match(urlsplit(self.path).path)
            if match and (match["org"], match["app"]) == (fake.config.organization_id, fake.config.app_id):
                with fake.lock:
                    versions = [v for v in fake.load()["versions"] if v["id"] == match["id"]]
                if versions:
                    self._json(200, _public(versions[0]))
                    return
            self._json(404, {"errors": [{"message": "Not Found"}]})

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m varai_deploy.sandbox.shopify_fake")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)

    directory = args.home / "shopify"
    try:
        config = Config.load(directory)
    except (OSError, ValueError, TypeError) as exc:
        print(
            f"shopify: cannot read {directory / CONFIG_NAME} ({exc}); the sandbox's prepare writes it", file=sys.stderr
        )
        return 2
    server = bind_or_explain(args.host, args.port, make_handler(Fake(directory, config)), "shopify")
    if server is None:
        return 2
    print(f"shopify: Partners API stand-in for app {config.app_id} on {args.host}:{args.port}", flush=True)
    return serve_until_signalled(server, "shopify")


if __name__ == "__main__":
    sys.exit(main())
