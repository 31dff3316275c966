"""`reveal`: the data-subject access request, end to end on real parts.

Real anonymizer and key hierarchy (local Tink KMS), real DuckDB warehouse with the compiled
tables and dedup views; only the key store and config bucket are in-memory fakes.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import orjson
import pytest

from dataplatform.adapters.duckdb_warehouse import DuckDBWarehouse
from dataplatform.compile.bigquery_schema import event_table
from dataplatform.compile.views import dedup_view
from dataplatform.pipeline.reveal import reveal, to_json
from dataplatform.ports import Message
from dataplatform.privacy.anonymizer import Anonymizer
from dataplatform.privacy.key_service import KeyService
from tests.fakes import DEFAULT_NOW, ManualClock, MemoryKeyStore
from tests.fixtures.privacy.keys import platform_keys
from tests.fixtures.privacy.schemas import load_all

NOW = DEFAULT_NOW


def _payload(user: str) -> dict:
    return {
        "user_id": user,
        "email": f"{user}@example.com",
        "search_query": f"{user} secret query",
        "session_id": "s-1",
        "password": "hunter2hunter2",
        "context": {"ip": "203.0.113.77", "device": {"device_id": f"dev-{user}-123456", "os": "ios"}},
        "hops": ["198.51.100.7"],
    }


def _message(*users: str) -> Message:
    when = (NOW - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    events = [
        {"event_id": f"e-{user}-{i}", "event_type": "profile_probe", "schema_version": 1,
         "event_time": when, "payload": _payload(user)}
        for i, user in enumerate(users)
    ]
    events.append(
        {"event_id": "n-alice", "event_type": "account_nested", "schema_version": 2, "event_time": when,
         "payload": {"account": {"id": users[0], "email": f"{users[0]}+nested@example.com"}, "plan": "free"}}
    )
    return Message(orjson.dumps({"received_at": NOW.isoformat(), "events": events}), {})


@pytest.fixture
def world(tmp_path):
    schemas = load_all()
    platform = platform_keys(tmp_path)
    clock = ManualClock(NOW)
    keys = KeyService(MemoryKeyStore(), platform, clock)
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_dataset("events")
    for schema in schemas:
        warehouse.ensure_table(event_table(schema))
        view = dedup_view(schema)
        warehouse.ensure_view(view.dataset, view.view, view.sql)
    result = Anonymizer(schemas, keys, platform, clock).anonymize([_message("alice", "bob", "alice")])
    for key, rows in result.rows.items():
        warehouse.insert_rows(f"events.{key}", rows)
    catalog = SimpleNamespace(schemas=schemas)
    return SimpleNamespace(
        catalog=catalog, keys=keys, platform=platform, warehouse=warehouse, clock=clock,
        run=lambda user: reveal(user, catalog=catalog, keys=keys, platform=platform, warehouse=warehouse, clock=clock),
    )


def test_reveal_decrypts_only_that_users_events(world):
    result = world.run("alice")
    assert result.status == "found"
    rows = dict((t.event_key, t.rows) for t in result.tables)["profile_probe_v1"]
    assert [r["event_id"] for r in rows] == ["e-alice-0", "e-alice-2"]
    assert {r["email"] for r in rows} == {"alice@example.com"}
    assert all(r["user_pseudonym"] == result.pseudonym for r in rows)
    assert "bob@example.com" not in orjson.dumps(to_json(result), default=str).decode()


def test_stored_rows_hold_ciphertext_not_the_email(world):
    stored = world.warehouse.query("SELECT email FROM events.profile_probe_v1 WHERE event_time IS NOT NULL")
    assert stored and all(isinstance(r["email"], bytes) and b"alice@" not in r["email"] for r in stored)


def test_after_forget_nothing_can_be_revealed_but_others_still_can(world):
    assert world.keys.forget("alice") is True
    assert world.run("alice").status == "erased"
    assert world.run("alice").tables == ()
    bob = world.run("bob")
    assert bob.status == "found" and bob.event_count == 1
    rows = dict((t.event_key, t.rows) for t in bob.tables)["profile_probe_v1"]
    assert rows[0]["email"] == "bob@example.com"


def test_unknown_user_mints_no_key(world):
    before = world.keys.minted
    result = world.run("carol")
    assert result.status == "unknown" and result.tables == ()
    assert world.keys.minted == before


def test_nested_subject_and_encrypted_field_inside_a_record(world):
    rows = dict((t.event_key, t.rows) for t in world.run("alice").tables)["account_nested_v2"]
    assert [r["event_id"] for r in rows] == ["n-alice"]
    assert rows[0]["account"]["email"] == "alice+nested@example.com"


def test_reveal_through_a_json_transport_decodes_base64_bytes(world):
    """The local runtime's HTTP API (like BigQuery's REST API) carries BYTES as base64 text."""
    from dataplatform.local.runtime import dumps

    class JsonWarehouse:
        def query(self, sql, params=None):
            return orjson.loads(dumps(world.warehouse.query(sql, params)))

    result = reveal("alice", catalog=world.catalog, keys=world.keys, platform=world.platform,
                    warehouse=JsonWarehouse(), clock=world.clock)
    rows = dict((t.event_key, t.rows) for t in result.tables)["profile_probe_v1"]
    assert {r["email"] for r in rows} == {"alice@example.com"}
