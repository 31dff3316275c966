"""The compiled Avro codec against fastavro (the reference): same bytes, each reads the other.

Rows are generated from each schema's Avro record (nested records, arrays, nullable unions,
bytes, timestamps, dates, extreme longs), and real anonymizer output is round-tripped too.
Every test runs under both backends (the C build of native/ and the generated Python);
test_avro_backends.py compares the two with each other.
"""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataplatform.compile import avro_codec
from dataplatform.compile.avro_codec import (
    AvroCodec,
    AvroDecodeError,
    AvroEncodeError,
    _timestamp_long,
    codec_for,
    encode_long,
    read_long,
)
from dataplatform.definitions.models import EventSchema
from dataplatform.ports import Message
from dataplatform.privacy.anonymizer import Anonymizer
from dataplatform.privacy.key_service import KeyService
from tests.fakes import FixedClock, MemoryKeyStore
from tests.fixtures.compile import schemas as compile_schemas
from tests.fixtures.privacy import schemas as privacy_schemas
from tests.fixtures.privacy.keys import platform_keys

UTC = timezone.utc
SCHEMAS = {
    **{name: compile_schemas.load(name) for name in compile_schemas.NAMES},
    **{name: privacy_schemas.load(name) for name in privacy_schemas.NAMES},
}


