"""The Google provider's CloudRunServiceHook, over REST, with the Cloud Run Admin API's address from the connection.

The provider's hook builds a ``google.cloud.run_v2`` ServicesClient (gRPC, Google's endpoint) and offers get,
create and delete; a blue-green release needs more (a new revision at 0 % under a tag, traffic moved with the
service's etag, old revisions deleted), so :class:`EndpointCloudRunHook` hands out the clients themselves:
``services`` from the provider's ``get_conn`` and ``revisions`` built the same way, both with REST transport
(plain HTTPS, what every proxy and the sandbox's local Cloud Run speak) and the connection's ``api_endpoint``
extra when it has one (the sandbox; elsewhere a private endpoint), else Google. The connection's ``project`` and
``location`` extras say where the services live, so nothing in code knows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow.providers.google.cloud.hooks.cloud_run import CloudRunServiceHook

if TYPE_CHECKING:
    from google.api_core.client_options import ClientOptions
    from google.cloud.run_v2 import RevisionsClient, ServicesClient


class EndpointCloudRunHook(CloudRunServiceHook):
    def __init__(
        self,
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | Sequence[str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(gcp_conn_id=gcp_conn_id, impersonation_chain=impersonation_chain, **kwargs)
        self._revisions: RevisionsClient | None = None

    def get_client_options(self, api_endpoint_override: str | None = None) -> ClientOptions:
        return super().get_client_options(api_endpoint_override or self._get_field("api_endpoint") or None)

    @property
    def location(self) -> str:
        location = self._get_field("location")
        if not location:
            raise ValueError(f"connection {self.gcp_conn_id} names no location (its `location` extra)")
        return location

    def parent(self) -> str:
        """``projects/<project>/locations/<location>``: where the services live."""
        if not self.project_id:
            raise ValueError(f"connection {self.gcp_conn_id} names no project (its `project` extra)")
        return f"projects/{self.project_id}/locations/{self.location}"

    def get_conn(self, location: str | None = None, use_regional_endpoint: bool | None = False) -> ServicesClient:
        """The provider's ServicesClient, over REST."""
        from google.cloud.run_v2 import ServicesClient

        if self._client is None:
            self._client = ServicesClient(**self._client_kwargs())
        return self._client

    @property
    def services(self) -> ServicesClient:
        return self.get_conn()

    @property
    def revisions(self) -> RevisionsClient:
        from google.cloud.run_v2 import RevisionsClient

        if self._revisions is None:
            self._revisions = RevisionsClient(**self._client_kwargs())
        return self._revisions

    def _client_kwargs(self) -> dict:
        from airflow.providers.google.common.consts import CLIENT_INFO

        return {
            "credentials": self.get_credentials(),
            "client_info": CLIENT_INFO,
            "client_options": self.get_client_options(),
            "transport": "rest",
        }

    def id_token_credentials(self, audience: str):
        """Credentials whose token is a Google ID token for ``audience`` (a private service's URL), from this
        connection's identity: its service account key, the account it impersonates, or the machine's (the
        metadata server); None when it has none (anonymous: only public services can be probed)."""
        from google.auth import compute_engine, impersonated_credentials
        from google.oauth2 import service_account

        credentials = self.get_credentials()
        if isinstance(credentials, service_account.Credentials):
            token_uri = credentials._token_uri  # the key's own endpoint; google-auth has no public accessor
            return service_account.IDTokenCredentials(
                credentials.signer, credentials.service_account_email, token_uri, target_audience=audience
            )
        if isinstance(credentials, impersonated_credentials.Credentials):
            return impersonated_credentials.IDTokenCredentials(
                credentials, target_audience=audience, include_email=True
            )
        if isinstance(credentials, compute_engine.Credentials):
            from google.auth.transport.requests import Request

            return compute_engine.IDTokenCredentials(
                Request(), target_audience=audience, use_metadata_identity_endpoint=True
            )
        return None

    def image_digest(self, revision: str) -> str:
        """What Cloud Run resolved the revision's image to (``containerStatuses[0].imageDigest``), "" while it
        has none. Read over REST: google-cloud-run's Revision lacks the field."""
        statuses = self.rest_get(revision).get("containerStatuses") or [{}]
        return statuses[0].get("imageDigest") or ""

    def rest_get(self, name: str) -> dict:
        """``GET /v2/<name>`` on the Admin API with the hook's credentials, decoded."""
        from google.auth.transport.requests import AuthorizedSession

        endpoint = (self.get_client_options().api_endpoint or "https://run.googleapis.com").rstrip("/")
        if "://" not in endpoint:
            endpoint = f"https://{endpoint}"
        session = AuthorizedSession(self.get_credentials())
        try:
            answer = session.get(f"{endpoint}/v2/{name}", timeout=30)
        finally:
            session.close()
        answer.raise_for_status()
        return answer.json()
