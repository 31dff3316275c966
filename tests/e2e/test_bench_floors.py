"""The pipeline benchmark's floors run on the real stack (a smoke test: it checks that they
work, e.g. that the floor's schema-bound topics accept the clean messages, never how fast)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from dataplatform.definitions.loader import load_catalog
from dataplatform.local.stack import Stack
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-stack")]  # one worker, in order: the fault test kills stack processes


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_pipeline", REPO_ROOT / "bench" / "pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_floors_move_every_clean_message(e2e_stack: Stack) -> None:
    bench = _bench()
    catalog = load_catalog(REPO_ROOT)
    rows, messages = bench.clean_messages(catalog, 400, 50, 3, "bench-smoke")
    assert set(messages) == set(rows) and len(messages) >= 5
    assert {key: len(batch) for key, batch in messages.items()} == {key: len(batch) for key, batch in rows.items()}
    # Raises unless the emulator took every message on the schema-bound topics and handed
    # every one out again; a message that did not match its topic's schema would be refused.
    assert bench.emulator_floor(e2e_stack.require(), messages) > 0
    assert bench.duckdb_floor(catalog, rows) > 0
