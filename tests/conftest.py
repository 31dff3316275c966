"""Fixtures shared by every test: the repository root and its example catalog; and a guard
that `--dist loadgroup` really keeps each `xdist_group` on one worker."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def catalog():
    """The example catalog of this repository (`schemas/`, `workflows/`), loaded once."""
    from dataplatform.definitions.loader import load_catalog

    return load_catalog(REPO_ROOT)


UNGROUPED = pytest.StashKey[str]()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Notice when pytest-xdist did not tag grouped tests with their group.

    xdist groups tests by a `@group` suffix it writes into each node id. pytest 9 moved the
    node id to another attribute, so xdist 3.8 silently stopped grouping: the e2e modules
    spread over both workers and each ran its own traffic against the one shared stack.
    pytest is pinned to 8.4 for that reason; this guard makes any future mismatch loud:
    every grouped test then errors with the explanation below (see `pytest_runtest_setup`).
    """
    if not getattr(config.option, "loadgroup", False):  # set on xdist workers under --dist loadgroup
        return
    lost = [item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if lost:
        config.stash[UNGROUPED] = (
            f"--dist loadgroup is not honoured by this pytest/pytest-xdist pair ({len(lost)} grouped tests have "
            "no @group in their node id and may run on different workers); pin a compatible pytest in requirements.txt"
        )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("xdist_group") and UNGROUPED in item.config.stash:
        pytest.fail(item.config.stash[UNGROUPED], pytrace=False)
