"""The BigQuery script a privacy officer runs in the console to read ONE user's events.

A data-subject access request in GCP needs no platform code: BigQuery itself can unwrap the
key hierarchy. The script declares the user's keysets, each unwrapped in two steps,

    AEAD.DECRYPT_BYTES(
      KEYS.KEYSET_CHAIN('gcp-kms://…', FROM_BASE64('<KMS-wrapped wrapping keyset>')),
      FROM_BASE64('<user keyset, encrypted by the wrapping keyset>'),
      '<record id>')                                   -- associated data of the user keyset

and then selects the user's rows with every encrypted column decrypted by
`AEAD.DECRYPT_STRING(keyset, column, 'field.path')` (or `DETERMINISTIC_DECRYPT_STRING` for
`encrypt_deterministic`), the dotted field path being the associated data the anonymizer
used. Values come back as the text the anonymizer encrypted (numbers and dates as sent).

Shapes: a field nested in RECORDs is read by struct access (`t.context.location.lat`); a
REPEATED encrypted field becomes `ARRAY(SELECT … FROM UNNEST(col) …)` in element order; a
field under a REPEATED RECORD becomes an array of `STRUCT<<record>_offset…, value>` so that
a NULL value keeps its place (BigQuery arrays cannot hold NULL elements).

The rows are filtered by the user's pseudonym and, because event tables require a partition
filter, by `event_time` within the table's retention; duplicates from at-least-once delivery
are removed with `QUALIFY` on `event_id`. Running it needs
`roles/cloudkms.cryptoKeyDecrypterViaDelegation` on the key and read access to the table.
An erased user has no keysets left, so no such script can exist for them.

Built with sqlglot (BigQuery dialect), never by pasting SQL text together.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlglot import exp

from dataplatform.compile.bigquery_schema import PSEUDONYM_COLUMN
from dataplatform.definitions.models import EVENTS_DATASET, EventSchema, FieldDef
from dataplatform.errors import PlatformError
from dataplatform.ports import UserKeys
from dataplatform.privacy.keys import PlatformKeys

DIALECT = "bigquery"
TABLE_ALIAS = "t"
AEAD_KEYSET_VARIABLE = "user_aead_keyset"
DAEAD_KEYSET_VARIABLE = "user_daead_keyset"
CLOUD_KMS_URI_PREFIX = "gcp-kms://"
DELEGATION_ROLE = "roles/cloudkms.cryptoKeyDecrypterViaDelegation"


@dataclass(frozen=True)
class EncryptedField:
    """An encrypted column: its dotted path (the AAD) and the (name, repeated) steps to it."""

    path: str
    steps: tuple[tuple[str, bool], ...]
    deterministic: bool

    @property
    def alias(self) -> str:
        """Output column name: the path with `__` for dots (`context__location__lat`)."""
        return self.path.replace(".", "__")


def encrypted_fields(schema: EventSchema) -> list[EncryptedField]:
    """Every `encrypt` / `encrypt_deterministic` field of the schema, in schema order."""
    return list(_walk(schema.fields, ()))


def _walk(fields: Sequence[FieldDef], steps: tuple[tuple[str, bool], ...]) -> Iterator[EncryptedField]:
    for field in fields:
        here = (*steps, (field.name, field.repeated))
        if field.privacy in ("encrypt", "encrypt_deterministic"):
            yield EncryptedField(
                path=".".join(name for name, _ in here),
                steps=here,
                deterministic=field.privacy == "encrypt_deterministic",
            )
        yield from _walk(field.fields, here)


def decrypt_user_sql(schema: EventSchema, platform: PlatformKeys, record: UserKeys) -> str:
    """The BigQuery script decrypting the events of `schema` of the user of `record`."""
    user_id_path = schema.user_id_field
    if user_id_path is None:
        raise PlatformError(
            f"event schema {schema.key!r} has no privacy: user_id field, so its events belong "
            "to no data subject and hold no per-user encrypted data; there is nothing to decrypt"
        )
    if record.erased or record.pseudonym is None:
        raise PlatformError(
            f"key record {record.record_id!r} is erased (crypto-shredded): its keysets are gone, "
            "so nobody can decrypt its data any more, in BigQuery or elsewhere"
        )
    fields = encrypted_fields(schema)
    statements: list[exp.Expression] = []
    keysets = (
        (AEAD_KEYSET_VARIABLE, record.aead_keyset, "AEAD", any(not f.deterministic for f in fields)),
        (DAEAD_KEYSET_VARIABLE, record.daead_keyset, "DAEAD", any(f.deterministic for f in fields)),
    )
    for variable, wrapped, kind, needed in keysets:
        if not needed:
            continue
        if wrapped is None:
            raise PlatformError(
                f"active key record {record.record_id!r} lacks its {kind} keyset; the record is "
                "damaged: restore the key store from a backup"
            )
        statements.append(_declare_keyset(variable, platform, wrapped, record.record_id))

    pseudonym_path = (*user_id_path.split(".")[:-1], PSEUDONYM_COLUMN)
    select = exp.select(
        _ref(TABLE_ALIAS, "event_id"),
        _ref(TABLE_ALIAS, "event_time"),
        exp.alias_(_ref(TABLE_ALIAS, *pseudonym_path), PSEUDONYM_COLUMN)
        if len(pseudonym_path) > 1
        else _ref(TABLE_ALIAS, PSEUDONYM_COLUMN),
        *(exp.alias_(_decrypted(field), field.alias) for field in fields),
    )
    select = (
        select.from_(exp.Table(this=exp.to_identifier(f"{EVENTS_DATASET}.{schema.key}", quoted=True)).as_(TABLE_ALIAS))
        .where(
            exp.and_(
                exp.EQ(this=_ref(TABLE_ALIAS, *pseudonym_path), expression=exp.Literal.string(record.pseudonym)),
                exp.GTE(
                    this=_ref(TABLE_ALIAS, "event_time"),
                    expression=exp.TimestampSub(
                        this=exp.CurrentTimestamp(),
                        expression=exp.Literal.number(schema.retention_days),
                        unit=exp.var("DAY"),
                    ),
                ),
            )
        )
        .qualify(
            exp.EQ(
                this=exp.Window(
                    this=exp.RowNumber(),
                    partition_by=[_ref(TABLE_ALIAS, "event_id")],
                    order=exp.Order(
                        expressions=[exp.Ordered(this=_ref(TABLE_ALIAS, "publish_time"), nulls_first=True)]
                    ),
                ),
                expression=exp.Literal.number(1),
            )
        )
        .order_by(_ref(TABLE_ALIAS, "event_time"))
    )
    statements.append(select)
    body = ";\n\n".join(
        statement.sql(dialect=DIALECT, pretty=not isinstance(statement, exp.Declare)) for statement in statements
    )
    return _header(schema, platform, record, encrypted=bool(fields)) + body + ";\n"


def _header(schema: EventSchema, platform: PlatformKeys, record: UserKeys, *, encrypted: bool) -> str:
    lines = [f"-- Data-subject access: the {schema.table_ref} events of key record {record.record_id},"]
    if encrypted:
        lines += [
            "-- encrypted columns decrypted with the user's own keysets (unwrapped through Cloud KMS).",
            f"-- Needs {DELEGATION_ROLE} on the KMS key and read access to the table.",
        ]
    else:
        lines.append("-- found by pseudonym; this event type has no encrypted fields, so no key is needed.")
    if not platform.kms_key_uri.startswith(CLOUD_KMS_URI_PREFIX):
        lines.append(
            f"-- NOTE: {platform.kms_key_uri.split('://')[0]}:// is the local stand-in for Cloud KMS; "
            "BigQuery unwraps gcp-kms:// keys only."
        )
    return "\n".join(lines) + "\n\n"


def _declare_keyset(variable: str, platform: PlatformKeys, wrapped_user_keyset: bytes, record_id: str) -> exp.Declare:
    chain = _call(
        "KEYS.KEYSET_CHAIN",
        exp.Literal.string(platform.kms_key_uri),
        _from_base64(platform.wrapped_wrapping_keyset),
    )
    unwrapped = _call("AEAD.DECRYPT_BYTES", chain, _from_base64(wrapped_user_keyset), exp.Literal.string(record_id))
    return exp.Declare(
        expressions=[
            exp.DeclareItem(
                this=[exp.to_identifier(variable)],
                kind=exp.DataType.build("BYTES", dialect=DIALECT),
                default=unwrapped,
            )
        ]
    )


def _decrypted(field: EncryptedField) -> exp.Expression:
    """The decrypting expression for one field, by where it sits (scalar, array, in arrays)."""
    levels = [index for index, (_, repeated) in enumerate(field.steps) if repeated]
    names = [name for name, _ in field.steps]
    if not levels:
        return _decrypt(field, _ref(TABLE_ALIAS, *names))

    # One UNNEST per repeated step: element e<i> of the array reached from the previous one.
    unnests: list[exp.Unnest] = []
    offsets: list[exp.Expression] = []
    source, start = TABLE_ALIAS, 0
    for level, index in enumerate(levels):
        element, offset = f"e{level}", f"o{level}"
        unnests.append(
            exp.Unnest(
                expressions=[_ref(source, *names[start : index + 1])],
                alias=exp.TableAlias(columns=[exp.to_identifier(element)]),
                offset=exp.to_identifier(offset),
            )
        )
        offsets.append(exp.column(offset))
        source, start = element, index + 1
    value = _decrypt(field, _ref(source, *names[start:]))
    if levels == [len(names) - 1]:  # only the field itself repeats: its elements are never NULL
        query = exp.select(value)
    else:
        positions = [
            exp.alias_(offset, f"{names[index]}_offset") for offset, index in zip(offsets, levels, strict=True)
        ]
        query = exp.select(*positions, exp.alias_(value, "value"))
        query.set("kind", "STRUCT")
    query = query.from_(unnests[0])
    for unnest in unnests[1:]:
        query = query.join(unnest, join_type="CROSS")
    return exp.Array(expressions=[query.order_by(*offsets)])


def _decrypt(field: EncryptedField, ciphertext: exp.Expression) -> exp.Expression:
    if field.deterministic:
        return exp.Anonymous(
            this="DETERMINISTIC_DECRYPT_STRING",
            expressions=[exp.column(DAEAD_KEYSET_VARIABLE), ciphertext, exp.Literal.string(field.path)],
        )
    return _call("AEAD.DECRYPT_STRING", exp.column(AEAD_KEYSET_VARIABLE), ciphertext, exp.Literal.string(field.path))


def _call(dotted_name: str, *args: exp.Expression) -> exp.Expression:
    """`NAMESPACE.FUNCTION(args)` the way sqlglot's BigQuery parser represents it."""
    namespace, name = dotted_name.split(".")
    return exp.Dot(this=exp.to_identifier(namespace), expression=exp.Anonymous(this=name, expressions=list(args)))


def _from_base64(data: bytes) -> exp.Expression:
    return exp.FromBase64(this=exp.Literal.string(base64.b64encode(data).decode("ascii")))


def _ref(*parts: str) -> exp.Expression:
    """`a.b.c…`: a column of an alias, then struct field access; reserved words get quoted."""
    return exp.Dot.build([exp.to_identifier(part) for part in parts]) if len(parts) > 1 else exp.column(parts[0])
