"""The discovery-document contract checker, against the real ``sqladmin`` v1beta4 document google-api-python-client
ships (and a small document of its own for what sqladmin has no example of)."""

from __future__ import annotations

import pytest

from varai_deploy import google_contract
from varai_deploy.google_contract import Contract, Match, Problem

SQL = google_contract.load("sqladmin", "v1beta4")
PREFIX = "/sql/v1beta4/projects/varai-sandbox"
EXPORT = {
    "exportContext": {
        "kind": "sql#exportContext",
        "fileType": "SQL",
        "uri": "gs://varai-backups/app.sql.gz",
        "databases": ["app"],
        "sqlExportOptions": {"schemaOnly": False, "tables": [], "postgresExportOptions": {"clean": True}},
    }
}


def fields(problems: list[Problem]) -> list[str]:
    return [p.field for p in problems]


def test_the_shipped_document_is_loaded_once_and_names_its_methods():
    assert google_contract.load("sqladmin", "v1beta4") is SQL
    assert SQL.name == "sqladmin.v1beta4" and SQL.base_path == "/"
    assert {"sql.instances.export", "sql.instances.import", "sql.operations.get"} <= set(SQL.methods)
    with pytest.raises(ValueError, match="no discovery document for nothing v0"):
        google_contract.load("nothing", "v0")


@pytest.mark.parametrize(
    ("http_method", "path", "method_id", "params"),
    [
        ("GET", "/instances/varai-sql", "sql.instances.get", {"instance": "varai-sql"}),
        ("POST", "/instances/varai-sql/export", "sql.instances.export", {"instance": "varai-sql"}),
        ("POST", "/instances/varai-sql/import", "sql.instances.import", {"instance": "varai-sql"}),
        (
            "GET",
            "/instances/varai-sql/databases/app%20db",
            "sql.databases.get",
            {"instance": "varai-sql", "database": "app db"},
        ),
        ("DELETE", "/instances/i/databases/app", "sql.databases.delete", {"instance": "i", "database": "app"}),
        ("GET", "/operations/0b4c-9", "sql.operations.get", {"operation": "0b4c-9"}),
        ("GET", "/operations", "sql.operations.list", {}),
        (
            "GET",
            "/instances/i/backupRuns/1700000000000",
            "sql.backupRuns.get",
            {"instance": "i", "id": "1700000000000"},
        ),
        # More literal text wins over a variable: listServerCas is not instance "i" of something else.
        ("GET", "/instances/i/listServerCas", "sql.instances.listServerCas", {"instance": "i"}),
    ],
)
def test_a_request_finds_its_method_and_path_parameters(http_method, path, method_id, params):
    assert SQL.match(http_method, PREFIX + path) == Match(method_id, {"project": "varai-sandbox", **params})


def test_a_reserved_expansion_spans_segments_and_names_the_methods_own_parameter():
    found = SQL.match("GET", f"{PREFIX}/backups/nightly")
    assert found == Match("sql.backups.getBackup", {"name": "projects/varai-sandbox/backups/nightly"})
    restore = SQL.match("POST", f"{PREFIX}:pointInTimeRestore")
    assert restore == Match("sql.instances.pointInTimeRestore", {"parent": "projects/varai-sandbox"})


@pytest.mark.parametrize(
    ("http_method", "path"),
    [
        ("PUT", f"{PREFIX}/instances/i/export"),  # the path exists, not for this verb
        ("GET", f"{PREFIX}/instances/i/nothing"),
        ("GET", "/v1/projects/p/instances/i"),
        ("GET", f"{PREFIX}/instances/i/"),  # an empty segment is no instance
    ],
)
def test_anything_else_matches_nothing(http_method, path):
    assert SQL.match(http_method, path) is None


def test_a_well_formed_export_with_standard_parameters_has_no_problem():
    found = SQL.match("POST", f"{PREFIX}/instances/varai-sql/export")
    assert SQL.check_request(found, {"alt": ["json"], "prettyPrint": "false"}, EXPORT) == []
    assert SQL.check_request("sql.instances.export", {}, None) == []  # no body: the default request


