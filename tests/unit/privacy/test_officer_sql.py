"""The privacy officer's BigQuery script, and the Tink wire format it relies on.

BigQuery cannot run here, so the BigQuery side is played by Tink itself: the DECLAREs of
the generated script are evaluated the way BigQuery evaluates them (KEYS.KEYSET_CHAIN =
KMS-decrypt the wrapped keyset; AEAD.DECRYPT_BYTES with the record id), using only values
read back out of the parsed SQL, and the recovered keyset must decrypt what the anonymizer's
primitives (`UserCrypto`) encrypted with the field path as associated data.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlglot
import tink
from sqlglot import exp
from tink import aead, daead, proto_keyset_format, secret_key_access

from dataplatform.compile.bigquery_schema import BqField, event_table
from dataplatform.definitions.models import EventSchema
from dataplatform.errors import PlatformError
from dataplatform.ports import UserKeys
from dataplatform.privacy.keys import PlatformKeys, bootstrap
from dataplatform.privacy.officer_sql import decrypt_user_sql, encrypted_fields
from dataplatform.privacy.user_keys import mint, open_keys
from tests.golden import assert_golden

aead.register()
daead.register()

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KMS_URI = "gcp-kms://projects/demo/locations/europe-west1/keyRings/dataplatform/cryptoKeys/platform"


class FakeCloudKms:
    """Raw AEAD under a `gcp-kms://` URI: what Cloud KMS does for KEYS.KEYSET_CHAIN."""

    def __init__(self) -> None:
        self._aead = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM).primitive(aead.Aead)

    @property
    def key_uri(self) -> str:
        return KMS_URI

    def encrypt(self, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        return self._aead.encrypt(plaintext, associated_data)

    def decrypt(self, ciphertext: bytes, associated_data: bytes = b"") -> bytes:
        return self._aead.decrypt(ciphertext, associated_data)


class DictBlobStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def read(self, name: str) -> bytes | None:
        return self.objects.get(name)

    def create(self, name: str, data: bytes) -> bool:
        return self.objects.setdefault(name, data) is data


def _field(name: str, type_: str = "STRING", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "description": f"the {name}", **extra}


REPEATED_SCHEMA = EventSchema.model_validate(
    {
        "name": "mixtape_shared",
        "version": 2,
        "owner": "team-social",
        "domain": "social",
        "description": "A listener shared a mixtape (exercises repeated encrypted fields).",
        "retention_days": 90,
        "fields": [
            _field("user_id", required=True, privacy="user_id"),
            _field("recipients", repeated=True, privacy="encrypt"),
            _field(
                "tracks",
                "RECORD",
                repeated=True,
                fields=[
                    _field("title", privacy="encrypt"),
                    _field("position", "INT64"),
                    _field("notes", "RECORD", fields=[_field("order", repeated=True, privacy="encrypt_deterministic")]),
                ],
            ),
        ],
    }
)

NESTED_SUBJECT_SCHEMA = EventSchema.model_validate(
    {
        "name": "gift_sent",
        "version": 1,
        "owner": "team-social",
        "domain": "social",
        "description": "A listener sent a gift subscription (the subject sits in a record).",
        "retention_days": 30,
        "fields": [
            _field(
                "sender",
                "RECORD",
                required=True,
                fields=[_field("user_id", required=True, privacy="user_id"), _field("email", privacy="encrypt")],
            ),
            _field("message", privacy="encrypt"),
        ],
    }
)


@pytest.fixture(scope="module")
def kms() -> FakeCloudKms:
    return FakeCloudKms()


@pytest.fixture(scope="module")
def platform(kms: FakeCloudKms) -> PlatformKeys:
    blobs = DictBlobStore()
    bootstrap(kms, blobs)
    return PlatformKeys.load(kms, blobs)


@pytest.fixture(scope="module")
def record(platform: PlatformKeys) -> UserKeys:
    return mint(platform, platform.record_id("alice"), NOW)


@pytest.fixture(scope="module")
def fixed_platform() -> PlatformKeys:
    """Fixed, readable material so the golden files are stable (never decrypted)."""
    primitive = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM).primitive(aead.Aead)
    return PlatformKeys(
        kms_key_uri=KMS_URI,
        wrapped_wrapping_keyset=b"kms-wrapped platform wrapping keyset",
        wrapping=primitive,
        quarantine=primitive,
        secret=bytes(32),
    )


FIXED_RECORD = UserKeys(
    record_id="5f0c" * 16,
    pseudonym="a3" * 16,
    aead_keyset=b"wrapped AES256_GCM keyset of the user",
    daead_keyset=b"wrapped AES256_SIV keyset of the user",
    created_at=NOW,
)


def _schema(catalog: Any, name: str) -> EventSchema:
    return next(schema for schema in catalog.schemas if schema.name == name)


def _statements(sql: str) -> list[exp.Expression]:
    return [statement for statement in sqlglot.parse(sql, read="bigquery") if statement is not None]


def _calls(tree: exp.Expression, name: str) -> list[list[exp.Expression]]:
    """Arguments of every call of `name` (`AEAD.DECRYPT_STRING` or `DETERMINISTIC_…`)."""
    namespace, _, function = name.rpartition(".")
    found = []
    for node in tree.find_all(exp.Anonymous):
        if node.name.upper() != function:
            continue
        parent = node.parent
        in_namespace = isinstance(parent, exp.Dot) and parent.this.name.upper() == namespace
        if in_namespace or (not namespace and not isinstance(parent, exp.Dot)):
            found.append(list(node.expressions))
    return found


def _b64(node: exp.Expression) -> bytes:
    assert isinstance(node, exp.FromBase64)
    return base64.b64decode(node.this.name)


# ------------------------------------------------------------------ golden and validity


@pytest.mark.parametrize(
    "name", ["user_registered", "app_session_started", "track_played", "ad_impression"]
)
def test_golden_for_the_example_catalog(catalog: Any, fixed_platform: PlatformKeys, name: str) -> None:
    schema = _schema(catalog, name)
    assert_golden(f"privacy/officer_sql/{schema.key}.sql", decrypt_user_sql(schema, fixed_platform, FIXED_RECORD))


@pytest.mark.parametrize("schema", [REPEATED_SCHEMA, NESTED_SUBJECT_SCHEMA], ids=lambda s: s.key)
def test_golden_for_repeated_and_nested_shapes(fixed_platform: PlatformKeys, schema: EventSchema) -> None:
    assert_golden(f"privacy/officer_sql/{schema.key}.sql", decrypt_user_sql(schema, fixed_platform, FIXED_RECORD))


def _all_schemas(catalog: Any) -> list[EventSchema]:
    return [s for s in catalog.schemas if s.user_id_field] + [REPEATED_SCHEMA, NESTED_SUBJECT_SCHEMA]


def test_every_script_is_valid_bigquery_sql_that_round_trips(catalog: Any, fixed_platform: PlatformKeys) -> None:
    for schema in _all_schemas(catalog):
        sql = decrypt_user_sql(schema, fixed_platform, FIXED_RECORD)
        statements = _statements(sql)
        kinds = [type(statement).__name__ for statement in statements]
        assert kinds[-1] == "Select" and set(kinds[:-1]) <= {"Declare"}, (schema.key, kinds)
        text = [statement.sql(dialect="bigquery", comments=False) for statement in statements]
        again = _statements(";\n".join(text))
        assert [statement.sql(dialect="bigquery", comments=False) for statement in again] == text


def _resolve(fields: tuple[BqField, ...], path: list[str]) -> list[BqField]:
    """The chain of table columns a dotted path walks through."""
    chain: list[BqField] = []
    for name in path:
        column = next((f for f in fields if f.name == name), None)
        assert column is not None, f"no column {name!r} on the way to {'.'.join(path)}"
        chain.append(column)
        fields = column.fields
    return chain


def test_every_decrypted_column_is_a_bytes_column_of_the_event_table(catalog: Any) -> None:
    """The SQL and the compiled table agree on names, nesting, types and repetition."""
    for schema in _all_schemas(catalog):
        table = event_table(schema)
        for field in encrypted_fields(schema):
            chain = _resolve(table.fields, [name for name, _ in field.steps])
            assert chain[-1].type == "BYTES", field.path
            assert [c.mode == "REPEATED" for c in chain] == [repeated for _, repeated in field.steps], field.path
        pseudonym = [*schema.user_id_field.split(".")[:-1], "user_pseudonym"]  # type: ignore[union-attr]
        assert _resolve(table.fields, pseudonym)[-1].type == "STRING"
        names = {f.name for f in table.fields}
        assert {"event_id", "event_time", "publish_time"} <= names


# ------------------------------------------------------------------ what the SQL names


def test_the_script_names_the_kms_key_the_wrapped_keysets_and_the_record_id(
    catalog: Any, platform: PlatformKeys, record: UserKeys
) -> None:
    schema = _schema(catalog, "app_session_started")
    sql = decrypt_user_sql(schema, platform, record)
    declares = [s for s in _statements(sql) if isinstance(s, exp.Declare)]
    assert [d.expressions[0].this[0].name for d in declares] == ["user_aead_keyset", "user_daead_keyset"]
    for declare, wrapped in zip(declares, (record.aead_keyset, record.daead_keyset), strict=True):
        (decrypt_args,) = _calls(declare, "AEAD.DECRYPT_BYTES")
        chain, user_keyset, record_id = decrypt_args
        (chain_args,) = _calls(chain, "KEYS.KEYSET_CHAIN")
        assert chain_args[0].name == platform.kms_key_uri == KMS_URI
        assert _b64(chain_args[1]) == platform.wrapped_wrapping_keyset
        assert _b64(user_keyset) == wrapped
        assert record_id.name == record.record_id
    assert base64.b64encode(platform.wrapped_wrapping_keyset).decode() in sql
    assert f"t.user_pseudonym = '{record.pseudonym}'" in sql
    assert "INTERVAL 400 DAY" in sql


def test_each_field_is_decrypted_with_its_keyset_and_its_path_as_associated_data(
    catalog: Any, fixed_platform: PlatformKeys
) -> None:
    for schema in _all_schemas(catalog):
        select = _statements(decrypt_user_sql(schema, fixed_platform, FIXED_RECORD))[-1]
        expected = {(f.path, f.deterministic) for f in encrypted_fields(schema)}
        found = {(args[2].name, False) for args in _calls(select, "AEAD.DECRYPT_STRING")}
        found |= {(args[2].name, True) for args in _calls(select, "DETERMINISTIC_DECRYPT_STRING")}
        assert found == expected, schema.key
        for args in _calls(select, "AEAD.DECRYPT_STRING"):
            assert args[0].name == "user_aead_keyset"
        for args in _calls(select, "DETERMINISTIC_DECRYPT_STRING"):
            assert args[0].name == "user_daead_keyset"


def test_repeated_fields_unnest_in_order_and_keep_their_place(fixed_platform: PlatformKeys) -> None:
    sql = decrypt_user_sql(REPEATED_SCHEMA, fixed_platform, FIXED_RECORD)
    assert "FROM UNNEST(t.recipients) AS e0 WITH OFFSET AS o0" in sql
    assert "AEAD.DECRYPT_STRING(user_aead_keyset, e0, 'recipients')" in sql
    assert "AEAD.DECRYPT_STRING(user_aead_keyset, e0.title, 'tracks.title') AS value" in sql
    assert "CROSS JOIN UNNEST(e0.notes.`order`) AS e1 WITH OFFSET AS o1" in sql
    assert "INTERVAL 90 DAY" in sql and "`events.mixtape_shared_v2` AS t" in sql


def test_a_nested_subject_is_matched_on_its_nested_pseudonym(fixed_platform: PlatformKeys) -> None:
    sql = decrypt_user_sql(NESTED_SUBJECT_SCHEMA, fixed_platform, FIXED_RECORD)
    assert "t.sender.user_pseudonym AS user_pseudonym" in sql
    assert f"t.sender.user_pseudonym = '{FIXED_RECORD.pseudonym}'" in sql
    assert "'sender.email') AS sender__email" in sql


def test_a_schema_without_encrypted_fields_needs_no_keyset(catalog: Any, fixed_platform: PlatformKeys) -> None:
    sql = decrypt_user_sql(_schema(catalog, "ad_impression"), fixed_platform, FIXED_RECORD)
    assert "DECLARE" not in sql and "KEYSET_CHAIN" not in sql
    assert [type(s).__name__ for s in _statements(sql)] == ["Select"]


def test_a_local_kms_platform_is_flagged_in_the_script(catalog: Any) -> None:
    primitive = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM).primitive(aead.Aead)
    local = PlatformKeys(
        kms_key_uri="local-kms:///work/.dataplatform/local_kms_keyset.json",
        wrapped_wrapping_keyset=b"w",
        wrapping=primitive,
        quarantine=primitive,
        secret=bytes(32),
    )
    sql = decrypt_user_sql(_schema(catalog, "user_registered"), local, FIXED_RECORD)
    assert "-- NOTE: local-kms:// is the local stand-in for Cloud KMS" in sql


# ------------------------------------------------------------------ refusals


def test_a_schema_without_a_subject_is_refused(fixed_platform: PlatformKeys) -> None:
    schema = EventSchema.model_validate(
        {
            "name": "heartbeat",
            "version": 1,
            "owner": "team-core",
            "domain": "core",
            "description": "A service heartbeat.",
            "retention_days": 7,
            "fields": [_field("service", required=True)],
        }
    )
    with pytest.raises(PlatformError, match="'heartbeat_v1' has no privacy: user_id field"):
        decrypt_user_sql(schema, fixed_platform, FIXED_RECORD)


def test_an_erased_user_has_no_script(catalog: Any, fixed_platform: PlatformKeys) -> None:
    tombstone = UserKeys(
        record_id=FIXED_RECORD.record_id,
        pseudonym=None,
        aead_keyset=None,
        daead_keyset=None,
        created_at=NOW,
        status="erased",
        erased_at=NOW,
    )
    with pytest.raises(PlatformError, match="erased"):
        decrypt_user_sql(_schema(catalog, "user_registered"), fixed_platform, tombstone)


def test_a_damaged_record_is_refused_only_when_its_keyset_is_needed(catalog: Any, fixed_platform: PlatformKeys) -> None:
    damaged = UserKeys(
        record_id=FIXED_RECORD.record_id,
        pseudonym=FIXED_RECORD.pseudonym,
        aead_keyset=FIXED_RECORD.aead_keyset,
        daead_keyset=None,
        created_at=NOW,
    )
    assert "user_aead_keyset" in decrypt_user_sql(_schema(catalog, "user_registered"), fixed_platform, damaged)
    with pytest.raises(PlatformError, match="lacks its DAEAD keyset"):
        decrypt_user_sql(_schema(catalog, "app_session_started"), fixed_platform, damaged)


# ------------------------------------------------------------------ Tink wire format, BigQuery's view


def _user_keyset_ids(platform: PlatformKeys, record: UserKeys) -> tuple[int, int]:
    assert record.aead_keyset and record.daead_keyset
    ids = []
    for wrapped in (record.aead_keyset, record.daead_keyset):
        serialized = platform.unwrap_user_keyset(wrapped, record.record_id)
        handle = proto_keyset_format.parse(serialized, secret_key_access.TOKEN)
        ids.append(handle.keyset_info().primary_key_id)
    return ids[0], ids[1]


def test_ciphertexts_carry_tinks_five_byte_prefix(platform: PlatformKeys, record: UserKeys) -> None:
    """0x01 (TINK output prefix) + the 4-byte big-endian id of the user's primary key."""
    crypto = open_keys(platform, record)
    aead_id, daead_id = _user_keyset_ids(platform, record)
    sealed = crypto.aead.encrypt(b"alice@example.com", b"email")
    assert sealed[:5] == b"\x01" + aead_id.to_bytes(4, "big")
    assert len(sealed) == 5 + 12 + len(b"alice@example.com") + 16  # prefix, IV, ciphertext, tag
    fixed = crypto.daead.encrypt_deterministically(b"AB1 2CD", b"payment.billing_postcode")
    assert fixed[:5] == b"\x01" + daead_id.to_bytes(4, "big")
    assert aead_id != daead_id


