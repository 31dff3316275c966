"""BigQuery SQL → DuckDB SQL, so the local warehouse runs the endpoint SQL users wrote.

Endpoint SQL is written once, in BigQuery's dialect. Locally the same text runs on DuckDB
after this transpilation, so a run on DuckDB is a test of the cloud query. sqlglot does the
bulk of the work; the transforms below fix, on the BigQuery syntax tree and before DuckDB
SQL is generated, the places where sqlglot's output would run on DuckDB but compute a
different answer than BigQuery (or not run at all). Each is small and says why:

- `DATE_ADD`/`DATE_SUB` return DATE in BigQuery; DuckDB's `date ± interval` is a TIMESTAMP.
- `DATE_TRUNC(date, part)` returns DATE in BigQuery; DuckDB's `date_trunc` a TIMESTAMP.
- `DATE_FROM_UNIX_DATE` returns DATE (sqlglot's `DATE '1970-01-01' + INTERVAL` is a TIMESTAMP).
- `EXTRACT(DAYOFWEEK ...)` is 1 (Sunday) … 7 in BigQuery, 0 … 6 in DuckDB.
- `EXTRACT(WEEK ...)` counts Sunday-started weeks (week 0 before the first Sunday) in
  BigQuery, ISO weeks in DuckDB; `WEEK(MONDAY)` counts Monday-started ones; `ISOWEEK` is
  DuckDB's `WEEK`.
- `TIMESTAMP_DIFF` counts whole intervals in BigQuery (`date_sub` in DuckDB), not crossed
  boundaries (`date_diff`).
- `UNNEST(...) WITH OFFSET` is 0-based in BigQuery; DuckDB's `WITH ORDINALITY` is 1-based,
  so the unnest becomes a lateral subquery with `generate_subscripts(...) - 1`.
- `ARRAY_AGG(... LIMIT n)` becomes `list_slice(array_agg(...), 1, n)`.
- `SAFE.f(...)` becomes `TRY(f(...))` (NULL instead of an error).
- `FORMAT('%d', ...)` is printf-style in BigQuery; DuckDB's `format` is `{}`-style: `printf`.
- `NUMERIC` without precision is DECIMAL(38, 9) in BigQuery, DECIMAL(18, 3) in DuckDB.
- `project.dataset.table` becomes `dataset.table`: locally every dataset is a DuckDB schema
  of the one warehouse database, whatever the GCP project.

Query parameters `@name` become DuckDB named prepared parameters `$name`; pass the values
as a dict with `duckdb_parameters`. The DuckDB session must run in UTC
(`SESSION_SETUP`), like BigQuery, so that DATE(ts), EXTRACT and TIMESTAMP_TRUNC agree.

What cannot run on DuckDB is found before any run, by `unsupported_constructs`: the
`validate` command reports it with the line and the construct's name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDBGenerator
from sqlglot.errors import ErrorLevel, UnsupportedError

from dataplatform.compile.sql import parse
from dataplatform.errors import PlatformError

TARGET = "duckdb"

SESSION_SETUP: tuple[str, ...] = ("SET TimeZone = 'UTC'",)
"""Statements every DuckDB connection running transpiled SQL must execute first.

