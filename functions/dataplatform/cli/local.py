"""Commands of the local platform: `local up|down|status`, `send`, `query`, `demo`.

Each is thin: it finds the stack of this directory (`local.stack.Stack`, state under
DATAPLATFORM_STATE_DIR, default `.dataplatform/`), calls one use case and renders tables,
or one JSON object with `--json` (progress then goes to stderr, so stdout stays JSON).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from dataplatform.cli.app import JsonOption, app, console, err_console, platform_errors, print_json
from dataplatform.errors import PlatformError

local_app = typer.Typer(help="The platform on this machine: emulators, functions, runtime, DuckDB.", no_args_is_help=True)
app.add_typer(local_app, name="local")

MAX_CELL = 48


def _stack() -> Any:
    from dataplatform.local.stack import Stack

    return Stack()


def _out(as_json: bool) -> Console:
    return err_console if as_json else console


# --------------------------------------------------------------------------- local up|down|status


@local_app.command("up")
@platform_errors
def local_up(as_json: JsonOption = False) -> None:
    """Start the emulators, the functions and the runtime (nothing if already running)."""
    stack = _stack()
    out = _out(as_json)
    with out.status("starting the local stack") as status:
        result = stack.up(progress=lambda message: status.update(message))
    state = result.state
    if as_json:
        print_json({"started": result.started, **stack.status()})
        return
    verb = "Started" if result.started else "Already running:"
    console.print(f"{verb} the local stack ({stack.state_path})")
    _print_processes(stack.status()["processes"])
    console.print(
        f"collect: POST {state.collect_url} with header X-Api-Key: {state.api_key}\n"
        "next: `dataplatform demo`, `dataplatform send FILE`, `dataplatform query \"SELECT ...\"`, "
        "`dataplatform local down`"
    )


@local_app.command("down")
@platform_errors
def local_down(
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the local warehouse file.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Stop exactly the processes `local up` recorded."""
    stack = _stack()
    stopped = stack.down(purge=purge)
    if as_json:
        print_json({"stopped": stopped, "purged": purge})
        return
    if stopped:
        console.print(f"Stopped: {', '.join(stopped)}")
    else:
        console.print("Nothing was running.")
    if purge:
        console.print(f"Deleted the local warehouse {stack.warehouse_path}")


@local_app.command("status")
@platform_errors
def local_status(as_json: JsonOption = False) -> None:
    """What runs, row counts per table and each sink's progress and lag."""
    status = _stack().status()
    if as_json:
        print_json(status)
        return
    if not status["processes"]:
        console.print(f"The local stack is not up (no {status['state_file']}); run `dataplatform local up`.")
        return
    console.print(f"The local stack is {'up' if status['up'] else 'NOT fully up'} ({status['state_file']})")
    _print_processes(status["processes"])
    runtime = status.get("runtime")
    if runtime:
        tables = Table(title="Tables", title_justify="left")
        tables.add_column("table")
        tables.add_column("rows", justify="right")
        for table, count in runtime["tables"].items():
            tables.add_row(table, "?" if count is None else f"{count:,}")
        console.print(tables)
        sinks = Table(title="Sinks (pull subscriptions → tables)", title_justify="left")
        for column in ("subscription", "messages", "rows", "failures", "errors", "lag s", "last error"):
            sinks.add_column(column, justify="right" if column in ("messages", "rows", "failures", "errors", "lag s") else "left")
        for name, sink in runtime["sinks"].items():
            lag = sink.get("lag_seconds")
            sinks.add_row(
                name, f"{sink['messages']:,}", f"{sink['rows']:,}", str(sink["failures"]), str(sink["errors"]),
                "-" if lag is None else f"{lag:.2f}", _cell(sink.get("last_error") or ""),
            )
        console.print(sinks)
    elif status.get("runtime_error"):
        console.print(status["runtime_error"])


def _print_processes(processes: list[dict[str, Any]]) -> None:
    table = Table(title="Processes", title_justify="left")
    for column in ("name", "kind", "pid", "port", "state", "memory", "log"):
        table.add_column(column, justify="right" if column == "memory" else "left")
    for p in processes:
        table.add_row(
            p["name"], p["kind"], str(p["pid"]), str(p["port"]), "running" if p["alive"] else "NOT RUNNING",
            _megabytes(p.get("memory_bytes")), p["log"],
        )
    console.print(table)


def _megabytes(value: int | None) -> str:
    return "-" if not value else f"{value / 1e6:,.0f} MB"


# --------------------------------------------------------------------------- send


