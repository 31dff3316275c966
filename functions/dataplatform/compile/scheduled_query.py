"""What an endpoint run needs before it may run, and the BigQuery script a scheduled query runs.

One semantics in GCP and locally (DESIGN.md §2): an endpoint partition runs only when its
upstreams are ready, and then replaces exactly its partition. This module compiles both
halves from the definitions, as BigQuery SQL:

- `upstream_windows`: which upstream partitions a run for `@run_date` reads, derived with
  sqlglot from the partition filters of the endpoint SQL (`DATE(event_time) = @run_date`,
  `date BETWEEN DATE_SUB(@run_date, INTERVAL 6 DAY) AND @run_date`, ...).
- `readiness_sql`: ONE query returning a row per reason the run must wait (none = ready).
  The local runner executes it on DuckDB (transpiled) with `@run_date` and `@now`; the GCP
  script executes the very same text with `EXECUTE IMMEDIATE`. So the rules are tested
  where they run.
- `scheduled_query_script`: the BigQuery script the Data Transfer Service runs.

Readiness rules (`readiness_sql`):
- Event upstream: the newest day the run reads (usually `@run_date`) must be past its allowed
  lateness: `day end (00:00 UTC of the next day) + allowed_lateness <= now`. HOUR-partitioned
  event tables are judged per day too. An empty day is complete: silence is data.
- Endpoint upstream: every partition in the window must be `succeeded` (newest row of
  `platform.partitions`). Days before the upstream's first recorded partition are not
  required (there is nothing to wait for: the upstream did not exist yet), but the newest
  day of the window always is.
- A read whose partition range cannot be derived from the SQL (no filter, or a filter this
  module does not understand) counts as "every partition up to the run date".

The run-date convention (the same for DTS, the local scheduler and `run`/`backfill`):
a run scheduled at `run_time` T writes the partition of the day before, `DATE(T) - 1`
(UTC): the 03:30 run on May 2 computes May 1, a complete day. Endpoint SQL always sees
`@run_date` = the partition it writes and `@run_time` = T. DTS's own `@run_date` is the
date of T, so the script declares `partition_date = DATE(@run_time) - 1` and binds it as
`@run_date` of the endpoint SQL. A manual or backfill run for partition D uses the
schedule's first time on D+1 as `run_time` (`run_time_for_partition`).

Why a script that writes the partition itself (DELETE + INSERT in a transaction) instead of
DTS's destination template `<table>${run_date}` with WRITE_TRUNCATE: BigQuery does not
allow a destination table for multi-statement queries, and DTS's `{run_date}` would name the
wrong day under the convention above. The transaction gives the same result as a
WRITE_TRUNCATE of one partition: the rows of `partition_date` replaced atomically, and
nothing written when a row falls outside it (the INSERT raises with `ERROR()`), so a rerun
is idempotent. The transfer config therefore has no destination table; its service
account needs data editor on its table and data viewer on `platform.partitions`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Literal

from croniter import croniter
from sqlglot import exp

from dataplatform.compile import sql as sqlc
from dataplatform.compile.endpoint_schema import endpoint_fields
from dataplatform.definitions.models import (
    EVENTS_DATASET,
    PLATFORM_DATASET,
    Endpoint,
    EventSchema,
    format_duration,
)
from dataplatform.errors import PlatformError

if TYPE_CHECKING:
    from dataplatform.definitions.loader import Catalog

UTC = timezone.utc
DIALECT = sqlc.DIALECT

EVENT_PARTITION_COLUMN = "event_time"
PARTITIONS_TABLE = f"{PLATFORM_DATASET}.partitions"
SUCCEEDED = "succeeded"

PARTITION_DATE_VARIABLE = "partition_date"
"""The script variable holding the partition the run writes (bound as the SQL's @run_date)."""

WAITING_PREFIX = "dataplatform-waiting: "
"""Start of the RAISE message of a run that waits; `monitor` reads a failed transfer run
with this message as "waiting", not "failed"."""

ENDPOINT_MARKER = "-- dataplatform endpoint: "
"""First line of every script; `monitor` finds the endpoint of a transfer run by it."""



# --------------------------------------------------------------------------- run dates


def partition_of_run(run_time: datetime) -> date:
    """The partition a run scheduled at `run_time` writes: the UTC day before."""
    if run_time.tzinfo is None:
        raise PlatformError("run_time must be timezone-aware (UTC)")
    return run_time.astimezone(UTC).date() - timedelta(days=1)


def run_time_for_partition(schedule: str, partition: date) -> datetime:
    """The `@run_time` of a manual or backfill run of `partition`.

    The schedule's first time on the day after the partition (UTC), so the run looks like
    the scheduled one; midnight of that day when the schedule does not fire on it.
    """
    day_start = datetime.combine(partition + timedelta(days=1), time(), tzinfo=UTC)
    first = croniter(schedule, day_start - timedelta(microseconds=1)).get_next(datetime)
    first = first.astimezone(UTC) if first.tzinfo else first.replace(tzinfo=UTC)
    return first if first.date() == day_start.date() else day_start


# --------------------------------------------------------------------------- upstream windows


@dataclass(frozen=True)
class UpstreamWindow:
    """The partitions of one upstream table a run for `@run_date` reads.

    Offsets are days relative to `@run_date` (`-6 .. 0` for "the last seven days").
    `first_offset` None means unbounded below (every partition up to `last_offset`).
    """

    table_ref: str  # events.<key> (dedup views folded) or endpoints.<name>
    kind: Literal["event", "endpoint"]
    first_offset: int | None
    last_offset: int
    derived: bool
    """False when the SQL's filter could not be read and the window is the default."""


def upstream_windows(endpoint: Endpoint, catalog: Catalog) -> tuple[UpstreamWindow, ...]:
    """The windows of every upstream table of the endpoint, in order of first mention."""
    try:
        tree = sqlc.parse(endpoint.sql)
    except sqlc.SqlSyntaxError as exc:
        raise PlatformError(f"endpoint {endpoint.name!r} (workflows/{endpoint.name}.sql:{exc.line}): {exc}") from None
    tables = catalog.tables()
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    found: dict[str, UpstreamWindow] = {}
    for table in tree.find_all(exp.Table):
        if not table.name or (not table.db and table.name in ctes):
            continue
        ref = f"{table.db}.{table.name}" if table.db else table.name
        definition = tables.get(ref)
        if definition is None:
            continue  # the loader reports unknown tables; nothing to wait for here
        window = _window_of(table, definition)
        previous = found.get(window.table_ref)
        found[window.table_ref] = window if previous is None else _union(previous, window)
    return tuple(found.values())


def upstream_window(endpoint: Endpoint, catalog: Catalog, table_ref: str) -> UpstreamWindow | None:
    """The window of one upstream (`events.x_dedup` is `events.x`), or None if not read."""
    wanted = _folded(table_ref)
    return next((w for w in upstream_windows(endpoint, catalog) if w.table_ref == wanted), None)


def _folded(ref: str) -> str:
    dataset, _, table = ref.partition(".")
    if dataset == EVENTS_DATASET and table.endswith("_dedup"):
        return f"{dataset}.{table.removesuffix('_dedup')}"
    return ref


def _union(a: UpstreamWindow, b: UpstreamWindow) -> UpstreamWindow:
    first = None if a.first_offset is None or b.first_offset is None else min(a.first_offset, b.first_offset)
    return UpstreamWindow(a.table_ref, a.kind, first, max(a.last_offset, b.last_offset), a.derived and b.derived)


def _window_of(table: exp.Table, definition: EventSchema | Endpoint) -> UpstreamWindow:
    """Read the bounds on the table's partition column from the WHERE of the SELECT reading it."""
    if isinstance(definition, EventSchema):
        ref, kind, column = definition.table_ref, "event", EVENT_PARTITION_COLUMN
    else:
        ref, kind, column = definition.table_ref, "endpoint", definition.partition_field
    alias = table.alias_or_name
    select = table.find_ancestor(exp.Select)
    where = select.args.get("where") if select is not None else None
    lows: list[int] = []
    highs: list[int] = []
    if where is not None:
        for condition in _conjuncts(where.this):
            _bounds(condition, lambda node: _is_partition(node, kind, column, alias), lows, highs)
    derived = bool(lows or highs)
    first = max(lows) if lows else None
    last = min(highs) if highs else 0
    if first is not None and first > last:
        first = last  # an empty window (a contradiction in the SQL) still needs its newest day
    return UpstreamWindow(ref, kind, first, last, derived)


def _conjuncts(condition: exp.Expression) -> Iterable[exp.Expression]:
    if isinstance(condition, exp.And):
        yield from _conjuncts(condition.this)
        yield from _conjuncts(condition.expression)
    elif isinstance(condition, exp.Paren):
        yield from _conjuncts(condition.this)
    else:
        yield condition


def _is_partition(node: exp.Expression, kind: str, column: str, alias: str) -> bool:
    """`date` / `t.date` for an endpoint; `DATE(event_time)` / `DATE(t.event_time)` for events."""
    if kind == "event":
        if not isinstance(node, (exp.Date, exp.TsOrDsToDate)) or node.args.get("zone") or node.expressions:
            return False
        node = node.this
    return isinstance(node, exp.Column) and node.name == column and node.table in ("", alias)


_FLIP = {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE, exp.EQ: exp.EQ}


def _bounds(condition: exp.Expression, is_partition, lows: list[int], highs: list[int]) -> None:
    if isinstance(condition, exp.Between) and is_partition(condition.this):
        low, high = _offset(condition.args.get("low")), _offset(condition.args.get("high"))
        if low is not None:
            lows.append(low)
        if high is not None:
            highs.append(high)
        return
    kind = type(condition)
    if kind not in _FLIP:
        return
    left, right = condition.this, condition.expression
    if not is_partition(left):
        if not is_partition(right):
            return
        left, right, kind = right, left, _FLIP[kind]
    value = _offset(right)
    if value is None:
        return
    if kind is exp.EQ:
        lows.append(value)
        highs.append(value)
    elif kind is exp.GTE:
        lows.append(value)
    elif kind is exp.GT:
        lows.append(value + 1)
    elif kind is exp.LTE:
        highs.append(value)
    elif kind is exp.LT:
        highs.append(value - 1)


def _offset(node: exp.Expression | None) -> int | None:
    """Days relative to @run_date of `@run_date`, `DATE_SUB(@run_date, INTERVAL n DAY)`, `DATE_ADD(...)`."""
    if isinstance(node, exp.Paren):
        return _offset(node.this)
    if _is_run_date(node):
        return 0
    if isinstance(node, (exp.DateSub, exp.DateAdd)) and _is_run_date(node.this):
        unit = node.args.get("unit")
        amount = node.expression
        if unit is None or unit.name.upper() != "DAY" or not isinstance(amount, exp.Literal):
            return None
        try:
            days = int(str(amount.this))
        except ValueError:
            return None
        return -days if isinstance(node, exp.DateSub) else days
    return None


def _is_run_date(node: exp.Expression | None) -> bool:
    return isinstance(node, exp.Parameter) and node.name == "run_date"


# --------------------------------------------------------------------------- readiness query


def _param(name: str) -> exp.Parameter:
    return exp.Parameter(this=exp.var(name))


def day_expression(offset: int) -> exp.Expression:
    """`@run_date`, `DATE_SUB(@run_date, INTERVAL n DAY)` or `DATE_ADD(...)` for an offset."""
    if offset == 0:
        return _param("run_date")
    node = exp.DateSub if offset < 0 else exp.DateAdd
    return node(this=_param("run_date"), expression=exp.Literal.number(abs(offset)), unit=exp.var("DAY"))


def _table(ref: str) -> exp.Table:
    dataset, _, table = ref.partition(".")
    return exp.Table(this=exp.to_identifier(table), db=exp.to_identifier(dataset))


def _partition_column(table: str | None = None) -> exp.Column:
    return exp.column("partition", table=table, quoted=True)


def _as_string(value: exp.Expression) -> exp.Expression:
    return exp.cast(value, exp.DataType.build("STRING", dialect=DIALECT))


def _concat(*parts: exp.Expression | str) -> exp.Expression:
    return exp.Concat(
        expressions=[exp.Literal.string(p) if isinstance(p, str) else p for p in parts], safe=False, coalesce=False
    )


def latest_partition_states_query(table_filter: exp.Expression) -> exp.Select:
    """The newest row of `platform.partitions` per (table_ref, partition) among `table_filter`.

    `updated_at` orders the rows of one partition; records are written with strictly
    increasing `updated_at` per process (pipeline/endpoint_run.py), so ties do not happen.
    """
    window = exp.Window(
        this=exp.RowNumber(),
        partition_by=[exp.column("table_ref"), _partition_column()],
        order=exp.Order(expressions=[exp.Ordered(this=exp.column("updated_at"), desc=True)]),
    )
    return (
        exp.select("table_ref", _partition_column(), "status", "run_id", "row_count", "updated_at")
        .from_(_table(PARTITIONS_TABLE))
        .where(table_filter)
        .qualify(exp.EQ(this=window, expression=exp.Literal.number(1)))
    )


def _event_reasons(index: int, window: UpstreamWindow, schema: EventSchema) -> exp.Select:
    day = day_expression(window.last_offset)
    ready_at = exp.TimestampAdd(
        this=exp.Timestamp(this=day_expression(window.last_offset + 1)),
        expression=exp.Literal.number(int(schema.allowed_lateness.total_seconds())),
        unit=exp.var("SECOND"),
    )
    reason = _concat(
        f"{window.table_ref} is complete for ",
        _as_string(day),
        " only at ",
        _as_string(ready_at.copy()),
        f" (allowed lateness {format_duration(schema.allowed_lateness)})",
    )
    return (
        exp.select(
            exp.alias_(exp.Literal.number(index), "ord"),
            exp.alias_(day.copy(), "day"),
            exp.alias_(reason, "reason"),
        )
        .from_(exp.Subquery(this=exp.select(exp.alias_(exp.Literal.number(1), "one")), alias=exp.TableAlias(this=exp.to_identifier("clock"))))
        .where(exp.LT(this=_param("now"), expression=ready_at))
    )


def _endpoint_reasons(index: int, window: UpstreamWindow) -> exp.Select:
    last = day_expression(window.last_offset)
    recorded_first = exp.Coalesce(this=exp.Min(this=_partition_column()), expressions=[last.copy()])
    start: exp.Expression = recorded_first
    if window.first_offset is not None:
        start = exp.Greatest(this=day_expression(window.first_offset), expressions=[recorded_first])
    start = exp.Least(this=start, expressions=[last.copy()])
    table_is = exp.EQ(this=exp.column("table_ref"), expression=exp.Literal.string(window.table_ref))
    first_day = exp.Subquery(this=exp.select(start).from_(_table(PARTITIONS_TABLE)).where(table_is.copy()))
    days = exp.Unnest(
        expressions=[exp.GenerateDateArray(start=first_day, end=last.copy(), step=exp.Interval(this=exp.Literal.number(1), unit=exp.var("DAY")))],
        alias=exp.TableAlias(columns=[exp.to_identifier("day")]),
    )
    states = exp.Subquery(this=latest_partition_states_query(table_is.copy()), alias=exp.TableAlias(this=exp.to_identifier("state")))
    status = exp.column("status", table="state")
    reason = _concat(
        f"{window.table_ref} partition ",
        _as_string(exp.column("day")),
        " ",
        exp.Coalesce(this=_concat("is ", status.copy()), expressions=[exp.Literal.string("has not run")]),
    )
    return (
        exp.select(
            exp.alias_(exp.Literal.number(index), "ord"),
            exp.alias_(exp.column("day"), "day"),
            exp.alias_(reason, "reason"),
        )
        .from_(days)
        .join(states, on=exp.EQ(this=_partition_column("state"), expression=exp.column("day")), join_type="LEFT")
        .where(
            exp.or_(
                exp.Is(this=status.copy(), expression=exp.Null()),
                exp.NEQ(this=status.copy(), expression=exp.Literal.string(SUCCEEDED)),
            )
        )
    )


def readiness_sql(endpoint: Endpoint, catalog: Catalog, *, pretty: bool = True) -> str | None:
    """BigQuery query: one `reason` row per thing the run for `@run_date` waits for.

    Parameters: `@run_date` (DATE, the partition) and `@now` (TIMESTAMP). No rows = ready.
    None when the endpoint reads no table of the catalog (it is always ready).
    """
    tables = catalog.tables()
    parts: list[exp.Select] = []
    for index, window in enumerate(upstream_windows(endpoint, catalog)):
        definition = tables[window.table_ref]
        if isinstance(definition, EventSchema):
            parts.append(_event_reasons(index, window, definition))
        else:
            parts.append(_endpoint_reasons(index, window))
    if not parts:
        return None
    union: exp.Expression = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    query = (
        exp.select(exp.column("reason", table="waiting"))
        .from_(exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier("waiting"))))
        .order_by(exp.column("ord", table="waiting"), exp.column("day", table="waiting"), exp.column("reason", table="waiting"))
    )
    return query.sql(dialect=DIALECT, pretty=pretty)


