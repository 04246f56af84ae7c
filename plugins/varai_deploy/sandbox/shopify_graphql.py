"""Just enough GraphQL for the Shopify stand-in to check requests the way a real GraphQL server does.

A schema written in SDL, documents with one operation (no fragments, directives or default values:
the Shopify CLI's documents use none), static validation, variable coercion and execution against
plain dicts whose arguments-taking fields are callables. Error wording follows graphql-ruby, which
the Shopify Partners API runs on. Standard library only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

BUILTIN_SCALARS = frozenset({"String", "Int", "Boolean", "ID"})
_TOKEN = re.compile(
    r"""(?P<skip>[\s,\ufeff]+|\#[^\n\r]*)
      |(?P<spread>\.\.\.)
      |(?P<punct>[!$():=@\[\]{|}&])
      |(?P<name>[_A-Za-z][_0-9A-Za-z]*)
      |(?P<number>-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)
      |(?P<string>"(?:[^"\\\n\r]|\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4}))*")""",
    re.VERBOSE,
)


class GraphQLError(Exception):
    def __init__(self, message: str, line: int = 0, column: int = 0, extensions: dict | None = None) -> None:
        super().__init__(message)
        self.line, self.column, self.extensions = line, column, extensions

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": str(self)}
        if self.line:
            out["locations"] = [{"line": self.line, "column": self.column}]
        if self.extensions:
            out["extensions"] = self.extensions
        return out


class FieldError(Exception):
    """Raised by a resolver: the field is null and the answer carries this error with its path."""


@dataclass(frozen=True)
class TypeRef:
    name: str | None  #: None for a list of ``of``
    of: TypeRef | None = None
    nonnull: bool = False

    def __str__(self) -> str:
        inner = self.name if self.name else f"[{self.of}]"
        return f"{inner}!" if self.nonnull else inner

    @property
    def base(self) -> str:
        return self.name if self.name else self.of.base  # type: ignore[union-attr]


@dataclass
class Field:
    name: str
    alias: str | None
    args: dict[str, tuple]  #: ("var", name) | ("lit", value) | ("enum", name) | ("list", [...]) | ("obj", {...})
    selections: list[Field] | None
    line: int
    column: int


@dataclass
class Operation:
    kind: str
    name: str | None
    variables: dict[str, tuple[TypeRef, int, int]]
    selections: list[Field]

    @property
    def label(self) -> str:
        return self.name or f"anonymous {self.kind}"


@dataclass
class Schema:
    #: type -> field -> (type, {argument: type})
    objects: dict[str, dict[str, tuple[TypeRef, dict[str, TypeRef]]]] = field(default_factory=dict)
    inputs: dict[str, dict[str, TypeRef]] = field(default_factory=dict)
    enums: dict[str, frozenset[str]] = field(default_factory=dict)
    scalars: set[str] = field(default_factory=lambda: set(BUILTIN_SCALARS))

    @classmethod
    def from_sdl(cls, sdl: str) -> Schema:
        schema, parser = cls(), _Parser(sdl)
        while not parser.done():
            kind, name = parser.take("name"), parser.take("name")
            if kind == "scalar":
                schema.scalars.add(name)
                continue
            parser.take(text="{")
            if kind == "enum":
                values = []
                while not parser.peek("}"):
                    values.append(parser.take("name"))
                schema.enums[name] = frozenset(values)
            else:
                fields: dict[str, Any] = {}
                while not parser.peek("}"):
                    fname = parser.take("name")
                    args = parser.argument_types() if parser.peek("(") else {}
                    parser.take(text=":")
                    fields[fname] = parser.type_ref() if kind == "input" else (parser.type_ref(), args)
                (schema.inputs if kind == "input" else schema.objects)[name] = fields
            parser.take(text="}")
        return schema

    def is_leaf(self, name: str) -> bool:
        return name in self.scalars or name in self.enums

    def is_input(self, name: str) -> bool:
        return self.is_leaf(name) or name in self.inputs


