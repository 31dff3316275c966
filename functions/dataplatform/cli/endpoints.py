"""Endpoint commands on the local warehouse: `run`, `backfill`, `monitor`.

They open the local DuckDB warehouse file (`<state dir>/warehouse.duckdb`, state dir from
DATAPLATFORM_STATE_DIR, default `.dataplatform`; `--warehouse` overrides it), bring its
tables up to date with the definitions (`ensure_warehouse`, idempotent) and call the use
cases in `pipeline/`. DuckDB allows one writing process per file: while the local stack's
runtime holds it, the adapter's error says so (stop the stack, or let its scheduler run
the endpoints).

Exit codes — `run`: 0 succeeded, 1 failed, 2 waiting (the reasons are printed).
`backfill`: 0 when every step succeeded, 1 when one failed, 2 when none failed but some
wait. `monitor`: 0 when nothing is late and no run failed, 1 otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dataplatform.cli.app import JsonOption, RootOption, app, console, err_console, platform_errors, print_json
from dataplatform.errors import PlatformError

WAREHOUSE_FILE = "warehouse.duckdb"
STATE_DIR_ENV = "DATAPLATFORM_STATE_DIR"
DEFAULT_STATE_DIR = ".dataplatform"

EXIT_FAILED = 1
EXIT_WAITING = 2

EndpointArgument = Annotated[str, typer.Argument(help="Name of the data endpoint (workflows/<name>.yaml).", show_default=False)]
WarehouseOption = Annotated[
    Path | None,
    typer.Option("--warehouse", help="The local DuckDB warehouse file (default: <state dir>/warehouse.duckdb).", show_default=False),
]


def warehouse_path(override: Path | None = None) -> Path:
    """The local warehouse file: `--warehouse`, else <DATAPLATFORM_STATE_DIR>/warehouse.duckdb."""
    if override is not None:
        return override
    return Path(os.environ.get(STATE_DIR_ENV, "").strip() or DEFAULT_STATE_DIR) / WAREHOUSE_FILE


def parse_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise PlatformError(f"{option} {value!r} is not a date; write it as YYYY-MM-DD, e.g. {option} 2024-05-01") from None


@contextmanager
def local_deps(root: Path, warehouse: Path | None) -> Iterator[Any]:
    """Catalog, the opened local warehouse (tables ensured) and the system clock."""
    from dataplatform.adapters.duckdb_warehouse import DuckDBWarehouse
    from dataplatform.definitions.loader import load_catalog
    from dataplatform.pipeline.endpoint_run import RunDeps
    from dataplatform.pipeline.warehouse_setup import ensure_warehouse
    from dataplatform.settings import SystemClock

    catalog = load_catalog(root)
    with DuckDBWarehouse(warehouse_path(warehouse)) as opened:
        ensure_warehouse(opened, catalog)
        yield RunDeps(catalog, opened, SystemClock())


# --------------------------------------------------------------------------- run


@app.command("run")
@platform_errors
def run_command(
    endpoint: EndpointArgument,
    day: Annotated[str, typer.Option("--date", help="The partition to (re)write, YYYY-MM-DD (UTC).", show_default=False)],
    root: RootOption = Path("."),
    warehouse: WarehouseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run ENDPOINT for one date on the local warehouse: readiness, partition replace, quality checks."""
    from dataplatform.pipeline.endpoint_run import run_endpoint

    run_date = parse_day(day, "--date")
    with local_deps(root, warehouse) as deps:
        result = run_endpoint(endpoint, run_date, deps)
    if as_json:
        print_json(result.to_json())
    else:
        _print_run(result)
    _exit_for([result.status])


def _print_run(result: Any) -> None:
    colour = {"succeeded": "green", "failed": "red", "waiting": "yellow"}[result.status]
    console.print(
        f"[bold]{result.endpoint}[/bold] {result.run_date}: [{colour}]{result.status}[/{colour}]"
        + (f", {result.rows_written} rows" if result.rows_written is not None else "")
        + f"  (run {result.run_id})"
    )
    for reason in result.reasons:
        console.print(f"  {reason}", markup=False, highlight=False)
    if result.checks:
        table = Table(title="quality checks", title_justify="left")
        for column in ("check", "type", "severity", "status", "failing rows", "ms"):
            table.add_column(column)
        for check in result.checks:
            style = "green" if check.status == "passed" else ("yellow" if check.severity == "warn" else "red")
            table.add_row(check.name, check.type, check.severity, f"[{style}]{check.status}[/{style}]",
                          "" if check.failing_rows is None else str(check.failing_rows), str(check.duration_ms))
        console.print(table)