BigQuery evaluates DATE(ts), EXTRACT(HOUR FROM ts) and TIMESTAMP_TRUNC in UTC unless told
otherwise; DuckDB uses the session time zone, which defaults to the machine's.
"""

NAMESPACED_FUNCTIONS: Mapping[str, str] = {
    "AEAD": "needs BigQuery's Tink keysets; use `dataplatform reveal` locally",
    "KEYS": "needs Cloud KMS keysets",
    "ML": "BigQuery ML models exist only in BigQuery",
    "AI": "BigQuery's AI functions call Vertex AI",
    "NET": "BigQuery's NET functions have no DuckDB equivalent",
    "HLL_COUNT": "HyperLogLog++ sketches are BigQuery-specific",
    "KLL_QUANTILES": "KLL sketches are BigQuery-specific",
    "OBJ": "object tables exist only in BigQuery",
}
"""Function families (`FAMILY.FUNCTION(...)`) that only BigQuery has, with the reason shown."""

BIGQUERY_ONLY_FUNCTIONS: Mapping[str, str] = {
    "DETERMINISTIC_DECRYPT_STRING": "needs BigQuery's Tink keysets; use `dataplatform reveal` locally",
    "DETERMINISTIC_DECRYPT_BYTES": "needs BigQuery's Tink keysets; use `dataplatform reveal` locally",
    "DETERMINISTIC_ENCRYPT": "needs BigQuery's Tink keysets",
    "EXTERNAL_QUERY": "federated queries exist only in BigQuery",
    "VECTOR_SEARCH": "vector indexes exist only in BigQuery",
}
"""Plain functions that only BigQuery has. The DuckDB catalog check (`_unknown_to_duckdb`)
catches the rest; these are listed for a better reason than "DuckDB has no function"."""

DUCKDB_SYNTAX_FUNCTIONS = frozenset(
    {"CAST", "TRY_CAST", "TRY", "EXTRACT", "COALESCE", "ARRAY", "EXISTS", "GROUPING", "IN", "COLUMNS", "INTERVAL"}
)
"""Call-shaped DuckDB syntax that `duckdb_functions()` does not list."""

_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\(")
_PARAMETER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class UnsupportedSql(PlatformError):
    """The BigQuery SQL uses constructs DuckDB cannot run; `constructs` lists (line, name)."""

    def __init__(self, constructs: list[tuple[int, str]], where: str = "") -> None:
        self.constructs = constructs
        prefix = f"{where}:" if where else "line "
        lines = [f"{prefix}{line}: {name} cannot run on the local DuckDB warehouse" for line, name in constructs]
        super().__init__(
            "\n".join(lines)
            + "\nrewrite these parts with functions both BigQuery and DuckDB have (the docstring of "
            "dataplatform/compile/transpile.py lists what is translated), so local runs test the cloud query"
        )


# --------------------------------------------------------------------------- public API


def to_duckdb(sql: str, *, pretty: bool = True) -> str:
    """The DuckDB SQL of one BigQuery query.

    Raises `UnsupportedSql` when sqlglot knows it cannot express a construct in DuckDB;
    `transpile_or_raise` checks more (BigQuery-only functions) and names every problem.
    """
    tree = _to_duckdb_tree(parse(sql))
    generator = _TracingGenerator(dialect=TARGET, pretty=pretty, unsupported_level=ErrorLevel.IGNORE)
    out = generator.generate(tree, copy=False)
    if generator.located:
        raise UnsupportedSql(sorted(set(generator.located)))
    return out


def transpile_or_raise(sql: str, *, where: str = "", pretty: bool = True) -> str:
    """`to_duckdb`, after checking `unsupported_constructs`; `where` prefixes lines (a path)."""
    problems = unsupported_constructs(sql)
    if problems:
        raise UnsupportedSql(problems, where)
    return to_duckdb(sql, pretty=pretty)


def unsupported_constructs(sql: str) -> list[tuple[int, str]]:
    """(line, construct) for everything in `sql` that cannot run on DuckDB, sorted.

    Three sources: the statement kind (an endpoint is one query, not a script), BigQuery-only
    function families and functions (deny-lists above), and sqlglot's own knowledge of what
    it cannot express in DuckDB. Finally every function call of the generated DuckDB SQL is
    looked up in DuckDB's catalog (`duckdb_functions()`), which catches BigQuery functions
    that sqlglot passes through unchanged. Raises `SqlSyntaxError` when `sql` does not parse.
    """
    tree = parse(sql)
    if isinstance(tree, exp.Block):
        return [(_line(tree.expressions[1]) if len(tree.expressions) > 1 else 1, "multiple statements (BigQuery scripting)")]
    if not isinstance(tree, exp.Query):
        return [(_line(tree), f"{tree.key.upper()} statement (an endpoint is one SELECT query)")]

    tree = tree.copy()
    found: set[tuple[int, str]] = set()
    reported: list[exp.Expression] = []
    stack: list[exp.Expression] = [tree]
    while stack:
        node = stack.pop()
        problem = _bigquery_only(node)
        if problem:
            found.add((_line(node), problem))
            reported.append(node)
            continue  # the arguments of a BigQuery-only call are not reported again
        stack.extend(reversed(list(node.iter_expressions())))
    for node in reported:  # so that the checks below do not report them a second time
        node.replace(exp.Null())

    converted = _to_duckdb_tree(tree)
    generator = _TracingGenerator(dialect=TARGET, unsupported_level=ErrorLevel.IGNORE)
    generator.generate(converted.copy(), copy=False)
    found.update(generator.located)
    found.update(_unknown_to_duckdb(converted))
    return sorted(found)


def _bigquery_only(node: exp.Expression) -> str:
    """The name and reason of a construct only BigQuery has, or ''."""
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
        family = node.this.name.upper() if isinstance(node.this, exp.Identifier) else ""
        reason = NAMESPACED_FUNCTIONS.get(family, "a BigQuery-only function family")
        return f"{family}.{_function_name(node.expression)} ({reason})"
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Func) and node.db:
        family = node.db.upper()  # a table-valued function: FROM ML.PREDICT(...)
        reason = NAMESPACED_FUNCTIONS.get(family, "a BigQuery-only function family")
        return f"{family}.{_function_name(node.this)} ({reason})"
    if isinstance(node, exp.NetFunc):
        return f"NET.{_function_name(node.this)} ({NAMESPACED_FUNCTIONS['NET']})"
    if isinstance(node, exp.Func) and _function_name(node) in BIGQUERY_ONLY_FUNCTIONS:
        name = _function_name(node)
        return f"{name} ({BIGQUERY_ONLY_FUNCTIONS[name]})"
    if isinstance(node, exp.Table) and node.args.get("version"):
        return "FOR SYSTEM_TIME AS OF (BigQuery time travel)"
    if isinstance(node, exp.Extract) and isinstance(node.this, exp.WeekStart):
        day = node.this.name.upper()
        if day not in ("SUNDAY", "MONDAY"):
            return f"EXTRACT(WEEK({day}) ...) (only SUNDAY and MONDAY weeks are supported)"
    return ""


def query_parameters(sql: str) -> tuple[str, ...]:
    """Names of the query parameters (`@run_date` → `run_date`) in order of first use."""
    names = [_parameter_name(p) for p in parse(sql).find_all(exp.Parameter)]
    return tuple(dict.fromkeys(n for n in names if n))


def duckdb_parameters(sql: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of `values` the query uses, as DuckDB wants it (it rejects unused names).

    Raises `PlatformError` naming a parameter the query uses but `values` lacks.
    """
    needed = query_parameters(sql)
    missing = [name for name in needed if name not in values]
    if missing:
        raise PlatformError(
            f"the query uses parameter(s) {', '.join('@' + m for m in missing)} that the run does not "
            f"provide (available: {', '.join('@' + k for k in sorted(values)) or 'none'})"
        )
    return {name: values[name] for name in needed}