# -- parsing ----------------------------------------------------------------------------------------
class _Parser:
    def __init__(self, source: str) -> None:
        self.source, self.tokens, self.i = source, [], 0
        pos = 0
        while pos < len(source):
            match = _TOKEN.match(source, pos)
            if not match:
                raise self._error_at(pos, source[pos], "UNKNOWN_CHAR")
            if match.lastgroup != "skip":
                self.tokens.append((match.lastgroup or "", match.group(), pos))
            pos = match.end()

    def _position(self, pos: int) -> tuple[int, int]:
        return self.source.count("\n", 0, pos) + 1, pos - (self.source.rfind("\n", 0, pos) + 1) + 1

    def _error_at(self, pos: int, text: str, kind: str) -> GraphQLError:
        line, column = self._position(pos)
        return GraphQLError(f"Parse error on {json.dumps(text)} ({kind}) at [{line}, {column}]", line, column)

    def where(self) -> tuple[int, int]:
        return self._position(self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.source))

    def fail(self, unsupported: str | None = None) -> GraphQLError:
        if unsupported:
            line, column = self.where()
            return GraphQLError(f"{unsupported} are not supported by the sandbox's Shopify stand-in", line, column)
        if self.done():
            return self._error_at(len(self.source), "end of file", "EOF")
        kind, text, pos = self.tokens[self.i]
        return self._error_at(pos, text, kind.upper())

    def done(self) -> bool:
        return self.i >= len(self.tokens)

    def peek(self, text: str) -> bool:
        return not self.done() and self.tokens[self.i][0] != "string" and self.tokens[self.i][1] == text

    def take(self, kind: str | None = None, text: str | None = None) -> str:
        if self.done() or (kind and self.tokens[self.i][0] != kind) or (text and not self.peek(text)):
            raise self.fail()
        self.i += 1
        return self.tokens[self.i - 1][1]

    def type_ref(self) -> TypeRef:
        if self.peek("["):
            self.take(text="[")
            ref = TypeRef(None, self.type_ref())
            self.take(text="]")
        else:
            ref = TypeRef(self.take("name"))
        if self.peek("!"):
            self.take(text="!")
            ref = TypeRef(ref.name, ref.of, True)
        return ref

    def argument_types(self) -> dict[str, TypeRef]:
        self.take(text="(")
        args = {}
        while not self.peek(")"):
            name = self.take("name")
            self.take(text=":")
            args[name] = self.type_ref()
        self.take(text=")")
        return args

    def operation(self) -> Operation:
        if self.done():
            raise GraphQLError("Unexpected end of document")
        if self.peek("{"):
            op = Operation("query", None, {}, self._selection_set())
        else:
            kind = self.take("name")
            if kind not in ("query", "mutation"):
                self.i -= 1
                raise self.fail("Subscriptions" if kind == "subscription" else None)
            name = self.take("name") if not self.done() and self.tokens[self.i][0] == "name" else None
            variables: dict[str, tuple[TypeRef, int, int]] = {}
            if self.peek("("):
                self.take(text="(")
                while not self.peek(")"):
                    line, column = self.where()
                    self.take(text="$")
                    var = self.take("name")
                    self.take(text=":")
                    variables[var] = (self.type_ref(), line, column)
                    if self.peek("="):
                        raise self.fail("Variable default values")
                self.take(text=")")
            if self.peek("@"):
                raise self.fail("Directives")
            op = Operation(kind, name, variables, self._selection_set())
        if not self.done():
            raise self.fail("Fragments" if self.peek("fragment") else "Documents with several operations")
        return op

    def _selection_set(self) -> list[Field]:
        self.take(text="{")
        fields = []
        while not self.peek("}"):
            if self.peek("..."):
                raise self.fail("Fragments")
            fields.append(self._field())
        self.take(text="}")
        if not fields:
            self.i -= 1
            raise self.fail()
        return fields

    def _field(self) -> Field:
        line, column = self.where()
        name, alias = self.take("name"), None
        if self.peek(":"):
            self.take(text=":")
            name, alias = self.take("name"), name
        args: dict[str, tuple] = {}
        if self.peek("("):
            self.take(text="(")
            while not self.peek(")"):
                key = self.take("name")
                self.take(text=":")
                args[key] = self._value()
            self.take(text=")")
        if self.peek("@"):
            raise self.fail("Directives")
        return Field(name, alias, args, self._selection_set() if self.peek("{") else None, line, column)

    def _value(self) -> tuple:
        if self.done():
            raise self.fail()
        kind, text, _ = self.tokens[self.i]
        self.i += 1
        if kind == "punct" and text == "$":
            return ("var", self.take("name"))
        if kind == "punct" and text == "[":
            items = []
            while not self.peek("]"):
                items.append(self._value())
            self.take(text="]")
            return ("list", items)
        if kind == "punct" and text == "{":
            fields = {}
            while not self.peek("}"):
                key = self.take("name")
                self.take(text=":")
                fields[key] = self._value()
            self.take(text="}")
            return ("obj", fields)
        if kind == "string":
            return ("lit", json.loads(text))
        if kind == "number":
            return ("lit", float(text) if any(c in text for c in ".eE") else int(text))
        if kind == "name":
            return {"true": ("lit", True), "false": ("lit", False), "null": ("lit", None)}.get(text, ("enum", text))
        self.i -= 1
        raise self.fail()


