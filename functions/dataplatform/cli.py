"""The `dataplatform` command line: thin typer commands over the use cases.

Every command loads what it needs, calls one use case and renders the result: a rich table
or tree for people, `--json` for machines. A `PlatformError` prints its message and exits 1;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from dataplatform.definitions.loader import Catalog, load_catalog
from dataplatform.definitions.models import PRIVACY_POLICIES
from dataplatform.errors import PlatformError

app = typer.Typer(
    name="dataplatform",
    help="Schema-driven data platform: definitions → Pub/Sub, anonymizers, BigQuery, endpoints.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
schema_app = typer.Typer(help="Event-schema tools.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")

console = Console()
err_console = Console(stderr=True)

RootOption = Annotated[
    Path, typer.Option("--root", help="Repository root holding schemas/ and workflows/.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]

F = TypeVar("F", bound=Callable[..., Any])


def platform_errors(func: F) -> F:
    """Print a PlatformError's message (already says what and where) and exit 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PlatformError as exc:
            err_console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


# --------------------------------------------------------------------------- validate


def catalog_summary(catalog: Catalog) -> dict[str, Any]:
    """Counts a reviewer wants after `validate`: event types, endpoints, PII fields by policy."""
    by_policy: Counter[str] = Counter()
    for schema in catalog.schemas:
        for _, field in schema.pii_fields():
            by_policy[field.privacy] += 1
    return {
        "event_types": len(catalog.schemas),
        "endpoints": len(catalog.endpoints),
        "fields": sum(1 for s in catalog.schemas for _ in s.walk()),
        "pii_fields": sum(by_policy.values()),
        "pii_fields_by_policy": {p: by_policy[p] for p in PRIVACY_POLICIES if by_policy[p]},
        "quality_checks": sum(len(e.checks) for e in catalog.endpoints),
    }


@app.command()
@platform_errors
def validate(root: RootOption = Path("."), as_json: JsonOption = False) -> None:
    """Load and check every definition; print a summary, or every error as path:line."""
    summary = catalog_summary(load_catalog(root))
    if as_json:
        print_json({"ok": True, **summary})
        return
    table = Table(title="Definitions are valid", show_header=False, title_justify="left")
    table.add_row("event types", str(summary["event_types"]))
    table.add_row("data endpoints", str(summary["endpoints"]))
    table.add_row("fields", str(summary["fields"]))
    table.add_row("quality checks", str(summary["quality_checks"]))
    table.add_row("PII fields", str(summary["pii_fields"]))
    for policy, count in summary["pii_fields_by_policy"].items():
        table.add_row(f"  privacy: {policy}", str(count))
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
