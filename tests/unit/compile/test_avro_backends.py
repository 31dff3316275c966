"""The Avro codec's two backends against each other: the C build of native/
(`dataplatform_avro`) and the generated Python, on any bytes and on rows built wrong.
(test_avro_codec.py runs every codec test under each backend against fastavro.)"""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataplatform.compile import avro_codec
from dataplatform.compile.avro_codec import AvroCodec, AvroDecodeError, AvroEncodeError
from tests.unit.compile.test_avro_codec import SCHEMAS, _sample, _values


def test_the_c_backend_is_built_and_the_default_where_make_venv_ran() -> None:
    """`make venv` builds native/: if that silently failed, every process would fall back to
    the slower generated Python; this fails instead."""
    out = subprocess.run(
        [sys.executable, "-c", "from dataplatform.compile import avro_codec; print(avro_codec.DEFAULT_BACKEND)"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parents[3] / "functions",
    )
    assert out.stdout.strip() == "c"


def test_program_kinds_and_messages_match_the_generated_code() -> None:
    native = avro_codec._native
    assert avro_codec._NATIVE_KINDS == {
        "string": native.STRING, "bytes": native.BYTES, "long": native.LONG, "double": native.DOUBLE,
        "boolean": native.BOOLEAN, "timestamp-micros": native.TIMESTAMP, "date": native.DATE,
        "record": native.RECORD, "array": native.ARRAY, "union": native.UNION,
    }
    for name in sorted(SCHEMAS):
        codec = AvroCodec(SCHEMAS[name], backend="python")
        _, paths = avro_codec._program(codec.schema)
        assert paths == codec._paths, name


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(Exception, match=r"unknown Avro codec backend 'rust'"):
        AvroCodec(SCHEMAS["track_played"], backend="rust")


@pytest.mark.parametrize("name", ["track_played", "profile_probe"])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_both_backends_read_any_bytes_alike(name: str, data: st.DataObject) -> None:
    """Arbitrary bytes, and valid messages with a byte changed, cut or added: the backends
    return the same values or both refuse with AvroDecodeError."""
    c, py = (AvroCodec(SCHEMAS[name], backend=b) for b in ("c", "python"))
    valid = c.encode(data.draw(_values(c.schema)))
    mutated = data.draw(
        st.one_of(
            st.binary(max_size=200),
            st.integers(0, len(valid) - 1).flatmap(
                lambda i: st.integers(0, 255).map(lambda b: valid[:i] + bytes([b]) + valid[i + 1:])
            ),
            st.integers(0, len(valid)).map(lambda i: valid[:i]),
            st.binary(min_size=1, max_size=4).map(lambda extra: valid + extra),
        )
    )
    for method in ("decode", "decode_values"):
        outcomes = []
        for codec in (c, py):
            try:
                outcomes.append(getattr(codec, method)(mutated))
            except AvroDecodeError:
                outcomes.append(AvroDecodeError)
        assert outcomes[0] == outcomes[1], method


def test_c_encode_fails_like_python_on_rows_built_wrong() -> None:
    """Beyond the column errors above: a Mapping that is not a dict, a dict subclass, nested
    containers of the wrong type, a list element of the wrong type."""
    codec = {b: AvroCodec(SCHEMAS["profile_probe"], backend=b) for b in ("c", "python")}
    row = _sample(codec["c"].schema)
    for wrapped in (MappingProxyType(row), OrderedDict(row)):
        assert codec["c"].encode(wrapped) == codec["python"].encode(wrapped) == codec["c"].encode(row)
    broken = []
    for column, value in [("context", []), ("tags", ("a",)), ("tags", [1]), ("results", [None]), ("day", "2024-05-01")]:
        bad = _sample(codec["c"].schema)
        bad[column] = value
        broken.append(bad)
    for bad in broken:
        messages = []
        for backend in ("c", "python"):
            with pytest.raises(AvroEncodeError) as info:
                codec[backend].encode(bad)
            messages.append(str(info.value))
        assert messages[0] == messages[1]


def test_c_backend_does_not_leak_on_success_or_error_paths() -> None:
    """A reference the C code forgets to release (the usual bug on error paths) shows as
    memory that grows with the calls: many encode/decode calls, half of them failing, must
    leave Python's allocated memory where a few calls left it."""
    import gc
    import tracemalloc

    codec = AvroCodec(SCHEMAS["profile_probe"], backend="c")
    row = _sample(codec.schema)
    data = codec.encode(row)
    bad_rows = []
    for column, value in [("context", []), ("tags", [1]), ("day", "2024-05-01"), ("score", "high")]:
        bad = _sample(codec.schema)
        bad[column] = value
        bad_rows.append(bad)
    bad_bytes = [data[: len(data) // 2], data + b"\x00", b"\xff" * 12]

    def calls(rounds: int) -> None:
        for _ in range(rounds):
            codec.encode(row)
            codec.decode(data)
            codec.decode_values(data)
            for bad in bad_rows:
                with pytest.raises(AvroEncodeError):
                    codec.encode(bad)
            for raw in bad_bytes:
                for method in (codec.decode, codec.decode_values):
                    with pytest.raises(AvroDecodeError):
                        method(raw)

    tracemalloc.start()
    try:
        calls(200)  # caches and free lists settle
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        calls(2000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 2,000 rounds × 14 calls: one leaked object a call would be ≥ 28,000 × ~50 bytes.
    assert grown < 64 * 1024, f"{grown} bytes still allocated after 28,000 calls"
