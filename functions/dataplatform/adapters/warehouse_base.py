"""What both warehouse adapters share: the full interface, capability flags, and the pure parts.

BigQuery in GCP and DuckDB locally implement one interface (after SQLMesh's engine
adapters): the use cases never ask which engine they talk to, only, where it matters,
what it can do (`Capabilities`). Everything that can be decided without an engine lives
here, once, so the two adapters cannot drift apart:

- table references (`dataset.table`, validated) and partition values (a DATE for a DAY
  partition, a whole UTC hour for an HOUR partition) with their BigQuery decorators;
- query parameters: python values → BigQuery types (`QueryParam`), the same inference for
  both engines, so a query that binds on one binds on the other;
- the SQL both engines run (row counts, partition predicates), built with sqlglot as
  BigQuery SQL; the DuckDB adapter transpiles it like any user query;
- row checks: every row is checked against the table's columns before it is written, by
  the same compiled checker in both adapters, so a bad row fails locally exactly where it
  would fail in BigQuery, with the row index, the column path and the rule — never the
  value (rows hold personal data, even if encrypted);
- additive schema evolution: which columns an existing table lacks, and which differences
  no `ensure_table` may apply (a new major version is needed).

Pure: no engine imports here.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from sqlglot import exp

from dataplatform import ports
from dataplatform.compile.bigquery_schema import BqField, TableSpec
from dataplatform.compile.sql import DIALECT
from dataplatform.errors import PlatformError

UTC = timezone.utc

Outcome = Literal["created", "updated", "unchanged"]
"""What an `ensure_*` call did: created the object, changed it additively, or nothing."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
MAX_PROBLEMS_SHOWN = 20
"""How many row problems an `InvalidRows` message lists (all stay in `.problems`)."""


# --------------------------------------------------------------------------- capabilities


@dataclass(frozen=True)
class Capabilities:
    """What one engine does itself; the rest the platform does, or documents as cloud-only."""

    supports_partition_decorator: bool
    """Writes can target one partition (`table$20240501`) with WRITE_TRUNCATE (BigQuery).
    Without it, `replace_partition` is a DELETE + INSERT in one transaction."""

    supports_require_partition_filter: bool
    """The engine rejects queries on tables with `require_partition_filter` that lack a
    partition filter. DuckDB does not: such a query runs locally and fails in BigQuery."""

    supports_partition_expiration: bool
    """The engine drops partitions older than the table's expiration by itself."""

    supports_clustering: bool
    """Clustering columns are applied (DuckDB keeps them in the spec only)."""

    transpiles: bool
    """BigQuery SQL is transpiled (compile/transpile.py) before it runs."""


# --------------------------------------------------------------------------- the interface


@runtime_checkable
class ManagedWarehouse(ports.Warehouse, Protocol):
    """`ports.Warehouse` plus what setup and endpoint runs need; both adapters implement it.

    All SQL is BigQuery SQL. `params` map names (without `@`) to python values; their
    BigQuery types are inferred (`infer_param`).
    """

    name: str
    capabilities: Capabilities

    def ensure_dataset(
        self,
        name: str,
        *,
        description: str = "",
        labels: Mapping[str, str] | None = None,
        default_partition_expiration_days: int | None = None,
    ) -> Outcome: ...

    def ensure_table(self, spec: TableSpec) -> Outcome: ...

    def ensure_view(self, dataset: str, name: str, sql: str, *, description: str = "") -> Outcome: ...

    def table_exists(self, table_ref: str) -> bool: ...

    def insert_rows(self, table_ref: str, rows: Sequence[Mapping[str, Any]]) -> int: ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def replace_partition(
        self,
        table_ref: str,
        partition_field: str,
        partition_value: date | datetime,
        select_sql: str,
        params: Mapping[str, Any] | None = None,
    ) -> int: ...

    def row_count(self, table_ref: str, where: str | None = None, params: Mapping[str, Any] | None = None) -> int: ...


