"""A node's settings form, built from its config's JSON schema, and the config read back from it.

Each property of the schema becomes a field: its ``title`` is the label and its ``description``
the help text. The widget follows the type: a text input, a textarea for long strings (prompts,
templates), a number, a checkbox, a select for enums (and for the catalog fields ``model``,
``route`` and ``knowledge_base``: the workspace's entries the user may use, and for the fields
a node type fills itself through ``NodeType.pickers``), checkboxes for a list of enum values,
one line per item for a list of strings, a list editor (rows with add and remove) for a list of
objects, and a JSON textarea for anything else. Text fields that take ``{{node_id.port}}`` get a
variable picker listing what the node may read.

Input names are paths: ``config.prompt``, ``config.cases.0.conditions.1.variable``,
``policy.retries``; a list row is marked by ``<path>._row`` so that a row of unchecked
checkboxes still counts.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict
from pydantic import ValidationError

from flows.nodes.base import NodeType
from flows.schema import NodePolicy

# "credential": the HTTP node's stored credential, by name (never its value).
CATALOG_FIELDS = ("model", "route", "knowledge_base", "credential")
# Short names and identifiers: a plain text input, no variable picker.
PLAIN_NAMES = frozenset({"id", "name", "label", "title", "slug", "description"})
LONG_TEXT = 1000  # a string allowed to be this long (or unbounded) gets a textarea
MAX_DEPTH = 3  # objects nested deeper are edited as JSON
MISSING: Any = object()

POLICY_LABELS = {
    "timeout_s": ("Timeout (seconds)", "Give up on the node after this long; empty: no limit."),
    "retries": ("Retries", "How many times to try again after a failure."),
    "retry_backoff_s": ("Wait before retrying (seconds)", "Doubles after each retry."),
    "on_error": ("When it still fails", ""),
    "default": (
        "Default outputs (JSON)",
        'Used as the node\'s outputs when it fails, e.g. {"text": "Sorry, try again later."}',
    ),
}
POLICY_CHOICES = {
    "fail": "Fail the run",
    "default": "Use the default outputs",
    "branch": "Take the error branch (an output port named error)",
}


@dataclass
class FormRow:
    index: int
    name: str
    fields: list[FormField]


@dataclass
class FormField:
    name: str
    label: str
    help: str = ""
    widget: str = "text"  # text textarea number checkbox select multi lines loose json object list
    value: Any = ""
    optional: bool = False  # may be left empty (for the node type's or the model's default)
    choices: list[tuple[str, str]] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)
    # "template": the picker inserts {{node_id.port}} at the cursor; "reference": it puts
    # node_id.port (the field names an output rather than filling in text).
    picker: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    children: list[FormField] = field(default_factory=list)
    rows: list[FormRow] = field(default_factory=list)

    @property
    def id(self) -> str:
        return "f-" + self.name.replace(".", "-")


@dataclass(frozen=True)
class Reference:
    """An output a node may read, as the picker offers it."""

    text: str  # node_id.port
    type: str
    source: str  # what the canvas calls the source node
    # The short {{port}} the picker writes, the way a new node's prompt reads its input: the
    # input port an edge already carries it into, or (``wire``) one the canvas connects as it
    # is picked. Without one, {{node_id.port}}, which wires itself.
    port: str = ""
    wire: bool = False
    # False: a container's inner ports and its own nodes, read as {{node_id.port}} unless an
    # edge already carries them in.
    wirable: bool = True
    # A conversation variable ({{conversation.name}}), kept between turns.
    kept: bool = False

    @property
    def variable(self) -> str:
        return "{{" + (self.port or self.text) + "}}"


@dataclass
class NodeForm:
    node_id: str
    kind: NodeType
    title: str
    fields: list[FormField]
    policy_fields: list[FormField]
    errors: list[str]
    references: list[Reference]  # what the variable pickers offer
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        fields = [*self.fields, *self.policy_fields]
        return not self.errors and not any(_count_errors(f) for f in fields)


def _count_errors(form_field: FormField) -> int:
    return (
        len(form_field.errors)
        + sum(_count_errors(c) for c in form_field.children)
        + sum(_count_errors(f) for row in form_field.rows for f in row.fields)
    )


# --- the schema -----------------------------------------------------------------------------


class _Schema:
    """A JSON schema with its ``$defs``, read the way pydantic writes them."""

    def __init__(self, schema: dict) -> None:
        self.defs = schema.get("$defs", {})

    def resolve(self, node: dict) -> tuple[dict, bool]:
        """The schema of a property with ``$ref`` followed, and whether it may be null."""
        nullable = False
        if "anyOf" in node:
            options = [o for o in node["anyOf"] if o.get("type") != "null"]
            nullable = len(options) < len(node["anyOf"])
            if len(options) == 1:
                outer = {k: v for k, v in node.items() if k != "anyOf"}
                node = {**self._follow(options[0]), **outer}
            else:
                node = {k: v for k, v in node.items() if k != "anyOf"} | {"x-union": True}
        node = self._follow(node)
        return node, nullable

    def _follow(self, node: dict) -> dict:
        ref = node.get("$ref")
        if ref is None and len(node.get("allOf", [])) == 1:
            ref = node["allOf"][0].get("$ref")
        if ref is None:
            return node
        target = self.defs.get(ref.rsplit("/", 1)[-1], {})
        outer = {k: v for k, v in node.items() if k not in ("$ref", "allOf")}
        return {**target, **outer}


def _widget(name: str, node: dict, nullable: bool, depth: int, schema: _Schema) -> str:
    kind = node.get("type")
    if depth == 0 and name in CATALOG_FIELDS and kind == "string":
        return "select"
    if "enum" in node:
        return "select"
    if node.get("x-union"):
        return "json"
    if kind == "boolean":
        return "select" if nullable else "checkbox"
    if kind in ("integer", "number"):
        return "number"
    if kind == "string":
        long = node.get("maxLength") is None or node["maxLength"] >= LONG_TEXT
        return "textarea" if long and name not in PLAIN_NAMES and "pattern" not in node else "text"
    if kind == "array":
        items, _ = schema.resolve(node.get("items", {}))
        if "enum" in items:
            return "multi"
        if items.get("type") == "string":
            return "lines"
        if "properties" in items and depth < MAX_DEPTH:
            return "list"
        return "json"
    if kind == "object" and "properties" in node and not nullable and depth < MAX_DEPTH:
        return "object"
    if kind is None and "properties" not in node:
        return "loose"  # Any: JSON if it parses, else text
    return "json"


def _picker(name: str, node: dict, widget: str) -> str:
    text = node.get("description", "")
    pattern = node.get("pattern", "")
    items = node.get("items", {})
    if widget == "lines":
        return "reference" if "node_id.port" in text or "\\." in items.get("pattern", "") else ""
    if widget not in ("text", "textarea") or name in PLAIN_NAMES or name in CATALOG_FIELDS:
        return ""
    if "\\." in pattern or ("node_id.port" in text and "{{" not in text):
        return "reference"
    if pattern or "enum" in node:
        return ""
    long = node.get("maxLength") is None or node["maxLength"] > 200
    return "template" if long else ""


def _humanize(value: Any) -> str:
    return str(value).replace("_", " ")


def _choice_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _display(widget: str, value: Any) -> Any:
    if value is MISSING or value is None:
        return False if widget == "checkbox" else ""
    if widget in ("text", "textarea"):
        return value if isinstance(value, str) else json.dumps(value)
    if widget == "number":
        return str(value)
    if widget == "checkbox":
        return bool(value)
    if widget == "select":
        return _choice_value(value)
    if widget == "lines":
        return "\n".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if widget == "loose":
        return value if isinstance(value, str) else json.dumps(value)
    return json.dumps(value, indent=2, ensure_ascii=False)


# --- building the form ----------------------------------------------------------------------


class _Builder:
    def __init__(
        self,
        schema: dict,
        *,
        catalog: dict[str, list[tuple[str, str]]],
        errors: dict[str, list[str]],
        raw: dict[str, str],
        labels: dict[str, tuple[str, str]] | None = None,
        choice_labels: dict[str, str] | None = None,
        picks: dict[str, list[tuple[str, str]]] | None = None,
    ) -> None:
        self.schema = _Schema(schema)
        self.catalog = catalog
        # The node type's own pickers (``NodeType.pickers``): top-level fields shown as selects.
        self.picks = picks or {}
        self.errors = errors
        self.raw = raw
        self.labels = labels or {}
        self.choice_labels = choice_labels or {}

    def fields(self, prefix: str, node: dict, values: Any, depth: int = 0) -> list[FormField]:
        values = values if isinstance(values, dict) else {}
        return [
            self.field(f"{prefix}.{name}", name, prop, values.get(name, MISSING), depth)
            for name, prop in node.get("properties", {}).items()
        ]

    def field(self, path: str, name: str, prop: dict, value: Any, depth: int) -> FormField:
        node, nullable = self.schema.resolve(prop)
        top = depth == 0
        widget = _widget(name, node, nullable, depth, self.schema)
        if top and name in self.picks and widget in ("text", "textarea", "number"):
            widget = "select"  # read back as a text or a number, as the field's type says
        if value is MISSING and "default" in node:
            value = node["default"]
        label, help_text = self.labels.get(name, (node.get("title") or _humanize(name).title(), ""))
        result = FormField(
            name=path,
            label=label,
            help=help_text or node.get("description", ""),
            widget=widget,
            optional=nullable,
            picker=_picker(name, node, widget),
            errors=self.errors.pop(path, []),
        )
        if widget == "select":
            result.choices = self._choices(name, node, nullable, top, value)
        elif widget == "multi":
            items, _ = self.schema.resolve(node["items"])
            result.choices = [(str(v), _humanize(v)) for v in items["enum"]]
            result.selected = [str(v) for v in value] if isinstance(value, list) else []
        elif widget == "object":
            result.children = self.fields(path, node, value, depth + 1)
        elif widget == "list":
            items, _ = self.schema.resolve(node["items"])
            rows = value if isinstance(value, list) else []
            result.rows = [
                FormRow(i, f"{path}.{i}", self.fields(f"{path}.{i}", items, row, depth + 1))
                for i, row in enumerate(rows)
            ]
            result.attrs = {"max": node.get("maxItems"), "min": node.get("minItems", 0)}
        elif widget == "number":
            result.attrs = {
                "min": node.get("minimum", node.get("exclusiveMinimum")),
                "max": node.get("maximum", node.get("exclusiveMaximum")),
                "step": 1 if node.get("type") == "integer" else "any",
            }
        elif widget in ("text", "textarea"):
            result.attrs = {"maxlength": node.get("maxLength")}
        result.value = self.raw.get(path, _display(widget, value))
        if widget not in ("object", "list"):
            # Errors deeper than a leaf (a union member, a key inside JSON) belong to it.
            for key in [k for k in self.errors if k.startswith(path + ".")]:
                result.errors.extend(self.errors.pop(key))
        return result

    def _choices(self, name: str, node: dict, nullable: bool, top: bool, value: Any):
        picked = top and "enum" not in node and (name in self.picks or name in CATALOG_FIELDS)
        if picked:
            options = self.picks[name] if name in self.picks else self.catalog.get(name, [])
            # A node type's options may name their own empty choice ("the published one").
            none = [] if any(v == "" for v, _ in options) else [("", "— none —")]
            choices = [*none, *options]
            if value not in (None, "", MISSING) and str(value) not in [c[0] for c in choices]:
                choices.append((str(value), f"{value} (not available to you)"))
            return choices
        if node.get("type") == "boolean":
            options = [("true", "Yes"), ("false", "No")]
        else:
            options = [
                (_choice_value(v), self.choice_labels.get(str(v), _humanize(v)))
                for v in node["enum"]
            ]
        return [("", "Default"), *options] if nullable else options


def build_form(
    *,
    node_id: str,
    kind: NodeType,
    title: str,
    config: Any,
    policy: Any,
    catalog: dict[str, list[tuple[str, str]]],
    references: list[Reference],
    errors: dict[str, list[str]] | None = None,
    form_errors: list[str] | None = None,
    raw: dict[str, str] | None = None,
    problems: list[str] | None = None,
    picks: dict[str, list[tuple[str, str]]] | None = None,
) -> NodeForm:
    """The form of a node with ``config`` and ``policy``; ``errors`` by input name; ``picks``:
    the node type's own pickers (``NodeType.pickers``)."""
    errors = {k: list(v) for k, v in (errors or {}).items()}
    raw = raw or {}
    config_schema = kind.Config.model_json_schema()
    builder = _Builder(config_schema, catalog=catalog, errors=errors, raw=raw, picks=picks)
    fields = builder.fields("config", config_schema, config)
    policy_builder = _Builder(
        NodePolicy.model_json_schema(),
        catalog={},
        errors=errors,
        raw=raw,
        labels=POLICY_LABELS,
        choice_labels=POLICY_CHOICES,
    )
    policy_fields = policy_builder.fields("policy", NodePolicy.model_json_schema(), policy)
    leftover = [
        f"{key.split('.', 1)[-1]}: {message}"
        for key, messages in errors.items()
        for message in messages
    ]
    return NodeForm(
        node_id=node_id,
        kind=kind,
        title=title,
        fields=fields,
        policy_fields=policy_fields,
        errors=[*(form_errors or []), *leftover],
        references=references,
        problems=problems or [],
    )


