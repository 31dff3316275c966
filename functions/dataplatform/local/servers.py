"""The processes the local stack runs besides the emulators: one functions-framework server
per function (collect, anonymize, forget) and the runtime, each in its own process group.

Why one process per function, under functions-framework: that is how Cloud Functions runs
them (one container per function, functions-framework serving real HTTP, Pub/Sub pushes
turned into CloudEvents by the framework), so the local stack exercises the same entry
points (`functions/main.py`) with the same request shapes. Each server is gunicorn with one
worker and a few threads, the functions-framework default, on 127.0.0.1 only.

Why process groups: gunicorn forks a worker, so a server is two processes; every process is
started in its own session (`start_new_session=True`, so its pgid is its pid) and stopped by
signalling the whole group (`emulators.stop_group`). A `ProcessRecord` is what the state file
keeps of a process: pid, pgid, port, log, and the leader's start time in clock ticks (from
/proc), so that `down` never signals a group whose leader pid was reused by somebody else.

Readiness is a *warm-up request*, not an open port: the first request builds the function's
dependencies (catalog, platform keys from the config bucket, Pub/Sub client), so a server
counts as ready only once it has answered a real request the way a healthy one does —
collect and forget answer `GET /` with 405 (they take POST) after building their
dependencies; anonymize gets a Pub/Sub push of an empty raw batch, which it acknowledges
(2xx) without publishing anything. A 5xx means the function cannot work (a configuration
problem): the start fails with the tail of the server's log instead of timing out.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from dataplatform.errors import PlatformError
from dataplatform.local.emulators import LOOPBACK, group_members, log_tail, stop_group

UTC = timezone.utc
FUNCTION_SOURCE = Path(__file__).resolve().parents[2] / "main.py"
"""`functions/main.py`: the entry points Cloud Functions deploys."""

FUNCTIONS: Mapping[str, str] = {"collect": "http", "anonymize": "cloudevent", "forget": "http"}
"""Function name (= entry point in main.py) → functions-framework signature type."""

START_TIMEOUT_SECONDS = 90.0
STOP_GRACE_SECONDS = 5.0
SERVER_THREADS = 8
"""gunicorn threads per function server (the framework's default on 2 cores is 8 too)."""


class ServerStartError(PlatformError):
    """A function server or the runtime did not come up (message includes its log tail)."""


@dataclass(frozen=True)
class ProcessRecord:
    """One process group the stack started: what `down`, `status` and restarts need."""

    name: str
    kind: str  # "emulator" | "function" | "runtime"
    host: str
    port: int
    pid: int
    pgid: int
    log_path: str
    started_at: str
    start_ticks: int | None
    """The leader's start time (/proc/PID/stat field 22) when it was started; None if unknown."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        try:
            return cls(
                name=str(data["name"]),
                kind=str(data["kind"]),
                host=str(data["host"]),
                port=int(data["port"]),
                pid=int(data["pid"]),
                pgid=int(data["pgid"]),
                log_path=str(data["log_path"]),
                started_at=str(data["started_at"]),
                start_ticks=None if data.get("start_ticks") is None else int(data["start_ticks"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PlatformError(f"a process record in the stack state is malformed ({type(exc).__name__}: {exc})") from None

    # ------------------------------------------------------------------ liveness

    def alive(self) -> bool:
        """True while the group we started still has live members that are ours.

        Linux never hands out a pid that is in use as a process-group id, so live members of
        `pgid` are our group's — unless every member died and the pid was reused by a new
        group leader; the leader's start time tells that case apart.
        """
        members = group_members(self.pgid)
        if not members:
            return False
        if self.pid in members and self.start_ticks is not None:
            return start_ticks(self.pid) == self.start_ticks
        return True

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> bool:
        """Stop the group if it is still ours; True if something was stopped."""
        if not self.alive():
            return False
        stop_group(self.pgid, grace=grace)
        return True


def start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (/proc/PID/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- spawning


def spawn(
    name: str,
    kind: str,
    argv: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path,
) -> tuple[ProcessRecord, subprocess.Popen[bytes]]:
    """Start `argv` in its own session with stdout/stderr appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"--- {now_text()} starting {name}: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(env),
                start_new_session=True,  # own process group: stop() signals exactly it
            )
        except OSError as exc:
            raise ServerStartError(f"cannot start {name} ({argv[0]}): {exc}") from None
    record = ProcessRecord(
        name=name,
        kind=kind,
        host=LOOPBACK,
        port=port,
        pid=process.pid,
        pgid=process.pid,
        log_path=str(log_path),
        started_at=now_text(),
        start_ticks=start_ticks(process.pid),
    )
    return record, process