class BaseWarehouse(abc.ABC):
    """The parts of `ManagedWarehouse` that are the same SQL on every engine."""

    name: str
    capabilities: Capabilities

    @abc.abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def row_count(self, table_ref: str, where: str | None = None, params: Mapping[str, Any] | None = None) -> int:
        """Rows of `table_ref`, optionally only those matching the BigQuery condition `where`.

        On a BigQuery table with `require_partition_filter`, `where` must filter on the
        partition column (e.g. `DATE(event_time) = @run_date`).
        """
        rows = self.query(row_count_sql(table_ref, where), params)
        return int(rows[0]["row_count"])


# --------------------------------------------------------------------------- references


def split_ref(table_ref: str) -> tuple[str, str]:
    """`"dataset.table"` → `("dataset", "table")`; PlatformError for anything else."""
    parts = table_ref.split(".") if isinstance(table_ref, str) else []
    if len(parts) != 2 or not all(_IDENTIFIER.match(p) for p in parts):
        raise PlatformError(
            f"table reference {table_ref!r} must be `dataset.table` (letters, digits and _), "
            "e.g. `events.track_played_v1`"
        )
    return parts[0], parts[1]


def check_identifier(name: str, what: str) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise PlatformError(f"{what} {name!r} must be letters, digits and _ (not starting with a digit)")
    return name


def table_node(table_ref: str) -> exp.Table:
    dataset, table = split_ref(table_ref)
    return exp.Table(this=exp.to_identifier(table), db=exp.to_identifier(dataset))


# --------------------------------------------------------------------------- partitions


@dataclass(frozen=True)
class PartitionValue:
    """One partition of a DAY- or HOUR-partitioned table, as `replace_partition` takes it.

    A `date` names a day partition; a `datetime` on a whole UTC hour an hour partition.
    """

    unit: Literal["DAY", "HOUR"]
    start: datetime  # aware UTC

    @classmethod
    def of(cls, value: date | datetime) -> PartitionValue:
        if isinstance(value, datetime):
            start = as_utc(value)
            if start.minute or start.second or start.microsecond:
                raise PlatformError(
                    f"partition value {start.isoformat()} is not on a whole hour; "
                    "pass a date for a day partition or a datetime on the hour (UTC) for an hour partition"
                )
            return cls("HOUR", start)
        if isinstance(value, date):
            return cls("DAY", datetime(value.year, value.month, value.day, tzinfo=UTC))
        raise PlatformError(
            f"partition value must be a date (day partition) or a datetime (hour partition), not {type(value).__name__}"
        )

    @property
    def decorator(self) -> str:
        """BigQuery's partition decorator suffix: `20240501` or `2024050113`."""
        return self.start.strftime("%Y%m%d%H" if self.unit == "HOUR" else "%Y%m%d")

    @property
    def end(self) -> datetime:
        return self.start + (timedelta(hours=1) if self.unit == "HOUR" else timedelta(days=1))

    @property
    def param(self) -> date | datetime:
        """The value as a query parameter: DATE for a day, TIMESTAMP for an hour."""
        return self.start.date() if self.unit == "DAY" else self.start

    def label(self) -> str:
        return self.start.date().isoformat() if self.unit == "DAY" else self.start.strftime("%Y-%m-%dT%H:00Z")


PARTITION_PARAM = "_partition_value"
"""Name of the parameter carrying the partition value in `partition_predicate`."""


def partition_predicate(field: str, partition: PartitionValue, field_type: str) -> exp.Expression:
    """BigQuery condition "the row belongs to `partition`" on the partition column.

    `field_type` is the column's type (DATE or TIMESTAMP): a DATE column only has day
    partitions; a TIMESTAMP column is compared by its UTC day or hour. The value is the
    parameter `@_partition_value` (`partition.param`).
    """
    column = exp.column(check_identifier(field, "partition field"))
    value = exp.Parameter(this=exp.var(PARTITION_PARAM))
    if field_type == "DATE":
        if partition.unit != "DAY":
            raise PlatformError(f"column {field!r} is a DATE: pass a date, not a datetime, as the partition value")
        return exp.EQ(this=column, expression=value)
    if field_type != "TIMESTAMP":
        raise PlatformError(f"column {field!r} is {field_type}; tables are partitioned by a DATE or TIMESTAMP column")
    if partition.unit == "DAY":
        return exp.EQ(this=exp.Date(this=column), expression=value)
    truncated = exp.TimestampTrunc(this=column, unit=exp.var("HOUR"))
    return exp.EQ(this=truncated, expression=value)


