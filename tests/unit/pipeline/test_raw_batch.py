"""The raw batch message: zstd-compressed envelope JSON, plain JSON still read, and every
kind of unreadable data named without its content."""

from __future__ import annotations

import orjson
import pytest
import zstandard

from dataplatform.pipeline import raw_batch
from dataplatform.pipeline.raw_batch import CONTENT_ENCODING, MAX_DECOMPRESSED_BYTES, RawBatchError, encode, envelope_bytes

EVENTS = [{"event_id": f"e-{i}", "payload": {"user_id": "secret-user", "n": i}} for i in range(200)]


def test_a_batch_round_trips_compressed_and_marked() -> None:
    data, attributes = encode("2026-01-01T00:00:00.000000Z", EVENTS)
    assert attributes == {CONTENT_ENCODING: "zstd"}
    assert b"secret-user" not in data and len(data) * 5 < len(orjson.dumps(EVENTS))
    assert orjson.loads(envelope_bytes(data, attributes)) == {"received_at": "2026-01-01T00:00:00.000000Z", "events": EVENTS}


def test_events_serialized_one_by_one_make_the_same_message_byte_for_byte() -> None:
    events = EVENTS + [{"event_id": "ü-1", "payload": {"text": "naïve \u2603 \"quoted\"", "f": 1.5, "none": None}}]
    serialized = [orjson.dumps(event) for event in events]
    assert raw_batch.encode_serialized("2026-01-01T00:00:00.000000Z", serialized) == encode("2026-01-01T00:00:00.000000Z", events)
    assert raw_batch.encode_serialized("2026-01-01T00:00:00Z", []) == encode("2026-01-01T00:00:00Z", [])


def test_a_message_without_content_encoding_is_plain_json() -> None:
    data = orjson.dumps({"received_at": "2026-01-01T00:00:00Z", "events": []})
    assert envelope_bytes(data, {"event_type": "t_v1"}) == data


def test_threads_each_get_their_own_compressor() -> None:
    import threading

    outputs: list[bytes] = []
    threads = [threading.Thread(target=lambda: outputs.append(encode("t", EVENTS)[0])) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(outputs)) == 1 and raw_batch._compressor() is not None


@pytest.mark.parametrize(
    ("data", "attributes", "detail"),
    [
        (b"secret-user", {CONTENT_ENCODING: "gzip"}, "content-encoding 'gzip' is not supported"),
        (b"secret-user garbage", {CONTENT_ENCODING: "zstd"}, "is not a valid zstd frame"),
        (zstandard.ZstdCompressor().compress(b"secret-user" * 1000)[:-8], {CONTENT_ENCODING: "zstd"}, "is truncated"),
        (
            zstandard.ZstdCompressor().compress(b"a" * (MAX_DECOMPRESSED_BYTES + 1)),
            {CONTENT_ENCODING: "zstd"},
            "decompresses to more than",
        ),
        (
            zstandard.ZstdCompressor(write_content_size=False).compress(b"a" * (MAX_DECOMPRESSED_BYTES + 1)),
            {CONTENT_ENCODING: "zstd"},
            "decompresses to more than",
        ),
    ],
    ids=["unknown-encoding", "not-zstd", "truncated", "bomb-declared-size", "bomb-undeclared-size"],
)
def test_unreadable_data_is_named_without_its_content(data: bytes, attributes: dict[str, str], detail: str) -> None:
    with pytest.raises(RawBatchError) as caught:
        envelope_bytes(data, attributes)
    assert detail in str(caught.value) and "secret" not in str(caught.value)
