"""Event schema → BigQuery table: golden column lists plus the rules each column obeys."""

from __future__ import annotations

import json

import pytest

from dataplatform.compile.bigquery_schema import (
    METADATA_COLUMN_NAMES,
    QUARANTINE_RETENTION_DAYS,
    BqField,
    event_table,
    failed_events_table,
)
from dataplatform.definitions.models import EventSchema
from tests.fixtures.compile.schemas import NAMES, load
from tests.golden import assert_golden


def _columns(fields: tuple[BqField, ...], prefix: str = "") -> dict[str, BqField]:
    out: dict[str, BqField] = {}
    for f in fields:
        out[prefix + f.name] = f
        out.update(_columns(f.fields, f"{prefix}{f.name}."))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_event_table_matches_golden(name: str) -> None:
    spec = event_table(load(name))
    text = json.dumps([f.to_api() for f in spec.fields], indent=2, ensure_ascii=False) + "\n"
    assert_golden(f"compile/bigquery/{name}.json", text)


@pytest.mark.parametrize("name", NAMES)
def test_event_table_settings_match_golden(name: str) -> None:
    spec = event_table(load(name))
    settings = {
        "ref": spec.ref,
        "partition_field": spec.partition_field,
        "partition_type": spec.partition_type,
        "expiration_days": spec.expiration_days,
        "clustering": list(spec.clustering),
        "require_partition_filter": spec.require_partition_filter,
        "description": spec.description,
        "labels": dict(spec.labels),
    }
    assert_golden(f"compile/bigquery/{name}.table.json", json.dumps(settings, indent=2) + "\n")


def test_column_order_head_payload_metadata() -> None:
    names = [f.name for f in event_table(load("track_played")).fields]
    assert names[:4] == ["event_id", "event_time", "received_at", "schema_version"]
    assert names[4] == "user_pseudonym"  # the user_id field keeps its position
    assert tuple(names[-4:]) == METADATA_COLUMN_NAMES
    assert names[4:-4] == [
        "user_pseudonym", "track_id", "played_ms", "volume", "shuffle", "started_at",
        "birth_date", "email", "context", "results",
    ]  # session_token (drop) and debug (all fields dropped) are gone


def test_head_columns_are_required_and_typed() -> None:
    cols = _columns(event_table(load("app_started")).fields)
    assert [(cols[n].type, cols[n].mode) for n in ("event_id", "event_time", "received_at", "schema_version")] == [
        ("STRING", "REQUIRED"), ("TIMESTAMP", "REQUIRED"), ("TIMESTAMP", "REQUIRED"), ("INT64", "REQUIRED"),
    ]


def test_privacy_policies_change_column_types() -> None:
    cols = _columns(event_table(load("track_played")).fields)
    assert "user_id" not in cols
    assert (cols["user_pseudonym"].type, cols["user_pseudonym"].mode) == ("STRING", "REQUIRED")
    # encrypted: BYTES, and REQUIRED relaxed to NULLABLE (erased users' fields are NULL)
    assert (cols["birth_date"].type, cols["birth_date"].mode) == ("BYTES", "NULLABLE")
    assert cols["email"].type == "BYTES"
    assert "associated data 'email'" in cols["email"].description
    assert cols["context.ip"].type == "STRING"
    assert cols["context.device.serial"].type == "STRING"
    assert "session_token" not in cols and "debug" not in cols and "debug.trace" not in cols


def test_nested_user_id_becomes_pseudonym_inside_its_record() -> None:
    spec = event_table(load("order_placed"))
    cols = _columns(spec.fields)
    assert [f.name for f in cols["customer"].fields] == ["user_pseudonym", "phone", "loyalty_number"]
    assert cols["customer.user_pseudonym"].mode == "REQUIRED"
    # hash keeps the mode and becomes a hex STRING, even from INT64
    assert (cols["customer.loyalty_number"].type, cols["customer.loyalty_number"].mode) == ("STRING", "REQUIRED")
    # encrypted repeated scalar stays REPEATED, as BYTES
    assert (cols["lines.gift_note"].type, cols["lines.gift_note"].mode) == ("BYTES", "REPEATED")
    assert cols["lines"].mode == "REPEATED"


def test_default_clustering() -> None:
    assert event_table(load("track_played")).clustering == ("user_pseudonym",)
    assert event_table(load("app_started")).clustering == ("event_id",)
    assert event_table(load("order_placed")).clustering == ("country", "order_id")


def test_nested_user_id_does_not_cluster_by_pseudonym() -> None:
    schema = load("order_placed").model_copy(update={"clustering": ()})
    assert event_table(schema).clustering == ("event_id",)


def test_partitioning_and_retention() -> None:
    spec = event_table(load("app_started"))
    assert (spec.partition_field, spec.partition_type, spec.expiration_days) == ("event_time", "HOUR", 30)
    assert spec.require_partition_filter is True
    assert dict(spec.labels) == {"owner": "client-platform", "domain": "apps"}
    assert spec.ref == "events.app_started_v2"


def test_to_api_uses_rest_type_names() -> None:
    field = BqField("r", "RECORD", "REPEATED", "", (BqField("a", "INT64"), BqField("b", "FLOAT64"), BqField("c", "BOOL")))
    assert field.to_api() == {
        "name": "r",
        "type": "RECORD",
        "mode": "REPEATED",
        "fields": [
            {"name": "a", "type": "INTEGER", "mode": "NULLABLE"},
            {"name": "b", "type": "FLOAT", "mode": "NULLABLE"},
            {"name": "c", "type": "BOOLEAN", "mode": "NULLABLE"},
        ],
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "x", "type": "INT"}, "unknown BigQuery type 'INT'"),
        ({"name": "x", "type": "STRING", "mode": "OPTIONAL"}, "unknown BigQuery mode 'OPTIONAL'"),
        ({"name": "x", "type": "RECORD"}, "a RECORD needs fields"),
    ],
)
def test_bad_field_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BqField(**kwargs)


def test_long_descriptions_are_clipped_to_bigquery_limit() -> None:
    schema = EventSchema.model_validate(
        {
            "name": "x", "version": 1, "owner": "o", "domain": "d", "description": "d" * 2000,
            "retention_days": 1, "fields": [{"name": "a", "type": "STRING", "description": "y" * 2000}],
        }
    )
    spec = event_table(schema)
    assert len(spec.description) == 1024 and spec.description.endswith("…")
    assert len(_columns(spec.fields)["a"].description) == 1024


def test_failed_events_table() -> None:
    spec = failed_events_table()
    assert spec.ref == "platform.failed_events"
    assert (spec.partition_field, spec.partition_type) == ("failed_at", "DAY")
    assert spec.expiration_days == QUARANTINE_RETENTION_DAYS == 30
    assert spec.clustering == ("event_type", "reason")
    cols = _columns(spec.fields)
    assert cols["payload_ciphertext"].type == "BYTES"
    assert [f.name for f in spec.fields][:11] == [
        "event_id", "event_type", "schema_version", "reason", "detail", "event_time",
        "received_at", "failed_at", "stage", "payload_ciphertext", "quarantine_expires_at",
    ]
    assert tuple(f.name for f in spec.fields[11:]) == METADATA_COLUMN_NAMES
    text = json.dumps(spec.schema_api(), indent=2) + "\n"
    assert_golden("compile/bigquery/failed_events.json", text)
