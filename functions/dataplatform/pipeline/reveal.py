"""The data-subject access request: one user's events, decrypted, from the warehouse.

`reveal` is the only path that turns warehouse rows back into personal data, and it needs
the user's live keys: it looks the user up in the key store (never minting), opens the
per-user keysets through the platform wrapping key, finds the user's rows by pseudonym in
every event table that has a subject, and decrypts each encrypted column with the field
path as associated data — exactly what the officer's BigQuery SQL
(`privacy/officer_sql.py`) does in the console. After `forget` the keys and the pseudonym
are gone, so there is nothing left to find or decrypt: the result says so.

Hashed and truncated values cannot be reversed and are returned as stored.
"""

from __future__ import annotations

import base64

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import tink
from sqlglot import exp

from dataplatform.compile.bigquery_schema import PSEUDONYM_COLUMN
from dataplatform.definitions.loader import Catalog
from dataplatform.definitions.models import ENCRYPTING, EventSchema, FieldDef
from dataplatform.errors import PlatformError
from dataplatform.ports import Clock, Warehouse
from dataplatform.privacy.key_service import KeyService
from dataplatform.privacy.keys import PlatformKeys
from dataplatform.privacy.user_keys import UserCrypto, open_keys


@dataclass(frozen=True)
class RevealedTable:
    event_key: str
    rows: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class RevealResult:
    """`status`: `found` (keys live), `erased` (forgotten: nothing decryptable), `unknown` (never seen)."""

    status: str
    record_id: str
    pseudonym: str | None = None
    tables: tuple[RevealedTable, ...] = field(default=())

    @property
    def event_count(self) -> int:
        return sum(len(t.rows) for t in self.tables)


def reveal(
    user_id: str,
    *,
    catalog: Catalog,
    keys: KeyService,
    platform: PlatformKeys,
    warehouse: Warehouse,
    clock: Clock,
) -> RevealResult:
    """Every stored event of `user_id`, with encrypted fields decrypted."""
    record_id = keys.record_id(user_id)
    record = keys.lookup(user_id)
    if record is None:
        return RevealResult("unknown", record_id)
    if record.erased:
        return RevealResult("erased", record_id)
    crypto = open_keys(platform, record)
    tables = []
    for schema in sorted(catalog.schemas, key=lambda s: s.key):
        path = schema.user_id_field
        if path is None:
            continue
        oldest = clock.now() - timedelta(days=schema.retention_days)
        params = {"pseudonym": crypto.pseudonym, "oldest": oldest.isoformat()}
        rows = warehouse.query(_user_rows_sql(schema, path), params)
        decrypted = tuple(_decrypt_row(row, schema.fields, crypto, "") for row in rows)
        tables.append(RevealedTable(schema.key, decrypted))
    return RevealResult("found", record_id, crypto.pseudonym, tuple(tables))


def _user_rows_sql(schema: EventSchema, user_path: str) -> str:
    """BigQuery SQL: the user's rows in the dedup view, within retention (a partition filter)."""
    parts = user_path.split(".")[:-1] + [PSEUDONYM_COLUMN]
    column = exp.column(parts[-1], table=None) if len(parts) == 1 else exp.Dot.build([exp.to_identifier(p) for p in parts])
    return (
        exp.select("*")
        .from_(exp.table_(schema.dedup_view, db="events"))
        .where(exp.EQ(this=column, expression=exp.Parameter(this=exp.var("pseudonym"))))
        .where(
            exp.GTE(
                this=exp.column("event_time"),
                expression=exp.Anonymous(this="TIMESTAMP", expressions=[exp.Parameter(this=exp.var("oldest"))]),
            )
        )
        .order_by("event_time", "event_id")
        .sql(dialect="bigquery")
    )


def _decrypt_row(row: Mapping[str, Any], fields: Iterable[FieldDef], crypto: UserCrypto, prefix: str) -> dict[str, Any]:
    out = dict(row)
    for f in fields:
        value = out.get(f.name)
        path = f"{prefix}{f.name}"
        if value is None:
            continue
        if f.privacy in ENCRYPTING:
            decrypt = _decryptor(f, crypto)
            out[f.name] = [decrypt(v, path) for v in value] if f.repeated else decrypt(value, path)
        elif f.type == "RECORD" and f.fields:
            if f.repeated:
                out[f.name] = [_decrypt_row(v, f.fields, crypto, f"{path}.") for v in value]
            else:
                out[f.name] = _decrypt_row(value, f.fields, crypto, f"{path}.")
    return out


def _decryptor(f: FieldDef, crypto: UserCrypto):
    def decrypt(ciphertext: bytes | str | None, path: str) -> str | None:
        if ciphertext is None:
            return None
        if isinstance(ciphertext, str):  # JSON transports (BigQuery's REST API, the local runtime) carry BYTES as base64
            ciphertext = base64.b64decode(ciphertext)
        try:
            if f.privacy == "encrypt":
                plain = crypto.aead.decrypt(bytes(ciphertext), path.encode())
            else:
                plain = crypto.daead.decrypt_deterministically(bytes(ciphertext), path.encode())
        except tink.TinkError as exc:  # the value is never shown
            raise PlatformError(
                f"cannot decrypt field {path!r} of record {crypto.record_id}: the ciphertext does not "
                f"match the user's key ({type(exc).__name__})"
            ) from None
        return plain.decode("utf-8")

    return decrypt


def to_json(result: RevealResult) -> dict[str, Any]:
    return {
        "status": result.status,
        "record_id": result.record_id,
        "pseudonym": result.pseudonym,
        "events": result.event_count,
        "tables": {t.event_key: [dict(r) for r in t.rows] for t in result.tables},
    }
