"""Event schema → the Avro schema of its clean topic (`<name>_v<major>`).

The anonymizer publishes one clean event per message in Avro BINARY encoding, and the
topic's BigQuery subscription (`use_topic_schema`) maps Avro fields onto table columns by
name. So the record is derived from `event_table` itself, not from the event schema: same
column names, order and privacy rewrites (`user_pseudonym`, BYTES ciphertext, dropped
fields gone), minus the four metadata columns the subscription fills in. Binary encoding is
why ciphertext stays `bytes` all the way into BigQuery's BYTES columns.

Type mapping (BigQuery's own Avro conversion rules):
STRING → string, INT64 → long, FLOAT64 → double, BOOL → boolean, BYTES → bytes,
TIMESTAMP → long/timestamp-micros, DATE → int/date, NUMERIC → bytes/decimal(38, 9),
RECORD → record; NULLABLE → ["null", T] with default null, REPEATED → array (default []),
REQUIRED → T. Defaults on every optional field keep a schema revision that adds an optional
field (the only change allowed within a major version) compatible with its predecessor.

Field descriptions are deliberately left out: they live in BigQuery and the catalog, and
editing one must not force a new Pub/Sub schema revision.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from dataplatform.compile.bigquery_schema import METADATA_COLUMN_NAMES, BqField, event_table
from dataplatform.definitions.models import EventSchema

NAMESPACE = "dataplatform.events"

_SCALARS: dict[str, Any] = {
    "STRING": "string",
    "INT64": "long",
    "FLOAT64": "double",
    "BOOL": "boolean",
    "BYTES": "bytes",
    "TIMESTAMP": {"type": "long", "logicalType": "timestamp-micros"},
    "DATE": {"type": "int", "logicalType": "date"},
    "NUMERIC": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 9},
}

_INVALID = re.compile(r"[^A-Za-z0-9_]")


def avro_name(text: str) -> str:
    """A valid Avro name (`[A-Za-z_][A-Za-z0-9_]*`) for `text`: other characters become `_`.

    Platform identifiers are already valid, so column names pass unchanged and still match
    the BigQuery columns; this guards record names built from them (and anything else).
    """
    name = _INVALID.sub("_", text) or "_"
    return f"_{name}" if name[0].isdigit() else name


def avro_schema(schema: EventSchema) -> dict:
    """The Avro record of one clean event of `schema`, as a JSON-able dict."""
    top = avro_name(schema.key)
    names = _Names({top})
    columns = [f for f in event_table(schema).fields if f.name not in METADATA_COLUMN_NAMES]
    return {
        "type": "record",
        "name": top,
        "namespace": NAMESPACE,
        "fields": [_field(column, top, names) for column in columns],
    }


def avro_schema_json(schema: EventSchema, *, indent: int | None = None) -> str:
    """The schema as deterministic JSON text (sorted keys; compact unless `indent`), for Pub/Sub."""
    separators = (",", ": ") if indent else (",", ":")
    return json.dumps(avro_schema(schema), sort_keys=True, indent=indent, separators=separators)


class _Names:
    """Record names already used in the schema: Avro requires each named type to be unique."""

    def __init__(self, used: set[str]) -> None:
        self.used = used

    def claim(self, wanted: str) -> str:
        name, n = wanted, 2
        while name in self.used:
            name, n = f"{wanted}_{n}", n + 1
        self.used.add(name)
        return name


def _field(column: BqField, parent: str, names: _Names) -> dict:
    base = _type(column, parent, names)
    field: dict[str, Any] = {"name": avro_name(column.name)}
    if column.mode == "REPEATED":
        field["type"] = {"type": "array", "items": base}
        field["default"] = []
    elif column.mode == "NULLABLE":
        field["type"] = ["null", base]
        field["default"] = None
    else:
        field["type"] = base
    return field


def _type(column: BqField, parent: str, names: _Names) -> Any:
    if column.type != "RECORD":
        return copy.deepcopy(_SCALARS[column.type])
    name = names.claim(avro_name(f"{parent}_{column.name}"))
    return {
        "type": "record",
        "name": name,
        "fields": [_field(f, name, names) for f in column.fields],
    }