def parse(document: str) -> Operation:
    return _Parser(document).operation()


# -- validation ---------------------------------------------------------------------------------------
def _usable(declared: TypeRef, expected: TypeRef) -> bool:
    """May a variable of type ``declared`` stand where ``expected`` is (the spec's IsVariableUsageAllowed)?"""
    if expected.nonnull and not declared.nonnull:
        return False
    if (declared.name is None) != (expected.name is None):
        return False
    if declared.name is not None:
        return declared.name == expected.name
    return _usable(declared.of, expected.of)  # type: ignore[arg-type]


class _Validator:
    def __init__(self, schema: Schema, op: Operation) -> None:
        self.schema, self.op = schema, op
        self.errors: list[GraphQLError] = []
        self.usages: list[tuple[str, TypeRef, str, Field]] = []

    def run(self) -> list[GraphQLError]:
        for var, (ref, line, column) in self.op.variables.items():
            if not self.schema.is_input(ref.base):
                self.errors.append(GraphQLError(f"{ref.base} isn't a defined input type (on ${var})", line, column))
        self._selections("Query" if self.op.kind == "query" else "Mutation", self.op.selections)
        used = set()
        for var, expected, where, node in self.usages:
            used.add(var)
            if var not in self.op.variables:
                self._error(
                    f"Variable ${var} is used by {self.op.label} but not declared",
                    node,
                    {"code": "variableNotDefined", "variableName": var},
                )
                continue
            declared = self.op.variables[var][0]
            if not _usable(declared, expected):
                problem = "Nullability mismatch" if declared.base == expected.base else "Type mismatch"
                self._error(f"{problem} on variable ${var} and argument {where} ({declared} / {expected})", node)
        for var, (_ref, line, column) in self.op.variables.items():
            if var not in used:
                self.errors.append(
                    GraphQLError(
                        f"Variable ${var} is declared by {self.op.label} but not used",
                        line,
                        column,
                        {"code": "variableNotUsed", "variableName": var},
                    )
                )
        return self.errors

    def _error(self, message: str, node: Field, extensions: dict | None = None) -> None:
        self.errors.append(GraphQLError(message, node.line, node.column, extensions))

    def _selections(self, type_name: str, fields: list[Field]) -> None:
        for node in fields:
            definition = self.schema.objects[type_name].get(node.name)
            if definition is None:
                self._error(
                    f"Field '{node.name}' doesn't exist on type '{type_name}'",
                    node,
                    {"code": "undefinedField", "typeName": type_name, "fieldName": node.name},
                )
                continue
            out_type, arg_types = definition
            for arg, value in node.args.items():
                if arg in arg_types:
                    self._value(value, arg_types[arg], arg, f"Field '{node.name}'", node)
                else:
                    self._error(
                        f"Field '{node.name}' doesn't accept argument '{arg}'",
                        node,
                        {"code": "argumentNotAccepted", "name": node.name, "typeName": "Field", "argumentName": arg},
                    )
            missing = [a for a, t in arg_types.items() if t.nonnull and a not in node.args]
            if missing:
                self._error(
                    f"Field '{node.name}' is missing required arguments: {', '.join(missing)}",
                    node,
                    {"code": "missingRequiredArguments", "className": "Field", "name": node.name},
                )
            base = out_type.base
            if self.schema.is_leaf(base) and node.selections:
                names = ", ".join(f.name for f in node.selections)
                self._error(
                    f"Selections can't be made on scalars (field '{node.name}' returns {base} "
                    f"but has selections [{names}])",
                    node,
                )
            elif not self.schema.is_leaf(base) and not node.selections:
                self._error(
                    f"Field must have selections (field '{node.name}' returns {base} but has no selections. "
                    f"Did you mean '{node.name} {{ ... }}'?)",
                    node,
                )
            elif node.selections:
                self._selections(base, node.selections)

    def _value(self, value: tuple, expected: TypeRef, where: str, owner: str, node: Field) -> None:
        kind, payload = value
        if kind == "var":
            self.usages.append((payload, expected, where, node))
        elif kind == "obj" and expected.name in self.schema.inputs:
            fields = self.schema.inputs[expected.name]
            for key, item in payload.items():
                if key in fields:
                    self._value(item, fields[key], key, f"InputObject '{expected.name}'", node)
                else:
                    self._error(f"InputObject '{expected.name}' doesn't accept argument '{key}'", node)
            for key, ref in fields.items():
                if ref.nonnull and key not in payload:
                    self._error(
                        f"Argument '{key}' on InputObject '{expected.name}' is required. Expected type {ref}", node
                    )
        elif kind == "list" and expected.name is None:
            for item in payload:
                self._value(item, expected.of, where, owner, node)  # type: ignore[arg-type]
        elif not self._literal_ok(value, expected):
            self._error(
                f"Argument '{where}' on {owner} has an invalid value ({json.dumps(payload)}). "
                f"Expected type '{expected}'.",
                node,
            )

    def _literal_ok(self, value: tuple, expected: TypeRef) -> bool:
        kind, payload = value
        if kind == "lit" and payload is None:
            return not expected.nonnull
        if expected.name is None:
            return self._literal_ok(value, expected.of)  # type: ignore[arg-type]
        if expected.name in self.schema.enums:
            return kind == "enum" and payload in self.schema.enums[expected.name]
        if kind != "lit":
            return expected.name not in BUILTIN_SCALARS and expected.name in self.schema.scalars
        return _scalar_ok(expected.name, payload)


