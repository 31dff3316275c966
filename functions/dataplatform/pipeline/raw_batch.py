"""The raw batch message of `<name>_v<major>-raw`: written by collect, read by anonymize and
by the local runtime's dead-letter drains.

Data: the JSON envelope `{"received_at": <RFC 3339 UTC>, "events": [...]}`, compressed with
zstd (level 1) and marked by the attribute `content-encoding: zstd`. A message without that
attribute is plain JSON (what earlier versions published, and what tests and replays may
send), so readers accept both.

Why compressed: event JSON compresses ~10x (measured on the demo's traffic: 1,350 → 124
bytes an event), for ~2 µs of CPU an event to compress and ~1.5 µs to decompress. Pub/Sub
bills by the byte, and a push subscription delivers the message base64-encoded inside a JSON
body: locally the Pub/Sub emulator spent almost half its CPU building those push bodies
(most of it per byte), and the anonymize function base64-decoded and parsed them.

Decompression is bounded (`MAX_DECOMPRESSED_BYTES`, well above collect's 5 MB request
limit) so a hostile or corrupt message cannot blow up a function's memory; a message that
does not decompress is a `RawBatchError` whose text names what is wrong, never its content.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

CONTENT_ENCODING = "content-encoding"
ZSTD = "zstd"
ZSTD_LEVEL = 1
"""Level 1: within 1% of level 3's ratio on event JSON, at two thirds of the CPU."""
MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024

_local = threading.local()


class RawBatchError(ValueError):
    """A raw batch message whose data cannot be read back into JSON bytes."""


def encode(received_at: str, events: list[Any]) -> tuple[bytes, dict[str, str]]:
    """(data, encoding attributes) of one raw batch: zstd-compressed envelope JSON."""
    return _compressed(orjson.dumps({"received_at": received_at, "events": events}))


def encode_serialized(received_at: str, events: Sequence[bytes]) -> tuple[bytes, dict[str, str]]:
    """`encode`, byte for byte, of events already serialized as compact JSON each: collect
    serializes every event to measure it, and splicing those bytes saves a second pass."""
    envelope = b'{"received_at":' + orjson.dumps(received_at) + b',"events":[' + b",".join(events) + b"]}"
    return _compressed(envelope)


def _compressed(envelope: bytes) -> tuple[bytes, dict[str, str]]:
    return _compressor().compress(envelope), {CONTENT_ENCODING: ZSTD}


def envelope_bytes(data: bytes, attributes: Mapping[str, str]) -> bytes:
    """The envelope JSON of a raw batch message (decompressed when it says it is zstd).

    RawBatchError for an unknown content encoding or data that does not decompress.
    """
    encoding = attributes.get(CONTENT_ENCODING)
    if encoding is None:
        return bytes(data)
    if encoding != ZSTD:
        raise RawBatchError(f"the message's content-encoding {encoding[:40]!r} is not supported; expected 'zstd' or none")
    import zstandard

    try:
        # A frame that states its size is decompressed to that size whatever max_output_size
        # says, so the stated size is checked first; max_output_size bounds the others.
        declared = zstandard.frame_content_size(data)
        if declared > MAX_DECOMPRESSED_BYTES:
            raise RawBatchError(_too_large(len(data)))
        return _decompressor().decompress(data, max_output_size=MAX_DECOMPRESSED_BYTES)
    except zstandard.ZstdError as exc:
        if "full frame" in str(exc):
            raise RawBatchError(
                f"the message's zstd data ({len(data)} bytes) is truncated or decompresses to more than "
                f"{MAX_DECOMPRESSED_BYTES} bytes, the limit of a raw batch"
            ) from None
        raise RawBatchError(
            f"the message says content-encoding zstd but its data ({len(data)} bytes) is not a valid zstd frame"
        ) from None


def _too_large(size: int) -> str:
    return (
        f"the message's zstd data ({size} bytes) decompresses to more than "
        f"{MAX_DECOMPRESSED_BYTES} bytes, the limit of a raw batch"
    )


def _compressor() -> Any:
    """This thread's compressor (zstandard's objects must not be shared between threads)."""
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        import zstandard

        compressor = _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return compressor


def _decompressor() -> Any:
    decompressor = getattr(_local, "decompressor", None)
    if decompressor is None:
        import zstandard

        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor
