"""The real local stack for the end-to-end tests, started once and stopped at the end.

The stack runs in a temporary state directory on free loopback ports: Google's Pub/Sub and
Firestore emulators, gcp-storage-emulator, the three functions under functions-framework
and the runtime (DuckDB). `make test` runs pytest with two xdist workers and `--dist loadgroup`:
every e2e module is in the `e2e-stack` group, so one worker runs them in order (the fault
test kills stack processes, which must not race another test's `local up`). Should two
workers ever use it, they share ONE stack (a second would not fit on two cores): the state
directory sits beside the workers' temporary roots, a lock file serialises start and stop,
and a user count makes the last worker to finish stop it. After `down`, every recorded process group must be gone.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dataplatform.definitions.loader import load_catalog
from dataplatform.local.emulators import group_members
from dataplatform.local.stack import Stack, StackState
from dataplatform.pipeline.demo import CollectClient
from tests.conftest import REPO_ROOT


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _users(path: Path, delta: int) -> int:
    count = int(path.read_text() or 0) if path.exists() else 0
    count += delta
    path.write_text(str(count))
    return count


@pytest.fixture(scope="session")
def e2e_stack(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[Stack]:
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent  # shared by the xdist workers of this run
    lock, users = root / "e2e-stack.lock", root / "e2e-stack.users"
    stack = Stack(root / "e2e-stack", definitions=REPO_ROOT)
    with _locked(lock):
        _users(users, +1)
        stack.up()
    try:
        yield stack
    finally:
        with _locked(lock):
            if _users(users, -1) == 0:
                recorded = stack.load()
                stack.down()
                left = {r.name: group_members(r.pgid) for r in (recorded.processes if recorded else ())}
                assert not any(left.values()), f"processes left after `local down`: {left}"


@pytest.fixture(scope="session")
def e2e_state(e2e_stack: Stack) -> StackState:
    return e2e_stack.require()


@pytest.fixture(scope="session")
def collect_client(e2e_state: StackState) -> CollectClient:
    return CollectClient(e2e_state.collect_url, e2e_state.api_key)


@pytest.fixture(scope="session")
def stack_catalog(e2e_state: StackState) -> Any:
    return load_catalog(Path(e2e_state.definitions))


@pytest.fixture(scope="session")
def stack_platform_keys(e2e_state: StackState) -> Any:
    """The stack's platform keys (to open quarantined payloads), read like the functions do."""
    from dataplatform.adapters.gcs import GcsBlobStore
    from dataplatform.adapters.local_kms import LocalKms
    from dataplatform.local.stack import KMS_KEY_FILE, platform_environment
    from dataplatform.privacy.keys import PlatformKeys

    with platform_environment(e2e_state.env):
        blobs = GcsBlobStore(e2e_state.env["DATAPLATFORM_CONFIG_BUCKET"], project=e2e_state.project)
        return PlatformKeys.load(LocalKms(Path(e2e_state.state_dir) / KMS_KEY_FILE), blobs)
