"""`dataplatform schema diff --against REF`: are the schema changes in this tree shippable?

Compares the event schemas of the working tree (loaded strictly, like `validate`) with
those committed at a git ref, and classifies every change (`compile.evolution`). The CLI
exits with `report.exit_code`: 1 when a breaking change was made without a major version
bump, so CI can run `schema diff --against origin/main` on every pull request.

The schemas at the ref are read straight from git (`git archive`, in memory: no checkout,
no temporary worktree) and parsed into the same models, without the cross-file checks: the
ref's own CI ran those, and rules that got stricter since must not make the comparison
impossible. Only event schemas are compared: they are the contract with producers and
readers; endpoints are outputs and can be changed by redeploying.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from dataplatform.compile.evolution import EVENT_REMOVED, Change, EvolutionReport, diff_catalogs
from dataplatform.definitions.loader import SCHEMAS_DIR, DefinitionError, load_catalog, parse_definition
from dataplatform.definitions.models import EventSchema
from dataplatform.errors import PlatformError

GIT_TIMEOUT_SECONDS = 60


def schema_diff(root: Path, against: str) -> EvolutionReport:
    """Compare the event schemas under `root` with those at git ref `against`."""
    root = Path(root)
    before = schemas_at_ref(root, against)
    current = load_catalog(root)
    return replace(diff_catalogs(before, current), against=against)


def schemas_at_ref(root: Path, ref: str) -> dict[str, EventSchema]:
    """The event schemas committed at `ref` (key → schema); empty when it has no schemas/."""
    if not ref or ref.startswith("-"):
        raise PlatformError(f"{ref!r} is not a git ref; name a branch, tag or commit, e.g. origin/main")
    if not root.is_dir():
        raise PlatformError(f"{root} is not a directory")
    top = Path(
        _git(root, "rev-parse", "--show-toplevel", what=f"{root} is not inside a git repository; schema diff compares with a git ref")
        .decode()
        .strip()
    )
    prefix = _git(root, "rev-parse", "--show-prefix").decode().strip()  # root within the repo, "" or "sub/"
    commit = _resolve(top, ref)
    directory = f"{prefix}{SCHEMAS_DIR}"
    # Paths below are relative to the top of the repository (git runs there).
    if not _git(top, "ls-tree", "--name-only", commit, "--", directory).strip():
        return {}
    archive = _git(top, "archive", "--format=tar", commit, "--", directory)
    schemas: dict[str, EventSchema] = {}
    errors: list[DefinitionError] = []
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.isfile() and _is_schema_file(m.name, directory)),
            key=lambda m: m.name,
        )
        for member in members:
            extracted = tar.extractfile(member)
            assert extracted is not None  # a regular file
            rel = PurePosixPath(member.name).relative_to(prefix).as_posix() if prefix else member.name
            schema = _parse_schema(rel, extracted.read(), errors)
            if schema is not None:
                schemas.setdefault(schema.key, schema)
    if errors:
        listing = "\n".join(f"{ref}:{e}" for e in sorted(errors))
        raise PlatformError(
            f"the event schemas at {ref} do not load, so they cannot be compared:\n{listing}\n"
            "compare with a ref whose schemas load (e.g. the last release), or fix them there first"
        )
    return schemas


def _is_schema_file(name: str, directory: str) -> bool:
    path = PurePosixPath(name)
    return path.suffix == ".yaml" and path.parent == PurePosixPath(directory)


def _parse_schema(rel: str, data: bytes, errors: list[DefinitionError]) -> EventSchema | None:
    """One schema file at the ref → its model, or None with the problems appended to `errors`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        errors.append(DefinitionError(rel, data[: exc.start].count(b"\n") + 1, "not UTF-8 text"))
        return None
    schema, _source, _data = parse_definition(rel, text, EventSchema, errors)
    return schema


def _resolve(root: Path, ref: str) -> str:
    try:
        out = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    except PlatformError:
        raise PlatformError(
            f"git ref {ref!r} not found in the repository at {root}; name an existing branch, tag "
            "or commit (for a remote branch run `git fetch` first, e.g. origin/main)"
        ) from None
    return out.decode().strip()


def _git(root: Path, *args: str, what: str | None = None) -> bytes:
    command = ["git", "-C", str(root), *args]
    try:
        done = subprocess.run(command, capture_output=True, timeout=GIT_TIMEOUT_SECONDS, check=False)
    except FileNotFoundError:
        raise PlatformError("git is not installed or not on PATH; schema diff needs it to read the ref") from None
    except subprocess.TimeoutExpired:
        raise PlatformError(f"`git {' '.join(args)}` did not finish within {GIT_TIMEOUT_SECONDS}s") from None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip()
        raise PlatformError(what or f"`git {' '.join(args)}` failed: {detail or f'exit {done.returncode}'}")
    return done.stdout


# --------------------------------------------------------------------------- rendering


def instructions(report: EvolutionReport) -> list[str]:
    """What to do about each event key with breaking changes made without a bump."""
    by_key: dict[str, list[Change]] = {}
    for change in report.breaking_without_bump:
        by_key.setdefault(change.key, []).append(change)
    out: list[str] = []
    for key, changes in by_key.items():
        name, next_version = report.next_major(key)
        base = report.against or "the base"
        if any(c.kind == EVENT_REMOVED for c in changes):
            out.append(
                f"{key}: restore its schema as it is at {base}: producers still publish to it. "
                "Retire an event type only after its producers have stopped (ship a new major "
                "version first to make the retirement pass this check)."
            )
        else:
            current = next_version - 1
            out.append(
                f"{key}: undo its breaking changes (keep it compatible with {base}) and make them in a "
                f"new major version: copy it to schemas/{name}_v{next_version}.yaml with `version: {next_version}` "
                f"(a new topic and table; v{current} keeps running until its producers move over)."
            )
    return out


def render_text(report: EvolutionReport) -> str:
    """Plain text: one line per change, a summary, and what to do about breaking changes."""
    base = report.against or "the base"
    if not report.changes:
        return f"No event schema changes against {base}.\n"
    lines = [str(change) for change in report.changes]
    breaking, without = len(report.breaking), len(report.breaking_without_bump)
    count = len(report.changes)
    summary = (
        f"{count} change{'s' if count != 1 else ''} against {base}: "
        f"{len(report.compatible)} compatible, {breaking} breaking"
    )
    if breaking:
        summary += f" ({without} without a major version bump)"
    lines += ["", summary + "."]
    todo = instructions(report)
    if todo:
        lines += ["", "To fix:", *(f"  {item}" for item in todo)]
    return "\n".join(lines) + "\n"


def change_json(change: Change) -> dict[str, Any]:
    return {
        "key": change.key,
        "path": change.path,
        "kind": change.kind,
        "compatibility": change.compatibility,
        "what": change.what,
        "why": change.why,
        "message": change.message,
    }


def to_json(report: EvolutionReport) -> dict[str, Any]:
    """The report as JSON-ready data (`schema diff --json`)."""
    return {
        "against": report.against,
        "changes": [change_json(c) for c in report.changes],
        "summary": {
            "changes": len(report.changes),
            "compatible": len(report.compatible),
            "breaking": len(report.breaking),
            "breaking_without_bump": len(report.breaking_without_bump),
        },
        "breaking_without_bump": [change_json(c) for c in report.breaking_without_bump],
        "instructions": instructions(report),
        "exit_code": report.exit_code,
    }