def row_count_sql(table_ref: str, where: str | None = None) -> str:
    """`SELECT COUNT(*) AS row_count FROM dataset.table [WHERE <where>]` (BigQuery SQL)."""
    select = exp.select(exp.alias_(exp.Count(this=exp.Star()), "row_count")).from_(table_node(table_ref))
    if where:
        try:
            condition = exp.condition(where, dialect=DIALECT)
        except Exception as exc:  # sqlglot raises ParseError / TokenError
            raise PlatformError(f"row_count condition does not parse as BigQuery SQL: {exc}") from None
        select = select.where(condition)
    return select.sql(dialect=DIALECT)


# --------------------------------------------------------------------------- parameters

PARAM_TYPES = ("BOOL", "INT64", "FLOAT64", "STRING", "BYTES", "TIMESTAMP", "DATE", "NUMERIC")


@dataclass(frozen=True)
class QueryParam:
    """A typed query parameter: `type` is BigQuery's, `array` for `ARRAY<type>`."""

    name: str
    type: str
    value: Any
    array: bool = False


def infer_type(value: Any) -> str | None:
    """BigQuery type of one python value; None when it has none. Order matters:
    bool before int (bool is an int), datetime before date (datetime is a date)."""
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, (bytes, bytearray)):
        return "BYTES"
    if isinstance(value, datetime):
        return "TIMESTAMP"
    if isinstance(value, date):
        return "DATE"
    if isinstance(value, Decimal):
        return "NUMERIC"
    return None


def infer_param(name: str, value: Any) -> QueryParam:
    """The typed parameter of a python value; naive datetimes are UTC, as in BigQuery.

    A list or tuple is an ARRAY of one element type. NULL (None) has no type: BigQuery
    needs one, so it is refused here rather than guessed.
    """
    check_identifier(name, "query parameter")
    if isinstance(value, (list, tuple)):
        types = {infer_type(v) for v in value}
        if not value or None in types or len(types) != 1 or None in value:
            raise PlatformError(
                f"query parameter @{name}: an array parameter needs at least one element and one element type "
                f"(found {', '.join(sorted(t or 'unsupported' for t in types)) or 'no elements'})"
            )
        kind = types.pop()
        return QueryParam(name, kind, [_param_value(kind, v) for v in value], array=True)
    kind = infer_type(value)
    if kind is None:
        found = "NULL" if value is None else type(value).__name__
        raise PlatformError(
            f"query parameter @{name} is {found}; pass a str, int, float, bool, bytes, Decimal, date or "
            "datetime (or a list of one of them); for NULL write CAST(NULL AS <type>) in the SQL"
        )
    return QueryParam(name, kind, _param_value(kind, value))


def infer_params(params: Mapping[str, Any] | None) -> dict[str, QueryParam]:
    return {name: infer_param(name, value) for name, value in (params or {}).items()}


def _param_value(kind: str, value: Any) -> Any:
    if kind == "TIMESTAMP":
        return as_utc(value)
    if kind == "BYTES":
        return bytes(value)
    return value


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken as UTC (BigQuery's reading of it)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# --------------------------------------------------------------------------- row checks


@dataclass(frozen=True)
class RowProblem:
    """One thing wrong with one row: its index in the batch, the column path and the rule."""

    index: int
    path: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.index}: {self.path}: {self.reason}" if self.path else f"row {self.index}: {self.reason}"


