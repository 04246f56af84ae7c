"""Where a release runs: one implementation of the platform protocol per kind of environment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from varai_deploy.platforms.base import Platform, PlatformError, Revision, SwitchConflictError

if TYPE_CHECKING:
    from varai_deploy.config import EnvironmentConfig

__all__ = ["Platform", "PlatformError", "Revision", "SwitchConflictError", "get_platform"]


def get_platform(env: EnvironmentConfig) -> Platform:
    """The platform an environment runs on (imported lazily: the Cloud Run client is heavy)."""
    if env.platform == "local":
        from varai_deploy.platforms.local import LocalPlatform

        return LocalPlatform()
    if env.platform == "cloudrun" and env.cloud_run is not None:
        from varai_deploy.hooks.cloud_run import EndpointCloudRunHook
        from varai_deploy.ledger import ledger_for
        from varai_deploy.platforms.cloud_run import CloudRunPlatform

        return CloudRunPlatform(
            EndpointCloudRunHook(gcp_conn_id=env.connections["cloud_run"]),
            ledger=ledger_for(env),
            keep_revisions=env.cloud_run.keep_revisions,
            operation_timeout=env.cloud_run.operation_timeout_seconds,
            service_name=env.cloud_run.service_name,
        )
    raise PlatformError(
        f"environment {env.name!r} runs on {env.platform!r}, which this version of varai-deploy cannot drive yet"
    )
