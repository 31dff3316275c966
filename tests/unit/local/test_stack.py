"""The stack's bookkeeping: state file, process records, stopping exactly what was recorded.

Real processes (`sleep` in their own process groups, one with a child) stand in for the
emulators and servers, so what is checked is what `down` does to real process groups.
Bringing the real stack up is the e2e tests' job (tests/e2e/).
"""

from __future__ import annotations

import base64
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dataplatform.errors import PlatformError
from dataplatform.local.emulators import free_port, group_members
from dataplatform.local.servers import (
    FUNCTION_SOURCE,
    ProcessRecord,
    ServerStartError,
    function_argv,
    kill_group,
    server_env,
    spawn,
    start_ticks,
    stop_records,
    wait_ready,
    warm_up_probe,
)
from dataplatform.local.stack import Stack, StackState, platform_environment

SLEEPER = [sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); time.sleep(300)"]


@pytest.fixture
def started() -> Iterator[list[tuple[ProcessRecord, subprocess.Popen[bytes]]]]:
    """Processes a test spawns; whatever is left is stopped by group at the end."""
    processes: list[tuple[ProcessRecord, subprocess.Popen[bytes]]] = []
    yield processes
    for record, process in processes:
        if group_members(record.pgid):
            os.killpg(record.pgid, signal.SIGKILL)
        process.wait(timeout=10)


