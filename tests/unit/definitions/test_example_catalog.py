"""The repository's own catalog (schemas/, workflows/) loads and shows what the platform does."""

from __future__ import annotations

from collections import Counter

from dataplatform.definitions.checks import endpoint_upstreams, output_columns
from dataplatform.definitions.models import CHECK_TYPES, PRIVACY_POLICIES
from dataplatform.compile import sql as sqlc


def test_at_least_five_event_types_and_five_endpoints(catalog):
    assert len(catalog.schemas) >= 5
    assert len(catalog.endpoints) >= 5
    assert {"track_played", "search_performed", "playlist_modified", "app_session_started", "ad_impression"} <= {
        s.name for s in catalog.schemas
    }


def test_every_privacy_policy_is_used(catalog):
    used = Counter(f.privacy for s in catalog.schemas for _, f in s.walk())
    assert set(PRIVACY_POLICIES) <= set(used)


def test_real_pii_is_protected(catalog):
    policy = {(s.name, path): f.privacy for s in catalog.schemas for path, f in s.walk()}
    assert policy[("user_registered", "email")] == "encrypt"
    assert policy[("track_played", "context.ip")] == "truncate_ip"
    assert policy[("track_played", "context.device.id")] == "hash"
    assert policy[("app_session_started", "device.id")] == "encrypt_deterministic"
    assert policy[("track_played", "context.location.lat")] == "encrypt"
    assert policy[("search_performed", "query")] == "encrypt"
    assert all(s.user_id_field is not None for s in catalog.schemas)


def test_nested_records_and_repeated_fields(catalog):
    fields = [(s.name, path, f) for s in catalog.schemas for path, f in s.walk()]
    assert any(path.count(".") >= 2 for _, path, _ in fields), "a RECORD inside a RECORD"
    assert any(f.repeated and f.type == "RECORD" for *_, f in fields), "a repeated RECORD"
    assert any(f.repeated and f.type != "RECORD" for *_, f in fields), "a repeated scalar"


def test_hourly_partitions_and_lateness(catalog):
    assert any(s.partitioning == "HOUR" for s in catalog.schemas)
    assert len({s.allowed_lateness for s in catalog.schemas}) > 1


def test_an_endpoint_reads_another_endpoint(catalog):
    graph = endpoint_upstreams(catalog)
    assert graph["artist_daily_summary"] == ["daily_track_plays"]
    assert graph["weekly_top_tracks"] == ["daily_track_plays"]


def test_every_endpoint_uses_the_run_date_and_returns_its_partition(catalog):
    for endpoint in catalog.endpoints:
        assert "@run_date" in endpoint.sql, endpoint.name
        assert endpoint.partition_field in output_columns(sqlc.parse(endpoint.sql)), endpoint.name


def test_every_check_type_is_used(catalog):
    used = {c.type for e in catalog.endpoints for c in e.checks}
    assert used == set(CHECK_TYPES)


def test_every_definition_has_owners_readers_and_retention(catalog):
    for definition in (*catalog.schemas, *catalog.endpoints):
        assert definition.owner.startswith("team-")
        assert definition.readers, definition.name
        assert definition.retention_days >= 30


def test_no_endpoint_aggregates_an_encrypted_or_dropped_column(catalog):
    hidden = {
        f"{s.name}:{path.rsplit('.', 1)[-1]}"
        for s in catalog.schemas
        for path, f in s.walk()
        if f.privacy in ("encrypt", "encrypt_deterministic", "drop")
    }
    names = {s.key + "_dedup": s.name for s in catalog.schemas}
    for endpoint in catalog.endpoints:
        tree = sqlc.parse(endpoint.sql)
        read = {names[t.table] for t in sqlc.referenced_tables(tree) if t.table in names}
        columns = {c.name for c in tree.find_all(sqlc.exp.Column)}
        assert not {f"{name}:{c}" for name in read for c in columns} & hidden, endpoint.name