def test_query_parameters_unknown_misplaced_repeated_or_ill_typed_are_named():
    found = SQL.match("GET", f"{PREFIX}/operations")
    query = {"instance": ["a", "b"], "maxResults": "-1", "verbose": "1", "project": "p", "prettyPrint": "yes"}
    problems = SQL.check_request(found, query, None)
    assert fields(problems) == ["instance", "maxResults", "verbose", "project", "prettyPrint"]
    assert "not repeated" in problems[0].message
    assert "out of range 0..4294967295" in problems[1].message  # uint32
    assert "unknown query parameter (sql.operations.list takes instance, location, maxResults, pageToken" in str(
        problems[2]
    )
    assert problems[3].message == "is a path parameter, not a query parameter"
    assert "true or false" in problems[4].message
    assert SQL.check_request(found, {"maxResults": "x"}, None) == [
        Problem("maxResults", "query parameter must be a whole number (uint32), got 'x'")
    ]


def test_path_parameters_are_typed_too():
    found = SQL.match("GET", f"{PREFIX}/instances/i/backupRuns/latest")
    assert (
        str(SQL.check_request(found, {}, None)[0]) == "id: path parameter must be a whole number (int64), got 'latest'"
    )


@pytest.mark.parametrize(
    ("context", "field", "says"),
    [
        ({"bogus": 1}, "exportContext.bogus", "unknown field (ExportContext has bakExportOptions, csvExportOptions"),
        ({"file_type": "SQL"}, "exportContext.file_type", "unknown field"),  # proto names are not the JSON ones
        ({"fileType": "ZIP"}, "exportContext.fileType", "'ZIP' is not one of SQL_FILE_TYPE_UNSPECIFIED, SQL, CSV"),
        ({"fileType": 1}, "exportContext.fileType", "must be a string, got 1"),
        ({"uri": ["gs://b/o"]}, "exportContext.uri", "must be a string"),
        ({"databases": "app"}, "exportContext.databases", 'must be a JSON array, got "app"'),
        ({"databases": ["app", 7]}, "exportContext.databases[1]", "must be a string, got 7"),
        ({"offload": "true"}, "exportContext.offload", 'must be true or false, got "true"'),
        ({"sqlExportOptions": {"threads": 1.5}}, "exportContext.sqlExportOptions.threads", "must be int32"),
        ({"sqlExportOptions": {"threads": 2**31}}, "exportContext.sqlExportOptions.threads", "out of range"),
        (
            {"sqlExportOptions": {"postgresExportOptions": {"clean": True, "drop": True}}},
            "exportContext.sqlExportOptions.postgresExportOptions.drop",
            "unknown field",
        ),
        (
            {"bakExportOptions": {"exportLogStartTime": "2023-10-01 16:19"}},
            "exportContext.bakExportOptions.exportLogStartTime",
            "RFC 3339",
        ),
    ],
)
def test_a_request_body_is_checked_recursively_naming_the_field(context, field, says):
    problems = SQL.check_request("sql.instances.export", {}, {"exportContext": context})
    assert fields(problems) == [field]
    assert says in problems[0].message


def test_a_body_that_is_not_the_request_schema_or_one_nobody_wants_is_refused():
    assert SQL.check_request("sql.instances.export", {}, ["exportContext"]) == [
        Problem("body", 'must be a JSON object (InstancesExportRequest), got ["exportContext"]')
    ]
    assert SQL.check_request("sql.instances.get", {}, {"name": "x"}) == [
        Problem("body", "sql.instances.get takes no request body")
    ]
    assert SQL.check_request("sql.instances.get", {}, {}) == []


def test_json_mapping_int64_quoted_or_not_in_a_request_null_as_default():
    run = {"id": 1700000000000, "windowStartTime": "2026-01-04T02:00:00.123456789+01:00", "description": None}
    assert SQL.check_request("sql.backupRuns.insert", {}, run) == []
    assert SQL.check_request("sql.backupRuns.insert", {}, {"id": "1700000000000"}) == []
    assert fields(SQL.check_request("sql.backupRuns.insert", {}, {"id": "17e11"})) == ["id"]
    assert fields(SQL.check_request("sql.backupRuns.insert", {}, {"id": True})) == ["id"]
    assert fields(SQL.check_request("sql.backupRuns.insert", {}, {"enqueuedTime": "2026-02-30T00:00:00Z"})) == [
        "enqueuedTime"
    ]


def test_refs_nest_and_maps_check_their_values():
    instance = {
        "settings": {
            "tier": "db-custom-1-3840",
            "dataDiskSizeGb": "10",
            "userLabels": {"team": "sre", "tier": 3},
            "backupConfiguration": {
                "enabled": True,
                "transactionLogRetentionDays": "7",  # int32 quoted: a request may
                "backupRetentionSettings": {"retentionUnit": "DAYS", "retainedBackups": 7},
            },
        }
    }
    problems = SQL.check_request("sql.instances.patch", {}, instance)
    assert fields(problems) == [
        "settings.userLabels.tier",
        "settings.backupConfiguration.backupRetentionSettings.retentionUnit",
    ]
    assert "'DAYS' is not one of RETENTION_UNIT_UNSPECIFIED, COUNT" in problems[1].message


