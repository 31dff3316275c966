"""The garbage collector's thresholds: set by `gc_tuning.apply`, and applied by every
process that moves events (the function instances and the local runtime)."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from dataplatform import gc_tuning

ROOT = Path(__file__).resolve().parents[2]


def test_apply_sets_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        gc_tuning.apply()
        assert gc.get_threshold() == gc_tuning.THRESHOLDS
        assert gc.isenabled()
    finally:
        gc.set_threshold(*before)


def _thresholds_after(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT / 'functions'}:{ROOT}"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_a_function_instance_applies_them_when_it_loads_main() -> None:
    code = "import gc; assert gc.get_threshold() == (700, 10, 10); import main; print(gc.get_threshold())"
    assert _thresholds_after(code) == str(gc_tuning.THRESHOLDS)


def test_the_local_runtime_applies_them_before_it_starts() -> None:
    code = (
        "import gc, dataplatform.settings as s\n"
        "def stop(): print(gc.get_threshold()); raise SystemExit(0)\n"
        "s.runtime = stop\n"
        "from dataplatform.local import runtime\n"
        "runtime.main(['--port', '1', '--warehouse', 'unused.duckdb'])\n"
    )
    assert _thresholds_after(code) == str(gc_tuning.THRESHOLDS)
