"""Airflow plugin objects of varai-deploy: the Alertmanager webhook on the API server."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from varai_deploy.webhook import create_app


class VaraiDeployPlugin(AirflowPlugin):
    name = "varai_deploy"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/varai", "name": "VarAI alert webhook"}]
