"""Airflow plugin objects of varai-deploy: on the API server, the Alertmanager webhook and the
middleware that names, notes and words the requests that start a release or a rollback; everywhere,
the maintenance window's timetable (the scheduler and the DAG processor must know it to
(de)serialise the maintenance DAGs)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from varai_deploy.run_requests import RunRequests
from varai_deploy.timetables import MaintenanceTimetable
from varai_deploy.webhook import create_app


class VaraiDeployPlugin(AirflowPlugin):
    name = "varai_deploy"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/varai", "name": "VarAI alert webhook"}]
    fastapi_root_middlewares = [{"middleware": RunRequests, "name": "VarAI run requests"}]
    timetables = [MaintenanceTimetable]
