"""Reading endpoint SQL with sqlglot: parse errors with lines, the tables a query reads."""

from __future__ import annotations

import pytest

from dataplatform.compile.sql import SqlSyntaxError, TableRef, parse, referenced_tables, upstream_refs
from dataplatform.errors import PlatformError
from tests.golden import assert_golden


def test_referenced_tables_of_every_example_endpoint_golden(catalog) -> None:
    lines = []
    for endpoint in sorted(catalog.endpoints, key=lambda e: e.name):
        refs = referenced_tables(parse(endpoint.sql))
        lines.append(f"{endpoint.name}: " + ", ".join(f"{r.ref}@{r.line}" for r in refs))
        lines.append(f"{endpoint.name} upstreams: " + ", ".join(upstream_refs(endpoint.sql)))
    assert_golden("sql/tables/referenced_tables.txt", "\n".join(lines) + "\n")


def test_tables_in_order_of_first_line_deduplicated() -> None:
    sql = "SELECT *\nFROM events.b_v1\nJOIN events.a_v1 USING (x)\nJOIN events.b_v1 AS again USING (x)"
    assert referenced_tables(parse(sql)) == [TableRef("events", "b_v1", 2), TableRef("events", "a_v1", 3)]


def test_ctes_are_not_tables_but_a_qualified_name_is() -> None:
    sql = "WITH recent AS (SELECT * FROM events.plays_v1)\nSELECT * FROM recent JOIN events.recent USING (x)"
    assert [r.ref for r in referenced_tables(parse(sql))] == ["events.plays_v1", "events.recent"]


def test_subqueries_unnest_and_project() -> None:
    sql = (
        "SELECT (SELECT MAX(x) FROM endpoints.daily) AS m\n"
        "FROM `my-project.events.plays_v1` AS p, UNNEST(p.track_ids) AS track, p.results AS r"
    )
    refs = referenced_tables(parse(sql))
    assert [(r.ref, r.project, r.line) for r in refs] == [("endpoints.daily", "", 1), ("events.plays_v1", "my-project", 2)]


def test_unqualified_tables_keep_an_empty_dataset() -> None:
    (ref,) = referenced_tables(parse("SELECT 1 FROM plays"))
    assert (ref.dataset, ref.ref) == ("", "plays")


def test_upstream_refs_fold_dedup_views() -> None:
    sql = "SELECT *\nFROM events.plays_v1_dedup\nJOIN events.plays_v1 USING (event_id)\nJOIN endpoints.x USING (a)"
    assert upstream_refs(sql) == ["events.plays_v1", "endpoints.x"]


@pytest.mark.parametrize(
    ("sql", "line", "text"),
    [
        ("SELECT a,\nFROM t WHERE (", 2, "SQL does not parse"),
        ("SELECT 1\n\nFROM t WHERE a = = 1", 3, "SQL does not parse"),
        ("", 1, "No expression was parsed"),
        ("-- nothing but a comment\n", 1, "No expression was parsed"),
    ],
)
def test_syntax_errors_name_their_line(sql: str, line: int, text: str) -> None:
    with pytest.raises(SqlSyntaxError) as info:
        parse(sql)
    assert info.value.line == line
    assert text in str(info.value)
    assert isinstance(info.value, PlatformError) and isinstance(info.value, ValueError)
