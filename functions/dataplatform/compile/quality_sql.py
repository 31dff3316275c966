"""Quality checks of an endpoint → BigQuery queries over the partition a run just wrote.

Every check compiles to one query of the same shape: the *failing rows* (rows that break
the rule) of the `@run_date` partition, wrapped so that one round trip returns both the
number of failing rows and a small sample:

    SELECT failing.*, COUNT(*) OVER () AS _dp_failing_rows
    FROM (<failing rows>) AS failing
    LIMIT 5

No rows back means the check passed. The queries are BigQuery SQL built with sqlglot; the
local warehouse transpiles them like any query, so a check behaves the same on DuckDB.
Parameters: `@run_date` (DATE, the partition) and `@run_time` (TIMESTAMP).

What the failing rows are, per type:
- `not_null`: rows of the partition with a NULL in any listed column (the listed columns).
- `unique`: rows whose combination of the listed columns occurs more than once in the
  partition (NULL counts as a value), with `duplicates` = how many rows share it.
- `accepted_values`: rows whose non-NULL column value is not listed.
- `row_count`: one row `(row_count, min_rows, max_rows)` when the partition's row count is
  outside the range, so `failing_rows` is 1 when the check fails.
- `relationship`: rows whose non-NULL `column` has no equal `field` in the upstream `to`.
  The upstream is read over the partitions the endpoint reads from it
  (`compile/scheduled_query.upstream_window`: `weekly_top_tracks` compares with the seven
  days of `daily_track_plays` it sums); an upstream the endpoint does not read is compared
  on its `@run_date` partition.
- `sql`: the rows the custom query returns.

Samples and privacy: endpoint tables hold no personal data in clear (they are computed from
pseudonymized events and never select encrypted columns in clear), and built-in checks only
project the columns they name. Still, BYTES columns are never projected by a built-in check,
and `pipeline/quality.py` replaces any BYTES value of a sample (a custom query may return
one) by a marker before it is recorded: ciphertext is not written into `check_results`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlglot import exp

from dataplatform.compile import sql as sqlc
from dataplatform.compile.endpoint_schema import endpoint_fields
from dataplatform.compile.scheduled_query import EVENT_PARTITION_COLUMN, day_expression, upstream_window
from dataplatform.definitions.models import (
    AcceptedValuesCheck,
    Check,
    Endpoint,
    EventSchema,
    NotNullCheck,
    RelationshipCheck,
    RowCountCheck,
    SqlAssertionCheck,
    UniqueCheck,
)
from dataplatform.errors import PlatformError

if TYPE_CHECKING:
    from dataplatform.definitions.loader import Catalog

DIALECT = sqlc.DIALECT
SAMPLE_ROWS = 5
"""Failing rows kept as a sample: enough for a first look, small enough for a log table."""

FAILING_COUNT_COLUMN = "_dp_failing_rows"


@dataclass(frozen=True)
class CheckQuery:
    """One compiled check: its recorded name, the definition, and the query to run."""

    name: str
    check: Check
    sql: str
    """Returns at most SAMPLE_ROWS failing rows, each with FAILING_COUNT_COLUMN = the total."""

    @property
    def type(self) -> str:
        return self.check.type

    @property
    def severity(self) -> str:
        return self.check.severity


def check_names(endpoint: Endpoint) -> list[str]:
    """The name each check is recorded under: its `name`, or one derived from type and columns.

    Derived: `not_null_<cols>`, `unique_<cols>`, `accepted_values_<col>`, `row_count`,
    `relationship_<col>`, `sql_<position>` (1-based). A derived name that clashes with an
    earlier one gets `_<position>` appended, so every check of an endpoint has its own name.
    """
    names: list[str] = []
    for position, check in enumerate(endpoint.checks, start=1):
        name = check.name or _derived_name(check, position)
        if name in names:
            name = f"{name}_{position}"
        names.append(name)
    return names


def _derived_name(check: Check, position: int) -> str:
    if isinstance(check, (NotNullCheck, UniqueCheck)):
        return f"{check.type}_{'_'.join(check.columns)}"
    if isinstance(check, (AcceptedValuesCheck, RelationshipCheck)):
        return f"{check.type}_{check.column}"
    if isinstance(check, RowCountCheck):
        return "row_count"
    return f"sql_{position}"


def check_queries(endpoint: Endpoint, catalog: Catalog, *, pretty: bool = True) -> list[CheckQuery]:
    """Every check of the endpoint, compiled, in definition order."""
    bytes_columns = {f.name for f in endpoint_fields(endpoint, catalog) if f.type == "BYTES"}
    out = []
    for name, check in zip(check_names(endpoint), endpoint.checks):
        failing = failing_rows_query(endpoint, check, catalog, bytes_columns)
        out.append(CheckQuery(name, check, sample_query(failing).sql(dialect=DIALECT, pretty=pretty)))
    return out


def sample_query(failing: exp.Query) -> exp.Select:
    """`SELECT failing.*, COUNT(*) OVER () AS _dp_failing_rows FROM (<failing>) LIMIT n`."""
    total = exp.Window(this=exp.Count(this=exp.Star()))
    return (
        exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier("failing")), exp.alias_(total, FAILING_COUNT_COLUMN))
        .from_(exp.Subquery(this=failing, alias=exp.TableAlias(this=exp.to_identifier("failing"))))
        .limit(SAMPLE_ROWS)
    )


# --------------------------------------------------------------------------- failing rows


def failing_rows_query(
    endpoint: Endpoint, check: Check, catalog: Catalog, bytes_columns: set[str] | frozenset[str] = frozenset()
) -> exp.Query:
    """The failing rows of one check on the `@run_date` partition (BigQuery SQL tree)."""
    if isinstance(check, NotNullCheck):
        return _not_null(endpoint, check, bytes_columns)
    if isinstance(check, UniqueCheck):
        return _unique(endpoint, check, bytes_columns)
    if isinstance(check, AcceptedValuesCheck):
        return _accepted_values(endpoint, check)
    if isinstance(check, RowCountCheck):
        return _row_count(endpoint, check)
    if isinstance(check, RelationshipCheck):
        return _relationship(endpoint, check, catalog)
    if isinstance(check, SqlAssertionCheck):
        return _custom(endpoint, check)
    raise PlatformError(f"endpoint {endpoint.name}: unknown check type {check.type!r}")  # pragma: no cover


def _table(ref: str, alias: str | None = None) -> exp.Table:
    dataset, _, table = ref.partition(".")
    node = exp.Table(this=exp.to_identifier(table), db=exp.to_identifier(dataset))
    if alias:
        node.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    return node


def _in_partition(endpoint: Endpoint, table: str | None = None) -> exp.Expression:
    return exp.EQ(this=exp.column(endpoint.partition_field, table=table), expression=exp.Parameter(this=exp.var("run_date")))


def _shown(columns: tuple[str, ...], bytes_columns: set[str] | frozenset[str]) -> list[exp.Expression]:
    """The columns a sample shows: the listed ones, BYTES columns as a NULL placeholder."""
    out: list[exp.Expression] = []
    for column in columns:
        if column in bytes_columns:
            out.append(exp.alias_(exp.Is(this=exp.column(column), expression=exp.Null()), f"{column}_is_null"))
        else:
            out.append(exp.column(column))
    return out


def _not_null(endpoint: Endpoint, check: NotNullCheck, bytes_columns) -> exp.Query:
    any_null = exp.or_(*[exp.Is(this=exp.column(c), expression=exp.Null()) for c in check.columns])
    return (
        exp.select(*_shown(check.columns, bytes_columns))
        .from_(_table(endpoint.table_ref))
        .where(exp.and_(_in_partition(endpoint), exp.paren(any_null, copy=False)))
    )


def _unique(endpoint: Endpoint, check: UniqueCheck, bytes_columns) -> exp.Query:
    def rows_sharing() -> exp.Window:
        return exp.Window(this=exp.Count(this=exp.Star()), partition_by=[exp.column(c) for c in check.columns])

    return (
        exp.select(*_shown(check.columns, bytes_columns), exp.alias_(rows_sharing(), "duplicates"))
        .from_(_table(endpoint.table_ref))
        .where(_in_partition(endpoint))
        .qualify(exp.GT(this=rows_sharing(), expression=exp.Literal.number(1)))
    )


def _value(value: str | int | float | bool) -> exp.Expression:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)):
        return exp.Literal.number(value)
    return exp.Literal.string(value)


def _accepted_values(endpoint: Endpoint, check: AcceptedValuesCheck) -> exp.Query:
    column = exp.column(check.column)
    return (
        exp.select(column.copy())
        .from_(_table(endpoint.table_ref))
        .where(
            exp.and_(
                _in_partition(endpoint),
                exp.Not(this=exp.Is(this=column.copy(), expression=exp.Null())),
                exp.Not(this=exp.In(this=column.copy(), expressions=[_value(v) for v in check.values])),
            )
        )
    )


def _row_count(endpoint: Endpoint, check: RowCountCheck) -> exp.Query:
    counted = exp.select(
        exp.alias_(exp.Count(this=exp.Star()), "row_count"),
        exp.alias_(_bound(check.min), "min_rows"),
        exp.alias_(_bound(check.max), "max_rows"),
    ).from_(_table(endpoint.table_ref)).where(_in_partition(endpoint))
    outside = []
    if check.min is not None:
        outside.append(exp.LT(this=exp.column("row_count"), expression=exp.Literal.number(check.min)))
    if check.max is not None:
        outside.append(exp.GT(this=exp.column("row_count"), expression=exp.Literal.number(check.max)))
    if not outside:
        raise PlatformError(f"endpoint {endpoint.name}: a row_count check needs min, max or both")
    return (
        exp.select(exp.Star())
        .from_(exp.Subquery(this=counted, alias=exp.TableAlias(this=exp.to_identifier("counted"))))
        .where(exp.or_(*outside))
    )


def _bound(value: int | None) -> exp.Expression:
    if value is None:
        return exp.cast(exp.Null(), exp.DataType.build("INT64", dialect=DIALECT))
    return exp.Literal.number(value)


def _relationship(endpoint: Endpoint, check: RelationshipCheck, catalog: Catalog) -> exp.Query:
    tables = catalog.tables()
    target = tables.get(check.to)
    if target is None:
        raise PlatformError(
            f"endpoint {endpoint.name}: relationship check refers to unknown table {check.to!r}; "
            "run `dataplatform validate`"
        )
    window = upstream_window(endpoint, catalog, check.to)
    first, last = (window.first_offset, window.last_offset) if window is not None else (0, 0)
    if isinstance(target, EventSchema):
        partition: exp.Expression = exp.Date(this=exp.column(EVENT_PARTITION_COLUMN))
    else:
        partition = exp.column(target.partition_field)
    if first is None:
        in_window: exp.Expression = exp.LTE(this=partition, expression=day_expression(last))
    elif first == last:
        in_window = exp.EQ(this=partition, expression=day_expression(last))
    else:
        in_window = exp.Between(this=partition, low=day_expression(first), high=day_expression(last))
    keys = (
        exp.select(exp.alias_(exp.column(check.field), "key"))
        .distinct()
        .from_(_table(check.to))
        .where(in_window)
    )
    child = exp.column(check.column, table="child")
    parent_key = exp.column("key", table="parent")
    return (
        exp.select(child.copy())
        .from_(_table(endpoint.table_ref, "child"))
        .join(
            exp.Subquery(this=keys, alias=exp.TableAlias(this=exp.to_identifier("parent"))),
            on=exp.EQ(this=parent_key.copy(), expression=child.copy()),
            join_type="LEFT",
        )
        .where(
            exp.and_(
                _in_partition(endpoint, "child"),
                exp.Not(this=exp.Is(this=child.copy(), expression=exp.Null())),
                exp.Is(this=parent_key.copy(), expression=exp.Null()),
            )
        )
    )


def _custom(endpoint: Endpoint, check: SqlAssertionCheck) -> exp.Query:
    try:
        tree = sqlc.parse(check.sql)
    except sqlc.SqlSyntaxError as exc:
        raise PlatformError(f"endpoint {endpoint.name}: a custom sql check does not parse (line {exc.line}): {exc}") from None
    if not isinstance(tree, exp.Query):
        raise PlatformError(f"endpoint {endpoint.name}: a custom sql check must be one SELECT query returning the failing rows")
    return tree
