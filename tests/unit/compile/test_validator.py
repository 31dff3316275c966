"""The compiled payload validator: what passes, and for each kind of bad payload the exact
JSON path and rule, with the offending value never in the message (payloads carry PII)."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataplatform.compile.validator import (
    INT64_MAX,
    INT64_MIN,
    PayloadValidator,
    SchemaViolation,
    compile_validator,
    parse_date,
    parse_timestamp,
)
from dataplatform.definitions.models import EventSchema, FieldDef
from dataplatform.errors import PlatformError
from tests.fixtures.compile.schemas import NAMES, load

SECRET = "SECRET-jane.doe@example.com"
SECRET_INT = 8675309123


@pytest.fixture(scope="module")
def track() -> PayloadValidator:
    return compile_validator(load("track_played"))


def _track_payload() -> dict:
    return {
        "user_id": "user-1",
        "track_id": "t-42",
        "played_ms": 183000,
        "volume": 0.5,
        "shuffle": True,
        "started_at": "2024-05-01T12:00:00.123Z",
        "birth_date": "1990-01-01",
        "email": "listener@example.com",
        "session_token": "tok",
        "context": {"ip": "203.0.113.7", "device": {"os": "ios", "serial": "SN-1"}, "tags": ["car", "bt"]},
        "results": [
            {"track_id": "a", "score": 0.1, "shown_on": "2024-05-01"},
            {"track_id": "b"},
            {"track_id": "c", "score": None},
        ],
    }


VALID_EXAMPLES = {
    "track_played": _track_payload(),
    "app_started": {"app_version": "1.2.3", "cold_start": False, "startup_ms": None, "experiments": []},
    "order_placed": {
        "order_id": "o-1",
        "country": "SE",
        "customer": {"user_id": "u-1", "loyalty_number": 12345},
        "lines": [{"sku": "s", "quantity": 2, "unit_price": 10, "gift_note": ["happy birthday"]}],
        "placed_on": "2024-02-29",
    },
}


# --------------------------------------------------------------------------- valid payloads


@pytest.mark.parametrize("name", NAMES)
def test_valid_payload_is_returned_untouched(name: str) -> None:
    payload = copy.deepcopy(VALID_EXAMPLES[name])
    result = compile_validator(load(name)).validate(payload)
    assert result is payload
    assert result == VALID_EXAMPLES[name]
    assert type(result) is dict


def test_optional_fields_may_be_absent_or_null(track: PayloadValidator) -> None:
    minimal = {"user_id": "u", "track_id": "t", "played_ms": 0, "birth_date": "2000-01-01"}
    assert track.validate(minimal) == minimal
    nulls = {**minimal, "volume": None, "shuffle": None, "started_at": None, "email": None, "context": None}
    assert track.validate(nulls) == nulls


def test_float64_accepts_integers(track: PayloadValidator) -> None:
    payload = {**_track_payload(), "volume": 1}
    assert track.validate(payload)["volume"] == 1


@pytest.mark.parametrize(
    "text",
    ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123456Z", "2024-05-01T14:00:00+02:00", "2024-05-01T07:30:00-04:30"],
)
def test_rfc3339_timestamps_with_zone_pass(track: PayloadValidator, text: str) -> None:
    track.validate({**_track_payload(), "started_at": text})
    assert parse_timestamp(text).utcoffset() is not None


def test_int64_bounds_are_inclusive(track: PayloadValidator) -> None:
    track.validate({**_track_payload(), "played_ms": INT64_MAX})
    track.validate({**_track_payload(), "played_ms": INT64_MIN})


def test_parse_helpers_use_the_validator_rules() -> None:
    assert parse_timestamp("2024-05-01T14:00:00+02:00") == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    assert parse_date("2024-02-29") == date(2024, 2, 29)
    for bad, parse in ((f"{SECRET}T00:00:00", parse_timestamp), ("2024-05-01T12:00:00", parse_timestamp), (SECRET, parse_date)):
        with pytest.raises(ValueError) as info:
            parse(bad)
        assert SECRET not in str(info.value)


# --------------------------------------------------------------------------- violations


def _violation(validator: PayloadValidator, payload: object) -> SchemaViolation:
    with pytest.raises(SchemaViolation) as info:
        validator.validate(payload)
    exc = info.value
    assert isinstance(exc, PlatformError)
    assert str(exc) == f"{exc.path}: {exc.reason}"
    return exc


def _mutated(change: Callable[[dict], Any]) -> dict:
    payload = _track_payload()
    change(payload)
    return payload


def _assert_no_value(exc: SchemaViolation, *values: object) -> None:
    for value in (SECRET, str(SECRET_INT), *map(str, values)):
        assert value not in str(exc), f"the message leaks the input value {value!r}: {exc}"


def test_missing_required_field(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p.pop("track_id")))
    assert (exc.path, exc.reason) == ("$.track_id", "required field is missing")


def test_missing_required_nested_field(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p["context"]["device"].pop("os")))
    assert (exc.path, exc.reason) == ("$.context.device.os", "required field is missing")


def test_null_required_field(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p.update(track_id=None)))
    assert exc.path == "$.track_id"
    assert exc.reason.startswith("required field is null")


def test_null_required_record(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p["context"].update(device=None)))
    assert exc.path == "$.context.device"
    assert exc.reason == "required field is null: expected an object (RECORD)"


def test_wrong_type_at_top_level(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p.update(played_ms=SECRET)))
    assert (exc.path, exc.reason) == ("$.played_ms", "expected an integer (INT64), got a string")
    _assert_no_value(exc)


def test_wrong_type_in_nested_record(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p["context"]["device"].update(os=SECRET_INT)))
    assert (exc.path, exc.reason) == ("$.context.device.os", "expected a string, got an integer")
    _assert_no_value(exc)


def test_wrong_type_inside_repeated_record(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p["results"][2].update(track_id=SECRET_INT)))
    assert (exc.path, exc.reason) == ("$.results[2].track_id", "expected a string, got an integer")
    _assert_no_value(exc)


def test_wrong_element_in_repeated_scalar(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p["context"].update(tags=["ok", SECRET_INT])))
    assert (exc.path, exc.reason) == ("$.context.tags[1]", "expected a string, got an integer")
    _assert_no_value(exc)


def test_null_element_in_repeated_field(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p.update(results=[{"track_id": "a"}, None])))
    assert exc.path == "$.results[1]"
    assert exc.reason.startswith("array element is null")


def test_record_that_is_not_an_object(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p.update(context=SECRET)))
    assert (exc.path, exc.reason) == ("$.context", "expected an object (RECORD), got a string")
    _assert_no_value(exc)


def test_repeated_record_element_that_is_not_an_object(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p.update(results=[SECRET])))
    assert (exc.path, exc.reason) == ("$.results[0]", "expected an object (RECORD), got a string")
    _assert_no_value(exc)


@pytest.mark.parametrize("value", [SECRET, {"x": SECRET}, None])
def test_non_list_for_repeated_field(track: PayloadValidator, value: object) -> None:
    exc = _violation(track, _mutated(lambda p: p["context"].update(tags=value)))
    assert exc.path == "$.context.tags"
    assert exc.reason.startswith("expected an array of strings (omit it or send [] for none), got ")
    _assert_no_value(exc)


def test_required_repeated_field_missing() -> None:
    validator = compile_validator(load("order_placed"))
    payload = {k: v for k, v in VALID_EXAMPLES["order_placed"].items() if k != "lines"}
    exc = _violation(validator, payload)
    assert (exc.path, exc.reason) == ("$.lines", "required field is missing")
    assert validator.validate({**payload, "lines": []})


def test_unknown_top_level_field_with_suggestion(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p.update(contxt=SECRET)))
    assert exc.path == "$.contxt"
    assert exc.reason.startswith("unknown field: not in schema track_played_v1 (did you mean 'context'?)")
    _assert_no_value(exc)


def test_unknown_field_inside_repeated_record(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p["results"][1].update(rank=SECRET_INT)))
    assert exc.path == "$.results[1].rank"
    assert exc.reason.startswith("unknown field: not in record results;")
    _assert_no_value(exc)


def test_unknown_key_that_may_be_personal_data_is_not_shown(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p["context"].update({SECRET: 1})))
    assert exc.path == "$.context"
    assert exc.reason.startswith("unknown field (its name is not shown")
    _assert_no_value(exc)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2031-07-09T08:15:00", "TIMESTAMP without a time zone"),
        ("2031-07-09", "not a valid TIMESTAMP"),
        ("2031-13-09T08:15:00Z", "not a valid TIMESTAMP"),
        ("2031-07-09T08:15Z", "not a valid TIMESTAMP"),
        (f"{SECRET} 2024", "not a valid TIMESTAMP"),
        (1714564800, "expected a string holding an RFC 3339 timestamp"),
    ],
)
def test_bad_timestamp(track: PayloadValidator, value: object, reason: str) -> None:
    exc = _violation(track, _mutated(lambda p: p.update(started_at=value)))
    assert exc.path == "$.started_at"
    assert exc.reason.startswith(reason)
    if isinstance(value, str):
        _assert_no_value(exc, value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2023-02-29", "not a valid DATE"),
        ("20310709", "not a valid DATE"),
        ("2031-07-09T00:00:00Z", "not a valid DATE"),
        (SECRET, "not a valid DATE"),
        (20310709, "expected a string holding a date as YYYY-MM-DD"),
    ],
)
def test_bad_date(track: PayloadValidator, value: object, reason: str) -> None:
    exc = _violation(track, _mutated(lambda p: p["results"][0].update(shown_on=value)))
    assert exc.path == "$.results[0].shown_on"
    assert exc.reason.startswith(reason)
    _assert_no_value(exc, value)


@pytest.mark.parametrize(("field", "kind"), [("played_ms", "an integer (INT64)"), ("volume", "a number (FLOAT64)")])
def test_bool_where_number(track: PayloadValidator, field: str, kind: str) -> None:
    exc = _violation(track, _mutated(lambda p: p.update({field: True})))
    assert (exc.path, exc.reason) == (f"$.{field}", f"expected {kind}, got true/false")


def test_number_where_bool(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p.update(shuffle=1)))
    assert (exc.path, exc.reason) == ("$.shuffle", "expected true or false (BOOL), got an integer")


def test_float_where_int64(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p.update(played_ms=1.0)))
    assert (exc.path, exc.reason) == ("$.played_ms", "expected an integer (INT64), got a floating-point number")


@pytest.mark.parametrize("value", [INT64_MAX + 1, INT64_MIN - 1, 10**30 + SECRET_INT])
def test_int64_overflow(track: PayloadValidator, value: int) -> None:
    exc = _violation(track, _mutated(lambda p: p.update(played_ms=value)))
    assert (exc.path, exc.reason) == ("$.played_ms", "INT64 out of range: must be between -2^63 and 2^63-1")
    _assert_no_value(exc, value)


@pytest.mark.parametrize(
    ("payload", "got"),
    [
        ([SECRET], "an array"),
        (SECRET, "a string"),
        (None, "null"),
        (SECRET_INT, "an integer"),
        (b"{}", "a Python bytes"),
        (MappingProxyType({"track_id": SECRET}), "a Python mappingproxy"),
    ],
)
def test_non_object_payload(track: PayloadValidator, payload: object, got: str) -> None:
    exc = _violation(track, payload)
    assert (exc.path, exc.reason) == ("$", f"the payload must be a JSON object, got {got}")
    _assert_no_value(exc)


def test_non_string_keys(track: PayloadValidator) -> None:
    exc = _violation(track, _mutated(lambda p: p["context"].update({SECRET_INT: 1})))
    assert (exc.path, exc.reason) == ("$.context", "object keys must be strings")
    _assert_no_value(exc)


def test_field_names_cannot_clash_with_python() -> None:
    schema = EventSchema.model_validate(
        {
            "name": "x", "version": 1, "owner": "o", "domain": "d", "description": "d", "retention_days": 1,
            "fields": [
                {"name": "class", "type": "STRING", "description": "k", "required": True},
                {"name": "from", "type": "INT64", "description": "k"},
                {"name": "f0", "type": "BOOL", "description": "k", "required": True},
            ],
        }
    )
    validator = compile_validator(schema)
    assert validator.validate({"class": "a", "from": 1, "f0": True})
    assert _violation(validator, {"class": "a", "f0": 1}).path == "$.f0"
    assert _violation(validator, {"f0": True}).path == "$.class"


# --------------------------------------------------------------------------- properties

_UTC_OFFSETS = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


def _timestamp() -> st.SearchStrategy[str]:
    def render(moment: datetime, zulu: bool) -> str:
        text = moment.isoformat()
        return text[:-6] + "Z" if zulu and text.endswith("+00:00") else text

    aware = st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc) | _UTC_OFFSETS
    )
    return st.builds(render, aware, st.booleans())


def _scalar(field: FieldDef) -> st.SearchStrategy[Any]:
    return {
        "STRING": st.text(max_size=20),
        "INT64": st.integers(INT64_MIN, INT64_MAX),
        "FLOAT64": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53),
        "BOOL": st.booleans(),
        "TIMESTAMP": _timestamp(),
        "DATE": st.dates().map(date.isoformat),
    }[field.type]


def _value(field: FieldDef) -> st.SearchStrategy[Any]:
    element = _record(field.fields) if field.type == "RECORD" else _scalar(field)
    return st.lists(element, max_size=3) if field.repeated else element


def _record(fields: tuple[FieldDef, ...]) -> st.SearchStrategy[dict]:
    required = {f.name: _value(f) for f in fields if f.required}
    optional = {f.name: (_value(f) if f.repeated else st.none() | _value(f)) for f in fields if not f.required}
    return st.fixed_dictionaries(required, optional=optional)


SCHEMAS = {name: load(name) for name in NAMES}
VALIDATORS = {name: compile_validator(schema) for name, schema in SCHEMAS.items()}


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_valid_payloads_pass(name: str, data: st.DataObject) -> None:
    payload = data.draw(_record(SCHEMAS[name].fields))
    snapshot = copy.deepcopy(payload)
    assert VALIDATORS[name].validate(payload) is payload
    assert payload == snapshot


def _leaves(fields: tuple[FieldDef, ...], obj: dict, path: str, out: list) -> list:
    """Every (path, field, is_element, container, key) present in a payload."""
    for field in fields:
        if field.name not in obj or obj[field.name] is None:
            continue
        here, value = f"{path}.{field.name}", obj[field.name]
        out.append((here, field, False, obj, field.name))
        if field.repeated:
            for i, item in enumerate(value):
                out.append((f"{here}[{i}]", field, True, value, i))
                if field.type == "RECORD":
                    _leaves(field.fields, item, f"{here}[{i}]", out)
        elif field.type == "RECORD":
            _leaves(field.fields, value, here, out)
    return out


def _wrong_value(field: FieldDef, element: bool, secret: str) -> object:
    if field.repeated and not element:
        return secret  # a string where an array belongs
    return SECRET_INT if field.type in ("STRING", "TIMESTAMP", "DATE") else secret


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_one_wrong_value_is_reported_at_its_path_without_the_value(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[name]
    payload = data.draw(_record(schema.fields))
    leaves = _leaves(schema.fields, payload, "$", [])
    path, field, element, container, key = data.draw(st.sampled_from(leaves))
    secret = f"SECRET-{data.draw(st.text(min_size=1, max_size=12))}"
    container[key] = _wrong_value(field, element, secret)
    with pytest.raises(SchemaViolation) as info:
        VALIDATORS[name].validate(payload)
    assert info.value.path == path
    assert secret not in str(info.value) and str(SECRET_INT) not in str(info.value)