def _scalar_ok(name: str, value: Any) -> bool:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    checks = {
        "String": isinstance(value, str),
        "Int": is_int and -(2**31) <= value < 2**31,
        "Boolean": isinstance(value, bool),
        "ID": isinstance(value, str) or is_int,
    }
    return checks.get(name, True)  # custom scalars (JSON) take any value


def validate(schema: Schema, op: Operation) -> list[GraphQLError]:
    return _Validator(schema, op).run()


# -- variables ------------------------------------------------------------------------------------------
def _coerce(schema: Schema, value: Any, ref: TypeRef, path: list, problems: list[dict]) -> Any:
    if value is None:
        if ref.nonnull:
            problems.append({"path": path, "explanation": "Expected value to not be null"})
        return None
    if ref.name is None:
        items = value if isinstance(value, list) else [value]
        return [_coerce(schema, v, ref.of, [*path, i], problems) for i, v in enumerate(items)]  # type: ignore[arg-type]
    name = ref.name
    if name in schema.inputs:
        if not isinstance(value, dict):
            problems.append({"path": path, "explanation": f"Expected {json.dumps(value)} to be a key-value object."})
            return None
        fields = schema.inputs[name]
        problems += [
            {"path": [*path, key], "explanation": f"Field is not defined on {name}"}
            for key in value
            if key not in fields
        ]
        return {key: _coerce(schema, value.get(key), fref, [*path, key], problems) for key, fref in fields.items()}
    if name in schema.enums:
        if value not in schema.enums[name]:
            allowed = ", ".join(sorted(schema.enums[name]))
            problems.append({"path": path, "explanation": f"Expected {json.dumps(value)} to be one of: {allowed}"})
        return value
    if not _scalar_ok(name, value):
        problems.append({"path": path, "explanation": f"Could not coerce value {json.dumps(value)} to {name}"})
        return None
    return str(value) if name == "ID" else value


