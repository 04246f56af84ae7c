"""The backup and reports buckets: GCS through the Google provider's hook, objects written once, never changed.

Connection ``varai_backups`` (conn_type ``google_cloud_platform``): extra ``bucket`` (required) and,
optionally, ``api_endpoint`` (the sandbox's storage emulator). Every write is conditional on the
object not existing yet (``if_generation_match=0``), so a retried upload of the same object is
recognised and a different one is refused, never overwritten.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from varai_deploy.hooks.gcs_endpoint import EndpointGCSHook


class BackupStoreError(RuntimeError):
    pass


class BackupStoreHook(EndpointGCSHook):
    conn_name_attr = "gcp_conn_id"
    default_conn_name = "varai_backups"
    conn_type = "google_cloud_platform"
    hook_name = "VarAI backup bucket"

    def __init__(self, gcp_conn_id: str = default_conn_name, **kwargs) -> None:
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            super().__init__(gcp_conn_id=gcp_conn_id, **kwargs)
        except AirflowNotFoundException:
            raise BackupStoreError(
                f"the Airflow connection {gcp_conn_id!r} (the backup bucket) is not defined: add it "
                "(conn_type google_cloud_platform, extra bucket)"
            ) from None

    @property
    def bucket(self) -> str:
        name = self._get_field("bucket")
        if not name:
            raise BackupStoreError(f"the Airflow connection {self.gcp_conn_id!r} has no extra 'bucket'")
        return str(name)

    def names(self, prefix: str) -> list[str]:
        return sorted(self.list(self.bucket, prefix=prefix))

    def put_file(self, name: str, path: Path, content_type: str = "application/octet-stream") -> None:
        self._put(
            name, lambda blob: blob.upload_from_filename(str(path), content_type=content_type, if_generation_match=0)
        )

    def put_json(self, name: str, data: dict[str, Any]) -> None:
        self.put_text(name, json.dumps(data, indent=2, sort_keys=True, default=str), "application/json")

    def put_text(self, name: str, body: str, content_type: str) -> None:
        self._put(name, lambda blob: blob.upload_from_string(body, content_type, if_generation_match=0), body)

    def read_json(self, name: str) -> dict[str, Any] | None:
        from google.api_core.exceptions import NotFound

        try:
            return json.loads(self._blob(name).download_as_bytes())
        except NotFound:
            return None

    def download_to(self, name: str, path: Path) -> None:
        self._blob(name).download_to_filename(str(path))

    def delete_names(self, names: list[str]) -> None:
        from google.api_core.exceptions import NotFound

        for name in names:
            # Gone already (a retry, or a concurrent run): what was asked holds.
            with contextlib.suppress(NotFound):
                self._blob(name).delete()

    def _blob(self, name: str):
        return self.get_conn().bucket(self.bucket).blob(name)

    def _put(self, name: str, upload, body: str | None = None) -> None:
        """Looks first (storage emulators ignore the precondition), then writes on the precondition
        that nothing is there (GCS itself holds to it even against a concurrent writer)."""
        from google.api_core.exceptions import PreconditionFailed

        blob = self._blob(name)
        try:
            if not blob.exists():
                upload(blob)
                return
        except PreconditionFailed:
            pass
        if body is not None and blob.download_as_bytes().decode() == body:
            return  # a retry of the same write
        raise BackupStoreError(f"gs://{self.bucket}/{name} exists already and is never overwritten")


class ReportStoreHook(BackupStoreHook):
    """The reports bucket (connection ``varai_reports``): DR drill reports, written once like backups."""

    default_conn_name = "varai_reports"
    hook_name = "VarAI reports bucket"

    def __init__(self, gcp_conn_id: str = default_conn_name, **kwargs) -> None:
        super().__init__(gcp_conn_id, **kwargs)