def test_a_response_is_held_to_what_google_sends():
    good = {
        "kind": "sql#backupRun",
        "id": "1700000000000",
        "status": "SUCCESSFUL",
        "type": "ON_DEMAND",
        "enqueuedTime": "2026-01-04T02:00:00.094Z",
        "error": {"kind": "sql#operationError", "code": "X", "message": "m"},
    }
    assert SQL.check_response("sql.backupRuns.get", good) == []
    bad = {**good, "id": 1700000000000, "status": "DONE", "endToEndTime": "2026-01-04T02:00:00Z"}
    problems = SQL.check_response("sql.backupRuns.get", bad)
    assert fields(problems) == ["id", "status", "endToEndTime"]
    assert problems[0].message == "must be int64 as a decimal string (Google's JSON mapping), got 1700000000000"
    int32 = {"settings": {"backupConfiguration": {"transactionLogRetentionDays": "7"}}}
    assert fields(SQL.check_response("sql.instances.get", int32)) == [
        "settings.backupConfiguration.transactionLogRetentionDays"
    ]
    assert SQL.check_response("sql.operations.cancel", {}) == []
    assert fields(SQL.check_response("sql.operations.list", "[]")) == ["body"]


#: What sqladmin has no example of: a required and a patterned parameter, numbers, bytes, durations, free forms.
TOY = Contract(
    {
        "name": "toy",
        "version": "v1",
        "rootUrl": "https://toy.googleapis.com/",
        "servicePath": "toy/v1/",
        "parameters": {"alt": {"type": "string", "location": "query", "enum": ["json", "media"]}},
        "resources": {
            "things": {
                "methods": {
                    "get": {
                        "id": "toy.things.get",
                        "httpMethod": "GET",
                        "path": "{+name}",
                        "flatPath": "things/{thingsId}",
                        "parameters": {
                            "name": {
                                "location": "path",
                                "type": "string",
                                "required": True,
                                "pattern": "^things/[a-z]+$",
                            },
                            "view": {
                                "location": "query",
                                "type": "string",
                                "required": True,
                                "enum": ["BASIC", "FULL"],
                            },
                            "tags": {"location": "query", "type": "string", "repeated": True},
                            "ratio": {"location": "query", "type": "number"},
                            "since": {"location": "query", "type": "string", "format": "google-datetime"},
                        },
                        "response": {"$ref": "Thing"},
                    },
                    "put": {
                        "id": "toy.things.put",
                        "httpMethod": "PUT",
                        "path": "{+name}",
                        "flatPath": "things/{thingsId}",
                        "request": {"$ref": "Thing"},
                    },
                }
            }
        },
        "schemas": {
            "Thing": {
                "id": "Thing",
                "type": "object",
                "properties": {
                    "weight": {"type": "number", "format": "double"},
                    "blob": {"type": "string", "format": "byte"},
                    "ttl": {"type": "string", "format": "google-duration"},
                    "extra": {"type": "object", "additionalProperties": {"type": "any"}},
                    "free": {"type": "object"},
                    "empty": {"$ref": "Empty"},
                    "size": {"type": "string", "format": "uint64"},
                },
            },
            "Empty": {"id": "Empty", "type": "object", "properties": {}},
        },
    }
)


def test_the_service_path_reserved_expansion_and_parameter_rules_of_another_document():
    found = TOY.match("GET", "/toy/v1/things/Bolt")
    assert found == Match("toy.things.get", {"name": "things/Bolt"})
    query = {"tags": ["a", "b"], "ratio": "x", "since": "yesterday", "alt": "proto"}
    problems = TOY.check_request(found, query, None)
    assert fields(problems) == ["ratio", "since", "alt", "view", "name"]
    assert problems[3].message == "required query parameter missing"
    assert problems[4].message == "'things/Bolt' does not match ^things/[a-z]+$"
    ok = TOY.match("GET", "/toy/v1/things/bolt")
    assert TOY.check_request(ok, {"view": "FULL", "ratio": "0.5", "since": "2026-01-04T02:00:00Z"}, None) == []
    assert TOY.match("GET", "/toy/v2/things/bolt") is None