def coerce_variables(schema: Schema, op: Operation, raw: dict[str, Any]) -> tuple[dict[str, Any], list[GraphQLError]]:
    """The declared variables from the request's JSON; values the server would refuse become errors."""
    values, errors = {}, []
    for var, (ref, line, column) in op.variables.items():
        problems: list[dict] = []
        values[var] = _coerce(schema, raw.get(var), ref, [], problems)
        if problems:
            errors.append(
                GraphQLError(
                    f"Variable ${var} of type {ref} was provided invalid value",
                    line,
                    column,
                    {"value": raw.get(var), "problems": problems},
                )
            )
    return values, errors


# -- execution ------------------------------------------------------------------------------------------
def _resolve(value: tuple, variables: dict[str, Any]) -> Any:
    kind, payload = value
    if kind == "var":
        return variables.get(payload)
    if kind == "list":
        return [_resolve(item, variables) for item in payload]
    if kind == "obj":
        return {key: _resolve(item, variables) for key, item in payload.items()}
    return payload


@dataclass
class _Execution:
    schema: Schema
    variables: dict[str, Any]
    errors: list[dict] = field(default_factory=list)

    def project(self, value: Any, type_name: str, fields: list[Field], path: list) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for node in fields:
            key = node.alias or node.name
            out_type, _ = self.schema.objects[type_name][node.name]
            raw = value.get(node.name) if isinstance(value, dict) else None
            if callable(raw):
                try:
                    raw = raw({arg: _resolve(v, self.variables) for arg, v in node.args.items()})
                except FieldError as exc:
                    error = GraphQLError(str(exc), node.line, node.column).to_dict()
                    self.errors.append({**error, "path": [*path, key]})
                    raw = None
            out[key] = self.complete(raw, out_type, node, [*path, key])
        return out

    def complete(self, value: Any, ref: TypeRef, node: Field, path: list) -> Any:
        if value is None:
            return None
        if ref.name is None:
            return [self.complete(v, ref.of, node, [*path, i]) for i, v in enumerate(value)]  # type: ignore[arg-type]
        if ref.name in self.schema.objects:
            return self.project(value, ref.name, node.selections or [], path)
        return value


def execute(schema: Schema, op: Operation, variables: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """``{"data": ...}`` (plus ``errors`` from resolvers): fields are read from ``root``, callables are called
    with the field's arguments, in document order (so mutations run one after the other)."""
    run = _Execution(schema, variables)
    data = run.project(root, "Query" if op.kind == "query" else "Mutation", op.selections, [])
    return {"data": data, **({"errors": run.errors} if run.errors else {})}


class Refused(Exception):
    """The request never reaches execution; ``errors`` is the answer's ``errors`` list."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(e["message"] for e in errors))
        self.errors = errors


def prepare(schema: Schema, body: Any) -> tuple[Operation, dict[str, Any]]:
    """The request's operation, validated, and its coerced variables; raises :class:`Refused` otherwise."""
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise Refused([{"message": "No query string was present"}])
    raw = body.get("variables") or {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw or "{}")
        except ValueError:
            raw = None
    if not isinstance(raw, dict):
        raise Refused([{"message": "Variables must be a JSON object"}])
    try:
        op = parse(body["query"])
    except GraphQLError as exc:
        raise Refused([exc.to_dict()]) from None
    errors = validate(schema, op)
    if not errors:
        variables, errors = coerce_variables(schema, op, raw)
    if errors:
        raise Refused([e.to_dict() for e in errors])
    return op, variables