def sleeper(tmp_path: Path, name: str, started: list[Any], kind: str = "function") -> ProcessRecord:
    record, process = spawn(name, kind, SLEEPER, port=1, env=dict(os.environ), log_path=tmp_path / "logs" / f"{name}.log", cwd=tmp_path)
    started.append((record, process))
    deadline = time.monotonic() + 10
    while len(group_members(record.pgid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    return record


def state(tmp_path: Path, *records: ProcessRecord, complete: bool = True) -> StackState:
    return StackState(
        project="p", state_dir=str(tmp_path), definitions=str(tmp_path), warehouse=str(tmp_path / "warehouse.duckdb"),
        api_key="k", env={"DATAPLATFORM_PROJECT": "p"}, processes=records, complete=complete,
    )


def test_a_spawned_process_is_its_own_group_and_stop_ends_all_of_it(tmp_path: Path, started: list[Any]) -> None:
    record = sleeper(tmp_path, "collect", started)
    assert record.pgid == record.pid and record.start_ticks == start_ticks(record.pid)
    assert len(group_members(record.pgid)) == 2 and record.alive()
    assert record.stop(grace=2) is True
    assert group_members(record.pgid) == [] and not record.alive()
    assert record.stop() is False
    assert "starting collect" in Path(record.log_path).read_text()


def test_a_reused_pid_is_not_taken_for_ours(tmp_path: Path, started: list[Any]) -> None:
    record = sleeper(tmp_path, "collect", started)
    impostor = ProcessRecord(**{**record.to_json(), "start_ticks": (record.start_ticks or 0) - 1})
    assert not impostor.alive()
    assert impostor.stop() is False
    assert record.alive()


def test_stop_records_stops_the_live_ones_last_started_first(tmp_path: Path, started: list[Any]) -> None:
    first = sleeper(tmp_path, "pubsub", started, "emulator")
    second = sleeper(tmp_path, "collect", started)
    gone = ProcessRecord(**{**first.to_json(), "name": "gone", "pid": 999_999_999, "pgid": 999_999_999})
    assert stop_records([first, gone, second]) == ["collect", "pubsub"]
    assert not first.alive() and not second.alive()


def test_kill_group_signals_the_whole_group(tmp_path: Path, started: list[Any]) -> None:
    record = sleeper(tmp_path, "anonymize", started)
    kill_group(record, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while group_members(record.pgid) and time.monotonic() < deadline:
        started[0][1].poll()
        time.sleep(0.02)
    assert not record.alive()
    with pytest.raises(PlatformError, match="anonymize .* is not running"):
        kill_group(record, signal.SIGKILL)


# --------------------------------------------------------------------------- state file


def test_state_round_trips_and_keeps_the_start_order(tmp_path: Path) -> None:
    a = ProcessRecord("pubsub", "emulator", "127.0.0.1", 1, 10, 10, "a.log", "t", 5)
    b = ProcessRecord("collect", "function", "127.0.0.1", 2, 11, 11, "b.log", "t", None)
    original = state(tmp_path, a, b)
    again = StackState.from_json(original.to_json(), tmp_path / "stack.json")
    assert again == original
    moved = ProcessRecord("pubsub", "emulator", "127.0.0.1", 3, 12, 12, "a.log", "t", 6)
    assert [r.name for r in original.with_process(moved).processes] == ["pubsub", "collect"]
    assert original.with_process(moved).process("pubsub").port == 3
    assert original.collect_url == "http://127.0.0.1:2/"
    with pytest.raises(PlatformError, match="no process 'runtime' \\(it has: pubsub, collect\\)"):
        original.process("runtime")


@pytest.mark.parametrize("content", [b"not json", b"[]", b'{"version": 99}', b'{"version": 1}'])
def test_an_unreadable_state_file_is_named(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "stack.json").write_bytes(content)
    with pytest.raises(PlatformError, match=f"{tmp_path / 'stack.json'} is not a stack state file"):
        Stack(tmp_path).load()


def test_down_stops_exactly_the_recorded_groups(tmp_path: Path, started: list[Any]) -> None:
    recorded = [sleeper(tmp_path, n, started) for n in ("pubsub", "collect")]
    runtime = sleeper(tmp_path, "runtime", started, "runtime")
    bystander = sleeper(tmp_path, "bystander", started)
    stack = Stack(tmp_path)
    stack._save(state(tmp_path, *recorded, runtime))
    assert (tmp_path / "stack.json").stat().st_mode & 0o777 == 0o600

    stopped = stack.down()

    assert stopped == ["runtime", "collect", "pubsub"]
    assert all(not r.alive() for r in [*recorded, runtime])
    assert bystander.alive()
    assert not (tmp_path / "stack.json").exists()
    assert stack.down() == []


def test_down_of_a_stale_state_stops_what_is_left(tmp_path: Path, started: list[Any]) -> None:
    live = sleeper(tmp_path, "pubsub", started)
    dead = ProcessRecord("collect", "function", "127.0.0.1", 1, 999_999_998, 999_999_998, "x.log", "t", None)
    stack = Stack(tmp_path)
    stack._save(state(tmp_path, live, dead))
    status = stack.status()
    assert status["up"] is False and [p["alive"] for p in status["processes"]] == [True, False]
    assert [p["memory_bytes"] > 0 for p in status["processes"]] == [True, False]
    with pytest.raises(PlatformError, match="partly down \\(collect not running\\)"):
        stack.require()
    assert stack.down() == ["pubsub"]


def test_status_and_require_without_a_stack(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    assert stack.status() == {"state_file": str(tmp_path / "stack.json"), "up": False, "processes": [], "runtime": None}
    with pytest.raises(PlatformError, match="the local stack is not up .* run `dataplatform local up`"):
        stack.require()
    with pytest.raises(PlatformError, match="not up"):
        stack.restart_function("anonymize")
    with pytest.raises(PlatformError, match="unknown function 'anonymise'; the local stack runs collect, anonymize, forget"):
        stack.restart_function("anonymise")


def test_up_reports_a_missing_component_in_one_line_before_starting_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAPLATFORM_JAVA", str(tmp_path / "no-java"))
    stack = Stack(tmp_path / "state")
    with pytest.raises(PlatformError) as error:
        stack.up()
    message = str(error.value)
    assert "Java not found" in message and "\n" not in message
    assert not (tmp_path / "state" / "stack.json").exists()


def test_purge_deletes_the_warehouse(tmp_path: Path) -> None:
    (tmp_path / "warehouse.duckdb").write_bytes(b"x")
    Stack(tmp_path).down(purge=True)
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_platform_environment_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEP_ME", "1")
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    with platform_environment({"PUBSUB_EMULATOR_HOST": "127.0.0.1:1", "KEEP_ME": "2"}):
        assert os.environ["PUBSUB_EMULATOR_HOST"] == "127.0.0.1:1" and os.environ["KEEP_ME"] == "2"
    assert "PUBSUB_EMULATOR_HOST" not in os.environ and os.environ["KEEP_ME"] == "1"


# --------------------------------------------------------------------------- function servers


def test_function_command_line() -> None:
    argv = function_argv("anonymize", 8123)
    assert argv[1:3] == ["-m", "functions_framework"]
    assert argv[argv.index("--target") + 1] == "anonymize"
    assert argv[argv.index("--signature-type") + 1] == "cloudevent"
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "8123"
    assert Path(argv[argv.index("--source") + 1]) == FUNCTION_SOURCE and FUNCTION_SOURCE.is_file()
    with pytest.raises(PlatformError, match="unknown function 'monitor'"):
        function_argv("monitor", 1)


def test_server_env_replaces_the_platform_settings() -> None:
    env = server_env({"PATH": "/bin", "DATAPLATFORM_KMS": "projects/x", "THREADS": "2"}, {"DATAPLATFORM_PROJECT": "p"})
    assert env["PATH"] == "/bin" and env["DATAPLATFORM_PROJECT"] == "p" and "DATAPLATFORM_KMS" not in env
    assert env["WORKERS"] == "1" and env["THREADS"] == "2" and env["PYTHONUNBUFFERED"] == "1"


class Answer(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        server: Any = self.server
        server.seen.append((self.command, self.rfile.read(int(self.headers.get("Content-Length") or 0))))
        self.send_response(server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[Any]:
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    server.status, server.seen = 405, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_warm_up_probes(answering: Any) -> None:
    port = answering.server_address[1]
    assert warm_up_probe("collect", "127.0.0.1", port)() is True
    answering.status = 204
    assert warm_up_probe("anonymize", "127.0.0.1", port)() is True
    method, body = answering.seen[-1]
    push = orjson.loads(body)
    assert method == "POST" and orjson.loads(base64.b64decode(push["message"]["data"]))["events"] == []
    answering.status = 500
    with pytest.raises(ServerStartError, match="function forget answered its warm-up request with 500"):
        warm_up_probe("forget", "127.0.0.1", port)()
    assert warm_up_probe("collect", "127.0.0.1", free_port())() is False


def test_a_server_that_exits_fails_the_start_with_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('cannot bind the port'); sys.exit(3)"]
    record, process = spawn("collect", "function", argv, port=1, env=dict(os.environ), log_path=tmp_path / "c.log", cwd=tmp_path)
    with pytest.raises(ServerStartError, match=r"(?s)collect exited with code 3 before it was ready .*cannot bind the port"):
        wait_ready(record, process, lambda: False, timeout=30)


def test_a_server_that_never_gets_ready_is_stopped(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    record, process = spawn("forget", "function", argv, port=1, env=dict(os.environ), log_path=tmp_path / "f.log", cwd=tmp_path)
    with pytest.raises(ServerStartError, match="forget was not ready within 0s"):
        wait_ready(record, process, lambda: False, timeout=0.3)
    assert not record.alive()


def test_without_definitions_only_up_complains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATAPLATFORM_DEFINITIONS", raising=False)
    monkeypatch.setenv("DATAPLATFORM_STATE_DIR", str(tmp_path / "state"))
    stack = Stack()
    assert stack.state_dir == tmp_path / "state"
    assert stack.status()["up"] is False and stack.down() == []
    with pytest.raises(PlatformError, match="no definitions found"):
        stack.up()


def test_group_memory_counts_every_live_member_of_the_group(tmp_path: Path, started: list[Any]) -> None:
    from dataplatform.local.emulators import group_memory_bytes

    record = sleeper(tmp_path, "pubsub", started)
    members = group_members(record.pgid)
    assert len(members) == 2  # the sleeper and its child
    # VmRSS of each member, read from another /proc file than the one counted
    rss = [
        int(line.split()[1]) * 1024
        for pid in members
        for line in (Path("/proc") / str(pid) / "status").read_text().splitlines()
        if line.startswith("VmRSS:")
    ]

    total = group_memory_bytes(record.pgid)

    assert max(rss) < total and abs(total - sum(rss)) <= 0.2 * sum(rss)
    assert group_memory_bytes(999_999_998) == 0
