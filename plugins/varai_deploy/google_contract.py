"""A Google REST API's contract, read from the discovery document google-api-python-client ships.

The sandbox's stand-ins for Google APIs (Cloud SQL Admin now, Cloud Run Admin next) must refuse what the
real API refuses and never answer what it would not, or a path passes here and fails against Google. The
discovery document is that contract in machine-readable form: this module finds the method a request is
for and lists every way a request or a response departs from the method's parameters and schemas. Pure
functions over the JSON: no server, no network.

The JSON mapping is proto3's, as Google's front ends apply it: an int64/uint64 is a decimal string (a
request may also give a JSON integer, which Google accepts; a response must give the string, as Google
does), int32/uint32 are JSON integers (a request may quote them), enums are given by name, ``null`` stands
for a field's default, ``google-datetime`` is RFC 3339 with a zone, ``google-duration`` seconds such as
``3.5s``, ``google-fieldmask`` comma-separated field paths. Fields are the discovery document's lowerCamelCase
names (Google would also accept the proto snake_case ones; callers here never send those, so the stand-ins
refuse them).

Google's generated REST clients (``google.cloud.*`` with ``transport="rest"``) send two things the discovery
document does not describe: the system parameter ``$alt=json;enum-encoding=int`` and, accordingly, enums as
their numbers. A request that says so may give an enum as a JSON integer (the document carries no numbers, so
only its type is checked here: a stand-in maps it with the API's proto descriptors); a response names it. A packed
``google.protobuf.Any`` (an object with ``@type``, such as a long-running operation's ``response``) whose type is
one of the document's schemas (``type.googleapis.com/google.cloud.run.v2.Service`` is ``GoogleCloudRunV2Service``,
the discovery naming) is checked as that schema; any other stays free-form.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

_TEMPLATE_VAR = re.compile(r"\{(\+?)([^}]+)\}")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})", re.IGNORECASE)
_DURATION = re.compile(r"-?\d+(?:\.\d{1,9})?s")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")
_DECIMAL = re.compile(r"-?\d+")
_FIELD_PATH = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_FIELD_MASK = re.compile(rf"(?:\*|{_FIELD_PATH}(?:,{_FIELD_PATH})*)?")
#: System parameters Google accepts on every method that discovery documents leave out (see the module's doc).
_NUMERIC_ENUMS = "json;enum-encoding=int"
_SYSTEM_PARAMETERS = {
    "$alt": {"type": "string", "location": "query", "enum": ["json", _NUMERIC_ENUMS]},
}
#: Inclusive ranges of the integer formats.
_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
_FLOAT_WORDS = ("NaN", "Infinity", "-Infinity")


@dataclass(frozen=True)
class Problem:
    """One departure from the contract: the field (a dotted body path or a parameter name) and what is wrong."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class Match:
    """The method a request is for, and its path parameters (percent-decoded, by the method's own names)."""

    method_id: str
    params: dict[str, str]


@dataclass(frozen=True)
class _Route:
    http_method: str
    pattern: re.Pattern[str]
    method_id: str
    #: Literal characters in the template: the most specific of several matching templates wins.
    literal: int
    #: The method's own ``path`` template (``{+name}`` where ``flatPath`` has ``{projectsId}``...).
    path: re.Pattern[str]
    path_names: tuple[str, ...]


def _template(template: str) -> tuple[re.Pattern[str], tuple[str, ...], int]:
    """A URI template as a regex: ``{x}`` is one path segment, ``{+x}`` (reserved expansion) may span several."""
    parts, names, literal, pos = [], [], 0, 0
    for var in _TEMPLATE_VAR.finditer(template):
        parts.append(re.escape(template[pos : var.start()]))
        literal += var.start() - pos
        parts.append("(.+)" if var.group(1) else "([^/]+)")
        names.append(var.group(2))
        pos = var.end()
    parts.append(re.escape(template[pos:]))
    literal += len(template) - pos
    return re.compile("".join(parts)), tuple(names), literal