@pytest.fixture(autouse=True, params=["c", "python"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with `codec_for` building codecs of this backend."""
    monkeypatch.setattr(avro_codec, "DEFAULT_BACKEND", request.param)
    return request.param


def _values(avro_type: Any) -> st.SearchStrategy[Any]:
    """Values of one Avro type as a clean row holds them."""
    if isinstance(avro_type, list):
        return st.one_of(st.none(), _values(avro_type[1]))
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "timestamp-micros":
            return st.datetimes(
                min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
            )
        if logical == "date":
            return st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
        if avro_type["type"] == "record":
            return st.fixed_dictionaries({f["name"]: _values(f["type"]) for f in avro_type["fields"]})
        if avro_type["type"] == "array":
            return st.lists(_values(avro_type["items"]), max_size=4)
        return _values(avro_type["type"])
    return {
        "string": st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
        "long": st.integers(-(2**63), 2**63 - 1),
        "double": st.floats(allow_nan=False),
        "boolean": st.booleans(),
        "bytes": st.binary(max_size=300),
    }[avro_type]


def _sample(avro_type: Any) -> Any:
    """A deterministic value of one Avro type (non-null, one element per array)."""
    if isinstance(avro_type, list):
        return _sample(avro_type[1])
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "timestamp-micros":
            return datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
        if logical == "date":
            return date(2024, 5, 1)
        if avro_type["type"] == "record":
            return {f["name"]: _sample(f["type"]) for f in avro_type["fields"]}
        if avro_type["type"] == "array":
            return [_sample(avro_type["items"])]
        return _sample(avro_type["type"])
    return {"string": "text", "long": 7, "double": 0.5, "boolean": True, "bytes": b"\x00\x01"}[avro_type]


def _fastavro_bytes(schema: dict, row: dict) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), row)
    return out.getvalue()


def _fastavro_read(schema: dict, data: bytes) -> dict:
    return fastavro.schemaless_reader(io.BytesIO(data), fastavro.parse_schema(schema))


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_codec_agrees_with_fastavro(name: str, data: st.DataObject) -> None:
    codec = codec_for(SCHEMAS[name])
    row = data.draw(_values(codec.schema))

    encoded = codec.encode(row)

    assert encoded == _fastavro_bytes(codec.schema, row)
    assert codec.decode(encoded) == row
    assert _fastavro_read(codec.schema, encoded) == row
    assert codec.decode_values(encoded) == _values_of(codec, row)


def _values_of(codec: AvroCodec, row: dict) -> tuple:
    """`decode_values`' expected answer: top-level values in column order, TIMESTAMP as int
    microseconds and DATE as int days since the epoch."""
    out = []
    for field, name in zip(codec.schema["fields"], codec.columns):
        value = row[name]
        inner = field["type"][1] if isinstance(field["type"], list) else field["type"]
        logical = inner.get("logicalType") if isinstance(inner, dict) else None
        if value is not None and logical == "timestamp-micros":
            value = (value - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
        elif value is not None and logical == "date":
            value = (value - date(1970, 1, 1)).days
        out.append(value)
    return tuple(out)


def test_repo_catalog_codecs_compile_and_round_trip(catalog: Any) -> None:
    for schema in catalog.schemas:
        codec = codec_for(schema)
        row = _sample(codec.schema)
        assert codec.encode(row) == _fastavro_bytes(codec.schema, row)
        assert codec.decode(codec.encode(row)) == row


def test_anonymizer_rows_round_trip_nested_repeated_bytes_and_nulls(tmp_path: Path) -> None:
    """What the anonymizer really produces (profile_probe has every policy and shape)."""
    probe = SCHEMAS["profile_probe"]
    platform = platform_keys(tmp_path)
    anonymizer = Anonymizer([probe], KeyService(MemoryKeyStore(), platform, FixedClock()), platform, FixedClock())
    full = {
        "user_id": "u-1",
        "email": "a@example.com",
        "search_query": "jazz",
        "session_id": "s-1",
        "count": -3,
        "score": 1.5,
        "ok": True,
        "seen_at": "2024-05-01T10:00:00.123456+02:00",
        "day": "2024-04-30",
        "password": "hunter2",
        "context": {
            "ip": "2001:db8::1",
            "device": {"device_id": "d-1", "os": "linux", "advertising_id": "ad"},
            "location": {"lat": 59.3, "lon": 18.1},
        },
        "phones": ["+46 1", "+46 2"],
        "hops": ["10.0.0.1"],
        "tags": [],
        "results": [{"track_id": "t1", "note": "nice", "position": 1, "client_ip": "1.2.3.4"}, {"track_id": "t2"}],
        "birth_date": "1990-01-02",
        "age": 34,
        "consent": False,
        "visits": [1, 2],
        "legacy": {"token": "x"},
    }
    sparse = {"user_id": "u-2", "session_id": "s-2", "context": {"device": {"device_id": "d-2"}}}
    events = [
        {"event_id": f"e-{i}", "event_type": "profile_probe", "schema_version": 1,
         "event_time": "2024-05-01T11:00:00Z", "payload": payload}
        for i, payload in enumerate([full, sparse])
    ]
    result = anonymizer.anonymize([Message(orjson.dumps({"received_at": "2024-05-01T12:00:00Z", "events": events}), {})])
    rows = result.rows[probe.key]
    assert len(rows) == 2 and not result.failed

    codec = codec_for(probe)
    for row in rows:
        encoded = codec.encode(row)
        assert encoded == _fastavro_bytes(codec.schema, row)
        assert codec.decode(encoded) == row
    decoded = codec.decode(codec.encode(rows[0]))
    assert isinstance(decoded["email"], bytes) and isinstance(decoded["phones"][0], bytes)
    assert decoded["results"][1]["note"] is None and decoded["tags"] == []
    assert decoded["day"] == date(2024, 4, 30)
    assert decoded["seen_at"] == datetime(2024, 5, 1, 8, 0, 0, 123456, tzinfo=UTC)
    assert codec.decode(codec.encode(rows[1]))["context"]["location"] is None


# --------------------------------------------------------------------------- primitives


@pytest.mark.parametrize("value", [0, -1, 1, 63, -64, 64, 2**31, -(2**63), 2**63 - 1, 1_714_564_800_000_000])
def test_long_round_trip(value: int) -> None:
    encoded = encode_long(value)
    assert read_long(encoded + b"\x99", 0) == (value, len(encoded))
    assert encoded == _fastavro_bytes({"type": "record", "name": "r", "fields": [{"name": "v", "type": "long"}]}, {"v": value})


@pytest.mark.parametrize(
    "micros",
    [0, 1, -1, 2**48 - 1, 2**48, 2**48 + 1, 2**55 - 1, 2**55, 2**55 + 1, -(2**48), 1_764_800_000_123_456, 2**57],
)
def test_timestamp_varint_fast_path_matches_encode_long_at_its_boundaries(micros: int) -> None:
    value = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    assert _timestamp_long(value) == encode_long(micros)


def test_long_out_of_range_is_refused() -> None:
    with pytest.raises(OverflowError):
        encode_long(2**63)


# --------------------------------------------------------------------------- errors


@pytest.fixture
def track(backend: str) -> AvroCodec:
    return codec_for(SCHEMAS["track_played"])


def _track_row(track: AvroCodec) -> dict[str, Any]:
    return _sample(track.schema)


def test_missing_column_names_it(track: AvroCodec) -> None:
    row = _track_row(track)
    del row["event_id"]
    with pytest.raises(AvroEncodeError, match=r"column event_id is missing \(KeyError\)"):
        track.encode(row)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("event_id", 17, "column event_id (expected a str (STRING))"),
        ("schema_version", "one-secret", "column schema_version (expected an int (INT64))"),
        ("schema_version", True, "column schema_version (expected an int (INT64))"),
        ("event_time", datetime(2024, 1, 1), "column event_time (expected an aware datetime (TIMESTAMP))"),
        ("event_time", "2024-01-01T00:00:00Z", "column event_time (expected an aware datetime (TIMESTAMP))"),
        ("user_pseudonym", None, "column user_pseudonym (expected a str (STRING))"),
        ("volume", "loud", "column volume (expected a float (FLOAT64))"),
        ("volume", True, "column volume (expected a float (FLOAT64))"),
        ("volume", 10**400, "column volume (expected a float (FLOAT64))"),
    ],
)
def test_wrong_value_names_the_column_and_never_the_value(
    track: AvroCodec, column: str, value: Any, expected: str
) -> None:
    row = _track_row(track)
    row[column] = value
    with pytest.raises(AvroEncodeError) as info:
        track.encode(row)
    assert expected in str(info.value)
    assert str(info.value).startswith(f"clean row of {track.key} does not fit its Avro schema")
    if isinstance(value, str):
        assert value not in str(info.value)


def test_wrong_nested_value_names_the_path() -> None:
    codec = codec_for(SCHEMAS["profile_probe"])
    row = _sample(codec.schema)
    row["context"]["device"]["device_id"] = "not bytes"
    with pytest.raises(AvroEncodeError, match=r"column context\.device\.device_id \(expected bytes \(BYTES\)\)"):
        codec.encode(row)
    row = _sample(codec.schema)
    row["results"] = [{"track_id": "t"}]
    with pytest.raises(AvroEncodeError, match=r"column results\[\]\.note is missing"):
        codec.encode(row)


def test_date_column_refuses_a_datetime() -> None:
    codec = codec_for(SCHEMAS["profile_probe"])
    row = _sample(codec.schema)
    row["day"] = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(AvroEncodeError, match=r"column day \(expected a date \(DATE\)\)"):
        codec.encode(row)


def test_truncated_trailing_and_bad_union_data_is_refused(track: AvroCodec) -> None:
    data = track.encode(_track_row(track))
    with pytest.raises(AvroDecodeError, match=r"not a valid Avro record of track_played_v1"):
        track.decode(data[:-1])
    with pytest.raises(AvroDecodeError, match=r"1 trailing byte"):
        track.decode(data + b"\x00")
    with pytest.raises(AvroDecodeError):
        track.decode(b"")
    with pytest.raises(AvroDecodeError):
        track.decode(b"\xff" * 12)
    with pytest.raises(AvroDecodeError, match=r"1 trailing byte"):
        track.decode_values(data + b"\x00")
    with pytest.raises(AvroDecodeError, match=r"not a valid Avro record of track_played_v1"):
        track.decode_values(data[:-1])


def test_bad_union_index_is_refused() -> None:
    schema = EventSchema.model_validate(
        {
            "name": "tiny", "version": 1, "owner": "o", "domain": "d", "description": "x", "retention_days": 1,
            "fields": [{"name": "note", "type": "STRING", "description": "n"}],
        }
    )
    codec = codec_for(schema)
    good = codec.encode({"event_id": "e", "event_time": datetime(2024, 1, 1, tzinfo=UTC),
                         "received_at": datetime(2024, 1, 1, tzinfo=UTC), "schema_version": 1, "note": None})
    assert good.endswith(b"\x00")
    with pytest.raises(AvroDecodeError, match="union branch index out of range"):
        codec.decode(good[:-1] + b"\x04")


def test_codec_for_caches_per_schema_and_notices_a_changed_schema() -> None:
    probe = SCHEMAS["anonymous_ping"]
    first = codec_for(probe)
    assert codec_for(probe) is first
    second = codec_for(probe.model_copy(update={"description": "another text"}))
    assert second is not first
    assert second.schema == first.schema  # descriptions are not part of the Avro schema


def test_timestamps_keep_microseconds_and_any_offset_becomes_utc(track: AvroCodec) -> None:
    row = _track_row(track)
    row["event_time"] = datetime(2024, 5, 1, 14, 0, 0, 1, tzinfo=timezone(timedelta(hours=2)))
    assert track.decode(track.encode(row))["event_time"] == datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=UTC)


def test_a_row_that_is_not_a_mapping_is_refused(track: AvroCodec) -> None:
    with pytest.raises(AvroEncodeError, match="the row is not a mapping"):
        track.encode(["event_id"])  # type: ignore[arg-type]