def read_events(text: str, source: str) -> list[Any]:
    """Events from a JSON batch (`{"events": [...]}` or `[...]`) or JSON lines (one event a
    line; blank lines skipped). PlatformError naming `source:line` for a line that is not JSON."""
    stripped = text.strip()
    if not stripped:
        raise PlatformError(f"{source}: no events (the input is empty)")
    if stripped[0] in "[{":
        try:
            document = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            document = None
        if isinstance(document, list):
            return document
        if isinstance(document, dict) and "events" in document:
            if not isinstance(document["events"], list):
                raise PlatformError(f"{source}: \"events\" must be an array of events")
            return list(document["events"])
        if isinstance(document, dict):
            return [document]
    events: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise PlatformError(
                f"{source}:{number}: not valid JSON ({exc.msg} at column {exc.colno}); "
                "send JSON lines (one event per line) or one JSON batch {\"events\": [...]}"
            ) from None
    return events


@app.command("send")
@platform_errors
def send_command(
    file: Annotated[str, typer.Argument(help="A file of JSON lines or one JSON batch; '-' reads stdin.", show_default=False)],
    as_json: JsonOption = False,
) -> None:
    """Send events to the local collect function (batches of at most 1,000)."""
    from dataplatform.pipeline.demo import CollectClient, post_events

    if file == "-":
        text, source = sys.stdin.read(), "<stdin>"
    else:
        path = Path(file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise PlatformError(f"cannot read {file}: {exc.strerror}") from None
        source = str(path)
    events = read_events(text, source)
    state = _stack().require()
    results = post_events(events, CollectClient(state.collect_url, state.api_key))
    accepted = sum(1 for r in results if r.get("status") == "accepted")
    rejected = [r for r in results if r.get("status") != "accepted"]
    if as_json:
        print_json({"sent": len(events), "accepted": accepted, "rejected": len(rejected), "results": results})
        return
    console.print(f"Sent {len(events):,} event(s): {accepted:,} accepted, {len(rejected):,} rejected at collect.")
    if rejected:
        table = Table(title="Rejected", title_justify="left")
        for column in ("index", "event_id", "reason", "detail"):
            table.add_column(column)
        for r in rejected[:50]:
            table.add_row(str(r.get("index")), str(r.get("event_id")), str(r.get("reason")), str(r.get("detail")))
        console.print(table)
        if len(rejected) > 50:
            console.print(f"... and {len(rejected) - 50} more (use --json for all)")
    console.print("Accepted events are validated and anonymized next; failures land in platform.failed_events.")


# --------------------------------------------------------------------------- query


def parse_params(values: list[str]) -> dict[str, Any]:
    """`name=value` pairs; the value is JSON when it parses as JSON (numbers, true, "text"),
    else the text itself."""
    params: dict[str, Any] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise PlatformError(f"--param {item!r} must look like name=value")
        try:
            params[name] = orjson.loads(value)
        except orjson.JSONDecodeError:
            params[name] = value
    return params


def run_query(sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Through the running stack's runtime; with the stack down, on the warehouse file (read-only)."""
    stack = _stack()
    state = stack.load()
    if state is not None and state.complete and state.has("runtime") and state.process("runtime").alive():
        return dict(state.runtime().query(sql, params))
    if not stack.warehouse_path.exists():
        raise PlatformError(f"no local warehouse at {stack.warehouse_path}; run `dataplatform local up` (or `dataplatform demo`) first")
    from dataplatform.adapters.duckdb_warehouse import DuckDBWarehouse
    from dataplatform.local.runtime import dumps

    with DuckDBWarehouse(stack.warehouse_path, read_only=True) as warehouse:
        rows = warehouse.query(sql, params)
    return dict(orjson.loads(dumps({"columns": list(rows[0]) if rows else [], "rows": rows})))


@app.command("query")
@platform_errors
def query_command(
    sql: Annotated[str, typer.Argument(help="BigQuery SQL, e.g. \"SELECT COUNT(*) AS n FROM events.track_played_v1_dedup\".", show_default=False)],
    param: Annotated[list[str], typer.Option("--param", "-p", help="Query parameter name=value (repeatable).")] = [],  # noqa: B006
    as_json: JsonOption = False,
) -> None:
    """Run BigQuery SQL on the local warehouse (transpiled to DuckDB)."""
    result = run_query(sql, parse_params(param))
    if as_json:
        print_json(result)
        return
    rows = result["rows"]
    table = Table(show_lines=False)
    for column in result["columns"]:
        table.add_column(column)
    for row in rows[:200]:
        table.add_row(*(_cell(row.get(c)) for c in result["columns"]))
    console.print(table)
    console.print(f"{len(rows):,} row(s){' (first 200 shown; use --json for all)' if len(rows) > 200 else ''}")


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


# --------------------------------------------------------------------------- demo


@contextmanager
def _progress(out: Console, total: int) -> Iterator[Any]:
    columns = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=out, transient=False) as bar:
        tasks: dict[str, TaskID] = {
            "send": bar.add_task("sending to collect", total=total),
            "load": bar.add_task("accounted for (loaded+failed)", total=None),
        }

        def update(phase: str, done: int, of: int) -> None:
            bar.update(tasks[phase], completed=done, total=of)

        yield update


@app.command("demo")
@platform_errors
def demo_command(
    events: Annotated[int, typer.Option("--events", "-n", min=1, help="Events to send (duplicates included).")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic users and events.")] = 7,
    invalid_share: Annotated[float, typer.Option(min=0.0, max=0.99, help="Share of invalid events (8 kinds).")] = 0.05,
    duplicate_share: Annotated[float, typer.Option(min=0.0, max=0.99, help="Share of resent duplicates.")] = 0.02,
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds to wait until every event is accounted for.")] = 300.0,
    as_json: JsonOption = False,
) -> None:
    """Bring the stack up if needed, send synthetic events, wait until every one is accounted for, report."""
    from dataplatform.definitions.loader import load_catalog
    from dataplatform.pipeline.demo import CollectClient, DemoConfig, run_demo, sink_rows

    stack = _stack()
    out = _out(as_json)
    with out.status("starting the local stack") as status:
        result = stack.up(progress=lambda message: status.update(message))
    state = result.state
    catalog = load_catalog(Path(state.definitions))
    config = DemoConfig(
        events=events, seed=seed, invalid_share=invalid_share, duplicate_share=duplicate_share, timeout=timeout
    )
    with _progress(out, events) as update:
        runtime = state.runtime()
        report = run_demo(
            catalog.schemas, CollectClient(state.collect_url, state.api_key), runtime, config,
            progress=update, stack_started=result.started, rows_loaded=lambda: sink_rows(runtime.sinks()),
        )
    data = report.to_dict()
    if as_json:
        print_json(data)
    else:
        print_demo(data)
    if not data["balanced"]:
        raise typer.Exit(1)


def print_demo(data: Mapping[str, Any]) -> None:
    table = Table(
        title=f"Demo run {data['run_id']}: where every event went", title_justify="left", box=box.SIMPLE_HEAD,
        caption="accept/reject: at collect · dups: rows the _dedup view removes", caption_justify="left", pad_edge=False,
    )
    headers = ("event type", "sent", "accept", "reject", "loaded", "failed", "dups")
    for header in headers:
        table.add_column(
            header, justify="left" if header == "event type" else "right", no_wrap=True,
            min_width=None if header == "event type" else len(header),
        )
    rows = list(data["types"].items()) + [("total", {**data["totals"], "balanced": data["balanced"]})]
    for name, t in rows:
        table.add_row(
            name, f"{t['sent']:,}", f"{t['accepted']:,}", f"{t['rejected_at_collect']:,}", f"{t['loaded']:,}",
            f"{t['failed']:,}", f"{t['duplicates_removed']:,}", style="bold" if name == "total" else None,
        )
    console.print(table)
    short = [name for name, t in data["types"].items() if not t["balanced"]]
    if short:
        console.print(f"[bold red]sent != loaded + failed for: {', '.join(short)}[/]")
    else:
        console.print("sent == loaded + failed for every event type: every event is accounted for.")
    reasons = Table(title="Failed events by reason", title_justify="left", box=box.SIMPLE_HEAD)
    reasons.add_column("event type", no_wrap=True)
    reasons.add_column("reasons (distinct events)")
    for name, t in data["types"].items():
        if t["failed_by_reason"]:
            reasons.add_row(name, ", ".join(f"{reason} {count:,}" for reason, count in t["failed_by_reason"].items()))
    console.print(reasons)
    totals = data["totals"]
    console.print(
        f"{data['events_posted']:,} events posted in {data['requests']} requests "
        f"({totals['posted'] - totals['sent']:,} of them resent duplicates); every event accounted for after "
        f"{data['seconds_to_accounted']:.1f}s: [bold]{data['events_per_second']:,.0f} events/s end to end[/] "
        f"(collect took them in {data['send_seconds']:.1f}s)."
    )
    if totals["unexpected"] or totals["overlap"]:
        console.print(
            f"[bold red]{totals['unexpected']} event(s) ended differently than generated, "
            f"{totals['overlap']} both loaded and failed[/]"
        )
    for row in data["sample"]:
        sample = Table(
            title=f"Sample anonymized row of events.{row['event_type']}_dedup", title_justify="left", show_header=False,
            box=box.SIMPLE,
        )
        sample.add_column("column", no_wrap=True)
        sample.add_column("value")
        for column, value in row.items():
            if column != "event_type":
                sample.add_row(column, _cell(value))
        console.print(sample)
    console.print(
        "The local stack keeps running: try `dataplatform query \"SELECT COUNT(*) AS plays FROM "
        "events.track_played_v1_dedup\"` or `dataplatform local status`; stop it with `dataplatform local down`."
    )
