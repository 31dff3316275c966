"""Fixtures of the infra tests: the example stack under Pulumi mocks, and scratch repositories.

`stack` gives a fresh mock engine (non-preview, so outputs are known) with the example
stack's config set, plus the loaded catalog and the functions archive; a test composes the
program inside its own `@pulumi.runtime.test` function. `example_plan` is the whole
program planned once (`infra.plan.run_plan`), for tests that look at every resource.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pytest

from dataplatform.definitions.loader import Catalog, load_catalog
from infra import mocks
from infra.archive import FunctionsArchive, build_archive
from infra.config import StackConfig, read_stack_file
from infra.plan import Plan, run_plan
from infra.program import Deployment, compose

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "acme-dataplatform-dev"
REGION = "europe-west1"


@dataclass
class MockStack:
    """The example stack, ready to compose under mocks inside a `@pulumi.runtime.test`."""

    catalog: Catalog
    archive: FunctionsArchive
    monitor: mocks.RecordingMonitor

    def compose(self) -> Deployment:
        return compose(self.catalog, StackConfig.from_pulumi(), self.archive)


def install_stack(root: Path, stack: str = "dev") -> mocks.RecordingMonitor:
    stack_file = read_stack_file(root, stack)
    pulumi.runtime.set_all_config(dict(stack_file.values), list(stack_file.secret_keys))
    return mocks.install(
        stack_file.values["gcp:project"], stack_file.values["gcp:region"], stack_file.stack
    )


@pytest.fixture(scope="session")
def example_catalog() -> Catalog:
    return load_catalog(REPO_ROOT)


@pytest.fixture(scope="session")
def example_archive(tmp_path_factory) -> FunctionsArchive:
    return build_archive(REPO_ROOT, tmp_path_factory.mktemp("archive"))


@pytest.fixture
def stack(example_catalog, example_archive) -> MockStack:
    monitor = install_stack(REPO_ROOT)
    return MockStack(example_catalog, example_archive, monitor)


@pytest.fixture(scope="session")
def example_plan() -> Plan:
    return run_plan(REPO_ROOT, "dev")


@pytest.fixture
def scratch_repo(tmp_path) -> Callable[..., Path]:
    """A copy of this repository's definitions, stack file and function source, to edit.

    The function source is copied, not linked, so the archive (named by content hash)
    stays the same while other work changes `functions/`.
    """

    def make(stack_yaml: str | None = None) -> Path:
        root = tmp_path / "repo"
        root.mkdir()
        shutil.copytree(REPO_ROOT / "schemas", root / "schemas")
        shutil.copytree(REPO_ROOT / "workflows", root / "workflows")
        shutil.copytree(
            REPO_ROOT / "functions", root / "functions", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
        (root / "Pulumi.dev.yaml").write_text(stack_yaml or (REPO_ROOT / "Pulumi.dev.yaml").read_text())
        return root

    return make


class Props(dict):
    """A resolved output value: `Output.all` hands nested output types over as plain dicts;
    this gives them back their attribute access (`trigger.pubsub_topic`)."""

    def __getattr__(self, name: str):
        try:
            return wrap(self[name])
        except KeyError:
            raise AttributeError(name) from None


def wrap(value):
    if isinstance(value, dict):
        return Props(value)
    if isinstance(value, (list, tuple)):
        return [wrap(v) for v in value]
    return value


def pytest_collection_modifyitems(items) -> None:
    """pulumi-gcp announces its own deprecated aliases whenever a module loads; not ours to fix."""
    for item in items:
        if "tests/infra" in str(item.fspath):
            item.add_marker(pytest.mark.filterwarnings(r"ignore:gcp\..* has been deprecated:DeprecationWarning"))
