"""EndpointCloudSQLHook: the Google provider's own CloudSQLHook methods, unchanged, against the sandbox's Cloud SQL
stand-in reached through the ``varai_cloudsql`` connection as a task reaches it (anonymous, ``api_endpoint``):
a real database exported to the storage emulator and imported into a fresh one, row for row."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from airflow.providers.common.compat.sdk import AirflowException
from airflow.providers.google.cloud.hooks.cloud_sql import CloudSQLHook

from tests.support.cloudsql_stack import CloudSqlStack, cloudsql_stack
from varai_deploy.hooks.cloud_sql import EndpointCloudSQLHook
from varai_deploy.sandbox.cloudsql import CONN_ID, INSTANCE, database_version
from varai_deploy.sandbox.storage import BACKUP_BUCKET

ENV = f"AIRFLOW_CONN_{CONN_ID.upper()}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudSqlStack]:
    with cloudsql_stack(tmp_path_factory.mktemp("cloudsql_hook") / "sandbox") as running:
        yield running


@pytest.fixture
def hook(stack: CloudSqlStack, monkeypatch: pytest.MonkeyPatch) -> EndpointCloudSQLHook:
    monkeypatch.setenv(ENV, stack.connection_env())
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_UNIVERSE_DOMAIN", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)  # anonymous means no credentials at all
    return EndpointCloudSQLHook(gcp_conn_id=CONN_ID)


def export_body(uri: str, database: str) -> dict:
    return {"exportContext": {"fileType": "SQL", "uri": uri, "databases": [database]}}


def test_the_connection_decides_where_the_client_goes_and_how_often_it_looks(hook, stack, monkeypatch):
    assert hook.get_client_options().api_endpoint == stack.url
    assert hook.get_client_options("http://elsewhere:1").api_endpoint == "http://elsewhere:1"
    assert hook.get_conn()._baseUrl == stack.url  # the discovery client's base: every request goes here
    assert (hook.project_id, hook.instance, hook.poll_interval) == ("varai-sandbox", INSTANCE, 1.0)
    monkeypatch.setenv(ENV, '{"conn_type": "google_cloud_platform", "extra": {"is_anonymous": true}}')
    production_like = EndpointCloudSQLHook(gcp_conn_id=CONN_ID)
    assert production_like.get_client_options().api_endpoint is None  # Google's own endpoint
    assert (production_like.instance, production_like.poll_interval) == (None, 20.0)


def test_the_instance_is_what_a_backup_checks_before_relying_on_it(hook):
    instance = hook.get_instance(instance=hook.instance)
    assert (instance["name"], instance["state"], instance["databaseVersion"]) == (
        INSTANCE,
        "RUNNABLE",
        database_version(),
    )
    backups = instance["settings"]["backupConfiguration"]
    assert backups["enabled"] and backups["pointInTimeRecoveryEnabled"]


def test_export_then_import_into_a_fresh_database_keeps_every_row(hook, stack):
    source = stack.new_database(rows=1200)
    restored = f"{source}_restored"
    uri = f"gs://{BACKUP_BUCKET}/hook/{source}.sql.gz"

    operation = hook.export_instance(instance=INSTANCE, body=export_body(uri, source))
    hook._wait_for_operation_to_complete(operation_name=operation)
    assert stack.object(f"hook/{source}.sql.gz")[:2] == b"\x1f\x8b"  # gzip, as Cloud SQL writes .gz

    hook.create_database(instance=INSTANCE, body={"name": restored})
    assert hook.get_database(instance=INSTANCE, database=restored)["name"] == restored
    started = time.monotonic()
    hook.import_instance(
        instance=INSTANCE, body={"importContext": {"fileType": "SQL", "uri": uri, "database": restored}}
    )
    assert time.monotonic() - started < 10  # polled every poll_interval (1 s), not the provider's 20 s

    assert stack.content(restored) == stack.content(source)
    assert stack.content(restored)[0] == 1200
    kinds = [op["operationType"] for op in hook.list_operations(instance=INSTANCE)]
    assert kinds[:3] == ["IMPORT", "CREATE_DATABASE", "EXPORT"]  # newest first

    hook.delete_database(instance=INSTANCE, database=restored)
    assert restored not in stack.databases()


def test_a_failed_export_or_import_fails_the_wait_with_cloud_sqls_error(hook, stack):
    operation = hook.export_instance(instance=INSTANCE, body=export_body(f"gs://{BACKUP_BUCKET}/hook/none.sql", "nope"))
    with pytest.raises(AirflowException, match='ERROR_RDBMS.*database "nope" does not exist'):
        hook._wait_for_operation_to_complete(operation_name=operation)
    assert stack.object("hook/none.sql") is None

    target = stack.new_database()
    missing = {
        "importContext": {"fileType": "SQL", "uri": f"gs://{BACKUP_BUCKET}/hook/missing.sql", "database": target}
    }
    with pytest.raises(AirflowException, match="ERROR_STORAGE.*missing.sql does not exist"):
        hook.import_instance(instance=INSTANCE, body=missing)


def test_a_request_the_api_refuses_is_the_providers_http_error(hook):
    from googleapiclient.errors import HttpError

    with pytest.raises(HttpError) as refused:
        hook.get_conn().instances().export(
            project="varai-sandbox", instance=INSTANCE, body={"exportContext": {"fileType": "ZIP"}}
        ).execute()
    assert refused.value.resp.status == 400
    assert "exportContext.fileType: 'ZIP' is not one of" in refused.value.reason
    with pytest.raises(HttpError) as missing:
        hook.get_database(instance=INSTANCE, database="no_such_database")
    assert missing.value.resp.status == 404


def test_the_provider_hook_without_the_endpoint_would_go_to_google(stack, monkeypatch):
    monkeypatch.setenv(ENV, stack.connection_env())
    assert CloudSQLHook(api_version="v1beta4", gcp_conn_id=CONN_ID).get_client_options().api_endpoint is None
