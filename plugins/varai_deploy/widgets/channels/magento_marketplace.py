"""The Magento module on the Adobe Commerce Marketplace: one EQP technical submission per stable version.

The release uploads the Composer zip and a user guide (the module's README as a PDF: the EQP requires
one for a technical submission), waits for the malware check, and submits the version for technical
review. The marketing side (icon, gallery, prices, categories) is kept by people in the Developer
Portal, so it stays ``draft``. A version is submitted once: the same zip again is ``unchanged``
(compared by the md5 the API reports), another zip under that version is a conflict. The Marketplace
takes stable versions only, so pre-releases are skipped.
"""

from __future__ import annotations

import hashlib
import io
import json
import textwrap
import zipfile
from typing import Any

from varai_deploy.widgets.build import COMPOSER_PACKAGE
from varai_deploy.widgets.channels.magento_composer import package_zip
from varai_deploy.widgets.manifest import WidgetIntegrityError
from varai_deploy.widgets.publishing import ChannelContext, Publication, PublishConflictError, PublishError

CHANNEL = "magento"
DESTINATION = "marketplace"
NAME = "VarAI AI Discovery"
LICENSE = "mit"
#: The Magento lines the module is built and tested for (its etc/module.xml sequence needs 2.4's modules).
COMPATIBILITY = [{"edition": edition, "versions": ["2.4"]} for edition in ("CE", "EE", "ECE")]
USER_GUIDE = "varai-module-ai-discovery-user-guide.pdf"


def publish(ctx: ChannelContext) -> Publication:
    from varai_deploy.hooks.magento_marketplace import MagentoMarketplaceHook, live_submission

    plain = ctx.manifest.package_version
    if ctx.prerelease:
        return Publication(
            CHANNEL,
            DESTINATION,
            "skipped",
            f"{COMPOSER_PACKAGE} {plain}",
            "pre-release: the Marketplace takes stable versions only",
        )
    data = package_zip(ctx)
    hook = MagentoMarketplaceHook(ctx.connection("magento_marketplace"))
    versions = hook.package_versions(COMPOSER_PACKAGE)
    existing = live_submission(versions, plain)
    if existing is not None:
        _same_zip_or_conflict(existing, data, plain)
        return Publication(CHANNEL, DESTINATION, "unchanged", _location(hook, existing), _status(existing))
    zip_name = ctx.manifest.channels[CHANNEL].archive
    uploads = hook.upload_files(
        [(zip_name, data, "application/zip"), (USER_GUIDE, user_guide_pdf(_readme(data)), "application/pdf")]
    )
    for upload in uploads:
        hook.wait_for_malware_scan(upload["file_upload_id"])
    package: dict[str, Any] = {
        "action": {"technical": "submit", "marketing": "draft"},
        "type": "extension",
        "platform": "M2",
        "version": plain,
        "release_notes": f"{NAME} {ctx.version}: storefront widget sha256 {ctx.manifest.widget_sha256}.",
        "version_compatibility": COMPATIBILITY,
        "artifact": {"file_upload_id": uploads[0]["file_upload_id"]},
        "documentation_artifacts": {"user": {"file_upload_id": uploads[1]["file_upload_id"]}},
        "license_type": LICENSE,
    }
    if versions:  # a new version of the existing extension names it; the first one names the extension
        package["sku"] = COMPOSER_PACKAGE
    else:
        package.update(name=NAME, long_description=_composer_json(data).get("description", NAME))
    result = hook.submit_package(package)
    return Publication(CHANNEL, DESTINATION, "published", _location(hook, result), _status(result))


def verify(ctx: ChannelContext) -> str:
    """The Marketplace holds this version, submitted with the release's zip (stable versions only)."""
    from varai_deploy.hooks.magento_marketplace import MagentoMarketplaceHook

    plain = ctx.manifest.package_version
    if ctx.prerelease:
        return f"Marketplace: {COMPOSER_PACKAGE} {plain} is a pre-release, not submitted (stable versions only)"
    data = package_zip(ctx)
    hook = MagentoMarketplaceHook(ctx.connection("magento_marketplace"))
    existing = hook.submission(COMPOSER_PACKAGE, plain)
    if existing is None:
        raise PublishError(
            f"{CHANNEL} -> {DESTINATION}: {hook.base_url} has no submission of {COMPOSER_PACKAGE} {plain}; "
            "run the magento publish task again",
            channel=CHANNEL,
            destination=DESTINATION,
        )
    artifact = existing.get("artifact") or {}
    if artifact.get("file_hash") != _md5(data) or artifact.get("size") != len(data):
        raise WidgetIntegrityError(
            f"{CHANNEL}: Marketplace submission {existing.get('submission_id')} of {plain} holds "
            f"{artifact.get('filename')} (md5 {artifact.get('file_hash')}), not the release's zip (md5 {_md5(data)})",
            channel=CHANNEL,
            path=ctx.manifest.channels[CHANNEL].archive,
            expected=_md5(data),
            actual=artifact.get("file_hash"),
        )
    return (
        f"Marketplace submission {existing['submission_id']} of {plain} holds the release's zip ({_status(existing)})"
    )


def _same_zip_or_conflict(existing: dict[str, Any], data: bytes, plain: str) -> None:
    artifact = existing.get("artifact") or {}
    if artifact.get("file_hash") == _md5(data) and artifact.get("size") == len(data):
        return
    raise PublishConflictError(
        f"{CHANNEL} -> {DESTINATION}: {COMPOSER_PACKAGE} {plain} is already submitted (submission "
        f"{existing.get('submission_id')}) with another zip (md5 {artifact.get('file_hash')} there, "
        f"{_md5(data)} now); nothing was submitted. A submitted version is final: release a new version",
        channel=CHANNEL,
        destination=DESTINATION,
    )


def _location(hook: Any, submission: dict[str, Any]) -> str:
    from varai_deploy.hooks.magento_marketplace import PACKAGES_ENDPOINT

    return f"{hook.base_url}{PACKAGES_ENDPOINT}/{submission['submission_id']}"


def _status(submission: dict[str, Any]) -> str:
    status = submission.get("eqp_status") or {}
    return "eqp_status " + ", ".join(f"{k} {status.get(k)}" for k in ("overall", "technical", "marketing"))


def _md5(data: bytes) -> str:
    """The API reports an uploaded file's md5 (``file_hash``), so that is what is compared."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _composer_json(data: bytes) -> dict[str, Any]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return json.loads(archive.read("composer.json"))


def _readme(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read("README.md").decode("utf-8")


# -- the user guide ---------------------------------------------------------------------------
_PAGE_LINES = 58
_LINE_CHARS = 100


def user_guide_pdf(text: str) -> bytes:
    """A plain-text PDF (Courier 10 pt, US Letter) of ``text``: byte-identical for the same text, no dates."""
    lines = [
        wrapped
        for line in text.expandtabs(4).splitlines()
        for wrapped in (textwrap.wrap(line, _LINE_CHARS, drop_whitespace=False) or [""])
    ]
    pages = [lines[i : i + _PAGE_LINES] for i in range(0, len(lines), _PAGE_LINES)] or [[]]
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>"]
    kids = []
    for page in pages:
        shown = b" ".join(b"(" + _pdf_text(line) + b") '" for line in page)
        stream = b"BT /F1 10 Tf 12 TL 50 754 Td " + shown + b" ET"
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % len(objects)
        )
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _pdf_text(line: str) -> bytes:
    raw = line.encode("latin-1", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
