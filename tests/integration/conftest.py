"""Session fixtures that run the real emulators, started lazily by the tests that need them.

Each fixture starts its emulator once per test session (via `dataplatform.local.emulators`,
the same code `local up` uses), exports the env var the Google client libraries read
(PUBSUB_EMULATOR_HOST / FIRESTORE_EMULATOR_HOST / STORAGE_EMULATOR_HOST) for the session,
and stops the emulator's whole process group at the end, restoring the environment.
A missing component fails the test with the emulator module's one-line install hint.
Mark tests that use them `@pytest.mark.emulator`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dataplatform.local import emulators
from dataplatform.local.emulators import Emulator

EMULATOR_PROJECT = "dataplatform-test"


def _run(
    start: Callable[[Path], Emulator], tmp_path_factory: pytest.TempPathFactory, name: str
) -> Iterator[Emulator]:
    emulator = start(tmp_path_factory.mktemp(f"{name}-emulator"))
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in emulator.env.items():
                patch.setenv(key, value)
            patch.setenv("GOOGLE_CLOUD_PROJECT", EMULATOR_PROJECT)
            yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def emulator_project() -> str:
    """The project id every emulator client in the tests uses."""
    return EMULATOR_PROJECT


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    yield from _run(emulators.start_pubsub, tmp_path_factory, "pubsub")


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    yield from _run(emulators.start_firestore, tmp_path_factory, "firestore")


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    yield from _run(emulators.start_gcs, tmp_path_factory, "gcs")