# --- reading the form back ------------------------------------------------------------------


@dataclass
class Parsed:
    config: dict
    policy: dict
    title: str
    errors: dict[str, list[str]]
    raw: dict[str, str]


class _Reader:
    def __init__(self, schema: dict, data: QueryDict) -> None:
        self.schema = _Schema(schema)
        self.data = data
        self.errors: dict[str, list[str]] = defaultdict(list)
        self.raw: dict[str, str] = {}

    def object(self, prefix: str, node: dict, depth: int = 0) -> dict:
        values = {}
        for name, prop in node.get("properties", {}).items():
            value = self.value(f"{prefix}.{name}", name, prop, depth)
            if value is not MISSING:
                values[name] = value
        return values

    def value(self, path: str, name: str, prop: dict, depth: int) -> Any:
        node, nullable = self.schema.resolve(prop)
        widget = _widget(name, node, nullable, depth, self.schema)
        if widget == "checkbox":
            return path in self.data
        if widget == "multi":
            return self.data.getlist(path)
        if widget == "object":
            return self.object(path, node, depth + 1)
        if widget == "list":
            items, _ = self.schema.resolve(node["items"])
            marker = "._row"
            indices = sorted(
                int(key[len(path) + 1 : -len(marker)])
                for key in self.data
                if key.startswith(path + ".")
                and key.endswith(marker)
                and key[len(path) + 1 : -len(marker)].isdigit()
            )
            return [self.object(f"{path}.{i}", items, depth + 1) for i in indices]
        text = self.data.get(path)
        if text is None:
            return MISSING
        if widget == "select":
            return self._choice(node, nullable, text)
        if widget == "number":
            return self._number(node, nullable, text.strip())
        if widget == "lines":
            return [line.strip() for line in text.splitlines() if line.strip()]
        if widget in ("json", "loose"):
            return self._json(path, widget, nullable, text)
        if nullable and text == "":
            return None
        return text

    def _choice(self, node: dict, nullable: bool, text: str) -> Any:
        if text == "" and nullable:
            return None
        if node.get("type") == "boolean":
            return {"true": True, "false": False}.get(text, text)
        for option in node.get("enum", []):
            if _choice_value(option) == text:
                return option
        return text if text or "enum" not in node else MISSING

    @staticmethod
    def _number(node: dict, nullable: bool, text: str) -> Any:
        if text == "":
            return None if nullable else MISSING
        try:
            return int(text) if node.get("type") == "integer" else float(text)
        except ValueError:
            return text  # the config's validation says what is wrong with it

    def _json(self, path: str, widget: str, nullable: bool, text: str) -> Any:
        if not text.strip():
            return None if nullable or widget == "loose" else MISSING
        try:
            return json.loads(text)
        except ValueError as exc:
            if widget == "loose":
                return text
            self.errors[path].append(f"This is not valid JSON ({exc.msg}, line {exc.lineno}).")
            self.raw[path] = text
            return MISSING


