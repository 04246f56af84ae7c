"""The Google provider's GCSHook, with the storage API's address taken from the connection.

A connection's ``api_endpoint`` extra, when set, is where every storage call goes (uploads and
downloads): a storage emulator in the sandbox, a private endpoint elsewhere. Nothing in code knows
where storage is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.google.cloud.hooks.gcs import GCSHook

if TYPE_CHECKING:
    from google.api_core.client_options import ClientOptions


class EndpointGCSHook(GCSHook):
    def get_client_options(self, api_endpoint_override: str | None = None) -> ClientOptions:
        return super().get_client_options(api_endpoint_override or self._get_field("api_endpoint") or None)
