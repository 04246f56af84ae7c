"""A recorded-contract stand-in for the Magento (Adobe Commerce) Marketplace EQP API v1.

``python -m varai_deploy.sandbox.marketplace_fake --home H --host 127.0.0.1 --port 18064``

The Marketplace cannot run locally, so this fake answers the part of the EQP API the Magento channel
uses, as Adobe documents it (developer.adobe.com/commerce/marketplace/guides/eqp/v1: auth, files,
packages, filtering, handling-errors), and refuses anything else the way the real API does:

- ``POST /rest/v1/app/session/token``: HTTP Basic auth with the application ID and secret, JSON body
  ``{"grant_type": "session", "expires_in": N?}`` -> ``{"mage_id", "ust", "expires_in"}``.
- every other call: ``Authorization: Bearer <ust>``; JSON requests and responses, except
- ``POST /rest/v1/files/uploads``: ``multipart/form-data``, every part ``name="file[]"`` with a filename
  -> a list of ``{filename, content_type, size, file_upload_id}`` in request order;
  ``GET /rest/v1/files/uploads/:id`` -> the record with ``malware_status`` (``in-progress`` on the
  first look, ``pass`` after) and ``file_hash`` (md5, set once it passed).
- ``POST /rest/v1/products/packages``: a JSON array (a batch, even of one). HTTP 200 with one
  ``{code, message, ...}`` per item in order; a failed item has a non-200 ``code``. The sku and
  version come from the artifact's ``composer.json``; a new version of an existing package must name
  its ``sku``; a technical ``submit`` needs every field Adobe lists as required for it.
- ``GET /rest/v1/products/packages[/:submission_id]``: ``offset``/``limit`` (default 20, -1 for all)
  with ``X-Total-Count``; ``sku``, ``version``, ``name``... filter by sub-string, ``type``/``platform``
  exactly, as documented; ``sort`` is accepted (answers come in submission order); unknown parameters
  are refused.

A request that fails as a whole gets its HTTP 4xx with ``{"code": ..., "message": ...}``. Adobe
publishes two item codes (1208 insufficient information, 1210 invalid SKU); the others below are
this fake's own, in the same range. Uploads and packages are kept under ``<home>/marketplace/`` so
tests can see what was submitted; the key pair it accepts is read from ``api_keys.json`` there (0600).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import io
import json
import re
import secrets
import sys
import threading
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from varai_deploy.sandbox.serving import QuietHandler, bind_or_explain, serve_until_signalled

API_KEYS_FILE = "api_keys.json"
STATE_FILE = "state.json"
MAX_SESSION_SECONDS = 7200
MAGE_ID = "MAG000000001"

# Item codes in a batch response. 1208 and 1210 (with these messages) are Adobe's; the rest are ours.
INSUFFICIENT = 1208
INVALID_SKU = 1210
INVALID_FIELD = 1201
UNKNOWN_SKU = 1211
SKU_REQUIRED = 1212
DUPLICATE_VERSION = 1213
UNUSABLE_FILE = 1214
ARTIFACT_MISMATCH = 1215

TECHNICAL_REQUIRED = ("type", "platform", "version_compatibility", "release_notes", "version", "artifact")
NEW_PACKAGE_REQUIRED = ("type", "platform", "name", "version", "long_description")
ACTIONS = {"draft", "submit"}
TYPES = {"extension", "theme", "shared_package"}
EDITIONS = {"CE", "EE", "ECE"}
LICENSES = {"afl", "apache", "bsd", "gnu-gpl", "gnu-lgpl", "mit", "mozilla", "osl", "custom"}
ZIP_TYPES = {"application/zip", "application/x-zip-compressed", "application/octet-stream"}
SUBSTRING_FILTERS = {"sku", "version", "name", "submission_id", "item_id", "long_description", "release_notes"}
EXACT_FILTERS = {"type", "platform", "license_type"}
VERSION = re.compile(r"\d+\.\d+\.\d+")
SKU = re.compile(r"[a-z0-9][a-z0-9_.-]*/[a-z0-9][a-z0-9_.-]*")
CANCELED = {"canceled_by_developer", "canceled_by_admin"}


class ApiError(Exception):
    """The whole request fails: HTTP ``status`` with the documented ``{code, message}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ItemError(Exception):
    """One batch item fails: ``{code, message}`` in its place of the HTTP 200 batch response."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


class Marketplace:
    """The developer account's uploads and packages, persisted under ``root``; sessions in memory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        keys = json.loads((root / API_KEYS_FILE).read_text(encoding="utf-8"))
        self.app_id, self.app_secret = keys["application_id"], keys["application_secret"]
        self.files_dir = root / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.sessions: dict[str, float] = {}
        try:
            self.state = json.loads((root / STATE_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.state = {"uploads": {}, "packages": {}}

    def _save(self) -> None:
        tmp = self.root / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(self.state, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(self.root / STATE_FILE)

    # -- auth -----------------------------------------------------------------------------------
    def new_session(self, authorization: str, body: Any) -> dict[str, Any]:
        scheme, _, encoded = authorization.partition(" ")
        try:
            app_id, _, app_secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            app_id = app_secret = ""
        if scheme.lower() != "basic" or not (
            hmac.compare_digest(app_id, self.app_id) and hmac.compare_digest(app_secret, self.app_secret)
        ):
            raise ApiError(401, "Invalid application ID or secret: send HTTP Basic auth with your API access key")
        if not isinstance(body, dict) or body.get("grant_type") != "session":
            raise ApiError(400, "grant_type must be 'session'")
        expires_in = body.get("expires_in", MAX_SESSION_SECONDS)
        if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
            raise ApiError(400, "expires_in must be a positive number of seconds")
        expires_in = min(expires_in, MAX_SESSION_SECONDS)
        ust = secrets.token_urlsafe(24) + "." + secrets.token_urlsafe(9)
        with self.lock:
            self.sessions[ust] = time.monotonic() + expires_in
        return {"mage_id": MAGE_ID, "ust": ust, "expires_in": expires_in}

    def check_bearer(self, authorization: str) -> None:
        scheme, _, token = authorization.partition(" ")
        with self.lock:
            expiry = self.sessions.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None or expiry < time.monotonic():
            raise ApiError(401, "Invalid or expired session token: get one from /rest/v1/app/session/token")

    # -- files ----------------------------------------------------------------------------------
    def upload(self, parts: list[tuple[str, str, bytes]]) -> list[dict[str, Any]]:
        records = []
        with self.lock:
            for filename, content_type, data in parts:
                file_upload_id = f"{secrets.token_hex(7)}.{secrets.randbelow(10**8):08d}.{len(self.state['uploads'])}"
                path = self.files_dir / file_upload_id
                path.write_bytes(data)
                self.state["uploads"][file_upload_id] = {
                    "file_upload_id": file_upload_id,
                    "filename": filename,
                    "content_type": content_type,
                    "size": len(data),
                    "md5": hashlib.md5(data).hexdigest(),  # noqa: S324 - the API reports md5, not for security
                    "looked_at": False,
                    "submission_ids": [],
                }
                records.append(
                    {
                        "filename": filename,
                        "content_type": content_type,
                        "size": len(data),
                        "file_upload_id": file_upload_id,
                    }
                )
            self._save()
        return records

    def file_record(self, file_upload_id: str) -> dict[str, Any]:
        with self.lock:
            upload = self.state["uploads"].get(file_upload_id)
            if upload is None:
                raise ApiError(404, f"No file upload with id {file_upload_id!r}")
            # The malware scan takes a moment for real: the first look finds it still running.
            record = self._public_file(upload)
            if not upload["looked_at"]:
                upload["looked_at"] = True
                self._save()
        return record

    @staticmethod
    def _public_file(upload: dict[str, Any]) -> dict[str, Any]:
        record = {k: upload[k] for k in ("file_upload_id", "filename", "content_type", "size", "submission_ids")}
        record["malware_status"] = "pass" if upload["looked_at"] else "in-progress"
        if upload["looked_at"]:
            record["file_hash"] = upload["md5"]
        return record

    def _usable_file(self, reference: Any, field: str, types: set[str]) -> dict[str, Any]:
        if not isinstance(reference, dict) or not isinstance(reference.get("file_upload_id"), str):
            raise ItemError(INVALID_FIELD, f"{field} must be an object with a file_upload_id")
        upload = self.state["uploads"].get(reference["file_upload_id"])
        if upload is None:
            raise ItemError(UNUSABLE_FILE, f"{field}: unknown file_upload_id {reference['file_upload_id']!r}")
        if not upload["looked_at"]:
            raise ItemError(UNUSABLE_FILE, f"{field}: the malware check of {upload['filename']} has not passed yet")
        if upload["content_type"] not in types:
            raise ItemError(
                UNUSABLE_FILE, f"{field}: {upload['filename']} is {upload['content_type']}, not a usable type"
            )
        return upload

    # -- packages -------------------------------------------------------------------------------
    def submit(self, items: Any) -> list[dict[str, Any]]:
        if not isinstance(items, list) or not items:
            raise ApiError(400, "The request body must be a JSON array of packages (a batch, even of one)")
        results = []
        with self.lock:
            for item in items:
                try:
                    results.append(self._create(item))
                except ItemError as exc:
                    results.append({"code": exc.code, "message": str(exc)})
            self._save()
        return results

    def _create(self, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise ItemError(INVALID_FIELD, "Each batch item must be a JSON object")
        action = item.get("action", {})
        if not isinstance(action, dict) or set(action) - {"technical", "marketing"}:
            raise ItemError(INVALID_FIELD, "action takes 'technical' and 'marketing' on a new package")
        technical, marketing = action.get("technical", "draft"), action.get("marketing", "draft")
        if technical not in ACTIONS or marketing not in ACTIONS:
            raise ItemError(INVALID_FIELD, "action.technical and action.marketing must be 'draft' or 'submit'")
        if item.get("type") not in TYPES:
            raise ItemError(INVALID_FIELD, f"type must be one of {sorted(TYPES)}")
        if item.get("platform") != "M2":
            raise ItemError(INVALID_FIELD, "platform must be 'M2'")
        if not isinstance(item.get("version"), str) or not VERSION.fullmatch(item["version"]):
            raise ItemError(INVALID_FIELD, "version must be major.minor.patch, e.g. 2.5.3")
        if "license_type" in item and item["license_type"] not in LICENSES:
            raise ItemError(INVALID_FIELD, f"license_type must be one of {sorted(LICENSES)}")
        if "version_compatibility" in item:
            _check_compatibility(item["version_compatibility"])
        if technical == "submit":
            missing = [f for f in TECHNICAL_REQUIRED if f not in item]
            if (
                not isinstance(item.get("documentation_artifacts"), dict)
                or "user" not in item["documentation_artifacts"]
            ):
                missing.append("documentation_artifacts.user")
            if missing:
                raise ItemError(
                    INSUFFICIENT, f"Insufficient information for Technical Submission: missing {', '.join(missing)}"
                )
        artifact = self._usable_file(item["artifact"], "artifact", ZIP_TYPES) if "artifact" in item else None
        documentation = {}
        if not isinstance(item.get("documentation_artifacts", {}), dict):
            raise ItemError(INVALID_FIELD, "documentation_artifacts must be an object")
        for kind, reference in item.get("documentation_artifacts", {}).items():
            if kind not in ("user", "installation", "reference"):
                raise ItemError(INVALID_FIELD, f"documentation_artifacts.{kind} is not a documentation kind")
            documentation[kind] = self._usable_file(reference, f"documentation_artifacts.{kind}", {"application/pdf"})
        sku = self._sku(item, artifact)
        for package in self.state["packages"].values():
            same = package["sku"] == sku and package["version"] == item["version"]
            if same and package["eqp_status"]["overall"] not in CANCELED:
                raise ItemError(
                    DUPLICATE_VERSION,
                    f"Version {item['version']} of {sku} was already submitted (submission "
                    f"{package['submission_id']}); submit a new version",
                )
        return self._store(item, sku, technical, marketing, artifact, documentation)

    def _sku(self, item: dict[str, Any], artifact: dict[str, Any] | None) -> str:
        """The sku is the artifact's composer.json name; a new version of a known sku must name it."""
        if "sku" in item and (not isinstance(item["sku"], str) or not SKU.fullmatch(item["sku"])):
            raise ItemError(INVALID_SKU, "Invalid SKU given. SKU must be of the form 'vendor_name/package_name'")
        if artifact is None:  # the real API takes drafts without one; the sku comes from it here, so this fake does not
            raise ItemError(INSUFFICIENT, "This sandbox Marketplace needs the artifact on every new package")
        composer = _composer_json(self.files_dir / artifact["file_upload_id"])
        if composer.get("version") != item["version"]:
            raise ItemError(
                ARTIFACT_MISMATCH,
                f"version {item['version']} differs from the artifact's composer.json "
                f"version {composer.get('version')}",
            )
        sku = composer["name"]
        known = any(p["sku"] == sku for p in self.state["packages"].values())
        if "sku" in item:
            if item["sku"] != sku:
                raise ItemError(ARTIFACT_MISMATCH, f"sku {item['sku']} differs from the artifact's package {sku}")
            if not known:
                raise ItemError(UNKNOWN_SKU, f"sku {sku} has no previous version: leave sku out for a new package")
        elif known:
            raise ItemError(SKU_REQUIRED, f"A package {sku} exists: give its sku to submit a new version")
        else:
            missing = [f for f in NEW_PACKAGE_REQUIRED if not item.get(f)]
            if missing:
                raise ItemError(INSUFFICIENT, f"A new package needs {', '.join(missing)}")
        return sku

    def _store(
        self,
        item: dict[str, Any],
        sku: str,
        technical: str,
        marketing: str,
        artifact: dict[str, Any] | None,
        documentation: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        submission_id = secrets.token_hex(5)
        now = _now()
        submitted = technical == "submit" or marketing == "submit"
        eqp_status = {
            "overall": "in_progress" if submitted else "draft",
            "technical": "in_automation" if technical == "submit" else "draft",
            "marketing": "awaiting_marketing_review" if marketing == "submit" else "draft",
        }
        for upload in [artifact, *documentation.values()]:
            if upload is not None:
                upload["submission_ids"].append(submission_id)
        kept = {
            k: item[k]
            for k in ("item_id", "type", "platform", "name", "long_description", "release_notes", "license_type")
            if k in item
        }
        self.state["packages"][submission_id] = {
            **kept,
            "submission_id": submission_id,
            "sku": sku,
            "version": item["version"],
            "short_description": "",
            "version_compatibility": item.get("version_compatibility", []),
            "artifact_id": artifact["file_upload_id"] if artifact else None,
            "documentation_ids": {kind: upload["file_upload_id"] for kind, upload in documentation.items()},
            "eqp_status": eqp_status,
            "created_at": now,
            "modified_at": now,
        }
        result = {"code": 200, "message": "Success", "submission_id": submission_id, "eqp_status": eqp_status}
        if "item_id" in item:
            result["item_id"] = item["item_id"]
        return {**result, "created_at": now, "modified_at": now}

    def package(self, submission_id: str) -> dict[str, Any]:
        with self.lock:
            package = self.state["packages"].get(submission_id)
            if package is None:
                raise ApiError(404, f"No package submission {submission_id!r}")
            return self._public_package(package)

    def packages(self, query: dict[str, list[str]]) -> tuple[list[dict[str, Any]], int]:
        unknown = set(query) - SUBSTRING_FILTERS - EXACT_FILTERS - {"offset", "limit", "sort"}
        if unknown:
            raise ApiError(400, f"Unknown filter {', '.join(sorted(unknown))}")
        try:
            offset = int(query.get("offset", ["0"])[-1])
            limit = int(query.get("limit", ["20"])[-1])
        except ValueError:
            raise ApiError(400, "offset and limit must be integers") from None
        if offset < 0 or limit == 0 or limit < -1:
            raise ApiError(400, "offset must be >= 0 and limit positive, or -1 for all")
        with self.lock:
            found = [
                self._public_package(p)
                for p in sorted(self.state["packages"].values(), key=lambda p: p["created_at"])
                if all(query[f][-1] in str(p.get(f, "")) for f in SUBSTRING_FILTERS & set(query))
                and all(query[f][-1] == str(p.get(f, "")) for f in EXACT_FILTERS & set(query))
            ]
        page = found[offset:] if limit == -1 else found[offset : offset + limit]
        return page, len(found)

    def _public_package(self, package: dict[str, Any]) -> dict[str, Any]:
        uploads = self.state["uploads"]
        public = {k: v for k, v in package.items() if k not in ("artifact_id", "documentation_ids")}
        if package["artifact_id"]:
            public["artifact"] = self._artifact_fields(uploads[package["artifact_id"]])
        public["documentation_artifacts"] = {
            kind: self._artifact_fields(uploads[upload_id]) for kind, upload_id in package["documentation_ids"].items()
        }
        return public

    @staticmethod
    def _artifact_fields(upload: dict[str, Any]) -> dict[str, Any]:
        fields = {k: upload[k] for k in ("file_upload_id", "filename", "content_type", "size")}
        return {**fields, "malware_status": "pass", "file_hash": upload["md5"]}


def _check_compatibility(value: Any) -> None:
    if not isinstance(value, list) or not value:
        raise ItemError(INVALID_FIELD, "version_compatibility must be a non-empty array")
    for entry in value:
        versions = entry.get("versions") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or entry.get("edition") not in EDITIONS:
            raise ItemError(INVALID_FIELD, f"version_compatibility[].edition must be one of {sorted(EDITIONS)}")
        if not isinstance(versions, list) or not versions or not all(isinstance(v, str) for v in versions):
            raise ItemError(INVALID_FIELD, "version_compatibility[].versions must list Magento versions, e.g. ['2.4']")


def _composer_json(path: Path) -> dict[str, Any]:
    """The Magento 2 package's composer.json, at the root of its zip, as the EQP reads it."""
    try:
        with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
            composer = json.loads(archive.read("composer.json"))
    except (zipfile.BadZipFile, KeyError, ValueError):
        raise ItemError(ARTIFACT_MISMATCH, "The artifact is not a zip with a valid composer.json at its root") from None
    if not isinstance(composer, dict) or not isinstance(composer.get("name"), str):
        raise ItemError(ARTIFACT_MISMATCH, "The artifact's composer.json has no package name")
    return composer


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str, bytes]]:
    """``(filename, content_type, data)`` of every ``file[]`` part; anything else is refused."""
    kind, _, params = content_type.partition(";")
    match = re.search(r'boundary="?([^";]+)"?', params)
    if kind.strip().lower() != "multipart/form-data" or not match:
        raise ApiError(400, "File uploads must be multipart/form-data with a boundary in the Content-Type header")
    delimiter = b"--" + match.group(1).encode()
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise ApiError(400, "Malformed multipart body: no closing boundary")
    parts = []
    for chunk in chunks[1:-1]:
        head, sep, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep or not data.endswith(b"\r\n"):
            raise ApiError(400, "Malformed multipart part")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if not disposition.startswith("form-data") or not name or name.group(1) != "file[]":
            raise ApiError(400, 'Every part must be Content-Disposition: form-data; name="file[]"')
        if not filename or not filename.group(1):
            raise ApiError(400, "Every part must carry the file's original filename")
        parts.append((filename.group(1), headers.get("content-type", "application/octet-stream"), data[:-2]))
    if not parts:
        raise ApiError(400, "No file[] part in the upload")
    return parts


def make_handler(marketplace: Marketplace) -> type[QuietHandler]:
    files_item = re.compile(r"/rest/v1/files/uploads/([^/]+)")
    package_item = re.compile(r"/rest/v1/products/packages/([^/]+)")

    class Handler(QuietHandler):
        server_version = "varai-sandbox-marketplace"

        def _dispatch(self) -> None:
            url = urlsplit(self.path)
            path = url.path.rstrip("/") or "/"
            try:
                body = self.read_body()
                status, payload, headers = self._route(path, parse_qs(url.query, keep_blank_values=True), body)
            except ApiError as exc:
                status, payload, headers = exc.status, {"code": exc.status, "message": str(exc)}, []
            self.send_json(status, payload, headers)

        def _route(self, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any, list]:
            auth = self.headers.get("Authorization", "")
            if path == "/rest/v1/app/session/token" and self.command == "POST":
                return 200, marketplace.new_session(auth, self._json(body)), []
            if not path.startswith("/rest/v1/") or not (
                path in ("/rest/v1/files/uploads", "/rest/v1/products/packages")
                or files_item.fullmatch(path)
                or package_item.fullmatch(path)
            ):
                raise ApiError(404, f"No such resource: {path}")
            marketplace.check_bearer(auth)
            if path == "/rest/v1/files/uploads" and self.command == "POST":
                return 200, marketplace.upload(parse_multipart(self.headers.get("Content-Type", ""), body)), []
            if (match := files_item.fullmatch(path)) and self.command == "GET":
                return 200, marketplace.file_record(match.group(1)), []
            if path == "/rest/v1/products/packages" and self.command == "POST":
                return 200, marketplace.submit(self._json(body)), []
            if path == "/rest/v1/products/packages" and self.command == "GET":
                page, total = marketplace.packages(query)
                return 200, page, [("X-Total-Count", str(total))]
            if (match := package_item.fullmatch(path)) and self.command == "GET":
                return 200, marketplace.package(match.group(1)), []
            raise ApiError(405, f"{self.command} is not allowed on {path}")

        def _json(self, body: bytes) -> Any:
            if self.headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
                raise ApiError(415, "Requests must be JSON: Content-Type: application/json")
            try:
                return json.loads(body)
            except ValueError:
                raise ApiError(400, "The request body is not valid JSON") from None

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m varai_deploy.sandbox.marketplace_fake")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)

    try:
        marketplace = Marketplace(args.home / "marketplace")
    except (OSError, ValueError, KeyError) as exc:
        print(
            f"marketplace: no usable {API_KEYS_FILE} under {args.home}/marketplace ({exc!r}): "
            "start it with `python -m varai_deploy.sandbox up`, which writes it",
            file=sys.stderr,
            flush=True,
        )
        return 2
    server = bind_or_explain(args.host, args.port, make_handler(marketplace), "marketplace")
    if server is None:
        return 2
    print(f"marketplace: serving the EQP API on {args.host}:{args.port}, data in {marketplace.root}", flush=True)
    return serve_until_signalled(server, "marketplace")


if __name__ == "__main__":
    sys.exit(main())
