"""The typer application and what every command shares: options, errors, output.

Commands live in sibling modules (one per area) and register on `app`; each is thin: load
what it needs, call one use case, render a rich table/tree for people or `--json` for
machines. A `PlatformError` prints its message and exits 1; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

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