def _methods(resources: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for resource in resources.values():
        yield from resource.get("methods", {}).values()
        yield from _methods(resource.get("resources", {}))


class Contract:
    """One API version's discovery document: its methods, their parameters and schemas."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.schemas: Mapping[str, Any] = document.get("schemas", {})
        self.base_path = urlsplit(document["rootUrl"] + document.get("servicePath", "")).path
        self.methods = {m["id"]: m for m in _methods(document.get("resources", {}))}
        self._routes = [self._route(m) for m in self.methods.values()]

    @staticmethod
    def _route(method: Mapping[str, Any]) -> _Route:
        pattern, _, literal = _template(method.get("flatPath") or method["path"])
        path, names, _ = _template(method["path"])
        return _Route(method["httpMethod"], pattern, method["id"], literal, path, names)

    @property
    def name(self) -> str:
        return f"{self.document['name']}.{self.document['version']}"

    # -- requests ----------------------------------------------------------------------------------
    def match(self, http_method: str, path: str) -> Match | None:
        """The method ``http_method path`` (the URL's path, still percent-encoded) is for; None when none is."""
        if not path.startswith(self.base_path):
            return None
        relative = path[len(self.base_path) :]
        found = [r for r in self._routes if r.http_method == http_method.upper() and r.pattern.fullmatch(relative)]
        if not found:
            return None
        route = max(found, key=lambda r: r.literal)
        named = route.path.fullmatch(relative)  # the flat template matched; the method's own names its variables
        values = named.groups() if named else ()
        return Match(route.method_id, {n: unquote(v) for n, v in zip(route.path_names, values, strict=False)})

    def check_request(
        self,
        method: Match | str,
        query: Mapping[str, str | Sequence[str]],
        body: Any,
        path_params: Mapping[str, str] | None = None,
    ) -> list[Problem]:
        """Every way a request departs from the method: unknown, repeated, missing or ill-typed parameters
        (query and, given a :class:`Match` or ``path_params``, path), and a body that is not the method's
        request schema (or a body for a method that takes none). ``body`` is the parsed JSON, None for none."""
        if isinstance(method, Match):
            path_params = {**method.params, **(path_params or {})}
            method = method.method_id
        spec = self.methods[method]
        problems = self._check_query(spec, query)
        declared = spec.get("parameters", {})
        for name, value in (path_params or {}).items():
            if name in declared:
                problems += _check_text(declared[name], value, name, "path parameter")
        request = spec.get("request")
        if request is None:
            if body not in (None, {}):
                problems.append(Problem("body", f"{method} takes no request body"))
        elif body is not None:
            numeric_enums = _NUMERIC_ENUMS in _values(query.get("$alt", ()))
            problems += self._check_value(request, body, "", strict=False, numeric_enums=numeric_enums)
        return problems

    def _check_query(self, spec: Mapping[str, Any], query: Mapping[str, str | Sequence[str]]) -> list[Problem]:
        declared = spec.get("parameters", {})
        standard = self.document.get("parameters", {})
        problems = []
        for name, raw in query.items():
            values = _values(raw)
            param = declared.get(name) or standard.get(name) or _SYSTEM_PARAMETERS.get(name)
            if param is None:
                known = sorted(n for n, p in declared.items() if p.get("location") == "query")
                takes = f"{spec['id']} takes {', '.join(known)}" if known else f"{spec['id']} takes none"
                problems.append(Problem(name, f"unknown query parameter ({takes}, and the standard ones)"))
                continue
            if param.get("location") == "path":
                problems.append(Problem(name, "is a path parameter, not a query parameter"))
                continue
            if len(values) > 1 and not param.get("repeated"):
                problems.append(Problem(name, f"given {len(values)} times; the parameter is not repeated"))
            for value in values:
                problems += _check_text(param, value, name, "query parameter")
        for name, param in declared.items():
            if param.get("required") and param.get("location") == "query" and name not in query:
                problems.append(Problem(name, "required query parameter missing"))
        return problems

    # -- responses ---------------------------------------------------------------------------------
    def check_response(self, method: Match | str, body: Any) -> list[Problem]:
        """Every way a successful response's body departs from the method's response schema, as Google
        would send it (int64 as strings)."""
        spec = self.methods[method.method_id if isinstance(method, Match) else method]
        response = spec.get("response")
        if response is None:
            return [] if body in (None, {}) else [Problem("body", f"{spec['id']} answers no body")]
        return self._check_value(response, body, "", strict=True)

    # -- schemas -----------------------------------------------------------------------------------
    def check_schema(self, schema_id: str, value: Any, strict: bool = True) -> list[Problem]:
        """Every way ``value`` departs from the document's schema ``schema_id`` (``strict``: as a response must
        be; otherwise as a request may be)."""
        return self._check_value({"$ref": schema_id}, value, "", strict)

    def packed_schema(self, schema: Mapping[str, Any], value: Any) -> Mapping[str, Any] | None:
        """The document's schema for a packed ``Any`` (``value`` with ``@type`` where ``schema`` is a free-form
        object), or None when ``value`` is not one or its type is not in the document."""
        if schema.get("properties") or (schema.get("additionalProperties") or {}).get("type") != "any":
            return None
        type_url = value.get("@type") if isinstance(value, dict) else None
        if not isinstance(type_url, str):
            return None
        full_name = type_url.rpartition("/")[2]
        return self.schemas.get("".join(part[:1].upper() + part[1:] for part in full_name.split(".")))

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """A schema with its ``$ref`` followed (the referring one's own keys, like ``readOnly``, dropped)."""
        while "$ref" in schema:
            schema = self.schemas[schema["$ref"]]
        return schema

    def _check_value(
        self, schema: Mapping[str, Any], value: Any, field: str, strict: bool, numeric_enums: bool = False
    ) -> list[Problem]:
        if value is None:  # JSON null: the field's default
            return []
        schema = self.resolve(schema)
        kind = schema.get("type")
        where = field or "body"
        if kind == "object":
            if not isinstance(value, dict):
                return [Problem(where, f"must be a JSON object ({schema.get('id', 'object')}), got {_json(value)}")]
            packed = self.packed_schema(schema, value)
            if packed is not None:
                unpacked = {k: v for k, v in value.items() if k != "@type"}
                return self._check_object(packed, unpacked, field, strict, numeric_enums)
            return self._check_object(schema, value, field, strict, numeric_enums)
        if kind == "array":
            if not isinstance(value, list):
                return [Problem(where, f"must be a JSON array, got {_json(value)}")]
            problems = []
            for index, item in enumerate(value):
                problems += self._check_value(schema.get("items", {}), item, f"{field}[{index}]", strict, numeric_enums)
            return problems
        return _check_scalar(schema, value, where, strict, numeric_enums)

    def _check_object(
        self, schema: Mapping[str, Any], value: dict[str, Any], field: str, strict: bool, numeric_enums: bool
    ) -> list[Problem]:
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        if properties is None and extra is None:
            return []  # a free-form object
        problems = []
        for key, item in value.items():
            path = f"{field}.{key}" if field else key
            if properties and key in properties:
                problems += self._check_value(properties[key], item, path, strict, numeric_enums)
            elif extra is not None:
                problems += self._check_value(extra, item, path, strict, numeric_enums)
            else:
                known = ", ".join(sorted(properties or {})) or "no fields"
                problems.append(Problem(path, f"unknown field ({schema.get('id', 'this object')} has {known})"))
        return problems


def _check_scalar(
    schema: Mapping[str, Any], value: Any, where: str, strict: bool, numeric_enums: bool = False
) -> list[Problem]:
    """A JSON string, number or boolean against its schema (``strict``: as a response must be;
    ``numeric_enums``: an enum may be given by number)."""
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "any":
        return []
    if kind == "boolean":
        return [] if isinstance(value, bool) else [Problem(where, f"must be true or false, got {_json(value)}")]
    if kind == "integer" or (kind == "string" and fmt in ("int64", "uint64")):
        return _check_integer(schema, value, where, quoted=kind == "string", strict=strict)
    if kind == "number":
        return _check_number(value, where, strict)
    if kind == "string":
        if schema.get("enum") and numeric_enums and isinstance(value, int) and not isinstance(value, bool):
            return _check_range({"format": "int32"}, value, where)  # the enum's number (enum-encoding=int)
        if not isinstance(value, str):
            return [Problem(where, f"must be a string, got {_json(value)}")]
        return _check_text(schema, value, where, "field")
    return []


def _check_integer(schema: Mapping[str, Any], value: Any, where: str, quoted: bool, strict: bool) -> list[Problem]:
    """An integer: int64/uint64 are decimal strings (``quoted``), int32/uint32 JSON integers; a request may
    give either form, a response (``strict``) only the canonical one."""
    fmt = schema.get("format", "int32")
    canonical = "a decimal string" if quoted else "a JSON integer"
    if isinstance(value, bool) or not isinstance(value, int | str):
        return [Problem(where, f"must be {fmt}, {canonical}, got {_json(value)}")]
    if strict and isinstance(value, str) != quoted:
        return [Problem(where, f"must be {fmt} as {canonical} (Google's JSON mapping), got {_json(value)}")]
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        return [Problem(where, f"must be {fmt}, {canonical}, got {_json(value)}")]
    return _check_range(schema, int(value), where)


def _check_range(schema: Mapping[str, Any], number: int, where: str) -> list[Problem]:
    low, high = _RANGES.get(schema.get("format", "int32"), _RANGES["int64"])
    if "minimum" in schema:
        low = max(low, int(schema["minimum"]))
    if "maximum" in schema:
        high = min(high, int(schema["maximum"]))
    if not low <= number <= high:
        return [Problem(where, f"{number} is out of range {low}..{high}")]
    return []


def _check_number(value: Any, where: str, strict: bool) -> list[Problem]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return []
    if isinstance(value, str) and (value in _FLOAT_WORDS or (not strict and _is_float(value))):
        return []
    return [Problem(where, f"must be a JSON number, got {_json(value)}")]


def _check_text(schema: Mapping[str, Any], text: str, where: str, what: str) -> list[Problem]:
    """A value that arrives as text (a parameter, or a JSON string field): type, format, enum, pattern."""
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "boolean":
        ok = text in ("true", "false")
        return [] if ok else [Problem(where, f"{what} must be true or false, got {text!r}")]
    if kind == "integer" or fmt in ("int64", "uint64"):
        if not _DECIMAL.fullmatch(text):
            return [Problem(where, f"{what} must be a whole number ({fmt or 'int32'}), got {text!r}")]
        return _check_range(schema, int(text), where)
    if kind == "number":
        return (
            []
            if _is_float(text) or text in _FLOAT_WORDS
            else [Problem(where, f"{what} must be a number, got {text!r}")]
        )
    problems = _check_format(fmt, text, where)
    enum = schema.get("enum")
    if enum and text not in enum:
        problems.append(Problem(where, f"{text!r} is not one of {', '.join(enum)}"))
    pattern = schema.get("pattern")
    if pattern and not re.search(pattern, text):
        problems.append(Problem(where, f"{text!r} does not match {pattern}"))
    return problems


def _check_format(fmt: str | None, text: str, where: str) -> list[Problem]:
    if fmt == "google-datetime" and not _is_rfc3339(text):
        return [Problem(where, f"must be an RFC 3339 time such as 2026-01-04T02:00:00.094Z, got {text!r}")]
    if fmt == "google-duration" and not _DURATION.fullmatch(text):
        return [Problem(where, f"must be a duration in seconds such as 3.5s, got {text!r}")]
    if fmt == "byte" and not _BASE64.fullmatch(text):
        return [Problem(where, f"must be base64, got {text!r}")]
    if fmt == "google-fieldmask" and not _FIELD_MASK.fullmatch(text):
        return [Problem(where, f"must be comma-separated field paths such as traffic,template.revision, got {text!r}")]
    return []


def _is_rfc3339(text: str) -> bool:
    found = _RFC3339.fullmatch(text)
    if found is None:
        return False
    fraction = found.group(1)
    plain = text[:19] + (f".{fraction[:6]}" if fraction else "") + found.group(2).upper().replace("Z", "+00:00")
    try:
        datetime.fromisoformat(plain)
    except ValueError:
        return False
    return True


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity")


def _values(raw: str | Sequence[str]) -> list[str]:
    """A query parameter's values (``parse_qs`` gives lists, a caller may give one string)."""
    return [raw] if isinstance(raw, str) else list(raw)


def _json(value: Any) -> str:
    shown = json.dumps(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


@functools.cache
def load(service: str, version: str) -> Contract:
    """The contract of ``service`` ``version`` (e.g. ``sqladmin``, ``v1beta4``) from the discovery document
    google-api-python-client ships (the one its ``build()`` uses); ValueError when it ships none."""
    from googleapiclient.discovery_cache import get_static_doc

    text = get_static_doc(service, version)
    if text is None:
        raise ValueError(f"google-api-python-client ships no discovery document for {service} {version}")
    return Contract(json.loads(text))
