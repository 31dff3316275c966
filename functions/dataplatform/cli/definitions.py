"""Commands over the definitions: validate, describe, lineage, schema diff."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from rich.table import Table

from dataplatform.cli.app import (
    JsonOption,
    RootOption,
    app,
    console,
    platform_errors,
    print_json,
    schema_app,
)
from dataplatform.definitions.loader import Catalog, load_catalog
from dataplatform.definitions.models import PRIVACY_POLICIES

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


# --------------------------------------------------------------------------- schema diff


@schema_app.command("diff")
@platform_errors
def schema_diff(
    against: Annotated[str, typer.Option("--against", help="Git ref to compare with, e.g. origin/main.")],
    root: RootOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Classify every schema change since REF; exit 1 on a breaking change without a major bump."""
    from dataplatform.pipeline import schema_diff as use_case

    report = use_case.schema_diff(root, against)
    if as_json:
        print_json(use_case.to_json(report))
    else:
        console.print(use_case.render_text(report), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(report.exit_code)


# --------------------------------------------------------------------------- describe / lineage


@app.command()
@platform_errors
def describe(
    name: Annotated[str, typer.Argument(help="Event type (name or name_vN) or endpoint.")],
    root: RootOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Fields, privacy, retention, readers, upstreams and downstreams of one definition."""
    from dataplatform.pipeline import describe as use_case

    description = use_case.describe(load_catalog(root), name)
    if as_json:
        print_json(use_case.to_json(description))
    else:
        console.print(use_case.render_text(description), markup=False, highlight=False, soft_wrap=True)


@app.command()
@platform_errors
def lineage(
    name: Annotated[str, typer.Argument(help="Event type or endpoint.")],
    columns: Annotated[bool, typer.Option("--columns", help="Add column-level lineage.")] = False,
    root: RootOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Upstream and downstream trees of a table (derived from the endpoints' SQL)."""
    from dataplatform.pipeline import lineage_tree as use_case

    tree = use_case.lineage(load_catalog(root), name, columns=columns)
    if as_json:
        print_json(use_case.to_json(tree))
    else:
        console.print(use_case.render_text(tree), markup=False, highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- catalog


catalog_app = typer.Typer(help="The data catalog.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("build")
@platform_errors
def catalog_build(
    out: Annotated[Path, typer.Option("--out", help="Output directory (rewritten).")] = Path(".dataplatform/catalog"),
    root: RootOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Write the Markdown data catalog: an index, a page per event type and per endpoint."""
    from dataplatform.pipeline.catalog_docs import build_catalog_docs

    docs = build_catalog_docs(load_catalog(root), out)
    if as_json:
        print_json({"out_dir": str(docs.out_dir), "pages": [str(p) for p in docs.pages]})
    else:
        console.print(f"wrote {len(docs.pages)} pages to {docs.out_dir} (start at {docs.out_dir / 'index.md'})")