def wait_ready(
    record: ProcessRecord,
    process: subprocess.Popen[bytes],
    probe: Callable[[], bool],
    *,
    timeout: float = START_TIMEOUT_SECONDS,
    what: str | None = None,
) -> float:
    """Poll `probe` until it says ready; seconds it took. Stops the group and raises
    ServerStartError (with the log tail) if the process exits, `probe` raises, or time is up."""
    what = what or record.name
    started = time.monotonic()
    deadline = started + timeout
    while True:
        if process.poll() is not None:
            stop_group(record.pgid, grace=1.0, leader=process)
            raise ServerStartError(
                f"{what} exited with code {process.returncode} before it was ready "
                f"(log: {record.log_path}); last lines:\n{log_tail(Path(record.log_path))}"
            )
        try:
            if probe():
                return time.monotonic() - started
        except ServerStartError as exc:
            stop_group(record.pgid, grace=1.0, leader=process)
            raise ServerStartError(f"{exc} (log: {record.log_path}); last lines:\n{log_tail(Path(record.log_path))}") from None
        if time.monotonic() >= deadline:
            stop_group(record.pgid, grace=1.0, leader=process)
            raise ServerStartError(
                f"{what} was not ready within {timeout:.0f}s on {record.host}:{record.port} "
                f"(log: {record.log_path}); last lines:\n{log_tail(Path(record.log_path))}"
            )
        time.sleep(0.1)


def http_call(
    host: str, port: int, method: str, path: str, body: bytes | None = None,
    headers: Mapping[str, str] | None = None, timeout: float = 10.0,
) -> tuple[int, bytes] | None:
    """One HTTP request; (status, body), or None when nothing answers on the port."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


# --------------------------------------------------------------------------- functions


def function_argv(name: str, port: int, source: Path = FUNCTION_SOURCE) -> list[str]:
    """The functions-framework command line of function `name` on 127.0.0.1:`port`."""
    if name not in FUNCTIONS:
        raise PlatformError(f"unknown function {name!r}; the local stack runs {', '.join(FUNCTIONS)}")
    return [
        sys.executable, "-m", "functions_framework",
        "--target", name,
        "--signature-type", FUNCTIONS[name],
        "--source", str(source),
        "--host", LOOPBACK,
        "--port", str(port),
    ]


def server_env(base: Mapping[str, str], platform_env: Mapping[str, str]) -> dict[str, str]:
    """The environment of a function server: the caller's, the platform's settings, and the
    gunicorn shape (one worker — a function instance is one process — and a few threads)."""
    env = {k: v for k, v in base.items() if not k.startswith("DATAPLATFORM_")}
    env.update(platform_env)
    env.setdefault("WORKERS", "1")
    env.setdefault("THREADS", str(SERVER_THREADS))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def warm_up_probe(name: str, host: str, port: int) -> Callable[[], bool]:
    """The readiness probe of function `name` (see the module docstring)."""

    def probe() -> bool:
        if name == "anonymize":
            received = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            data = orjson.dumps({"received_at": received, "events": []})
            body = orjson.dumps(
                {
                    "message": {
                        "data": base64.b64encode(data).decode(),
                        "attributes": {"event_type": "warm-up"},
                        "messageId": "warm-up",
                        "publishTime": received,
                    },
                    "subscription": "projects/local/subscriptions/warm-up",
                }
            )
            answer = http_call(host, port, "POST", "/", body, {"Content-Type": "application/json"}, timeout=30.0)
            expected = range(200, 300)
        else:
            answer = http_call(host, port, "GET", "/", timeout=30.0)
            expected = range(405, 406)
        if answer is None:
            return False
        status, text = answer
        if status in expected:
            return True
        if status >= 500:
            raise ServerStartError(f"function {name} answered its warm-up request with {status}: it cannot work")
        return False

    return probe


def start_function(
    name: str,
    *,
    port: int,
    env: Mapping[str, str],
    state_dir: Path,
    timeout: float = START_TIMEOUT_SECONDS,
) -> ProcessRecord:
    """Start function `name` under functions-framework on `port` and wait until it is warm."""
    log_path = state_dir / "logs" / f"{name}.log"
    record, process = spawn(
        name, "function", function_argv(name, port), port=port, env=env, log_path=log_path, cwd=state_dir
    )
    wait_ready(record, process, warm_up_probe(name, record.host, port), timeout=timeout, what=f"function {name}")
    return record


def stop_records(records: Sequence[ProcessRecord], grace: float = STOP_GRACE_SECONDS) -> list[str]:
    """Stop every record that is still ours, last started first; names of those stopped.
    Every record is attempted even when one fails; failures are raised together at the end."""
    stopped: list[str] = []
    errors: list[str] = []
    for record in reversed(records):
        try:
            if record.stop(grace=grace):
                stopped.append(record.name)
        except PlatformError as exc:
            errors.append(f"{record.name}: {exc}")
    if errors:
        raise PlatformError("could not stop everything: " + "; ".join(errors))
    return stopped


def kill_group(record: ProcessRecord, sig: int) -> None:
    """Send `sig` to the record's whole group (the fault test's "the instance crashed")."""
    if not record.alive():
        raise PlatformError(f"{record.name} (process group {record.pgid}) is not running")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pgid, sig)