# --------------------------------------------------------------------------- the partition write

_QUERY_PLACEHOLDER = "dp_endpoint_query_placeholder"


def write_partition_sql(endpoint: Endpoint, catalog: Catalog) -> str:
    """BigQuery `INSERT` of the endpoint query's rows into its table, refusing foreign rows.

    Every row must belong to the `@run_date` partition; one that does not makes the
    statement fail with `ERROR()` (nothing is written), as a WRITE_TRUNCATE to a partition
    decorator would. The endpoint SQL is embedded verbatim (not regenerated by sqlglot),
    so BigQuery runs exactly the text the local warehouse transpiles.
    """
    columns = [f.name for f in endpoint_fields(endpoint, catalog)]
    partition = exp.column(endpoint.partition_field, table="result")
    message = _concat(
        f"endpoint {endpoint.name}: the query returned a row with {endpoint.partition_field} ",
        exp.Coalesce(this=_as_string(partition.copy()), expressions=[exp.Literal.string("NULL")]),
        ", outside the partition ",
        _as_string(_param("run_date")),
        f" the run writes; filter the query on @run_date (e.g. `@run_date AS {endpoint.partition_field}`)",
    )
    keep = exp.If(
        this=exp.EQ(this=partition, expression=_param("run_date")),
        true=exp.true(),
        false=exp.Anonymous(this="ERROR", expressions=[message]),
    )
    select = (
        exp.select(*[exp.column(c, table="result") for c in columns])
        .from_(exp.Table(this=exp.to_identifier(_QUERY_PLACEHOLDER), alias=exp.TableAlias(this=exp.to_identifier("result"))))
        .where(keep)
    )
    insert = exp.Insert(
        this=exp.Schema(this=_table(endpoint.table_ref), expressions=[exp.to_identifier(c) for c in columns]),
        expression=select,
    )
    text = insert.sql(dialect=DIALECT, pretty=True)
    if text.count(_QUERY_PLACEHOLDER) != 1:  # pragma: no cover - guards the placeholder choice
        raise PlatformError(f"endpoint {endpoint.name}: could not place the query in its INSERT")
    return text.replace(_QUERY_PLACEHOLDER, "(\n" + _statement_text(endpoint.sql) + "\n)")


