"""Who a health probe is, so it reaches a private Cloud Run service: a Google ID token for the service's URL.

Cloud Run lets a request into a private service (include/terraform/gcp keeps the backends private) only with a
Google-signed ID token whose audience is the service's URL, from an account holding ``roles/run.invoker``
(the deploy account does). The token is minted where the probe runs (the worker or the triggerer) from the
environment's Cloud Run connection, kept in memory until it expires, and never written anywhere: triggers carry
the connection id and the audience, not the token. Without a Cloud Run connection (the sandbox's own platform)
or with an anonymous one, probes go without.
"""

from __future__ import annotations

from typing import Any


class ProbeIdentity:
    def __init__(self, gcp_conn_id: str | None) -> None:
        self.gcp_conn_id = gcp_conn_id
        self._credentials: dict[str, Any] = {}

    def headers(self, audience: str | None) -> dict[str, str]:
        """``Authorization`` for a request to the service at ``audience``; {} when there is no identity."""
        if not self.gcp_conn_id or not audience:
            return {}
        if audience not in self._credentials:
            from varai_deploy.hooks.cloud_run import EndpointCloudRunHook

            hook = EndpointCloudRunHook(gcp_conn_id=self.gcp_conn_id)
            self._credentials[audience] = hook.id_token_credentials(audience)
        credentials = self._credentials[audience]
        if credentials is None:
            return {}
        if not credentials.valid:
            from google.auth.transport.requests import Request

            credentials.refresh(Request())
        return {"Authorization": f"Bearer {credentials.token}"}

    async def headers_async(self, audience: str | None) -> dict[str, str]:
        """:meth:`headers` off the event loop (minting is a blocking HTTP call), for triggers."""
        import asyncio

        if not self.gcp_conn_id or not audience:
            return {}
        return await asyncio.to_thread(self.headers, audience)


def probe_conn_id(env) -> str | None:
    """The connection a probe's identity comes from: the environment's Cloud Run one, if it runs there."""
    return env.connections.get("cloud_run") if env.platform == "cloudrun" else None