def bigquery_functions(sql: str) -> set[str]:
    """Names of the BigQuery functions a query calls, as sqlglot classifies them.

    Typed functions by their sqlglot class name (`CountIf`, `SafeDivide`), pass-through
    functions as `Anonymous:NAME`, families as `Dot:FAMILY.NAME`. Used to prove that every
    function of the example endpoints is covered by an executed transpilation fixture.
    """
    names: set[str] = set()
    for node in parse(sql).walk():
        if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
            names.add(f"Dot:{node.this.name.upper()}.{_function_name(node.expression)}")
        elif isinstance(node, exp.Anonymous):
            if not isinstance(node.parent, exp.Dot):
                names.add(f"Anonymous:{node.name.upper()}")
        elif isinstance(node, exp.Func):
            names.add(type(node).__name__)
    return names


# --------------------------------------------------------------------------- transforms


def _to_duckdb_tree(tree: exp.Expression) -> exp.Expression:
    """A copy of the BigQuery tree with every fix-up applied; sqlglot generates the rest."""
    tree = tree.copy()
    for transform in _TRANSFORMS:
        tree = transform(tree)
    return tree


def _drop_project(tree: exp.Expression) -> exp.Expression:
    """`project.dataset.table` → `dataset.table`: locally datasets are schemas of one database."""
    for table in tree.find_all(exp.Table):
        if table.args.get("catalog"):
            table.set("catalog", None)
    return tree


def _date_delta_returns_date(tree: exp.Expression) -> exp.Expression:
    """DATE_ADD/DATE_SUB/DATE_FROM_UNIX_DATE return DATE, as in BigQuery (DuckDB: TIMESTAMP)."""
    for node in list(tree.find_all(exp.DateAdd, exp.DateSub, exp.DateFromUnixDate)):
        _wrap(node, lambda inner: exp.cast(inner, exp.DType.DATE))
    return tree


def _date_trunc_returns_date(tree: exp.Expression) -> exp.Expression:
    """DATE_TRUNC(date, part) returns DATE, as in BigQuery (DuckDB: TIMESTAMP).

    Week parts are left alone: sqlglot already emulates the week start and casts to DATE.
    A DATE_TRUNC over a TIMESTAMP should be written TIMESTAMP_TRUNC, BigQuery's own name.
    """
    for node in list(tree.find_all(exp.DateTrunc)):
        if isinstance(node.args.get("unit"), exp.WeekStart):
            continue
        _wrap(node, lambda inner: exp.cast(inner, exp.DType.DATE))
    return tree