def parse_form(kind: NodeType, data: QueryDict) -> Parsed:
    """The config, policy and title a posted form holds, with the errors of fields that could
    not be read (JSON that does not parse) and what was typed in them."""
    reader = _Reader(kind.Config.model_json_schema(), data)
    config = reader.object("config", kind.Config.model_json_schema())
    policy_reader = _Reader(NodePolicy.model_json_schema(), data)
    policy = policy_reader.object("policy", NodePolicy.model_json_schema())
    return Parsed(
        config=config,
        policy=policy,
        title=data.get("title", "").strip()[:200],
        errors={**reader.errors, **policy_reader.errors},
        raw={**reader.raw, **policy_reader.raw},
    )


def validation_errors(exc: ValidationError, prefix: str) -> tuple[dict[str, list[str]], list[str]]:
    """Pydantic's errors by input name, and those about the whole object."""
    by_name: dict[str, list[str]] = defaultdict(list)
    general: list[str] = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        loc = [str(p) for p in error["loc"]]
        if loc:
            by_name[".".join([prefix, *loc])].append(message)
        else:
            general.append(message)
    return dict(by_name), general


# --- list rows: add and remove --------------------------------------------------------------


def blank(schema: dict, node: dict) -> Any:
    """A new row for a list editor: defaults, empty required text, one row in required lists."""
    resolver = _Schema(schema)
    node, _ = resolver.resolve(node)
    if "default" in node:
        return node["default"]
    if "properties" in node:
        item = {}
        for name, prop in node["properties"].items():
            value = blank(schema, prop)
            if value is not MISSING:
                item[name] = value
        return item
    kind = node.get("type")
    if "enum" in node:
        return node["enum"][0]
    if kind == "string":
        return ""
    if kind == "array":
        if node.get("minItems", 0) >= 1:
            return [blank(schema, node.get("items", {}))]
        return []
    if kind == "boolean":
        return False
    return MISSING


