"""BigQuery SQL of data endpoints, read with sqlglot: the tables a query reads, with lines.

The endpoint SQL is written once, in BigQuery's dialect; everything the platform learns
from it (upstream tables, lineage, the DuckDB transpilation) comes from this parse, never
from regular expressions.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from dataplatform.errors import PlatformError

DIALECT = "bigquery"


class SqlSyntaxError(PlatformError, ValueError):
    """The SQL does not parse; `line` is 1-based within the SQL text."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class TableRef:
    """A table read by a query: `dataset.table` and the line (1-based) it is named on."""

    dataset: str
    table: str
    line: int
    project: str = ""

    @property
    def ref(self) -> str:
        return f"{self.dataset}.{self.table}" if self.dataset else self.table


def parse(sql: str) -> exp.Expression:
    """Parse one BigQuery statement or raise `SqlSyntaxError` with the line of the problem."""
    try:
        tree = sqlglot.parse_one(sql, read=DIALECT)
    except sqlglot.errors.ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        raise SqlSyntaxError(
            int(first.get("line") or 1), f"SQL does not parse: {first.get('description', exc)}"
        ) from None
    if tree is None:
        raise SqlSyntaxError(1, "SQL is empty")
    return tree


def referenced_tables(tree: exp.Expression) -> list[TableRef]:
    """Tables (not CTEs) the statement reads, in order of first appearance, deduplicated."""
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    seen: dict[str, TableRef] = {}
    for table in tree.find_all(exp.Table):
        if not table.name or (not table.db and table.name in ctes):
            continue
        meta = table.this.meta if isinstance(table.this, exp.Expression) else {}
        ref = TableRef(table.db, table.name, int(meta.get("line") or 1), table.catalog)
        seen.setdefault(ref.ref, ref)
    return sorted(seen.values(), key=lambda r: (r.line, r.ref))


def upstream_refs(sql: str) -> list[str]:
    """`dataset.table` names an endpoint's SQL reads, `_dedup` views folded onto their table."""
    refs = [t.ref.removesuffix("_dedup") for t in referenced_tables(parse(sql))]
    return list(dict.fromkeys(refs))