def _statement_text(sql: str) -> str:
    """The endpoint SQL without trailing whitespace and `;` (it becomes a subquery)."""
    text = sql.rstrip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


# --------------------------------------------------------------------------- the script


def string_literal(text: str) -> str:
    """A BigQuery string literal holding `text` exactly.

    A raw triple-quoted literal (`r\"\"\"...\"\"\"`) keeps the SQL readable in the console;
    when the text contains `\"\"\"` or ends with a backslash, sqlglot's escaped literal.
    """
    if '"""' not in text and not text.endswith(("\\", '"')):
        return f'r"""{text}"""'
    return exp.Literal.string(text).sql(dialect=DIALECT)


def scheduled_query_script(endpoint: Endpoint, catalog: Catalog) -> str:
    """The BigQuery script the endpoint's scheduled query (DTS) runs; see the module docstring.

    1. `partition_date` = DATE(@run_time) - 1 (the run-date convention).
    2. Upstream readiness: `readiness_sql` (EXECUTE IMMEDIATE, @now = CURRENT_TIMESTAMP());
       any reason → `RAISE` with `WAITING_PREFIX` and the reasons: the transfer run fails,
       `monitor` records it as waiting and starts it again once the upstreams are ready.
    3. In one transaction: delete the partition, insert the endpoint query's rows
       (`write_partition_sql`, with @run_date = partition_date and DTS's @run_time).
    """
    table = _table(endpoint.table_ref)
    partition_date = exp.column(PARTITION_DATE_VARIABLE)
    declare_date = exp.Declare(
        expressions=[
            exp.DeclareItem(
                this=[exp.to_identifier(PARTITION_DATE_VARIABLE)],
                kind=exp.DataType.build("DATE"),
                default=exp.DateSub(this=exp.Date(this=_param("run_time")), expression=exp.Literal.number(1), unit=exp.var("DAY")),
            )
        ]
    )
    delete = exp.delete(table, where=exp.EQ(this=exp.column(endpoint.partition_field), expression=partition_date.copy()))
    lines = [
        f"{ENDPOINT_MARKER}{endpoint.name}",
        f"-- Generated by dataplatform/compile/scheduled_query.py from workflows/{endpoint.name}.yaml and .sql; do not edit.",
        "-- A run scheduled at @run_time writes the partition of the day before (UTC): partition_date.",
        declare_date.sql(dialect=DIALECT) + ";",
    ]
    readiness = readiness_sql(endpoint, catalog)
    if readiness is not None:
        reasons = exp.select(exp.alias_(exp.Array(expressions=[sqlc.parse(readiness)]), "reasons")).sql(dialect=DIALECT, pretty=True)
        not_ready = exp.column("not_ready")
        raise_message = _concat(
            f"{WAITING_PREFIX}endpoint {endpoint.name} partition ",
            _as_string(partition_date.copy()),
            " waits for: ",
            exp.ArrayToString(this=not_ready.copy(), expression=exp.Literal.string("; ")),
        )
        lines += [
            "DECLARE not_ready ARRAY<STRING>;",
            "",
            "-- 1. Upstream readiness: the query the local runner runs too (no rows = ready).",
            f"EXECUTE IMMEDIATE {string_literal(reasons)}",
            "INTO not_ready",
            f"USING {PARTITION_DATE_VARIABLE} AS run_date, CURRENT_TIMESTAMP() AS now;",
            "IF ARRAY_LENGTH(not_ready) > 0 THEN",
            f"  RAISE USING MESSAGE = {raise_message.sql(dialect=DIALECT)};",
            "END IF;",
        ]
    lines += [
        "",
        "-- 2. Replace the partition: the endpoint SQL as written, @run_date = partition_date.",
        "BEGIN TRANSACTION;",
        delete.sql(dialect=DIALECT) + ";",
        f"EXECUTE IMMEDIATE {string_literal(write_partition_sql(endpoint, catalog))}",
        f"USING {PARTITION_DATE_VARIABLE} AS run_date, @run_time AS run_time;",
        "COMMIT TRANSACTION;",
        "",
    ]
    return "\n".join(lines)


def endpoint_of_script(query: str) -> str | None:
    """The endpoint name from a script's first line (`ENDPOINT_MARKER`), or None."""
    first = query.lstrip().split("\n", 1)[0]
    if first.startswith(ENDPOINT_MARKER):
        return first[len(ENDPOINT_MARKER):].strip() or None
    return None


def waiting_reasons(message: str) -> tuple[str, ...] | None:
    """The reasons of a RAISEd waiting message, or None when the message is another error."""
    at = message.find(WAITING_PREFIX)
    if at < 0:
        return None
    text = message[at + len(WAITING_PREFIX):]
    _, found, reasons = text.partition(" waits for: ")
    body = reasons if found else text
    return tuple(r.strip() for r in body.split("; ") if r.strip())