def _walk(schema: dict, config: dict, path: list[str]) -> tuple[Any, dict] | None:
    """The value at ``path`` inside ``config`` and its schema."""
    resolver = _Schema(schema)
    value: Any = config
    node: dict = schema
    for part in path:
        node, _ = resolver.resolve(node)
        if isinstance(value, dict) and part in node.get("properties", {}):
            node = node["properties"][part]
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and "items" in node:
            if int(part) >= len(value):
                return None
            node = node["items"]
            value = value[int(part)]
        else:
            return None
    return value, node


def apply_action(kind: NodeType, config: dict, action: str) -> bool:
    """Add a row (``add:config.cases``) or remove one (``remove:config.cases.1``) in place;
    False when the action names nothing."""
    verb, _, target = action.partition(":")
    path = target.split(".")
    if path[0] != "config" or verb not in ("add", "remove"):
        return False
    schema = kind.Config.model_json_schema()
    if verb == "add":
        found = _walk(schema, config, path[1:])
        if found is None:
            container = _walk(schema, config, path[1:-1])
            if container is None or not isinstance(container[0], dict):
                return False
            container[0][path[-1]] = []
            found = _walk(schema, config, path[1:])
        value, node = found
        if not isinstance(value, list):
            return False
        resolved, _ = _Schema(schema).resolve(node)
        value.append(blank(schema, resolved.get("items", {})))
        return True
    if not path[-1].isdigit():
        return False
    found = _walk(schema, config, path[1:-1])
    if found is None or not isinstance(found[0], list) or int(path[-1]) >= len(found[0]):
        return False
    found[0].pop(int(path[-1]))
    return True