def _bigquery_declares(sql: str, kms: FakeCloudKms) -> dict[str, bytes]:
    """Evaluate the DECLAREs as BigQuery would, from the parsed SQL only."""
    values: dict[str, bytes] = {}
    for declare in (s for s in _statements(sql) if isinstance(s, exp.Declare)):
        (chain, user_keyset, record_id) = _calls(declare, "AEAD.DECRYPT_BYTES")[0]
        (uri, wrapped_wrapping) = _calls(chain, "KEYS.KEYSET_CHAIN")[0]
        assert uri.name == kms.key_uri
        wrapping = proto_keyset_format.parse(kms.decrypt(_b64(wrapped_wrapping), b""), secret_key_access.TOKEN)
        serialized = wrapping.primitive(aead.Aead).decrypt(_b64(user_keyset), record_id.name.encode())
        values[declare.expressions[0].this[0].name] = serialized
    return values


def test_bigquery_can_decrypt_what_the_anonymizer_encrypts(
    catalog: Any, kms: FakeCloudKms, platform: PlatformKeys, record: UserKeys
) -> None:
    schema = _schema(catalog, "app_session_started")
    sql = decrypt_user_sql(schema, platform, record)
    keysets = _bigquery_declares(sql, kms)
    user_aead = proto_keyset_format.parse(keysets["user_aead_keyset"], secret_key_access.TOKEN).primitive(aead.Aead)
    user_daead = proto_keyset_format.parse(keysets["user_daead_keyset"], secret_key_access.TOKEN).primitive(
        daead.DeterministicAead
    )
    crypto = open_keys(platform, record)
    select = _statements(sql)[-1]
    (lat_args,) = [a for a in _calls(select, "AEAD.DECRYPT_STRING") if a[2].name == "location.lat"]
    (device_args,) = _calls(select, "DETERMINISTIC_DECRYPT_STRING")

    lat = crypto.aead.encrypt(b"52.52", b"location.lat")
    assert user_aead.decrypt(lat, lat_args[2].name.encode()) == b"52.52"
    device = crypto.daead.encrypt_deterministically(b"device-123", b"device.id")
    assert user_daead.decrypt_deterministically(device, device_args[2].name.encode()) == b"device-123"

    with pytest.raises(tink.TinkError):
        user_aead.decrypt(lat, b"location.lon")  # the AAD is checked: a field path mix-up fails


def test_another_users_keyset_does_not_decrypt(
    catalog: Any, kms: FakeCloudKms, platform: PlatformKeys, record: UserKeys
) -> None:
    bob = mint(platform, platform.record_id("bob"), NOW)
    keysets = _bigquery_declares(decrypt_user_sql(_schema(catalog, "user_registered"), platform, bob), kms)
    bob_aead = proto_keyset_format.parse(keysets["user_aead_keyset"], secret_key_access.TOKEN).primitive(aead.Aead)
    sealed = open_keys(platform, record).aead.encrypt(b"alice@example.com", b"email")
    with pytest.raises(tink.TinkError):
        bob_aead.decrypt(sealed, b"email")
