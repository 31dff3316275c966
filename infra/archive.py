"""The deployable source: `functions/` (plus the definitions) as a deterministic zip.

Cloud Functions builds from a zip in the function-source bucket. The object is named by
the SHA-256 of the zip's bytes (`functions-<sha256[:16]>.zip`), so:
- a change to any deployed file gives a new object name, and every function that uses it
  is rebuilt — no stale code behind an unchanged name;
- no change gives the same name, so `pulumi up` is a no-op for the functions.
That only works if the same files always give the same bytes: entries are sorted, every
timestamp is fixed (1980-01-01, the zip epoch), permissions are fixed, and build debris
(`__pycache__`, `*.pyc`, `*.egg-info`, dot files) is left out.

The definitions (`schemas/`, `workflows/`) go into the archive next to `main.py`: the
deployed `collect` and `anonymize` validate against the same schemas the infrastructure
was built from, read from the function's working directory (`DATAPLATFORM_DEFINITIONS=.`, read by `dataplatform/settings.py`).
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dataplatform.errors import PlatformError

SOURCE_DIR = "functions"
DEFINITION_DIRS = ("schemas", "workflows")
BUILD_DIR = Path(".dataplatform") / "build"

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644 << 16
EXCLUDED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class FunctionsArchive:
    """A built archive: where it is, its content hash and the object name derived from it."""

    path: Path
    sha256: str
    size: int
    entries: tuple[str, ...]

    @property
    def object_name(self) -> str:
        return f"functions-{self.sha256[:16]}.zip"


def archive_entries(root: Path) -> Iterator[tuple[str, Path]]:
    """(name in the zip, file on disk), sorted by name: `functions/` at the zip root, then the definitions."""
    source = root / SOURCE_DIR
    if not (source / "main.py").is_file() and not (source / "dataplatform").is_dir():
        raise PlatformError(
            f"{source} holds no function source (main.py or dataplatform/); run from the repository root"
        )
    entries: dict[str, Path] = {}
    for base, prefix in [(source, ""), *((root / d, f"{d}/") for d in DEFINITION_DIRS)]:
        for path in _files(base):
            entries[prefix + path.relative_to(base).as_posix()] = path
    for name in sorted(entries):
        yield name, entries[name]


def build_bytes(root: Path) -> tuple[bytes, tuple[str, ...]]:
    """The zip's bytes and its entry names; same files in, same bytes out."""
    buffer = io.BytesIO()
    names: list[str] = []
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, path in archive_entries(root):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = FILE_MODE
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, whatever the building OS
            archive.writestr(info, path.read_bytes(), compresslevel=9)
            names.append(name)
    return buffer.getvalue(), tuple(names)


def build_archive(root: str | Path, out_dir: str | Path | None = None) -> FunctionsArchive:
    """Build the archive of `root` into `out_dir` (default `<root>/.dataplatform/build/`).

    The file is written once per content hash; an existing file of the same name is reused.
    """
    root = Path(root)
    data, names = build_bytes(root)
    sha = hashlib.sha256(data).hexdigest()
    target_dir = Path(out_dir) if out_dir is not None else root / BUILD_DIR
    target_dir.mkdir(parents=True, exist_ok=True)
    archive = FunctionsArchive(target_dir / f"functions-{sha[:16]}.zip", sha, len(data), names)
    if not archive.path.exists() or archive.path.stat().st_size != len(data):
        tmp = archive.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(archive.path)
    return archive


def _files(base: Path) -> Iterator[Path]:
    if not base.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if not _excluded_dir(d)]
        for filename in filenames:
            if filename.startswith(".") or filename.endswith(EXCLUDED_SUFFIXES):
                continue
            yield Path(dirpath) / filename


def _excluded_dir(name: str) -> bool:
    return name in EXCLUDED_DIRS or name.startswith(".") or name.endswith(".egg-info")
