"""The sandbox's Cloud SQL: the sqladmin v1beta4 stand-in started as ``sandbox up`` starts it beside the storage
emulator and the sandbox PostgreSQL, held to the discovery document both ways (``cloudsql_fake``), exporting and
importing real databases, its operations kept across restarts, and run by ``up`` / ``down``."""

from __future__ import annotations

import gzip
import json
import stat
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.support.cloudsql_stack import CONTRACT, CloudSqlStack, cloudsql_stack
from tests.support.sandbox import wait_for
from tests.support.statuspage_stack import free_port
from varai_deploy.sandbox import Sandbox, SandboxSettings, processes
from varai_deploy.sandbox.cloudsql import COMPONENT, CONN_ID, INSTANCE, database_version
from varai_deploy.sandbox.cloudsql_fake import backups_dir, config_file, make_handler
from varai_deploy.sandbox.components import COMPONENT_NAMES, load, read_connections_env
from varai_deploy.sandbox.serving import Server
from varai_deploy.sandbox.storage import BACKUP_BUCKET, PROJECT


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudSqlStack]:
    with cloudsql_stack(tmp_path_factory.mktemp("cloudsql") / "sandbox") as running:
        yield running


def export(stack: CloudSqlStack, database: str, object_name: str, **context) -> requests.Response:
    body = {"exportContext": {"fileType": "SQL", "uri": f"gs://{BACKUP_BUCKET}/{object_name}", "databases": [database]}}
    body["exportContext"].update(context)
    return stack.instance_api("POST", "/export", body)


def import_(stack: CloudSqlStack, database: str, object_name: str) -> requests.Response:
    body = {"importContext": {"fileType": "SQL", "uri": f"gs://{BACKUP_BUCKET}/{object_name}", "database": database}}
    return stack.instance_api("POST", "/import", body)


def operation_names(stack: CloudSqlStack) -> list[str]:
    answer = stack.api("GET", "/operations", params={"instance": INSTANCE, "maxResults": 1000})
    assert answer.status_code == 200, answer.text
    return [op["name"] for op in answer.json().get("items", [])]


def error_of(answer: requests.Response) -> dict:
    body = answer.json()
    assert set(body) == {"error"}, body
    return body["error"]


@contextmanager
def locked(stack: CloudSqlStack, database: str) -> Iterator[None]:
    """``items`` locked exclusively: a pg_dump of ``database`` waits, so an operation stays RUNNING meanwhile."""
    conn = stack.connect(database)
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        conn.rollback()
        conn.close()


# -- the component ------------------------------------------------------------------------------------
def test_it_is_the_last_component_on_a_port_of_its_own_with_an_anonymous_google_connection(tmp_path):
    assert COMPONENT_NAMES[11] == "cloudsql" and load("cloudsql") is COMPONENT and COMPONENT.offset == 11
    default = SandboxSettings(home=tmp_path / "sandbox")
    assert default.component_port("cloudsql") == default.gateway_port - 9 == 18071
    for base in (19500, 19860):  # the test blocks (tests/varai_deploy/conftest.py) with every stand-in
        block = SandboxSettings(home=tmp_path / "b", gateway_port=base, service_port_base=base + 10)
        assert block.component_port("cloudsql") == base - 9
        assert block.component_port("cloudsql") not in (block.gateway_port, block.prometheus_port)
    port = default.component_port("cloudsql")
    assert COMPONENT.connections(default, port) == {
        CONN_ID: {
            "conn_type": "google_cloud_platform",
            "extra": {
                "is_anonymous": True,
                "project": PROJECT,
                "api_endpoint": "http://127.0.0.1:18071",
                "instance": INSTANCE,
                "poll_interval": 1,
            },
        }
    }
    argv = COMPONENT.marker(default, port).argv()
    assert argv[1:3] == ["-m", "varai_deploy.sandbox.cloudsql_fake"] and COMPONENT.marker(default, port).matches(argv)
    assert dict(zip(argv[3::2], argv[4::2], strict=True)) == {
        "--home": str(default.home),
        "--host": "127.0.0.1",
        "--port": "18071",
    }