def _exit_for(statuses: list[str]) -> None:
    if "failed" in statuses:
        raise typer.Exit(EXIT_FAILED)
    if "waiting" in statuses:
        raise typer.Exit(EXIT_WAITING)


# --------------------------------------------------------------------------- backfill


@app.command("backfill")
@platform_errors
def backfill_command(
    endpoint: EndpointArgument,
    start: Annotated[str, typer.Option("--from", help="First date, YYYY-MM-DD.", show_default=False)],
    end: Annotated[str, typer.Option("--to", help="Last date (inclusive), YYYY-MM-DD.", show_default=False)],
    with_downstream: Annotated[
        bool, typer.Option("--with-downstream", help="Also run every endpoint that reads ENDPOINT, per date, in dependency order.")
    ] = False,
    root: RootOption = Path("."),
    warehouse: WarehouseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run ENDPOINT for every date from --from to --to, oldest first (a progress bar shows each step)."""
    from dataplatform.pipeline.backfill import backfill, backfill_plan

    first, last = parse_day(start, "--from"), parse_day(end, "--to")
    with local_deps(root, warehouse) as deps:
        total = len(backfill_plan(deps.catalog, endpoint, first, last, with_downstream=with_downstream))
        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=err_console, transient=as_json, disable=as_json,
        )
        with progress:
            task = progress.add_task(f"backfill {endpoint}", total=total)

            def step(done: int, total: int, run: Any) -> None:
                progress.update(task, completed=done, description=f"{run.endpoint} {run.run_date} {run.status}")

            result = backfill(endpoint, first, last, deps, with_downstream=with_downstream, progress=step)
    if as_json:
        print_json(result.to_json())
    else:
        table = Table(title=f"backfill {endpoint} {first} .. {last}", title_justify="left")
        for column in ("date", "endpoint", "status", "rows", "reason"):
            table.add_column(column)
        for run in result.runs:
            colour = {"succeeded": "green", "failed": "red", "waiting": "yellow"}[run.status]
            table.add_row(str(run.run_date), run.endpoint, f"[{colour}]{run.status}[/{colour}]",
                          "" if run.rows_written is None else str(run.rows_written), run.reason or "")
        console.print(table)
        counts = result.counts()
        console.print(f"{counts['succeeded']} succeeded, {counts['failed']} failed, {counts['waiting']} waiting")
    _exit_for([r.status for r in result.runs])


# --------------------------------------------------------------------------- monitor


@app.command("monitor")
@platform_errors
def monitor_command(
    root: RootOption = Path("."),
    warehouse: WarehouseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Freshness of every event table and endpoint, failed or long runs, waiting partitions now ready."""
    from dataplatform.pipeline.freshness import LOGGER_NAME
    from dataplatform.pipeline.monitor import MonitorDeps, monitor

    # The structured lines are for Cloud Logging; here the table below says the same.
    quiet = logging.NullHandler()
    monitor_logger = logging.getLogger(LOGGER_NAME)
    monitor_logger.addHandler(quiet)
    try:
        with local_deps(root, warehouse) as deps:
            report = monitor(MonitorDeps(deps.catalog, deps.warehouse, deps.clock))
    finally:
        monitor_logger.removeHandler(quiet)
    if as_json:
        print_json(report.to_json())
    else:
        table = Table(title="freshness", title_justify="left")
        for column in ("table", "newest complete", "deadline", "lag", "state"):
            table.add_column(column)
        for f in report.freshness:
            lag = "" if f.lag_seconds is None else f"{f.lag_seconds // 3600}h{(f.lag_seconds % 3600) // 60:02d}m"
            state = "[red]late[/red]" if f.breached else "[green]on time[/green]"
            table.add_row(f.table_ref, str(f.newest_complete_partition or "none"), f.deadline.strftime("%Y-%m-%d %H:%M UTC"), lag, state)
        console.print(table)
        for issue in report.run_issues:
            console.print(f"[red]{issue.kind.replace('_', ' ')}[/red] {issue.endpoint} {issue.run_date} ({issue.run_id}): {issue.reason or ''}")
        for ready in report.ready:
            console.print(f"ready to run: {ready.endpoint} {ready.run_date} (the local scheduler runs it; or `dataplatform run {ready.endpoint} --date {ready.run_date}`)")
    if not report.to_json()["ok"]:
        raise typer.Exit(EXIT_FAILED)
