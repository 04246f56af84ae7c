"""Database backups that meet the RPO: dump, prove by restoring, keep what the policy keeps, report.

Scheduled every ``backups.every_minutes`` of the environment named by ``VARAI_SCHEDULED_ENVIRONMENT``
(the guide's daily backups could never meet its 1 h RPO), and on demand (the maintenance window
runs one before it changes anything). For each database in ``backups.databases``, side by side:

- backup: ``pg_dump`` (custom format) of one consistent snapshot into the backup bucket, with a
  manifest of its sha256, size, snapshot time and every table's rows and content checksum;
- verify: restored into a scratch database and compared table by table with the snapshot; only
  then is it a backup. One that is not is marked failed, never counted, and reported critical;
- retention: 30 days of dailies, every verified backup of the last 48 h, never the newest verified.

-> report: the age of each database's newest verified backup, pushed to Prometheus (whose
``DatabaseBackupTooOld`` alert fires past the RPO); a failure goes to the notifiers as critical.
"""

from __future__ import annotations

from airflow.sdk import dag, task, task_group

from varai_deploy.dag_params import FAIL_FAST, backup_schedule, default_args, environment_param, scheduled_environment
from varai_deploy.operators.backup import BackupDatabaseOperator, EnforceRetentionOperator, VerifyBackupOperator

BY_DATABASE = "{{ task.database }}"


@dag(
    dag_id="database_backup",
    **backup_schedule(),
    tags=["varai", "backups"],
    doc_md=__doc__,
    default_args=default_args(),
    params={
        "environment": environment_param("Whose databases to back up", default=scheduled_environment() or "sandbox")
    },
)
def database_backup():
    @task(**FAIL_FAST)
    def databases(params=None) -> list[str]:
        """The databases to back up, each with its connection, before anything is dumped."""
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        from varai_deploy.config import load_environment

        env = load_environment(params["environment"])
        if env.backups is None:
            raise ValueError(f"{env.name} has no backups section in its config: nothing to back up")
        instance = ("cloud_sql",) if env.backups.method == "cloud_sql" else ()
        for role in (*env.backups.databases, "backups", *instance):
            try:
                BaseHook.get_connection(env.connections[role])
            except AirflowNotFoundException:
                raise ValueError(f"the Airflow connection {env.connections[role]!r} ({role}) is not defined") from None
        print(f"Backing up {', '.join(env.backups.databases)} of {env.name}; RPO {env.backups.rpo_minutes:g} min")
        return list(env.backups.databases)

    @task_group(group_id="database")
    def one_database(database: str):
        dumped = BackupDatabaseOperator(task_id="backup", database=database, map_index_template=BY_DATABASE)
        verified = VerifyBackupOperator(
            task_id="verify", database=database, backup=dumped.output, map_index_template=BY_DATABASE
        )
        retention = EnforceRetentionOperator(
            task_id="retention", database=database, trigger_rule="all_done", map_index_template=BY_DATABASE
        )
        verified >> retention

    @task(trigger_rule="all_done", **FAIL_FAST)
    def report(params=None, **context) -> dict:
        """Each database's newest verified backup against the RPO; fails the run when a backup failed."""
        from varai_deploy.backups.report import report_backups

        return report_backups(context, params["environment"])

    roles = databases()
    one_database.expand(database=roles) >> report()


database_backup()
