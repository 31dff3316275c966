"""The dedup view SQL: valid BigQuery, first delivery per event, partition pruning kept."""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from infra.views import dedup_view_sql


def test_dedup_view_keeps_the_first_delivery_of_each_event():
    sql = dedup_view_sql("acme-data", "events", "track_played_v1")
    tree = sqlglot.parse_one(sql, read="bigquery")
    [table] = list(tree.find_all(exp.Table))
    assert (table.catalog, table.db, table.name) == ("acme-data", "events", "track_played_v1")
    window = tree.find(exp.Window)
    assert isinstance(window.this, exp.RowNumber)
    assert [p.name for p in window.args["partition_by"]] == ["event_id", "event_time"]
    assert [o.this.name for o in window.args["order"].expressions] == ["publish_time"]
    qualify = tree.args["qualify"].this
    assert isinstance(qualify, exp.EQ) and qualify.expression.name == "1"
    assert "NULLS" not in sql  # BigQuery's default order, nothing dialect-specific
