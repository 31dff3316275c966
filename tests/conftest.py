"""Fixtures shared by every test: the repository root and its example catalog."""

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
