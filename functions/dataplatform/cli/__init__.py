"""The `dataplatform` command line. Each sibling module registers the commands of one area."""

from __future__ import annotations

from dataplatform.cli import definitions  # noqa: F401  (registers commands)
from dataplatform.cli import infra  # noqa: F401  (registers commands)
from dataplatform.cli import endpoints  # noqa: F401  (registers commands)
from dataplatform.cli import local  # noqa: F401  (registers commands)
from dataplatform.cli import privacy  # noqa: F401  (registers commands)
from dataplatform.cli.app import app


def main() -> None:
    app()
