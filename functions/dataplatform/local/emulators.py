"""Start and stop Google's emulators (Pub/Sub, Firestore) and gcp-storage-emulator.

Why this module exists: the local stack and the integration tests need the same three
emulators, started the same way, on loopback only, and stopped without leaving anything
behind. `gcloud emulators firestore start` is a Python wrapper that runs a bash script that
runs Java; killing the wrapper alone leaves the Java grandchild listening. So every emulator
starts in its own session (= its own process group, `start_new_session=True`) and `stop()`
signals the whole group: SIGTERM, then SIGKILL after a grace period, and waits until no live
process of the group remains (checked in /proc). `stop_group(pgid)` does the same from a
recorded process-group id, for `local down` in another process.

A missing component fails fast with ONE line naming it and how to install it, instead of a
Java stack trace or a timeout. Paths can be overridden by parameters or environment
variables (DATAPLATFORM_GCLOUD, DATAPLATFORM_JAVA, DATAPLATFORM_PUBSUB_EMULATOR,
DATAPLATFORM_GCS_EMULATOR).

Readiness = the emulator answers an HTTP request on its port (all three answer `GET /`),
which is later than "the port is bound" and is what a client needs.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dataplatform.errors import PlatformError

LOOPBACK = "127.0.0.1"
DEFAULT_SDK_ROOT = Path("/usr/lib/google-cloud-sdk")
PUBSUB_RELATIVE = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")
FIRESTORE_JAR_RELATIVE = Path("platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")
START_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 5.0
LOG_TAIL_LINES = 15


class EmulatorMissing(PlatformError):
    """A component needed to run an emulator is not installed (message: one line)."""


class EmulatorStartError(PlatformError):
    """An emulator process did not come up (message includes the tail of its log)."""


class EmulatorExited(EmulatorStartError):
    """The emulator process ended before it answered (e.g. its port was taken)."""


@dataclass(frozen=True)
class Emulator:
    """A running emulator: where it listens, which process group it is, what env it implies."""

    name: str
    host: str
    port: int
    pid: int
    pgid: int
    env: Mapping[str, str]
    log_path: Path
    started_in: float  # seconds from spawn to the first HTTP answer
    process: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)

    @property
    def host_port(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def alive(self) -> bool:
        """True while any non-zombie process of the emulator's group is running."""
        return bool(group_members(self.pgid))

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Terminate the whole process group (SIGTERM, SIGKILL after `grace`) and wait."""
        stop_group(self.pgid, grace=grace, leader=self.process)

    def record(self) -> dict[str, object]:
        """JSON-ready description, for a state file that `local down` reads back."""
        return {
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "pid": self.pid,
            "pgid": self.pgid,
            "env": dict(self.env),
            "log_path": str(self.log_path),
        }


# --------------------------------------------------------------------------- processes


def group_members(pgid: int) -> list[int]:
    """PIDs of live (non-zombie) processes whose process group is `pgid`, from /proc."""
    members: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may contain spaces/parens.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) < 3:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def group_memory_bytes(pgid: int) -> int:
    """Resident memory of the live processes of group `pgid` (0 when none): what `local
    status` shows, because the Pub/Sub emulator never frees a message (README)."""
    total = 0
    for pid in group_members(pgid):
        try:
            resident_pages = int((Path("/proc") / str(pid) / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):  # the process ended while we looked
            continue
        total += resident_pages * _PAGE_SIZE
    return total


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _wait_group_empty(pgid: int, deadline: float, leader: subprocess.Popen[bytes] | None) -> bool:
    while True:
        if leader is not None:
            leader.poll()  # reap our direct child so it does not linger as a zombie
        if not group_members(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop_group(
    pgid: int, grace: float = STOP_GRACE_SECONDS, leader: subprocess.Popen[bytes] | None = None
) -> None:
    """Stop every process of group `pgid`: SIGTERM, wait `grace` s, SIGKILL, wait.

    Only call it with a group this platform started (recorded at start): the caller owns the
    group, so signalling all of it is exactly "stop what we started".
    """
    if pgid <= 1 or pgid == os.getpgrp():
        raise PlatformError(
            f"refusing to signal process group {pgid}: it is not an emulator's own group"
        )
    if not group_members(pgid):
        if leader is not None:
            leader.poll()
        return
    _signal_group(pgid, signal.SIGTERM)
    if _wait_group_empty(pgid, time.monotonic() + grace, leader):
        return
    _signal_group(pgid, signal.SIGKILL)
    if not _wait_group_empty(pgid, time.monotonic() + 5.0, leader):
        raise PlatformError(
            f"process group {pgid} still has processes {group_members(pgid)} after SIGKILL; "
            "stop them by hand"
        )


def stop_groups(pgids: Sequence[int], grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop several recorded groups; every group is attempted even if one fails."""
    errors: list[str] = []
    for pgid in pgids:
        try:
            stop_group(pgid, grace=grace)
        except PlatformError as exc:
            errors.append(str(exc))
    if errors:
        raise PlatformError("; ".join(errors))


