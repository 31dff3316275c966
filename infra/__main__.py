"""Pulumi entry point (`Pulumi.yaml` → `main: infra/`): compose the platform from the definitions.

Pulumi runs this file with `infra/` as the working program directory; the repository root
goes on `sys.path` so the program imports `infra.*` the way the tests and the plan do.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.program import run  # noqa: E402

run()
