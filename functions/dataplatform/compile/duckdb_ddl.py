"""`TableSpec` → DuckDB DDL: the local warehouse's tables, column for column as in BigQuery.

Locally every BigQuery dataset is a DuckDB schema of the same name, so the endpoint SQL's
`events.track_played_v1` names the same table in both places (see `compile/transpile.py`).
Types map one to one; what DuckDB has no notion of (partitioning, clustering, partition
expiration, labels) stays in the `TableSpec` for the local runtime to apply itself.

- STRING → VARCHAR (sqlglot spells it TEXT, DuckDB's alias), INT64 → BIGINT, FLOAT64 → DOUBLE, BOOL → BOOLEAN, DATE → DATE,
  BYTES → BLOB, NUMERIC → DECIMAL(38, 9) (BigQuery's precision and scale);
- TIMESTAMP → TIMESTAMPTZ: BigQuery's TIMESTAMP is an absolute instant, like TIMESTAMPTZ;
- RECORD → STRUCT(...), REPEATED → a list `T[]` (a repeated RECORD is `STRUCT(...)[]`);
- REQUIRED → NOT NULL on top-level columns. DuckDB has no NOT NULL inside a STRUCT, so
  nested REQUIRED fields are enforced by the payload validator only.

The DDL is built as a sqlglot tree and generated in DuckDB's dialect, never by string
formatting, so reserved words as column names (`date`, `filter`) are quoted correctly.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from sqlglot import exp

from dataplatform.compile.bigquery_schema import BqField, TableSpec

DIALECT = "duckdb"

DUCKDB_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "STRING": "VARCHAR",
        "INT64": "BIGINT",
        "FLOAT64": "DOUBLE",
        "BOOL": "BOOLEAN",
        "TIMESTAMP": "TIMESTAMPTZ",
        "DATE": "DATE",
        "BYTES": "BLOB",
        "NUMERIC": "DECIMAL(38, 9)",
    }
)
"""BigQuery standard SQL type (as in `BqField.type`) → DuckDB type, for scalar columns."""


def data_type(field: BqField) -> exp.DataType:
    """The DuckDB type of one column as a sqlglot node (STRUCT for RECORD, `T[]` if REPEATED)."""
    if field.type == "RECORD":
        members = [exp.ColumnDef(this=exp.to_identifier(f.name), kind=data_type(f)) for f in field.fields]
        base = exp.DataType(this=exp.DType.STRUCT, expressions=members, nested=True)
    else:
        base = exp.DataType.build(DUCKDB_TYPES[field.type], dialect=DIALECT)
    if field.mode == "REPEATED":
        return exp.DataType(this=exp.DType.ARRAY, expressions=[base], nested=True)
    return base


def duckdb_type(field: BqField) -> str:
    """The DuckDB type of one column as text, e.g. `STRUCT("id" VARCHAR, "os" VARCHAR)[]`."""
    return data_type(field).sql(dialect=DIALECT, identify=True)


def create_table_sql(spec: TableSpec, *, if_not_exists: bool = True, pretty: bool = True) -> str:
    """`CREATE TABLE [IF NOT EXISTS] "dataset"."table" (...)` for the local warehouse."""
    columns = []
    for field in spec.fields:
        constraints = []
        if field.mode == "REQUIRED":
            constraints.append(exp.ColumnConstraint(kind=exp.NotNullColumnConstraint()))
        columns.append(
            exp.ColumnDef(this=exp.to_identifier(field.name), kind=data_type(field), constraints=constraints)
        )
    create = exp.Create(
        this=exp.Schema(this=_table(spec.dataset, spec.table), expressions=columns),
        kind="TABLE",
        exists=if_not_exists,
    )
    return create.sql(dialect=DIALECT, identify=True, pretty=pretty)


def create_schema_sql(dataset: str, *, if_not_exists: bool = True) -> str:
    """`CREATE SCHEMA [IF NOT EXISTS] "dataset"`: a BigQuery dataset, locally."""
    create = exp.Create(this=exp.Table(this=exp.to_identifier(dataset)), kind="SCHEMA", exists=if_not_exists)
    return create.sql(dialect=DIALECT, identify=True)


def _table(dataset: str, table: str) -> exp.Table:
    return exp.Table(this=exp.to_identifier(table), db=exp.to_identifier(dataset))
