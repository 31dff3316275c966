"""Privacy policies, compiled once per event schema into a plan the anonymizer runs per event.

`compile_plan(schema)` walks the schema once and turns every field into a step
`(payload key, column name, transform, repeated?)`; nested RECORDs and REPEATED fields get
transforms built from their own steps. Per event, `Plan.apply` is then a tight loop over
pre-built closures: no schema walk, no policy dispatch, no per-field allocation beyond the
output values. The output is the payload part of the clean row, with exactly the columns
(names, order, nesting) of `compile.bigquery_schema.event_table` — a test keeps them equal.

The policies (what reaches the warehouse):

- `user_id` → the user's random 128-bit pseudonym (column `user_pseudonym`).
- `encrypt` → Tink AES-256-GCM under the user's keyset; `encrypt_deterministic` → Tink
  AES-SIV (equal values of one user give equal ciphertexts). Plaintext = the value's UTF-8
  text (str as is; INT64 decimal; FLOAT64 `repr(float(v))` so 3 and 3.0 encrypt alike;
  BOOL `true`/`false`; TIMESTAMP/DATE the text as sent); associated data = the dotted field
  path (`contact.email`, no array indexes), which is what BigQuery's
  `AEAD.DECRYPT_STRING(keyset, column, 'contact.email')` expects.
- `hash` → keyed HMAC-SHA256 (hex) with the platform secret, never a bare hash: a bare
  hash of an e-mail address or device id is reversed by hashing guesses.
- `truncate_ip` → IPv4 to its /24 (`a.b.c.0`), IPv6 to its /48 (compressed text); an
  IPv4-mapped IPv6 address is truncated as the IPv4 address it carries. A value that is
  not an IP address is a schema-level problem: `FieldRejected` (path, never the value),
  which the anonymizer records as a `schema_violation` — passing it through would store
  whatever the client put in an "IP" field in clear.
- `drop` → no column; `none` → copied (TIMESTAMP → aware UTC datetime, DATE → date,
  FLOAT64 → float: the clean row holds the Python value of its BigQuery column type).

Erased users (crypto-shredded: the key service resolves them to None): their events are
still loaded, because once anonymized an event is not personal data, and dropping them
would make `received = loaded + failed` fail and skew every count. Such a row gets the
fixed pseudonym `ERASED_PSEUDONYM` ("erased": the column is REQUIRED, and a marker that is
never a 32-hex-digit pseudonym cannot link the rows to anybody), NULL for every encrypted
field (an empty array for repeated ones; each value nulled is counted, see `ErasedCrypto`),
while hash / truncate_ip still apply. No key is ever minted for them (the tombstone stays).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import Any, Protocol

import msgspec

from dataplatform.compile.bigquery_schema import PSEUDONYM_COLUMN
from dataplatform.compile.validator import parse_timestamp as _strict_rfc3339
from dataplatform.definitions.models import ENCRYPTING, EventSchema, FieldDef
from dataplatform.errors import PlatformError

UTC = timezone.utc

HEAD_COLUMNS = ("event_id", "event_time", "received_at", "schema_version")
"""The platform's columns before the payload columns (`compile.bigquery_schema.HEAD_COLUMNS`)."""

ERASED_PSEUDONYM = "erased"
"""`user_pseudonym` of rows whose user was erased before the event was anonymized."""


class Keyed(Protocol):
    """What a plan needs from `PlatformKeys`: the keyed hash of the `hash` policy."""

    def keyed_hash(self, value: str) -> str: ...