# --------------------------------------------------------------------------- ports and logs


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on `host` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = text.strip().splitlines()[-lines:]
    return "\n".join("    " + line for line in tail) if tail else "(empty log)"


def _answers_http(host: str, port: int) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=1.0)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


# --------------------------------------------------------------------------- components


def _executable(path: str | os.PathLike[str] | None) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if p.is_file() and os.access(p, os.X_OK):
        return p
    found = shutil.which(str(path))
    return Path(found) if found else None


def find_gcloud(gcloud: str | os.PathLike[str] | None = None) -> Path:
    wanted = gcloud or os.environ.get("DATAPLATFORM_GCLOUD") or "gcloud"
    found = _executable(wanted)
    if found is None:
        raise EmulatorMissing(
            f"Google Cloud CLI not found ({wanted}): install it "
            "(https://cloud.google.com/sdk/docs/install, e.g. `apt-get install google-cloud-cli`) "
            "or set DATAPLATFORM_GCLOUD to the gcloud binary"
        )
    return found


def find_java(java: str | os.PathLike[str] | None = None) -> Path:
    wanted = java or os.environ.get("DATAPLATFORM_JAVA")
    if wanted is None:
        java_home = os.environ.get("JAVA_HOME")
        wanted = str(Path(java_home) / "bin" / "java") if java_home else "java"
    found = _executable(wanted)
    if found is None:
        raise EmulatorMissing(
            f"Java not found ({wanted}): the Pub/Sub and Firestore emulators need Java 11+; "
            "install it with `apt-get install openjdk-17-jre-headless` or set DATAPLATFORM_JAVA"
        )
    return found


def sdk_root(gcloud: Path) -> Path:
    """The Cloud SDK root of a gcloud binary: …/google-cloud-sdk/bin/gcloud → …/google-cloud-sdk."""
    real = gcloud.resolve()
    return real.parent.parent if real.parent.name == "bin" else DEFAULT_SDK_ROOT


def find_pubsub_emulator(binary: str | os.PathLike[str] | None = None) -> Path:
    wanted = binary or os.environ.get("DATAPLATFORM_PUBSUB_EMULATOR")
    if wanted is None:
        candidates = [DEFAULT_SDK_ROOT / PUBSUB_RELATIVE]
        gcloud = shutil.which("gcloud")
        if gcloud:
            candidates.insert(0, sdk_root(Path(gcloud)) / PUBSUB_RELATIVE)
        wanted = next((c for c in candidates if c.is_file()), candidates[0])
    found = _executable(wanted)
    if found is None:
        raise EmulatorMissing(
            f"Pub/Sub emulator not found ({wanted}): install it with "
            "`apt-get install google-cloud-cli-pubsub-emulator` "
            "(or `gcloud components install pubsub-emulator`) "
            "or set DATAPLATFORM_PUBSUB_EMULATOR to cloud-pubsub-emulator"
        )
    return found


def find_firestore_component(gcloud: Path) -> Path:
    jar = sdk_root(gcloud) / FIRESTORE_JAR_RELATIVE
    if not jar.is_file():
        raise EmulatorMissing(
            f"Firestore emulator component not found ({jar}): install it with "
            "`apt-get install google-cloud-cli-firestore-emulator` "
            "(or `gcloud components install cloud-firestore-emulator`)"
        )
    return jar


def find_gcs_emulator(binary: str | os.PathLike[str] | None = None) -> Path:
    wanted = binary or os.environ.get("DATAPLATFORM_GCS_EMULATOR")
    if wanted is None:
        beside = Path(sys.executable).parent / "gcp-storage-emulator"
        wanted = str(beside) if beside.is_file() else "gcp-storage-emulator"
    found = _executable(wanted)
    if found is None:
        raise EmulatorMissing(
            f"gcp-storage-emulator not found ({wanted}): install it with "
            "`pip install gcp-storage-emulator` in this virtualenv "
            "or set DATAPLATFORM_GCS_EMULATOR"
        )
    return found


def _java_env(java: Path) -> dict[str, str]:
    """Child environment in which the emulator scripts find exactly this `java`."""
    env = dict(os.environ)
    bin_dir = java.resolve().parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["JAVA"] = str(java)  # the Firestore script honours $JAVA
    if bin_dir.name == "bin":
        env["JAVA_HOME"] = str(bin_dir.parent)  # the Pub/Sub script honours $JAVA_HOME
    else:
        env.pop("JAVA_HOME", None)
    return env


# --------------------------------------------------------------------------- start