def _extract_like_bigquery(tree: exp.Expression) -> exp.Expression:
    """EXTRACT parts whose numbering differs between BigQuery and DuckDB."""
    for node in list(tree.find_all(exp.Extract)):
        part = node.this
        value = node.expression
        if isinstance(part, exp.WeekStart):
            day = part.name.upper()
            fmt = {"SUNDAY": "%U", "MONDAY": "%W"}.get(day)
            if fmt:
                node.replace(_strftime_int(value, fmt))
            continue
        name = part.name.upper()
        if name == "DAYOFWEEK":
            _wrap(node, lambda inner: exp.paren(exp.Add(this=inner, expression=exp.Literal.number(1)), copy=False))
        elif name == "WEEK":
            node.replace(_strftime_int(value, "%U"))
        elif name == "ISOWEEK":
            node.set("this", exp.var("WEEK"))
        elif name == "DATE":
            node.replace(exp.cast(value, exp.DType.DATE))
    return tree


def _strftime_int(value: exp.Expression, fmt: str) -> exp.Expression:
    call = exp.Anonymous(this="STRFTIME", expressions=[value.copy(), exp.Literal.string(fmt)])
    return exp.cast(call, exp.DType.BIGINT)


def _timestamp_diff_whole_units(tree: exp.Expression) -> exp.Expression:
    """TIMESTAMP_DIFF(a, b, part) counts whole parts: DuckDB's date_sub(part, b, a)."""
    for node in list(tree.find_all(exp.TimestampDiff)):
        unit = node.args.get("unit")
        part = exp.Literal.string(unit.name.upper() if unit else "DAY")
        node.replace(exp.Anonymous(this="DATE_SUB", expressions=[part, node.expression.copy(), node.this.copy()]))
    return tree


def _array_agg_limit(tree: exp.Expression) -> exp.Expression:
    """ARRAY_AGG(x ORDER BY y LIMIT n) → list_slice(ARRAY_AGG(x ORDER BY y), 1, n)."""
    for node in list(tree.find_all(exp.ArrayAgg)):
        limit = node.this
        if not isinstance(limit, exp.Limit):
            continue
        count = limit.expression.copy()
        node.set("this", limit.this)
        outer: exp.Expression = node
        while isinstance(outer.parent, (exp.IgnoreNulls, exp.RespectNulls)):
            outer = outer.parent
        _wrap(outer, lambda inner: exp.Anonymous(this="LIST_SLICE", expressions=[inner, exp.Literal.number(1), count]))
    return tree


def _safe_prefix(tree: exp.Expression) -> exp.Expression:
    """SAFE.f(...) → TRY(f(...)): NULL instead of an error, as BigQuery's SAFE prefix."""
    for node in list(tree.find_all(exp.SafeFunc)):
        node.replace(exp.Anonymous(this="TRY", expressions=[node.this.copy()]))
    return tree


def _format_is_printf(tree: exp.Expression) -> exp.Expression:
    """BigQuery FORMAT('%d', x) is printf-style: DuckDB's printf, not its `{}`-style format."""
    for node in list(tree.find_all(exp.Format)):
        node.replace(exp.Anonymous(this="PRINTF", expressions=[node.this.copy(), *(e.copy() for e in node.expressions)]))
    return tree


def _numeric_precision(tree: exp.Expression) -> exp.Expression:
    """NUMERIC is DECIMAL(38, 9) in BigQuery; DuckDB's bare DECIMAL is DECIMAL(18, 3)."""
    for node in list(tree.find_all(exp.DataType)):
        if node.this == exp.DType.DECIMAL and not node.expressions:
            node.replace(exp.DataType.build("DECIMAL(38, 9)"))
    return tree


def _unnest_offset_zero_based(tree: exp.Expression) -> exp.Expression:
    """UNNEST(a) AS x WITH OFFSET AS o → (SELECT UNNEST(a) AS x, generate_subscripts(a, 1) - 1 AS o).

    DuckDB runs the subquery as a lateral join, like BigQuery's correlated UNNEST; the two
    set-returning calls advance together, so `o` is the 0-based position of `x`.
    """
    for index, node in enumerate(list(tree.find_all(exp.Unnest))):
        offset = node.args.get("offset")
        if not offset or len(node.expressions) != 1:
            continue
        alias = node.args.get("alias")
        columns = alias.columns if alias else []
        value_name = columns[0].name if columns else (alias.name if alias and alias.name else "value")
        offset_name = offset.name if isinstance(offset, exp.Expression) and offset.name else "offset"
        array = node.expressions[0]
        select = exp.Select(
            expressions=[
                exp.alias_(exp.Unnest(expressions=[array.copy()]), value_name),
                exp.alias_(
                    exp.Sub(
                        this=exp.Anonymous(this="GENERATE_SUBSCRIPTS", expressions=[array.copy(), exp.Literal.number(1)]),
                        expression=exp.Literal.number(1),
                    ),
                    offset_name,
                ),
            ]
        )
        node.replace(exp.Subquery(this=select, alias=exp.TableAlias(this=exp.to_identifier(f"_unnest{index}"))))
    return tree


