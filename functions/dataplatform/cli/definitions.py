"""Commands over the definitions: validate, describe, lineage, schema diff."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from rich.table import Table

from dataplatform.cli.app import JsonOption, RootOption, app, console, platform_errors, print_json
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