class FieldRejected(PlatformError):
    """A value passed the schema's type rules but a policy cannot apply to it.

    `path` is the JSON path of the value (`$.context.ip`, `$.hops[2]`), filled in by
    `Plan.apply` on this slow path; `reason` never contains the value (it may be PII).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self._path = ""

    def within(self, segment: str) -> FieldRejected:
        self._path = segment + self._path
        return self

    @property
    def path(self) -> str:
        return "$" + self._path

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


# --------------------------------------------------------------------------- pure policies


_IPV4_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"(?:{_IPV4_OCTET}\.){{3}}{_IPV4_OCTET}")
"""Four decimal octets 0-255 without leading zeros: exactly what `ipaddress` accepts."""


def truncate_ip(text: str) -> str:
    """IPv4 → /24 (`a.b.c.0`), IPv6 → /48, IPv4-mapped IPv6 → the IPv4 /24.

    Raises FieldRejected (without the value) for anything that is not an IP address.
    IPv4 takes a regex fast path (0.4 µs instead of 3 µs through `ipaddress`); IPv6 takes
    the C library's `inet_pton`/`inet_ntop` (0.8 µs instead of 11 µs), and `ipaddress` only
    for what `inet_pton` refuses (a zone id `fe80::1%eth0`, or not an address at all). Both
    print the RFC 5952 form; `tests/unit/privacy/test_policies.py` checks they agree.
    """
    if _IPV4.fullmatch(text) is not None:
        return text[: text.rfind(".")] + ".0"
    if ":" in text:
        try:
            packed = inet_pton(AF_INET6, text)
        except (OSError, ValueError):  # ValueError: an embedded NUL
            return _truncate_ipv6_slow(text)
        if packed[:12] == _IPV4_MAPPED_PREFIX:
            return inet_ntop(AF_INET, packed[12:15] + b"\x00")
        return inet_ntop(AF_INET6, packed[:6] + _ZERO_80_BITS)
    raise FieldRejected(_NOT_AN_IP)


_IPV4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
_NOT_AN_IP = "not an IP address: expected IPv4 a.b.c.d or IPv6"
_ZERO_80_BITS = bytes(10)


def _truncate_ipv6_slow(text: str) -> str:
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        raise FieldRejected(_NOT_AN_IP) from None
    if address.ipv4_mapped is not None:
        return truncate_ip(str(address.ipv4_mapped))
    # Rebuilt from the integer so a zone id (`fe80::1%eth0`) never survives.
    return str(ipaddress.IPv6Address((int(address) >> 80) << 80))


def parse_rfc3339(text: str) -> datetime | None:
    """An RFC 3339 timestamp (`Z` or offset) → aware UTC datetime; None if it is not one.

    `datetime.fromisoformat` (0.4 µs) for the usual shape, after checking the separators
    that it would otherwise accept loosely (basic format, missing seconds); anything else
    goes to the validator's strict RFC 3339 parser, so both agree on what is valid.
    Digits beyond microseconds are truncated.
    """
    try:
        value: datetime | None = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if (
        value is None
        or value.tzinfo is None
        or len(text) < 20
        or text[4] != "-"
        or text[7] != "-"
        or text[10] not in "Tt "
        or text[13] != ":"
        or text[16] != ":"
    ):
        try:
            value = _strict_rfc3339(text)
        except (msgspec.ValidationError, TypeError):
            return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value


def plaintext(field_type: str) -> Callable[[Any], str]:
    """The value → text rule of `encrypt`/`encrypt_deterministic`/`hash` for one field type."""
    if field_type == "INT64":
        return str
    if field_type == "FLOAT64":
        return lambda v: repr(float(v))
    if field_type == "BOOL":
        return lambda v: "true" if v else "false"
    return _identity  # STRING, TIMESTAMP, DATE: the text as sent


def _identity(value: Any) -> Any:
    return value


# --------------------------------------------------------------------------- erased users


class _NullCipher:
    """The cipher of an erased user: encrypts nothing, returns NULL, counts what it nulled."""

    __slots__ = ("_owner",)

    def __init__(self, owner: ErasedCrypto) -> None:
        self._owner = owner

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> None:
        self._owner.nulled += 1

    def encrypt_deterministically(self, plaintext: bytes, associated_data: bytes) -> None:
        self._owner.nulled += 1


class ErasedCrypto:
    """Stands in for a `UserCrypto` when the user is erased; `nulled` counts NULLed values.

    The encrypting steps call `crypto.aead.encrypt(...)` either way, so the hot path has no
    erased-or-not branch; repeated encrypted fields become `[]` (BigQuery arrays cannot
    hold NULL), each element still counted.
    """

    __slots__ = ("pseudonym", "aead", "daead", "nulled")

    def __init__(self) -> None:
        self.pseudonym = ERASED_PSEUDONYM
        self.nulled = 0
        self.aead = _NullCipher(self)
        self.daead = self.aead


# --------------------------------------------------------------------------- the plan
#
# A plan is Python source generated from the schema and compiled once: one function per
# RECORD that builds its output dict in a single dict display, with every policy inlined
# (`crypto.aead.encrypt(v.encode(), A3)`). That is about three times faster than looping
# over per-field closures, and the hot path is the point of this module. The generated
# code only ever contains identifiers from the schema (validated `[a-z][a-z0-9_]*`, quoted
# with repr) and names of the helpers below; `Plan.source` shows it for debugging.


def _encrypt_array(values: list[Any], crypto: Any, aad: bytes, text: Callable[[Any], str]) -> list[Any]:
    if type(crypto) is ErasedCrypto:  # BigQuery arrays cannot hold NULL: empty, but counted
        crypto.nulled += len(values)
        return []
    encrypt = crypto.aead.encrypt
    return [encrypt(text(v).encode(), aad) for v in values]


def _encrypt_array_deterministically(values: list[Any], crypto: Any, aad: bytes, text: Callable[[Any], str]) -> list[Any]:
    if type(crypto) is ErasedCrypto:
        crypto.nulled += len(values)
        return []
    encrypt = crypto.daead.encrypt_deterministically
    return [encrypt(text(v).encode(), aad) for v in values]


def _timestamp(text: str) -> datetime:
    value = parse_rfc3339(text)
    if value is None:  # the validator accepted it, so this is a bug, not bad input
        raise PlatformError("a TIMESTAMP the validator accepted does not parse as RFC 3339; the two parsers disagree")
    return value


def _float(value: Any) -> float:
    return value if type(value) is float else float(value)


class _Generator:
    """Emits the plan's source: one function per RECORD level, constants in a namespace."""

    def __init__(self, platform: Keyed) -> None:
        self.functions: list[str] = []
        self.namespace: dict[str, Any] = {
            "H": platform.keyed_hash,
            "IP": truncate_ip,
            "TS": _timestamp,
            "DATE": date.fromisoformat,
            "F": _float,
            "EA": _encrypt_array,
            "DA": _encrypt_array_deterministically,
        }

    def constant(self, prefix: str, value: Any) -> str:
        name = f"{prefix}{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def record(self, fields: tuple[FieldDef, ...], prefix: str) -> str | None:
        """Emit the function of a nested RECORD; its name, or None if no column is left."""
        items = self.items(fields, prefix)
        if not items:
            return None
        name = f"record_{len(self.functions)}"
        self.functions.append(_function(name, "p, crypto", items))
        return name

    def top(self, fields: tuple[FieldDef, ...]) -> None:
        """Emit `row` (the whole clean row, head columns from arguments) and `apply`."""
        items = self.items(fields, "")
        head = [f"{column!r}: {column}" for column in HEAD_COLUMNS]
        self.functions.append(_function("row", f"p, crypto, {', '.join(HEAD_COLUMNS)}", head + items))
        self.functions.append(_function("apply", "p, crypto, head", ["**head"] + items))

    def items(self, fields: tuple[FieldDef, ...], prefix: str) -> list[str]:
        items = []
        for field in fields:
            item = self.item(field, f"{prefix}{field.name}")
            if item is not None:
                items.append(item)
        return items

    def item(self, field: FieldDef, path: str) -> str | None:
        """`'column': expression` for one field, or None when the field has no column."""
        if field.privacy == "drop":
            return None
        column = PSEUDONYM_COLUMN if field.privacy == "user_id" else field.name
        key = repr(field.name)
        if field.type == "RECORD":
            function = self.record(field.fields, f"{path}.")
            if function is None:  # every field dropped: no column (as in event_table)
                return None
            element = f"{function}(x, crypto)"
            scalar = f"{function}(v, crypto)"
        elif field.repeated and field.privacy in ENCRYPTING:
            helper = "EA" if field.privacy == "encrypt" else "DA"
            aad = self.constant("A", path.encode("utf-8"))
            text = self.constant("T", plaintext(field.type))
            return f"{column!r}: ([] if (v := get({key})) is None else {helper}(v, crypto, {aad}, {text}))"
        else:
            element = self.scalar(field, path, "x")
            scalar = self.scalar(field, path, "v")
        if field.repeated:
            if element == "x":
                return f"{column!r}: (get({key}) or [])"
            return f"{column!r}: ([] if (v := get({key})) is None else [{element} for x in v])"
        if scalar == "v":
            return f"{column!r}: get({key})"
        return f"{column!r}: (None if (v := get({key})) is None else {scalar})"

    def scalar(self, field: FieldDef, path: str, var: str) -> str:
        """The expression turning one non-null value `var` of a non-RECORD field into its column value."""
        policy = field.privacy
        as_text = var if plaintext(field.type) is _identity else f"{self.constant('T', plaintext(field.type))}({var})"
        if policy == "user_id":
            return "crypto.pseudonym"
        if policy == "encrypt":
            return f"crypto.aead.encrypt({as_text}.encode(), {self.constant('A', path.encode('utf-8'))})"
        if policy == "encrypt_deterministic":
            return f"crypto.daead.encrypt_deterministically({as_text}.encode(), {self.constant('A', path.encode('utf-8'))})"
        if policy == "hash":
            return f"H({as_text})"
        if policy == "truncate_ip":
            return f"IP({var})"
        if policy != "none":
            raise PlatformError(f"field {path!r}: no transform for privacy policy {policy!r}")
        if field.type == "TIMESTAMP":
            return f"TS({var})"
        if field.type == "DATE":
            return f"DATE({var})"
        if field.type == "FLOAT64":
            return f"F({var})"
        return var