def _spawn(
    name: str,
    argv: list[str],
    *,
    host: str,
    port: int,
    state_dir: Path,
    env: Mapping[str, str],
    implied_env: Mapping[str, str],
    timeout: float,
) -> Emulator:
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / f"{name}.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=state_dir,
            env=dict(env),
            start_new_session=True,  # own session → own process group: stop() kills it all
        )
    pgid = process.pid  # session leader: pgid == pid
    deadline = started + timeout
    while True:
        if process.poll() is not None:
            stop_group(pgid, grace=1.0, leader=process)
            raise EmulatorExited(
                f"{name} emulator exited with code {process.returncode} before answering on "
                f"{host}:{port} (log: {log_path}); last lines:\n{log_tail(log_path)}"
            )
        if _answers_http(host, port) and process.poll() is None:
            break
        if time.monotonic() >= deadline:
            stop_group(pgid, grace=1.0, leader=process)
            raise EmulatorStartError(
                f"{name} emulator did not answer on {host}:{port} within {timeout:.0f}s "
                f"(log: {log_path}); last lines:\n{log_tail(log_path)}"
            )
        time.sleep(0.05)
    return Emulator(
        name=name,
        host=host,
        port=port,
        pid=process.pid,
        pgid=pgid,
        env=dict(implied_env),
        log_path=log_path,
        started_in=time.monotonic() - started,
        process=process,
    )


def _check_port_free(port: int, host: str = LOOPBACK) -> None:
    if _port_in_use(host, port):
        raise PlatformError(
            f"port {port} on {host} is already in use: stop what listens there "
            "or choose another port"
        )


def _start_on_port(port: int | None, start: Callable[[int], Emulator]) -> Emulator:
    """Start on `port`, or on a free port; a picked port can be taken between the pick and
    the bind by another process, so an early exit is retried on a fresh port (twice)."""
    if port is not None:
        _check_port_free(port)
        return start(port)
    attempts_left = 3
    while True:
        attempts_left -= 1
        try:
            return start(free_port())
        except EmulatorExited:
            if attempts_left == 0:
                raise


def start_pubsub(
    state_dir: str | os.PathLike[str],
    port: int | None = None,
    *,
    binary: str | os.PathLike[str] | None = None,
    java: str | os.PathLike[str] | None = None,
    timeout: float = START_TIMEOUT_SECONDS,
) -> Emulator:
    """Google's Pub/Sub emulator (in-memory) on loopback; env PUBSUB_EMULATOR_HOST."""
    exe = find_pubsub_emulator(binary)
    env = _java_env(find_java(java))
    return _start_on_port(
        port,
        lambda chosen: _spawn(
            "pubsub",
            [str(exe), f"--host={LOOPBACK}", f"--port={chosen}"],
            host=LOOPBACK,
            port=chosen,
            state_dir=Path(state_dir),
            env=env,
            implied_env={"PUBSUB_EMULATOR_HOST": f"{LOOPBACK}:{chosen}"},
            timeout=timeout,
        ),
    )


def start_firestore(
    state_dir: str | os.PathLike[str],
    port: int | None = None,
    *,
    gcloud: str | os.PathLike[str] | None = None,
    java: str | os.PathLike[str] | None = None,
    timeout: float = START_TIMEOUT_SECONDS,
) -> Emulator:
    """Firestore emulator (native mode, in-memory) via `gcloud emulators firestore start`."""
    gcloud_path = find_gcloud(gcloud)
    java_path = find_java(java)
    find_firestore_component(gcloud_path)
    env = _java_env(java_path)
    env["CLOUDSDK_CORE_DISABLE_PROMPTS"] = "1"  # never wait on an interactive prompt
    return _start_on_port(
        port,
        lambda chosen: _spawn(
            "firestore",
            [
                str(gcloud_path), "emulators", "firestore", "start",
                f"--host-port={LOOPBACK}:{chosen}",
            ],
            host=LOOPBACK,
            port=chosen,
            state_dir=Path(state_dir),
            env=env,
            implied_env={"FIRESTORE_EMULATOR_HOST": f"{LOOPBACK}:{chosen}"},
            timeout=timeout,
        ),
    )


def start_gcs(
    state_dir: str | os.PathLike[str],
    port: int | None = None,
    *,
    binary: str | os.PathLike[str] | None = None,
    timeout: float = START_TIMEOUT_SECONDS,
) -> Emulator:
    """gcp-storage-emulator (in-memory) on loopback; env STORAGE_EMULATOR_HOST=http://host:port.

    It does not enforce `if_generation_match`, so the GCS adapter must not rely on it for
    create-if-absent against this emulator.
    """
    exe = find_gcs_emulator(binary)
    return _start_on_port(
        port,
        lambda chosen: _spawn(
            "gcs",
            [str(exe), "start", "--host", LOOPBACK, "--port", str(chosen), "--in-memory"],
            host=LOOPBACK,
            port=chosen,
            state_dir=Path(state_dir),
            env=dict(os.environ),
            implied_env={"STORAGE_EMULATOR_HOST": f"http://{LOOPBACK}:{chosen}"},
            timeout=timeout,
        ),
    )
