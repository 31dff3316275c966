"""Event schema → Avro schema of the clean topic: golden text, validity, and a real round trip."""

from __future__ import annotations

import io
import json
from datetime import date, datetime, timezone

import fastavro
import pytest

from dataplatform.compile.avro import NAMESPACE, avro_name, avro_schema, avro_schema_json
from dataplatform.compile.bigquery_schema import METADATA_COLUMN_NAMES, BqField, event_table
from dataplatform.definitions.models import EventSchema
from tests.fixtures.compile.schemas import NAMES, load
from tests.golden import assert_golden


@pytest.mark.parametrize("name", NAMES)
def test_avro_schema_matches_golden(name: str) -> None:
    assert_golden(f"compile/avro/{name}.avsc", avro_schema_json(load(name), indent=2) + "\n")


@pytest.mark.parametrize("name", NAMES)
def test_compact_json_is_the_same_schema_and_deterministic(name: str) -> None:
    schema = load(name)
    compact = avro_schema_json(schema)
    assert "\n" not in compact and ", " not in compact and ": " not in compact
    assert json.loads(compact) == json.loads(avro_schema_json(schema, indent=2)) == avro_schema(schema)
    assert compact == avro_schema_json(load(name))


@pytest.mark.parametrize("name", NAMES)
def test_schema_parses_with_fastavro(name: str) -> None:
    parsed = fastavro.parse_schema(avro_schema(load(name)))
    assert parsed["name"] == f"{NAMESPACE}.{load(name).key}"


def _expected_avro_type(column: BqField, avro_type: object) -> None:
    """Walk one BigQuery column and its Avro field type together, checking they agree."""
    if column.mode == "NULLABLE":
        assert isinstance(avro_type, list) and avro_type[0] == "null", column.name
        avro_type = avro_type[1]
    elif column.mode == "REPEATED":
        assert isinstance(avro_type, dict) and avro_type["type"] == "array", column.name
        avro_type = avro_type["items"]
    scalar = {
        "STRING": "string", "INT64": "long", "FLOAT64": "double", "BOOL": "boolean", "BYTES": "bytes",
        "TIMESTAMP": {"type": "long", "logicalType": "timestamp-micros"},
        "DATE": {"type": "int", "logicalType": "date"},
    }
    if column.type == "RECORD":
        assert isinstance(avro_type, dict) and avro_type["type"] == "record"
        assert [f["name"] for f in avro_type["fields"]] == [c.name for c in column.fields]
        for sub, field in zip(column.fields, avro_type["fields"]):
            _expected_avro_type(sub, field["type"])
    else:
        assert avro_type == scalar[column.type], column.name


@pytest.mark.parametrize("name", NAMES)
def test_fields_match_the_clean_table_columns(name: str) -> None:
    schema = load(name)
    columns = [c for c in event_table(schema).fields if c.name not in METADATA_COLUMN_NAMES]
    fields = avro_schema(schema)["fields"]
    assert [f["name"] for f in fields] == [c.name for c in columns]
    assert not {"message_id", "publish_time", "subscription_name", "attributes"} & {f["name"] for f in fields}
    for column, field in zip(columns, fields):
        _expected_avro_type(column, field["type"])
        if column.mode == "NULLABLE":
            assert field["default"] is None
        elif column.mode == "REPEATED":
            assert field["default"] == []
        else:
            assert "default" not in field


def _record_names(avro_type: object, out: list[str]) -> list[str]:
    if isinstance(avro_type, list):
        for t in avro_type:
            _record_names(t, out)
    elif isinstance(avro_type, dict):
        if avro_type.get("type") == "record":
            out.append(avro_type["name"])
            for f in avro_type["fields"]:
                _record_names(f["type"], out)
        elif avro_type.get("type") == "array":
            _record_names(avro_type["items"], out)
    return out


def test_nested_records_get_unique_path_names() -> None:
    names = _record_names(avro_schema(load("track_played")), [])
    assert names == [
        "track_played_v1", "track_played_v1_context", "track_played_v1_context_device", "track_played_v1_results",
    ]


def _schema(fields: list[dict]) -> EventSchema:
    return EventSchema.model_validate(
        {"name": "x", "version": 1, "owner": "o", "domain": "d", "description": "d", "retention_days": 1, "fields": fields}
    )