def test_numbers_bytes_durations_and_free_form_objects():
    good = {
        "weight": "NaN",
        "blob": "aGVsbG8=",
        "ttl": "3.5s",
        "extra": {"a": [1, {"b": None}]},
        "free": {"x": 1},
        "empty": {},
        "size": "18446744073709551615",
    }
    assert TOY.check_request("toy.things.put", {}, good) == []
    assert TOY.check_request("toy.things.put", {}, {"weight": "0.5"}) == []  # a request may quote a number
    bad = {"weight": True, "blob": "a b", "ttl": "5m", "empty": {"x": 1}, "size": "-1"}
    assert fields(TOY.check_request("toy.things.put", {}, bad)) == ["weight", "blob", "ttl", "empty.x", "size"]
    assert fields(TOY.check_response("toy.things.get", {"weight": "0.5", "size": 1})) == ["weight", "size"]
    assert (
        str(TOY.check_request("toy.things.put", {}, {"empty": {"x": 1}})[0])
        == "empty.x: unknown field (Empty has no fields)"
    )


# -- what Google's generated REST clients send, and packed Any (run.v2) ----------------------------------------
RUN = google_contract.load("run", "v2")
SERVICES = "/v2/projects/p/locations/l/services"
NUMERIC_ENUMS = {"$alt": ["json;enum-encoding=int"]}


def test_the_alt_system_parameter_is_accepted_with_its_two_json_forms_only():
    found = RUN.match("PATCH", f"{SERVICES}/s")
    assert found == Match("run.projects.locations.services.patch", {"name": "projects/p/locations/l/services/s"})
    assert RUN.check_request(found, {"$alt": "json", "updateMask": "traffic"}, {}) == []
    assert RUN.check_request(found, NUMERIC_ENUMS, {}) == []
    assert fields(RUN.check_request(found, {"$alt": "proto"}, {})) == ["$alt"]


def test_an_enum_may_be_its_number_only_when_the_request_says_enum_encoding_int():
    body = {"ingress": 1, "traffic": [{"type": 2, "revision": "s-1", "percent": 100}]}
    assert RUN.check_request("run.projects.locations.services.patch", NUMERIC_ENUMS, body) == []
    assert fields(RUN.check_request("run.projects.locations.services.patch", {}, body)) == [
        "ingress",
        "traffic[0].type",
    ]
    assert fields(RUN.check_request("run.projects.locations.services.patch", NUMERIC_ENUMS, {"ingress": 2**31})) == [
        "ingress"
    ]
    assert fields(RUN.check_request("run.projects.locations.services.patch", NUMERIC_ENUMS, {"ingress": True})) == [
        "ingress"
    ]
    # An answer names its enums, whatever the request said.
    assert fields(RUN.check_response("run.projects.locations.services.get", {"ingress": 1})) == ["ingress"]
    assert RUN.check_schema("GoogleCloudRunV2Service", {"ingress": "INGRESS_TRAFFIC_ALL"}) == []


def test_a_packed_any_of_a_schema_in_the_document_is_checked_as_that_schema():
    service = "type.googleapis.com/google.cloud.run.v2.Service"
    good = {"name": "o", "done": True, "response": {"@type": service, "name": "s", "generation": "2"}}
    assert RUN.check_response("run.projects.locations.operations.get", good) == []
    bad = {"name": "o", "response": {"@type": service, "generation": 2, "bogus": 1}, "metadata": {"@type": service}}
    problems = RUN.check_response("run.projects.locations.operations.get", bad)
    assert fields(problems) == ["response.generation", "response.bogus"]
    # A type the document does not have (an error detail) stays free-form, as does an object without @type.
    unknown = {"name": "o", "error": {"code": 3, "details": [{"@type": "type.googleapis.com/google.rpc.X", "y": 1}]}}
    assert RUN.check_response("run.projects.locations.operations.get", unknown) == []
    assert RUN.check_response("run.projects.locations.operations.get", {"response": {"anything": [1]}}) == []
    assert RUN.packed_schema({"type": "object", "additionalProperties": {"type": "any"}}, {"@type": 7}) is None


@pytest.mark.parametrize(
    ("mask", "ok"),
    [
        ("traffic", True),
        ("template,traffic", True),
        ("template.revision,scaling.min_instance_count", True),
        ("*", True),
        ("", True),
        ("traffic,", False),
        ("template..revision", False),
        ("traffic template", False),
    ],
)
def test_a_field_mask_is_comma_separated_field_paths(mask, ok):
    problems = RUN.check_request("run.projects.locations.services.patch", {"updateMask": mask}, {})
    assert (problems == []) is ok
    if not ok:
        assert "comma-separated field paths" in problems[0].message
