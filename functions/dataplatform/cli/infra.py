"""`dataplatform plan`: the Pulumi program of `infra/` run offline, under mocks.

The Pulumi CLI is not needed: the program runs in-process with `pulumi.runtime.set_mocks`
(as in the infra tests), so what is printed is the intent of `pulumi up` for a stack —
every resource and its key properties — not a diff against a deployed stack.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dataplatform.cli.app import JsonOption, RootOption, app, console, platform_errors, print_json
from dataplatform.errors import PlatformError


def _infra_plan(root: Path) -> Any:
    """`infra.plan` of the repository at `root` (infra/ is the Pulumi program, not the package)."""
    if not (root / "infra" / "plan.py").exists():
        raise PlatformError(f"no Pulumi program at {root / 'infra'}; run from the repository root or pass --root")
    path = str(root.resolve())
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("infra.plan")


@app.command()
@platform_errors
def plan(
    stack: Annotated[str | None, typer.Option("--stack", help="Stack whose Pulumi.<stack>.yaml to use.")] = None,
    root: RootOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """What `pulumi up` would deploy, offline: resources grouped by component, with totals."""
    infra_plan = _infra_plan(root)
    result = infra_plan.run_plan(root, stack)
    if as_json:
        print_json(infra_plan.to_json(result))
    else:
        console.print(infra_plan.render_text(result), markup=False, highlight=False, soft_wrap=True)