def test_colliding_record_names_are_made_unique() -> None:
    leaf = {"name": "v", "type": "STRING", "description": "v"}
    schema = _schema(
        [
            {"name": "a_b", "type": "RECORD", "description": "r", "fields": [
                {"name": "c", "type": "RECORD", "description": "r", "fields": [leaf]}]},
            {"name": "a", "type": "RECORD", "description": "r", "fields": [
                {"name": "b_c", "type": "RECORD", "description": "r", "fields": [leaf]}]},
        ]
    )
    names = _record_names(avro_schema(schema), [])
    assert names == ["x_v1", "x_v1_a_b", "x_v1_a_b_c", "x_v1_a", "x_v1_a_b_c_2"]
    fastavro.parse_schema(avro_schema(schema))


@pytest.mark.parametrize(
    ("text", "name"),
    [("track_played_v1", "track_played_v1"), ("a-b.c", "a_b_c"), ("1st", "_1st"), ("", "_"), ("é", "_")],
)
def test_avro_name_sanitizes(text: str, name: str) -> None:
    assert avro_name(text) == name


def _clean_track_played() -> dict:
    return {
        "event_id": "e-1",
        "event_time": datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc),
        "received_at": datetime(2024, 5, 1, 12, 0, 1, tzinfo=timezone.utc),
        "schema_version": 1,
        "user_pseudonym": "3f1c2e4d5a6b7c8d9e0f1a2b3c4d5e6f",
        "track_id": "t-42",
        "played_ms": 2**40,
        "volume": 0.5,
        "shuffle": None,
        "started_at": datetime(2024, 5, 1, 11, 59, tzinfo=timezone.utc),
        "birth_date": b"\x01\x00\x00\x00\x07ciphertext",
        "email": None,
        "context": {"ip": "203.0.113.0", "device": {"os": "android", "serial": "ab" * 32}, "tags": ["car", "bt"]},
        "results": [
            {"track_id": "t-1", "score": 0.9, "shown_on": date(2024, 5, 1)},
            {"track_id": "t-2", "score": None, "shown_on": None},
        ],
    }


def test_clean_row_round_trips_through_binary_encoding() -> None:
    parsed = fastavro.parse_schema(avro_schema(load("track_played")))
    row = _clean_track_played()
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, row)
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, parsed) == row


def test_optional_fields_may_be_absent_when_encoding() -> None:
    parsed = fastavro.parse_schema(avro_schema(load("app_started")))
    row = {
        "event_id": "e-2",
        "event_time": datetime(2024, 5, 1, tzinfo=timezone.utc),
        "received_at": datetime(2024, 5, 1, tzinfo=timezone.utc),
        "schema_version": 2,
        "app_version": "1.2.3",
        "cold_start": True,
    }
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, row)
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, parsed) == {**row, "startup_ms": None, "experiments": []}


def test_missing_required_column_does_not_encode() -> None:
    parsed = fastavro.parse_schema(avro_schema(load("app_started")))
    row = {"event_id": "e-3", "event_time": datetime(2024, 5, 1, tzinfo=timezone.utc)}
    with pytest.raises((ValueError, TypeError)):
        fastavro.schemaless_writer(io.BytesIO(), parsed, row)


def test_ciphertext_columns_are_bytes_not_strings() -> None:
    parsed = fastavro.parse_schema(avro_schema(load("track_played")))
    row = {**_clean_track_played(), "birth_date": "1990-01-01"}  # cleartext must never fit
    with pytest.raises((ValueError, TypeError)):
        fastavro.schemaless_writer(io.BytesIO(), parsed, row)


def test_adding_an_optional_field_is_backward_compatible() -> None:
    """A reader on the new revision reads messages written with the old one (Pub/Sub revisions)."""
    old = load("app_started")
    new = old.model_copy(
        update={"fields": (*old.fields, old.fields[2].model_copy(update={"name": "build", "description": "b"}))}
    )
    old_parsed, new_parsed = fastavro.parse_schema(avro_schema(old)), fastavro.parse_schema(avro_schema(new))
    row = {
        "event_id": "e", "event_time": datetime(2024, 5, 1, tzinfo=timezone.utc),
        "received_at": datetime(2024, 5, 1, tzinfo=timezone.utc), "schema_version": 2,
        "app_version": "1", "cold_start": False, "startup_ms": 5, "experiments": ["x"],
    }
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, old_parsed, row)
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, old_parsed, new_parsed) == {**row, "build": None}