def _countif_never_null(tree: exp.Expression) -> exp.Expression:
    """COUNTIF(x) → COALESCE(COUNT_IF(x), 0): BigQuery counts 0 where DuckDB gives NULL
    (no rows, or every condition NULL). A windowed COUNTIF is wrapped as a whole."""
    for node in list(tree.find_all(exp.CountIf)):
        outer: exp.Expression = node.parent if isinstance(node.parent, exp.Window) else node
        _wrap(outer, lambda inner: exp.Coalesce(this=inner, expressions=[exp.Literal.number(0)]))
    return tree


_TRANSFORMS = (
    _drop_project,
    _countif_never_null,
    _unnest_offset_zero_based,
    _date_delta_returns_date,
    _date_trunc_returns_date,
    _extract_like_bigquery,
    _timestamp_diff_whole_units,
    _array_agg_limit,
    _safe_prefix,
    _format_is_printf,
    _numeric_precision,
)


def _wrap(node: exp.Expression, build) -> None:
    """Replace `node` by `build(node)`, keeping `node` (and its line) inside the new tree."""
    placeholder = exp.Null()
    node.replace(placeholder)
    placeholder.replace(build(node))


# --------------------------------------------------------------------------- detection


class _TracingGenerator(DuckDBGenerator):
    """sqlglot's DuckDB generator that remembers which node (line) each problem came from."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stack: list[exp.Expression] = []
        self.located: list[tuple[int, str]] = []

    def sql(self, expression: Any, key: str | None = None, comment: bool = True) -> str:
        if isinstance(expression, exp.Expression) and not key:
            self._stack.append(expression)
            try:
                return super().sql(expression, key, comment)
            finally:
                self._stack.pop()
        return super().sql(expression, key, comment)

    def unsupported(self, message: str) -> None:
        line = next((ln for node in reversed(self._stack) if (ln := _own_line(node))), 1)
        self.located.append((line, message))
        super().unsupported(message)


def _unknown_to_duckdb(tree: exp.Expression) -> Iterator[tuple[int, str]]:
    """Function calls of the generated DuckDB SQL that DuckDB does not know."""
    known = _duckdb_function_names()
    if not known:
        return
    for node in tree.walk():
        if not isinstance(node, exp.Func) or isinstance(node, (exp.Dot, exp.Binary)):
            continue  # a binary operator's SQL starts with its left operand's call
        try:
            generated = node.sql(dialect=TARGET, unsupported_level=ErrorLevel.IGNORE)
        except (UnsupportedError, ValueError):
            continue
        match = _CALL.match(generated)
        if not match:
            continue
        called = match.group(1).upper()
        if called not in known and called not in DUCKDB_SYNTAX_FUNCTIONS:
            yield _line(node), f"{_function_name(node)} (DuckDB has no function {called})"


@lru_cache(maxsize=1)
def _duckdb_function_names() -> frozenset[str]:
    """Every function and macro name DuckDB knows; empty when DuckDB is not installed.

    DuckDB is a local-stack dependency: in a deployed Cloud Function nothing transpiles.
    """
    try:
        import duckdb
    except ImportError:  # pragma: no cover - deployed functions do not ship DuckDB
        return frozenset()
    with duckdb.connect() as con:
        rows = con.execute("SELECT DISTINCT upper(function_name) FROM duckdb_functions()").fetchall()
    return frozenset(row[0] for row in rows)


def _function_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return node.name.upper()
    bigquery = node.meta.get("bigquery_name") if node.meta else None
    return str(bigquery or node.sql_name()).upper()


def _parameter_name(node: exp.Parameter) -> str:
    name = node.name
    return name if _PARAMETER.match(name or "") else ""


def _own_line(node: exp.Expression) -> int:
    if node.meta and node.meta.get("line"):
        return int(node.meta["line"])
    for child in node.walk():
        if child.meta and child.meta.get("line"):
            return int(child.meta["line"])
    return 0


def _line(node: exp.Expression) -> int:
    """The 1-based line a node starts on: its own, a descendant's or an ancestor's."""
    current: exp.Expression | None = node
    while current is not None:
        line = _own_line(current)
        if line:
            return line
        current = current.parent
    return 1