def test_its_config_is_private_and_names_the_sandbox_postgres_and_storage(stack):
    path = config_file(stack.settings.home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = json.loads(path.read_text())
    s = stack.settings
    assert config["port"] == s.component_port("postgres") and config["storage_url"] == s.component_url("storage")
    assert (config["project"], config["instance"], config["database_version"]) == (
        PROJECT,
        INSTANCE,
        database_version(),
    )


# -- instances and databases ---------------------------------------------------------------------------
def test_the_instance_is_a_runnable_postgres_with_backups_and_point_in_time_recovery(stack):
    answer = stack.instance_api("GET", "", headers={"Authorization": "Bearer any-token"})
    assert answer.status_code == 200 and CONTRACT.check_response("sql.instances.get", answer.json()) == []
    instance = answer.json()
    assert (instance["kind"], instance["name"], instance["project"], instance["state"]) == (
        "sql#instance",
        INSTANCE,
        PROJECT,
        "RUNNABLE",
    )
    assert instance["databaseVersion"] == database_version()
    assert instance["region"] == stack.settings.regions[0]
    backups = instance["settings"]["backupConfiguration"]
    assert backups["enabled"] is True and backups["pointInTimeRecoveryEnabled"] is True
    assert stack.api("GET", "/instances/other").status_code == 404
    assert error_of(stack.api("GET", "/instances/other"))["errors"][0]["reason"] == "instanceDoesNotExist"
    other_project = requests.get(f"{stack.url}/sql/v1beta4/projects/someone-else/instances/{INSTANCE}", timeout=10)
    assert other_project.status_code == 403


def test_databases_are_the_clusters_own_and_insert_and_delete_answer_done_operations(stack):
    name = f"db_{uuid.uuid4().hex[:10]}"
    created = stack.instance_api("POST", "/databases", {"name": name})
    assert created.status_code == 200, created.text
    operation = created.json()
    assert (operation["operationType"], operation["status"], operation["targetId"]) == (
        "CREATE_DATABASE",
        "DONE",
        INSTANCE,
    )
    assert name in stack.databases()
    listed = stack.instance_api("GET", "/databases").json()
    assert CONTRACT.check_response("sql.databases.list", listed) == []
    assert {"postgres", "varai_ledger", name} <= {d["name"] for d in listed["items"]}
    assert "template1" not in {d["name"] for d in listed["items"]}
    found = stack.instance_api("GET", f"/databases/{name}").json()
    assert (found["kind"], found["name"], found["charset"], found["instance"]) == (
        "sql#database",
        name,
        "UTF8",
        INSTANCE,
    )

    again = stack.instance_api("POST", "/databases", {"name": name})
    assert again.status_code == 400 and "already exists" in error_of(again)["message"]

    deleted = stack.instance_api("DELETE", f"/databases/{name}")
    assert deleted.status_code == 200 and deleted.json()["operationType"] == "DELETE_DATABASE"
    assert name not in stack.databases()
    assert stack.instance_api("GET", f"/databases/{name}").status_code == 404
    assert stack.instance_api("DELETE", f"/databases/{name}").status_code == 404


# -- export and import ------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".sql", ".sql.gz"])
def test_an_export_imported_into_a_fresh_database_has_every_row(stack, suffix):
    source = stack.new_database(rows=2500)
    restored = stack.new_database()
    object_name = f"roundtrip/{source}{suffix}"

    submitted = export(stack, source, object_name)
    assert submitted.status_code == 200, submitted.text
    pending = submitted.json()
    assert (pending["kind"], pending["operationType"], pending["status"]) == ("sql#operation", "EXPORT", "PENDING")
    assert pending["exportContext"]["databases"] == [source] and pending["targetProject"] == PROJECT
    done = stack.wait(pending)
    assert "error" not in done and done["insertTime"] <= done["startTime"] <= done["endTime"]

    stored = stack.object(object_name)
    dump = gzip.decompress(stored) if suffix.endswith(".gz") else stored
    assert dump.startswith(b"--\n-- PostgreSQL database dump") and b"CREATE TABLE public.items" in dump
    assert b"OWNER TO" not in dump and b"GRANT " not in dump  # --no-owner --no-acl: loads as whoever imports

    loaded = stack.wait(import_(stack, restored, object_name).json())
    assert loaded["operationType"] == "IMPORT" and "error" not in loaded, loaded
    assert stack.content(restored) == stack.content(source)
    assert stack.content(restored)[0] == 2500


def test_export_options_schema_only_and_clean(stack):
    source = stack.new_database(rows=10)
    options = {"sqlExportOptions": {"schemaOnly": True, "postgresExportOptions": {"clean": True, "ifExists": True}}}
    done = stack.wait(export(stack, source, f"options/{source}.sql", **options).json())
    assert "error" not in done, done
    dump = stack.object(f"options/{source}.sql")
    assert b"DROP TABLE IF EXISTS public.items" in dump and b"COPY public.items" not in dump


@pytest.mark.parametrize(
    ("context", "field", "says"),
    [
        ({"compression": "gzip"}, "exportContext.compression", "unknown field (ExportContext has"),
        ({"fileType": "SQL_GZ"}, "exportContext.fileType", "'SQL_GZ' is not one of SQL_FILE_TYPE_UNSPECIFIED, SQL"),
        ({"databases": "app"}, "exportContext.databases", 'must be a JSON array, got "app"'),
        ({"offload": "yes"}, "exportContext.offload", 'must be true or false, got "yes"'),
    ],
)
def test_a_contract_violation_is_a_400_naming_the_field_and_exports_nothing(stack, context, field, says):
    source = stack.new_database(rows=3)
    before = operation_names(stack)
    refused = export(stack, source, f"refused/{source}.sql", **context)
    assert refused.status_code == 400
    error = error_of(refused)
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert field in error["message"] and says in error["message"]
    assert error["errors"] == [
        {
            "message": f"{field}: {error['details'][0]['fieldViolations'][0]['description']}",
            "domain": "global",
            "reason": "invalid",
        }
    ]
    assert error["details"][0]["fieldViolations"][0]["field"] == field
    assert stack.object(f"refused/{source}.sql") is None
    assert operation_names(stack) == before


@pytest.mark.parametrize(
    ("context", "status", "says"),
    [
        ({"uri": "https://storage.googleapis.com/b/o.sql"}, "INVALID_ARGUMENT", "exportContext.uri: must be a Cloud"),
        ({"databases": ["a", "b"]}, "INVALID_ARGUMENT", "exactly one database"),
        ({"databases": []}, "INVALID_ARGUMENT", "exactly one database"),
        ({"fileType": "CSV"}, "FAILED_PRECONDITION", "does not support exportContext.fileType CSV"),
        ({"sqlExportOptions": {"parallel": True}}, "FAILED_PRECONDITION", "sqlExportOptions.parallel"),
    ],
)
def test_what_cloud_sql_refuses_or_the_stand_in_cannot_do_is_a_400_saying_so(stack, context, status, says):
    before = operation_names(stack)
    refused = export(stack, "varai_ledger", "never.sql", **context)
    assert refused.status_code == 400 and error_of(refused)["status"] == status
    assert says in error_of(refused)["message"]
    assert operation_names(stack) == before


def test_exporting_a_database_that_does_not_exist_is_an_operation_that_fails(stack):
    submitted = export(stack, "no_such_database", "missing/no_such_database.sql")
    assert submitted.status_code == 200
    done = stack.wait(submitted.json())
    [error] = done["error"]["errors"]
    assert done["error"]["kind"] == "sql#operationErrors" and error["code"] == "ERROR_RDBMS"
    assert 'database "no_such_database" does not exist' in error["message"]
    assert stack.object("missing/no_such_database.sql") is None


def test_importing_a_missing_object_or_sql_postgres_refuses_fails_the_operation(stack):
    target = stack.new_database(rows=1)
    missing = stack.wait(import_(stack, target, "nowhere.sql").json())
    assert missing["error"]["errors"][0]["code"] == "ERROR_STORAGE"
    assert f"gs://{BACKUP_BUCKET}/nowhere.sql does not exist" in missing["error"]["errors"][0]["message"]

    stack.wait(export(stack, target, f"twice/{target}.sql").json())
    clash = stack.wait(import_(stack, target, f"twice/{target}.sql").json())  # items exists already: stops at once
    assert clash["error"]["errors"][0]["code"] == "ERROR_RDBMS"
    assert 'relation "items" already exists' in clash["error"]["errors"][0]["message"]
    assert stack.content(target)[0] == 1


def test_one_operation_at_a_time_pending_then_running_then_done(stack):
    source = stack.new_database(rows=5)
    with locked(stack, source):
        running = export(stack, source, f"busy/{source}.sql").json()
        assert running["status"] == "PENDING"
        wait_for(
            lambda: stack.api("GET", f"/operations/{running['name']}").json()["status"] == "RUNNING",
            what="the export to run",
        )
        second = export(stack, source, f"busy/{source}-2.sql")
        assert second.status_code == 409
        assert error_of(second)["errors"][0]["reason"] == "operationInProgress"
        assert running["name"] in error_of(second)["message"]
        assert stack.instance_api("POST", "/databases", {"name": f"{source}_x"}).status_code == 409
        listed = stack.api("GET", "/operations", params={"instance": INSTANCE}).json()["items"]
        assert listed[0]["name"] == running["name"] and listed[0]["status"] == "RUNNING"
    done = stack.wait(running)
    assert "error" not in done and stack.object(f"busy/{source}.sql") is not None
    assert stack.object(f"busy/{source}-2.sql") is None


# -- operations -----------------------------------------------------------------------------------------
def test_operations_survive_a_restart_and_one_cut_short_ends_with_an_error(stack):
    source = stack.new_database(rows=5)
    finished = stack.wait(export(stack, source, f"restart/{source}.sql").json())
    with locked(stack, source):
        cut = export(stack, source, f"restart/{source}-cut.sql").json()
        wait_for(lambda: stack.api("GET", f"/operations/{cut['name']}").json()["status"] == "RUNNING", what="running")
        stack.restart()
    assert stack.api("GET", f"/operations/{finished['name']}").json() == finished
    interrupted = stack.api("GET", f"/operations/{cut['name']}").json()
    assert interrupted["status"] == "DONE" and interrupted["error"]["errors"][0]["code"] == "INTERNAL_ERROR"
    assert {finished["name"], cut["name"]} <= set(operation_names(stack))
    assert stack.wait(export(stack, source, f"restart/{source}-after.sql").json()).get("error") is None


def test_operations_list_by_instance_newest_first_in_pages(stack):
    for _ in range(2):
        stack.wait(export(stack, "varai_ledger", "pages/ledger.sql").json())
    first = stack.api("GET", "/operations", params={"instance": INSTANCE, "maxResults": 1}).json()
    assert CONTRACT.check_response("sql.operations.list", first) == []
    assert first["kind"] == "sql#operationsList" and len(first["items"]) == 1 and first["nextPageToken"] == "1"
    params = {"instance": INSTANCE, "maxResults": 1, "pageToken": first["nextPageToken"]}
    second = stack.api("GET", "/operations", params=params).json()
    assert second["items"][0]["insertTime"] <= first["items"][0]["insertTime"]
    assert stack.api("GET", "/operations", params={"instance": "other"}).status_code == 404
    assert stack.api("GET", "/operations/no-such-operation").status_code == 404
    assert stack.api("GET", "/operations", params={"pageToken": "x"}).status_code == 400


# -- backup runs --------------------------------------------------------------------------------------
def test_an_on_demand_backup_run_dumps_every_database_under_the_home(stack):
    source = stack.new_database(rows=7)
    submitted = stack.instance_api("POST", "/backupRuns", {"description": "before the release"})
    assert submitted.status_code == 200, submitted.text
    operation = submitted.json()
    assert operation["operationType"] == "BACKUP_VOLUME"
    run_id = operation["backupContext"]["backupId"]
    assert "error" not in stack.wait(operation)

    run = stack.instance_api("GET", f"/backupRuns/{run_id}").json()
    assert CONTRACT.check_response("sql.backupRuns.get", run) == []
    assert (run["status"], run["type"], run["description"]) == ("SUCCESSFUL", "ON_DEMAND", "before the release")
    assert run["enqueuedTime"] <= run["startTime"] <= run["endTime"]
    dump = gzip.decompress((backups_dir(stack.settings.home) / run_id / f"{source}.sql.gz").read_bytes())
    assert b"COPY public.items" in dump
    assert {p.name for p in (backups_dir(stack.settings.home) / run_id).iterdir()} >= {
        "postgres.sql.gz",
        "varai_ledger.sql.gz",
    }
    listed = stack.instance_api("GET", "/backupRuns").json()
    assert CONTRACT.check_response("sql.backupRuns.list", listed) == []
    assert listed["items"][0]["id"] == run_id
    assert stack.instance_api("GET", "/backupRuns/1").status_code == 404
    assert stack.instance_api("GET", "/backupRuns/latest").status_code == 400


# -- the contract's edges --------------------------------------------------------------------------------
def test_paths_methods_and_credentials_outside_what_it_serves(stack):
    unknown = requests.get(f"{stack.url}/sql/v1beta4/projects/{PROJECT}/nothing", timeout=10)
    assert unknown.status_code == 404 and error_of(unknown)["status"] == "NOT_FOUND"
    unimplemented = stack.instance_api("POST", "/restart")
    assert (
        unimplemented.status_code == 501 and "sql.instances.restart is not served" in error_of(unimplemented)["message"]
    )
    basic = stack.instance_api("GET", "", headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401 and error_of(basic)["status"] == "UNAUTHENTICATED"
    garbled = stack.instance_api("POST", "/export", data=b"{not json", headers={"Content-Type": "application/json"})
    assert garbled.status_code == 400 and "Invalid JSON payload" in error_of(garbled)["message"]
    extra = stack.instance_api("GET", "", params={"verbose": "true"})
    assert extra.status_code == 400 and error_of(extra)["details"][0]["fieldViolations"][0]["field"] == "verbose"


def test_an_answer_that_breaks_the_contract_goes_out_as_a_500_naming_the_problem():
    class Broken:
        def call(self, match, query, body):
            return {"kind": "sql#instance", "state": "UP", "currentDiskSize": 10}

    port = free_port()
    server = Server("127.0.0.1", port, make_handler(Broken(), CONTRACT))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/sql/v1beta4/projects/p/instances/i", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert answer.status_code == 500
    error = error_of(answer)
    assert (
        error["status"] == "INTERNAL"
        and "broke the sqladmin.v1beta4 contract answering sql.instances.get" in error["message"]
    )
    assert [v["field"] for v in error["details"][0]["fieldViolations"]] == ["state", "currentDiskSize"]


# -- the control plane ------------------------------------------------------------------------------------
def test_up_starts_it_with_its_connection_and_down_stops_it(tmp_path: Path):
    gateway, prom = free_port(), free_port()
    # The components above the kernel's ephemeral ports (32768-60999), where no client connection's
    # own port can land between this check and their start; each of the three checked free.
    for base in range(61000, 64900, 20):
        s = SandboxSettings(
            home=tmp_path / "sandbox",
            gateway_port=gateway,
            service_port_base=65000,
            prometheus_port=prom,
            component_port_base=base,
            components=("storage", "postgres", "cloudsql"),
            traffic_rps=0,
        )
        if all(processes.port_is_free("127.0.0.1", s.component_port(name)) for name in s.components):
            break
    box = Sandbox(s)
    port = s.component_port("cloudsql")
    try:
        endpoints = box.up()["endpoints"]
        assert endpoints["cloudsql"] == f"http://127.0.0.1:{port}"
        exported = json.loads(read_connections_env(s)["AIRFLOW_CONN_VARAI_CLOUDSQL"])
        assert exported == COMPONENT.connections(s, port)[CONN_ID]
        assert (
            requests.get(
                f"{endpoints['cloudsql']}/sql/v1beta4/projects/{PROJECT}/instances/{INSTANCE}/databases", timeout=10
            ).status_code
            == 200
        )
    finally:
        box.down()
    assert processes.find_ours(s.home, [COMPONENT.marker(s, port)]) == []
