"""`dataplatform local up|down|status`: the whole platform on one machine, on loopback.

`Stack.up()` starts, in this order, each process in its own process group:

1. Google's Pub/Sub and Firestore emulators and gcp-storage-emulator (`local/emulators.py`;
   every component is looked for first, so a missing one fails with one line naming it
   before anything starts);
2. the platform key material in the config bucket (`privacy.keys.bootstrap`, local Tink
   KMS key file `<state>/local_kms_keyset.json`);
3. the functions collect, anonymize and forget under functions-framework
   (`local/servers.py`), each warmed up by a real request;
4. the Pub/Sub topology of the catalog (`local/topology.py`): topics, the sinks' pull
   subscriptions, and the push subscriptions raw → anonymize;
5. the runtime (`local/runtime.py`): the "BigQuery subscriptions" into the DuckDB warehouse
   `<state>/warehouse.duckdb`, the dead-letter drains, and the warehouse's HTTP API.

The state file `<state>/stack.json` (mode 0600: it holds the local collect API key) records
every process — name, pid, pgid, port, log, the leader's start time — and is written after
each start, so even an `up` that fails half-way leaves a record `down` can clean up.
`down` stops exactly the recorded process groups (never anything found by name), last
started first, and removes the state file; logs and the warehouse stay (`--purge` deletes
the warehouse too).

`up` is idempotent: when the recorded stack is complete and every process is alive, it
returns it unchanged. When the state is stale (a process died, or the machine rebooted and
the pids are gone or belong to others), whatever is left of it is stopped and the stack is
started afresh: the emulators keep everything in memory, so a half stack cannot be
repaired piecemeal. A lock file serialises `up`/`down`/restarts across processes.

Data lifetime: the warehouse file and the KMS key file survive `down`; topics, key records
(Firestore) and the wrapped platform keysets (config bucket) live in the emulators and do
not. So after a new `up`, rows of an earlier session keep their pseudonyms but their
encrypted fields can no longer be decrypted locally — as if every earlier user had been
erased. `local down --purge` starts the next session with an empty warehouse.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from dataplatform.errors import PlatformError
from dataplatform.local import emulators
from dataplatform.local.emulators import Emulator, free_port, group_memory_bytes
from dataplatform.local.runtime import RuntimeClient
from dataplatform.local.servers import (
    FUNCTIONS,
    ProcessRecord,
    http_call,
    now_text,
    server_env,
    spawn,
    start_function,
    start_ticks,
    stop_records,
    wait_ready,
)

STATE_FILE = "stack.json"
LOCK_FILE = "stack.lock"
WAREHOUSE_FILE = "warehouse.duckdb"
KMS_KEY_FILE = "local_kms_keyset.json"
STATE_VERSION = 1
RUNTIME_STOP_GRACE_SECONDS = 15.0
"""The runtime finishes the batches in flight (insert + ack) before it exits."""

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    del message


@dataclass(frozen=True)
class StackState:
    """What `up` recorded (the content of `stack.json`)."""

    project: str
    state_dir: str
    definitions: str
    warehouse: str
    api_key: str
    env: Mapping[str, str]
    """The platform's environment for the functions and the runtime (settings + emulator hosts)."""
    processes: tuple[ProcessRecord, ...] = ()
    complete: bool = False
    started_at: str = field(default_factory=now_text)
    version: int = STATE_VERSION

    def process(self, name: str) -> ProcessRecord:
        for record in self.processes:
            if record.name == name:
                return record
        known = ", ".join(r.name for r in self.processes) or "none"
        raise PlatformError(f"the local stack has no process {name!r} (it has: {known})")

    def has(self, name: str) -> bool:
        return any(r.name == name for r in self.processes)

    def with_process(self, record: ProcessRecord) -> StackState:
        """This state with `record` added, or replacing the record of the same name in place
        (the order is the start order, which `down` reverses)."""
        if self.has(record.name):
            return replace(self, processes=tuple(record if r.name == record.name else r for r in self.processes))
        return replace(self, processes=(*self.processes, record))

    @property
    def collect_url(self) -> str:
        return self.process("collect").url + "/"

    @property
    def forget_url(self) -> str:
        return self.process("forget").url + "/"

    def runtime(self) -> RuntimeClient:
        record = self.process("runtime")
        return RuntimeClient(record.host, record.port)

    def dead(self) -> list[str]:
        """Names of recorded processes that are not running any more."""
        return [r.name for r in self.processes if not r.alive()]

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "version": self.version,
                "project": self.project,
                "state_dir": self.state_dir,
                "definitions": self.definitions,
                "warehouse": self.warehouse,
                "api_key": self.api_key,
                "env": dict(self.env),
                "complete": self.complete,
                "started_at": self.started_at,
                "processes": [r.to_json() for r in self.processes],
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_json(cls, data: bytes, path: Path) -> StackState:
        try:
            raw = orjson.loads(data)
            if not isinstance(raw, dict):
                raise TypeError("not an object")
            if raw.get("version") != STATE_VERSION:
                raise ValueError(f"version {raw.get('version')!r}, expected {STATE_VERSION}")
            return cls(
                project=str(raw["project"]),
                state_dir=str(raw["state_dir"]),
                definitions=str(raw["definitions"]),
                warehouse=str(raw["warehouse"]),
                api_key=str(raw["api_key"]),
                env={str(k): str(v) for k, v in dict(raw["env"]).items()},
                processes=tuple(ProcessRecord.from_json(r) for r in raw["processes"]),
                complete=bool(raw["complete"]),
                started_at=str(raw["started_at"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise PlatformError(
                f"{path} is not a stack state file this version can read ({type(exc).__name__}: {exc}); "
                "stop what it started by hand if anything still runs, then delete the file"
            ) from None


@dataclass(frozen=True)
class UpResult:
    state: StackState
    started: bool
    """False when the stack was already running (nothing was started)."""
    replaced_stale: tuple[str, ...] = ()
    """Processes of a stale earlier stack that were not running (the rest was stopped)."""


class Stack:
    """The local stack under one state directory."""

    def __init__(
        self,
        state_dir: Path | str | None = None,
        *,
        definitions: Path | str | None = None,
        project: str | None = None,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 90.0,
    ) -> None:
        from dataplatform import settings as platform_settings

        self._base_env = dict(os.environ if env is None else env)
        lookup = dict(self._base_env)
        if definitions is not None:
            lookup[platform_settings.ENV_DEFINITIONS] = str(definitions)
        self._definitions_error: PlatformError | None = None
        try:
            settings = platform_settings.Settings.from_env(lookup)
        except platform_settings.SettingsError as exc:
            # `down`, `status` and `query` need no definitions; `up` reports the error.
            self._definitions_error = exc
            state = lookup.get(platform_settings.ENV_STATE_DIR, "").strip() or platform_settings.DEFAULT_STATE_DIR
            self.state_dir = Path(state).absolute()
            self.definitions = Path(definitions or ".").absolute()
            self.project = project or lookup.get(platform_settings.ENV_PROJECT, "").strip() or platform_settings.DEFAULT_PROJECT
        else:
            self.state_dir = settings.state_dir
            self.definitions = settings.definitions
            self.project = project or settings.project
        if state_dir is not None:
            self.state_dir = Path(state_dir).absolute()
        self.start_timeout = start_timeout

    @property
    def state_path(self) -> Path:
        return self.state_dir / STATE_FILE

    @property
    def warehouse_path(self) -> Path:
        return self.state_dir / WAREHOUSE_FILE

    # ------------------------------------------------------------------ state file

    def load(self) -> StackState | None:
        """The recorded stack, or None when there is none."""
        try:
            data = self.state_path.read_bytes()
        except FileNotFoundError:
            return None
        return StackState.from_json(data, self.state_path)

    def require(self) -> StackState:
        """The recorded stack, checked to be complete and running."""
        state = self.load()
        if state is None or not state.complete:
            raise PlatformError(f"the local stack is not up (no complete {self.state_path}); run `dataplatform local up`")
        dead = state.dead()
        if dead:
            raise PlatformError(
                f"the local stack is partly down ({', '.join(dead)} not running); run `dataplatform local up` to restart it"
            )
        return state

    def _save(self, state: StackState) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(state.to_json())
        os.replace(tmp, self.state_path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / LOCK_FILE, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ up

    def up(self, progress: Progress = _quiet) -> UpResult:
        """Start the stack unless it is running; see the module docstring."""
        with self._locked():
            previous = self.load()
            stale: tuple[str, ...] = ()
            if previous is not None:
                dead = previous.dead()
                if previous.complete and not dead:
                    progress("already running")
                    return UpResult(previous, started=False)
                stale = tuple(dead) if dead else tuple(r.name for r in previous.processes)
                progress(f"stopping what is left of an earlier stack ({', '.join(stale) or 'nothing'} not running)")
                stop_records(previous.processes)
                self.state_path.unlink(missing_ok=True)
            state = self._start(progress)
            return UpResult(state, started=True, replaced_stale=stale)

    def _start(self, progress: Progress) -> StackState:
        if self._definitions_error is not None:
            raise self._definitions_error
        check_components()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = StackState(
            project=self.project,
            state_dir=str(self.state_dir),
            definitions=str(self.definitions),
            warehouse=str(self.warehouse_path),
            api_key=secrets.token_urlsafe(24),
            env={},
        )
        self._save(state)
        try:
            progress("starting the Pub/Sub, Firestore and storage emulators")
            state = self._start_emulators(state)
            progress("creating the platform key material")
            self._bootstrap_keys(state)
            progress("starting the functions collect, anonymize and forget")
            state = self._start_functions(state)
            progress("creating topics and subscriptions")
            self._apply_topology(state)
            progress("starting the runtime (sinks into DuckDB, query API)")
            state = self._start_runtime(state)
            state = replace(state, complete=True)
            self._save(state)
            return state
        except BaseException:
            recorded = self.load() or state
            with contextlib.suppress(PlatformError):
                stop_records(recorded.processes)
            self.state_path.unlink(missing_ok=True)
            raise

    def _record(self, state: StackState, record: ProcessRecord) -> StackState:
        state = state.with_process(record)
        self._save(state)
        return state

    def _start_emulators(self, state: StackState) -> StackState:
        directory = self.state_dir / "emulators"
        starters: dict[str, Callable[[Path], Emulator]] = {
            "pubsub": emulators.start_pubsub,
            "firestore": emulators.start_firestore,
            "gcs": emulators.start_gcs,
        }
        started: dict[str, Emulator] = {}
        errors: list[BaseException] = []
        # In parallel: each is mostly waiting for a JVM or an interpreter to start.
        with ThreadPoolExecutor(max_workers=len(starters)) as pool:
            futures = {name: pool.submit(start, directory / name) for name, start in starters.items()}
            for name, future in futures.items():
                try:
                    started[name] = future.result()
                except BaseException as exc:  # noqa: BLE001 — re-raised after the others are recorded
                    errors.append(exc)
        env = dict(state.env)
        for name in starters:
            emulator = started.get(name)
            if emulator is None:
                continue
            record = ProcessRecord(
                name=name, kind="emulator", host=emulator.host, port=emulator.port, pid=emulator.pid,
                pgid=emulator.pgid, log_path=str(emulator.log_path), started_at=now_text(),
                start_ticks=start_ticks(emulator.pid),
            )
            state = self._record(state, record)
            env.update(emulator.env)
        if errors:
            raise errors[0]
        env.update(
            {
                "DATAPLATFORM_PROJECT": self.project,
                "DATAPLATFORM_DEFINITIONS": str(self.definitions),
                "DATAPLATFORM_STATE_DIR": str(self.state_dir),
                "DATAPLATFORM_KMS": f"local:{self.state_dir / KMS_KEY_FILE}",
                "DATAPLATFORM_CONFIG_BUCKET": f"{self.project}-config",
                "DATAPLATFORM_COLLECT_API_KEYS": state.api_key,
                "DATAPLATFORM_KEYSTORE": "firestore",
                "GOOGLE_CLOUD_PROJECT": self.project,
            }
        )
        state = replace(state, env=env)
        self._save(state)
        return state

    def _bootstrap_keys(self, state: StackState) -> None:
        from dataplatform.adapters.gcs import GcsBlobStore
        from dataplatform.adapters.local_kms import LocalKms
        from dataplatform.privacy.keys import bootstrap

        with platform_environment(state.env):
            bootstrap(
                LocalKms(self.state_dir / KMS_KEY_FILE),
                GcsBlobStore(state.env["DATAPLATFORM_CONFIG_BUCKET"], project=self.project, create_bucket=True),
            )

    def _start_functions(self, state: StackState) -> StackState:
        env = server_env(self._base_env, state.env)
        ports = {name: free_port() for name in FUNCTIONS}
        records: dict[str, ProcessRecord] = {}
        errors: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=len(FUNCTIONS)) as pool:
            futures = {
                name: pool.submit(
                    start_function, name, port=ports[name], env=env, state_dir=self.state_dir, timeout=self.start_timeout
                )
                for name in FUNCTIONS
            }
            for name, future in futures.items():
                try:
                    records[name] = future.result()
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)
        for name in FUNCTIONS:
            if name in records:
                state = self._record(state, records[name])
        if errors:
            raise errors[0]
        return state

    def _apply_topology(self, state: StackState) -> None:
        from dataplatform.adapters.pubsub import PubSubAdmin
        from dataplatform.definitions.loader import load_catalog
        from dataplatform.local.topology import EmulatorAdmin, apply_topology, plan_topology

        catalog = load_catalog(self.definitions)
        topology = plan_topology(catalog.schemas, state.process("anonymize").url + "/")
        with platform_environment(state.env):
            admin = PubSubAdmin(self.project)
            try:
                apply_topology(EmulatorAdmin(admin), topology)  # type: ignore[arg-type]
            finally:
                admin.close()

    def _start_runtime(self, state: StackState) -> StackState:
        port = free_port()
        env = server_env(self._base_env, state.env)
        argv = [
            sys.executable, "-m", "dataplatform.local.runtime",
            "--port", str(port), "--warehouse", str(self.warehouse_path),
        ]
        record, process = spawn(
            "runtime", "runtime", argv, port=port, env=env, log_path=self.state_dir / "logs" / "runtime.log",
            cwd=self.state_dir,
        )
        state = self._record(state, record)

        def ready() -> bool:
            answer = http_call(record.host, port, "GET", "/status", timeout=10.0)
            return answer is not None and answer[0] == 200 and bool(orjson.loads(answer[1]).get("ready"))

        wait_ready(record, process, ready, timeout=self.start_timeout, what="the runtime")
        return state

    # ------------------------------------------------------------------ down, status, restart

    def down(self, *, purge: bool = False) -> list[str]:
        """Stop exactly what `up` recorded; names of the processes stopped."""
        with self._locked():
            state = self.load()
            stopped: list[str] = []
            if state is not None:
                runtime = [r for r in state.processes if r.kind == "runtime"]
                others = [r for r in state.processes if r.kind != "runtime"]
                # The runtime first, with time to finish its batches; then the rest.
                stopped += stop_records(runtime, grace=RUNTIME_STOP_GRACE_SECONDS)
                stopped += stop_records(others)
                self.state_path.unlink(missing_ok=True)
            if purge:
                for path in (self.warehouse_path, self.warehouse_path.with_name(WAREHOUSE_FILE + ".wal")):
                    path.unlink(missing_ok=True)
                shutil.rmtree(self.state_dir / "emulators", ignore_errors=True)
            return stopped

    def status(self) -> dict[str, Any]:
        """What is recorded, what runs, and the runtime's table counts and sink progress."""
        state = self.load()
        if state is None:
            return {"state_file": str(self.state_path), "up": False, "processes": [], "runtime": None}
        processes = [
            {
                "name": r.name, "kind": r.kind, "pid": r.pid, "pgid": r.pgid, "port": r.port, "url": r.url,
                "alive": r.alive(), "memory_bytes": group_memory_bytes(r.pgid), "log": r.log_path,
            }
            for r in state.processes
        ]
        runtime: dict[str, Any] | None = None
        runtime_error: str | None = None
        if state.has("runtime") and state.process("runtime").alive():
            try:
                runtime = state.runtime().status()
            except PlatformError as exc:
                runtime_error = str(exc)
        return {
            "state_file": str(self.state_path),
            "up": state.complete and all(p["alive"] for p in processes),
            "complete": state.complete,
            "started_at": state.started_at,
            "project": state.project,
            "warehouse": state.warehouse,
            "processes": processes,
            "runtime": runtime,
            "runtime_error": runtime_error,
        }

    def restart_function(self, name: str) -> ProcessRecord:
        """Stop function `name` if it still runs and start it again on the same port (the push
        subscriptions keep pointing at it); the new record replaces the old in the state."""
        if name not in FUNCTIONS:
            raise PlatformError(f"unknown function {name!r}; the local stack runs {', '.join(FUNCTIONS)}")
        with self._locked():
            state = self.load()
            if state is None or not state.complete:
                raise PlatformError("the local stack is not up; run `dataplatform local up`")
            old = state.process(name)
            old.stop()
            record = start_function(
                name, port=old.port, env=server_env(self._base_env, state.env), state_dir=self.state_dir,
                timeout=self.start_timeout,
            )
            self._save(state.with_process(record))
            return record


# --------------------------------------------------------------------------- helpers


def check_components() -> None:
    """Every component the stack needs is installed; else EmulatorMissing with one line."""
    emulators.find_java()
    emulators.find_pubsub_emulator()
    gcloud = emulators.find_gcloud()
    emulators.find_firestore_component(gcloud)
    emulators.find_gcs_emulator()


@contextlib.contextmanager
def platform_environment(env: Mapping[str, str]) -> Iterator[None]:
    """`env` in os.environ for the block (the Google clients read the emulator hosts from
    it when they are created), restored afterwards."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


__all__ = [
    "LOCK_FILE",
    "STATE_FILE",
    "Stack",
    "StackState",
    "UpResult",
    "check_components",
    "platform_environment",
]