def _function(name: str, arguments: str, items: list[str]) -> str:
    body = "".join(f"        {item},\n" for item in items)
    return f"def {name}({arguments}):\n    get = p.get\n    return {{\n{body}    }}\n"


@dataclass(frozen=True)
class Plan:
    """One schema's compiled policies. Build with `compile_plan`, keep, share (immutable)."""

    schema: EventSchema
    subject: tuple[str, ...] | None
    """Payload keys leading to the `user_id` field (None: the schema has no data subject)."""
    source: str
    """The generated Python source of `row` and `apply` (for reading and debugging)."""
    _row: Callable[..., dict[str, Any]] = field(repr=False)
    _apply: Callable[[Mapping[str, Any], Any, Mapping[str, Any]], dict[str, Any]] = field(repr=False)

    @property
    def needs_keys(self) -> bool:
        return self.subject is not None

    def subject_of(self, payload: Mapping[str, Any]) -> str | None:
        """The data subject's id in a validated payload (None if its RECORD is absent)."""
        if self.subject is None:
            return None
        value: Any = payload
        for key in self.subject:
            value = value.get(key) if isinstance(value, Mapping) else None
        return value if isinstance(value, str) else None

    def row(
        self,
        payload: Mapping[str, Any],
        crypto: Any,
        event_id: str,
        event_time: datetime,
        received_at: datetime,
        schema_version: int,
    ) -> dict[str, Any]:
        """The clean row of a validated payload: the head columns, then the payload columns.

        `crypto` is the subject's `UserCrypto`, an `ErasedCrypto`, or None for a schema
        without a subject. Raises FieldRejected (with the JSON path of the first bad value)
        when a policy cannot apply to a value. The anonymizer's per-event call.
        """
        try:
            return self._row(payload, crypto, event_id, event_time, received_at, schema_version)
        except FieldRejected:
            raise self._located(payload) from None

    def apply(self, payload: Mapping[str, Any], crypto: Any, head: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """`head`'s items, then the payload columns (as `row`, with any head columns)."""
        try:
            return self._apply(payload, crypto, head or {})
        except FieldRejected:
            raise self._located(payload) from None

    def _located(self, payload: Mapping[str, Any]) -> FieldRejected:
        # The slow path: the generated code does not track paths; find the value again.
        rejected = _locate_rejection(self.schema.fields, payload, "")
        if rejected is None:
            raise PlatformError(
                f"a privacy policy of {self.schema.key} rejected a value that it accepts on "
                "a second look; this is a bug in privacy/policies.py"
            )
        return rejected


def compile_plan(schema: EventSchema, platform: Keyed) -> Plan:
    """Compile `schema`'s privacy policies once; `platform` supplies the keyed hash."""
    generator = _Generator(platform)
    generator.top(schema.fields)
    source = "\n".join(generator.functions)
    namespace = dict(generator.namespace)
    exec(compile(source, f"<privacy plan {schema.key}>", "exec"), namespace)  # noqa: S102 - generated from the schema
    subject = schema.user_id_field
    return Plan(
        schema=schema,
        subject=tuple(subject.split(".")) if subject else None,
        source=source,
        _row=namespace["row"],
        _apply=namespace["apply"],
    )


def _locate_rejection(fields: tuple[FieldDef, ...], value: Mapping[str, Any], path: str) -> FieldRejected | None:
    """The first value (in schema order, as the plan runs) a policy rejects, with its path."""
    for f in fields:
        found = value.get(f.name)
        if f.privacy == "drop" or found is None:
            continue
        items = [(f"[{i}]", x) for i, x in enumerate(found)] if f.repeated else [("", found)]
        for suffix, item in items:
            here = f"{path}.{f.name}{suffix}"
            if f.type == "RECORD":
                rejected = _locate_rejection(f.fields, item, here)
                if rejected is not None:
                    return rejected
            elif f.privacy == "truncate_ip":
                try:
                    truncate_ip(item)
                except FieldRejected as exc:
                    return exc.within(here)
    return None
