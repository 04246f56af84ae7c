"""The Google provider's CloudSQLHook, with the Cloud SQL Admin API's address taken from the connection.

A connection's ``api_endpoint`` extra, when set, is where every ``sqladmin`` call goes (the sandbox's stand-in;
elsewhere a private endpoint), exactly as ``gcs_endpoint`` does for storage; without it, Google. Its
``instance`` extra names the instance the connection is for, and ``poll_interval`` how many seconds a wait on
an operation sleeps between looks (the provider's 20 s suits Cloud SQL's minutes-long exports, not a stand-in
whose exports take a second). An anonymous connection (``is_anonymous``) needs no credentials: the provider
gives it ``AnonymousCredentials``, whose authorized HTTP client sends no ``Authorization`` header at all.

Only the synchronous client honours the endpoint: the provider's deferrable trigger (``CloudSQLExportTrigger``)
polls a hard-coded ``https://sqladmin.googleapis.com`` through ``CloudSQLAsyncHook``, whatever the connection says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow.providers.google.cloud.hooks.cloud_sql import TIME_TO_SLEEP_IN_SECONDS, CloudSQLHook
from airflow.providers.google.common.hooks.base_google import PROVIDE_PROJECT_ID

if TYPE_CHECKING:
    from google.api_core.client_options import ClientOptions

API_VERSION = "v1beta4"


class EndpointCloudSQLHook(CloudSQLHook):
    def __init__(
        self,
        api_version: str = API_VERSION,
        gcp_conn_id: str = CloudSQLHook.default_conn_name,
        impersonation_chain: str | Sequence[str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(api_version, gcp_conn_id=gcp_conn_id, impersonation_chain=impersonation_chain, **kwargs)

    def get_client_options(self, api_endpoint_override: str | None = None) -> ClientOptions:
        return super().get_client_options(api_endpoint_override or self._get_field("api_endpoint") or None)

    @property
    def instance(self) -> str | None:
        """The instance the connection is for (its ``instance`` extra), if it names one."""
        return self._get_field("instance") or None

    @property
    def poll_interval(self) -> float:
        return float(self._get_field("poll_interval") or TIME_TO_SLEEP_IN_SECONDS)

    def _wait_for_operation_to_complete(
        self, *, project_id: str = PROVIDE_PROJECT_ID, operation_name: str, time_to_sleep: float | None = None
    ) -> None:
        """The provider's wait, every ``poll_interval`` seconds unless the caller says otherwise."""
        super()._wait_for_operation_to_complete(
            project_id=project_id,
            operation_name=operation_name,
            time_to_sleep=self.poll_interval if time_to_sleep is None else time_to_sleep,
        )
