"""`dataplatform plan --json` through the typer app: the offline intent of the example stack."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dataplatform.cli import app


def test_plan_json_lists_every_component_and_passes_the_policies(repo_root, catalog):
    result = CliRunner().invoke(app, ["plan", "--json", "--root", str(repo_root)])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["kind"] == "offline-intent" and "not a diff" in plan["note"]
    names = {c["component"] for c in plan["components"]}
    assert "Platform platform" in names
    for schema in catalog.schemas:
        assert any(schema.key in name for name in names), schema.key
    for endpoint in catalog.endpoints:
        assert any(endpoint.name in name for name in names), endpoint.name
    assert sum(len(c["resources"]) for c in plan["components"]) == plan["totals"]["resources"]
    assert plan["policies"]["violations"] == []
