"""The publisher's request batching (`PubSubPublisher._batches`), without a server: every
request stays within its count and byte bounds, and messages keep their order, data and
attributes whether they share one attributes mapping or not."""

from __future__ import annotations

import pytest

from dataplatform.adapters.pubsub import PubSubPublisher
from dataplatform.ports import Message


def _messages() -> list[Message]:
    shared = {"raw_message_id": "1234567890"}
    out = []
    for i in range(60):
        data = bytes([i]) * (700 if i % 7 == 0 else 1 + i)
        attributes = shared if i % 3 else {"n": str(i), "other": "x" * (i % 11)}
        out.append(Message(data, attributes))
    out.append(Message(b"", {}))
    out.append(Message(b"z" * 5_000, shared))  # larger than max_bytes: goes alone
    return out


@pytest.mark.parametrize(("max_messages", "max_bytes"), [(7, 2_000), (1000, 1_500), (3, 10_000_000)])
def test_batches_keep_order_content_and_bounds(max_messages: int, max_bytes: int) -> None:
    publisher = PubSubPublisher("p", max_messages=max_messages, max_bytes=max_bytes)
    messages = _messages()

    batches = list(publisher._batches(messages))

    flat = [raw for batch in batches for raw in batch]
    assert [raw.data for raw in flat] == [m.data for m in messages]
    assert [dict(raw.attributes) for raw in flat] == [dict(m.attributes) for m in messages]
    for batch in batches:
        assert len(batch) <= max_messages
        if len(batch) > 1:  # the request's real size: each message with its tag and length prefix
            assert sum(raw.ByteSize() + 1 + len(_varint(raw.ByteSize())) for raw in batch) <= max_bytes
    if max_bytes < 5_000:
        assert any(len(batch) == 1 and len(batch[0].data) == 5_000 for batch in batches)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