class InvalidRows(PlatformError):
    """Rows that do not fit the table; nothing of the batch was written (`written` == 0).

    BigQuery takes a large batch in several requests; when it rejects one after the rows
    were checked here, the earlier requests' rows are in (`written` says how many).

    `problems` lists every problem (row index, column path, rule), never a value, so the
    caller can route exactly those rows elsewhere (e.g. to failed events) and retry the rest.
    """

    def __init__(self, table_ref: str, problems: Sequence[RowProblem], total: int, written: int = 0) -> None:
        self.table_ref = table_ref
        self.problems = tuple(problems)
        self.rows = tuple(sorted({p.index for p in problems}))
        self.written = written
        shown = "\n".join(f"  {p}" for p in self.problems[:MAX_PROBLEMS_SHOWN])
        more = len(self.problems) - MAX_PROBLEMS_SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        kept = "nothing was written" if not written else f"rows 0-{written - 1} were written, none after them"
        super().__init__(
            f"{len(self.rows)} of {total} row(s) do not fit table {table_ref}; {kept}:\n{shown}{tail}\n"
            "fix the rows (or the table's schema) and insert the rows that were not written again"
        )


_Check = Callable[[Any], "tuple[str, str] | None"]
"""A compiled check of one value: None when it fits, else (path below the value, reason)."""

_SCALAR_CLASSES: Mapping[str, tuple[type, ...]] = {
    "STRING": (str,),
    "INT64": (int,),
    "FLOAT64": (float, int),
    "BOOL": (bool,),
    "TIMESTAMP": (datetime,),
    "DATE": (date,),
    "BYTES": (bytes, bytearray),
    "NUMERIC": (Decimal, int),
}
_EXPECTED: Mapping[str, str] = {
    "STRING": "a string",
    "INT64": "an integer",
    "FLOAT64": "a number",
    "BOOL": "a boolean",
    "TIMESTAMP": "a datetime",
    "DATE": "a date",
    "BYTES": "bytes",
    "NUMERIC": "a Decimal or integer",
}
_INT64 = (-(2**63), 2**63 - 1)


def _scalar_check(kind: str) -> _Check:
    """The full check of one non-NULL scalar (the fast path in `_columns` comes first)."""
    allowed = _SCALAR_CLASSES[kind]
    expected = f"expected {_EXPECTED[kind]}"
    ranged = kind in ("INT64", "NUMERIC")

    def check(value: Any) -> tuple[str, str] | None:
        if not isinstance(value, allowed):
            return "", f"{expected}, got {type(value).__name__}"
        if isinstance(value, bool) and kind != "BOOL":
            return "", f"{expected}, got bool"
        if kind == "DATE" and isinstance(value, datetime):
            return "", f"{expected}, got datetime (pass value.date() for a DATE column)"
        if ranged and isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
            return "", "integer out of the INT64 range"
        return None

    return check


class _Column(NamedTuple):
    """How to check one column: `fast` is the class accepted without further checks."""

    name: str
    fast: type | None
    ranged: bool  # an accepted int must still be within INT64
    required: bool
    check: _Check  # the full check of a non-NULL value


def _columns(fields: tuple[BqField, ...]) -> tuple[_Column, ...]:
    out = []
    for f in fields:
        repeated = f.mode == "REPEATED"
        if f.type == "RECORD":
            inner = _record_check(f.fields)
            fast = None
        else:
            inner = _scalar_check(f.type)
            fast = None if repeated else _SCALAR_CLASSES[f.type][0]
        check = _repeated_check(inner) if repeated else inner
        out.append(_Column(f.name, fast, f.type == "INT64", f.mode == "REQUIRED", check))
    return tuple(out)


def _repeated_check(inner: _Check) -> _Check:
    def check(value: Any) -> tuple[str, str] | None:
        if not isinstance(value, (list, tuple)):
            return "", f"expected a list (the column is REPEATED), got {type(value).__name__}"
        for position, item in enumerate(value):
            if item is None:
                return f"[{position}]", "arrays cannot hold NULL"
            problem = inner(item)
            if problem is not None:
                return f"[{position}]{problem[0]}", problem[1]
        return None

    return check


