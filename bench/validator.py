"""Micro-benchmark of the compiled payload validator (the anonymizer's per-event check).

Prints the cost per event next to a floor measured in the same run: decoding the same
event JSON with orjson, which the anonymizer pays anyway. The ratio is what to watch; the
target budget for the whole anonymizer is 20 µs/event (50k events/s/core incl. crypto).
When msgspec was chosen, a generated pure-Python closure doing the same checks cost
about 6.5x the msgspec validator on this payload.

    .venv/bin/python bench/validator.py
"""

from __future__ import annotations

import timeit
from pathlib import Path

import orjson
import yaml

from dataplatform.compile.validator import SchemaViolation, compile_validator
from dataplatform.definitions.models import EventSchema

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = EventSchema.model_validate(yaml.safe_load((ROOT / "tests/fixtures/compile/track_played.yaml").read_text()))
PAYLOAD = {
    "user_id": "user-0001",
    "track_id": "t-42",
    "played_ms": 183000,
    "volume": 0.5,
    "shuffle": True,
    "started_at": "2024-05-01T12:00:00.123Z",
    "birth_date": "1990-01-01",
    "email": "listener@example.com",
    "session_token": "tok",
    "context": {"ip": "203.0.113.7", "device": {"os": "ios", "serial": "SN-1"}, "tags": ["car", "bt"]},
    "results": [{"track_id": "a", "score": 0.1, "shown_on": "2024-05-01"}, {"track_id": "b"}],
}
INVALID = {**PAYLOAD, "results": [{"track_id": "a"}, {"track_id": 7}]}


def per_call(fn, repeat: int = 5, number: int = 50_000) -> float:
    """Best-of-`repeat` seconds per call (the least disturbed run)."""
    return min(timeit.repeat(fn, repeat=repeat, number=number)) / number


def main() -> None:
    validator = compile_validator(SCHEMA)
    raw = orjson.dumps(PAYLOAD)
    assert validator.validate(PAYLOAD) is PAYLOAD

    def invalid() -> None:
        try:
            validator.validate(INVALID)
        except SchemaViolation:
            pass

    floor = per_call(lambda: orjson.loads(raw))
    compile_s = per_call(lambda: compile_validator(SCHEMA), repeat=3, number=200)
    valid = per_call(lambda: validator.validate(PAYLOAD))
    rejected = per_call(invalid)
    print(f"payload: {len(raw)} bytes JSON, {sum(1 for _ in SCHEMA.walk())} schema fields")
    print(f"floor   orjson.loads          {floor * 1e6:7.2f} µs/event")
    print(f"valid   validate()            {valid * 1e6:7.2f} µs/event  {valid / floor:5.2f}x floor  {1 / valid:>10,.0f} events/s")
    print(f"invalid validate() + error    {rejected * 1e6:7.2f} µs/event  {rejected / floor:5.2f}x floor")
    print(f"compile compile_validator()   {compile_s * 1e6:7.0f} µs (once per schema)")


if __name__ == "__main__":
    main()
