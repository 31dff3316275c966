"""Golden files: expected outputs kept next to the tests, compared byte for byte.

`assert_golden("compile/avro/track_played_v1.avsc", text)` compares `text` with
`tests/golden/compile/avro/track_played_v1.avsc`. Run with `UPDATE_GOLDEN=1` to (re)write
the files after a deliberate change, then review the diff like code.
"""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def assert_golden(name: str, actual: str) -> None:
    path = GOLDEN_DIR / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
    assert path.exists(), f"golden file {path} is missing; run the tests with UPDATE_GOLDEN=1 and commit it"
    expected = path.read_text()
    assert actual == expected, (
        f"output differs from golden file {path}; if the change is deliberate, "
        "rerun with UPDATE_GOLDEN=1 and review the diff"
    )