def _first_problem(record: Mapping[str, Any], columns: tuple[_Column, ...]) -> tuple[str, str] | None:
    """The first problem of a record's columns as (path, reason), or None. The hot loop."""
    get = record.get
    low, high = _INT64
    for name, fast, ranged, required, check in columns:
        value = get(name)
        if value is None:
            if required:
                return name, "required, but missing or null"
            continue
        if value.__class__ is fast and (not ranged or low <= value <= high):
            continue
        problem = check(value)
        if problem is not None:
            return f"{name}{problem[0]}", problem[1]
    return None


def _record_check(fields: tuple[BqField, ...]) -> _Check:
    names = frozenset(f.name for f in fields)
    columns = _columns(fields)

    def check(value: Any) -> tuple[str, str] | None:
        if not isinstance(value, Mapping):
            return "", f"expected a record (dict), got {type(value).__name__}"
        if not names.issuperset(value.keys()):
            unknown = sorted(str(k) for k in value.keys() - names)
            return f".{unknown[0]}", "unknown field"
        problem = _first_problem(value, columns)
        return None if problem is None else (f".{problem[0]}", problem[1])

    return check


class RowChecker:
    """Checks rows against a table's columns, as BigQuery's streaming insert would.

    Types (a str is not an INT64, a bool is not a number, a datetime is not a DATE, a
    string is not a list), REQUIRED at every depth, no NULL inside arrays, no unknown
    columns or record fields. Values are never put in a message. Each row reports its
    unknown columns and the first problem of every column.
    """

    def __init__(self, fields: tuple[BqField, ...]) -> None:
        self.fields = fields
        self.names = frozenset(f.name for f in fields)
        self._columns = _columns(fields)
        self._single = tuple((c,) for c in self._columns)
        self._repeated_paths = _repeated(fields)

    def problems(self, rows: Sequence[Mapping[str, Any]]) -> list[RowProblem]:
        names = self.names
        columns = self._columns
        found: list[RowProblem] = []
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                found.append(RowProblem(index, "", f"expected a row (dict), got {type(row).__name__}"))
                continue
            if not names.issuperset(row.keys()):
                for key in sorted(str(k) for k in row.keys() - names):
                    found.append(RowProblem(index, key, "unknown column"))
            if _first_problem(row, columns) is not None:
                for single in self._single:  # a bad row: report every bad column
                    problem = _first_problem(row, single)
                    if problem is not None:
                        found.append(RowProblem(index, problem[0], problem[1]))
        return found

    @property
    def has_repeated(self) -> bool:
        return bool(self._repeated_paths)

    def fill_repeated(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        """The row with NULL arrays as empty arrays (BigQuery stores a NULL REPEATED as [])."""
        return _fill(row, self._repeated_paths)


def _repeated(fields: tuple[BqField, ...]) -> dict[str, tuple[str, dict]]:
    """Column name → ("list", inner) for an array, ("record", inner) for a record holding
    arrays; `inner` is the same map for the record's fields. Columns without arrays are absent."""
    out: dict[str, tuple[str, dict]] = {}
    for f in fields:
        inner = _repeated(f.fields) if f.type == "RECORD" else {}
        if f.mode == "REPEATED":
            out[f.name] = ("list", inner)
        elif inner:
            out[f.name] = ("record", inner)
    return out


def _fill(record: Mapping[str, Any], paths: Mapping[str, tuple[str, dict]]) -> Mapping[str, Any]:
    changed: dict[str, Any] | None = None
    for name, (kind, inner) in paths.items():
        value = record.get(name)
        new = value
        if kind == "list":
            if value is None:
                new = []
            elif inner and isinstance(value, (list, tuple)):
                new = [_fill(item, inner) if isinstance(item, Mapping) else item for item in value]
        elif isinstance(value, Mapping):
            new = _fill(value, inner)
        if new is not value:
            if changed is None:
                changed = dict(record)
            changed[name] = new
    return record if changed is None else changed


# --------------------------------------------------------------------------- schema evolution


@dataclass(frozen=True)
class SchemaChange:
    """Columns to add to an existing table: `parent` is the dotted RECORD path ('' = top)."""

    parent: str
    field: BqField

    @property
    def path(self) -> str:
        return f"{self.parent}.{self.field.name}" if self.parent else self.field.name


def plan_schema_change(
    table_ref: str,
    existing: tuple[BqField, ...],
    wanted: tuple[BqField, ...],
    *,
    compare_nested_modes: bool = True,
) -> list[SchemaChange]:
    """The columns `wanted` adds to `existing`; PlatformError naming every other difference.

    Within a major version a table only grows: new NULLABLE (or REPEATED) columns, also
    inside RECORDs. A removed column, a changed type or a tightened mode cannot be applied
    to a table holding data; REQUIRED → NULLABLE (a relaxation) is accepted and left as is.
    `compare_nested_modes=False` for engines without NOT NULL inside records (DuckDB).
    """
    changes: list[SchemaChange] = []
    problems: list[str] = []
    _diff(existing, wanted, "", changes, problems, compare_nested_modes, top=True)
    if problems:
        raise PlatformError(
            f"table {table_ref} exists with a schema that cannot be changed into the definition's:\n"
            + "\n".join(f"  {p}" for p in problems)
            + "\nonly new NULLABLE columns can be added within a major version; publish a new major "
            "version (a new table) for anything else"
        )
    return changes


def _diff(
    existing: tuple[BqField, ...],
    wanted: tuple[BqField, ...],
    parent: str,
    changes: list[SchemaChange],
    problems: list[str],
    nested_modes: bool,
    top: bool,
) -> None:
    have = {f.name: f for f in existing}
    want = {f.name: f for f in wanted}
    for name, old in have.items():
        path = f"{parent}.{name}" if parent else name
        new = want.get(name)
        if new is None:
            problems.append(f"column {path} ({_describe(old)}) is not in the definition (columns are never removed)")
            continue
        if old.type != new.type:
            problems.append(f"column {path} is {_describe(old)} in the table but {_describe(new)} in the definition")
            continue
        if (old.mode == "REPEATED") != (new.mode == "REPEATED"):
            problems.append(f"column {path} is {old.mode} in the table but {new.mode} in the definition")
            continue
        if (top or nested_modes) and old.mode == "NULLABLE" and new.mode == "REQUIRED":
            problems.append(f"column {path} is NULLABLE in the table but REQUIRED in the definition")
            continue
        if old.type == "RECORD":
            _diff(old.fields, new.fields, path, changes, problems, nested_modes, top=False)
    for name, new in want.items():
        if name in have:
            continue
        path = f"{parent}.{name}" if parent else name
        if new.mode == "REQUIRED" and (top or nested_modes):
            problems.append(f"new column {path} is REQUIRED; a column added to a table with rows must be NULLABLE")
            continue
        changes.append(SchemaChange(parent, new))


def _describe(field: BqField) -> str:
    kind = "RECORD" if field.type == "RECORD" else field.type
    return f"ARRAY<{kind}>" if field.mode == "REPEATED" else kind


def fields_from_api(api_fields: Sequence[Mapping[str, Any]]) -> tuple[BqField, ...]:
    """BigQuery REST `TableFieldSchema` JSON → `BqField`s (the inverse of `BqField.to_api`)."""
    from_api = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "STRUCT": "RECORD", "BIGNUMERIC": "NUMERIC"}
    out = []
    for f in api_fields:
        kind = str(f.get("type", "STRING")).upper()
        kind = from_api.get(kind, kind)
        out.append(
            BqField(
                name=f["name"],
                type=kind,
                mode=str(f.get("mode") or "NULLABLE").upper(),
                description=f.get("description") or "",
                fields=fields_from_api(f.get("fields") or ()),
            )
        )
    return tuple(out)
