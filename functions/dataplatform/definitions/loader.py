"""Load `schemas/` and `workflows/` into a `Catalog`, collecting every error in one pass.

Loading is pure and strict: nothing stops at the first problem. Each file is parsed with
line numbers (`yaml_lines`), validated into frozen models, then the cross-checks of
`definitions.checks` run over everything that parsed. All problems are raised together as
one `DefinitionErrors`, each rendered `path:line: message`, with "did you mean" hints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from dataplatform.definitions import checks, messages
from dataplatform.definitions.models import Endpoint, EventSchema
from dataplatform.definitions.repair import Salvage, salvage
from dataplatform.definitions.source import DefinitionError, DefinitionErrors, Source
from dataplatform.definitions.yaml_lines import DuplicateKey, YamlSyntaxError, load_with_lines
from dataplatform.errors import PlatformError

__all__ = ["Catalog", "DefinitionError", "DefinitionErrors", "Source", "load_catalog", "parse_definition"]

SCHEMAS_DIR = "schemas"
WORKFLOWS_DIR = "workflows"

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class Catalog:
    """All definitions of a repository: event schemas and data endpoints, validated."""

    root: Path
    schemas: tuple[EventSchema, ...]
    endpoints: tuple[Endpoint, ...]
    sources: Mapping[str, Source]
    """Keyed by `EventSchema.key` or `Endpoint.name`."""

    def schema(self, name: str) -> EventSchema:
        """By key (`track_played_v1`) or by name (the highest major version)."""
        matches = [s for s in self.schemas if name in (s.key, s.name)]
        if not matches:
            raise PlatformError(
                f"unknown event type {name!r}{messages.did_you_mean(name, self.names())}"
            )
        return max(matches, key=lambda s: s.version)

    def endpoint(self, name: str) -> Endpoint:
        for endpoint in self.endpoints:
            if endpoint.name == name:
                return endpoint
        raise PlatformError(f"unknown endpoint {name!r}{messages.did_you_mean(name, self.names())}")

    def names(self) -> list[str]:
        return [s.key for s in self.schemas] + [s.name for s in self.schemas] + [
            e.name for e in self.endpoints
        ]

    def tables(self) -> dict[str, EventSchema | Endpoint]:
        """Every table a query may read, `dataset.table` → its definition (incl. dedup views)."""
        out: dict[str, EventSchema | Endpoint] = {}
        for schema in self.schemas:
            out[schema.table_ref] = schema
            out[f"events.{schema.dedup_view}"] = schema
        for endpoint in self.endpoints:
            out[endpoint.table_ref] = endpoint
        return out

    def source(self, key: str) -> Source:
        return self.sources[key]


def load_catalog(root: str | Path = ".") -> Catalog:
    """Load and check every definition under `root`; raise `DefinitionErrors` listing all."""
    root = Path(root)
    if not (root / SCHEMAS_DIR).is_dir() and not (root / WORKFLOWS_DIR).is_dir():
        raise PlatformError(
            f"no {SCHEMAS_DIR}/ or {WORKFLOWS_DIR}/ directory under {root}: run from the repository "
            "root or pass its path (--root)"
        )
    errors: list[DefinitionError] = []
    schemas: list[EventSchema] = []
    endpoints: list[Endpoint] = []
    sources: dict[str, Source] = {}
    pending = checks.Pending()

    errors += _misnamed(root)
    for path in _files(root / SCHEMAS_DIR, ".yaml"):
        rel = _rel(root, path)
        parsed = _parse(rel, _read(path, rel, errors), EventSchema, errors, path.stem)
        if parsed.model is None:
            salvaged = _salvaged(parsed, path, errors)
            pending.schemas.append(checks.BrokenSchema.guess(parsed.data, path.stem, salvaged))
            continue
        errors += checks.check_file_name(parsed.model, path, parsed.source)
        if parsed.model.key in sources:
            errors.append(_duplicate(f"event type {parsed.model.key!r}", parsed.source, sources[parsed.model.key]))
            pending.schemas.append(checks.BrokenSchema.guess(parsed.data, path.stem, _as_salvaged(parsed)))
            continue
        schemas.append(parsed.model)
        sources[parsed.model.key] = parsed.source

    for path in _files(root / WORKFLOWS_DIR, ".yaml"):
        rel = _rel(root, path)
        sql_path = path.with_suffix(".sql")
        sql = _read(sql_path, _rel(root, sql_path), errors) if sql_path.exists() else None
        if sql is None and not sql_path.exists():
            errors.append(DefinitionError(rel, 1, f"missing SQL file {_rel(root, sql_path)} next to it"))
        # Without its SQL the YAML is still checked, against a stand-in query.
        parsed = _parse(
            rel, _read(path, rel, errors), Endpoint, errors, path.stem, sql="SELECT 1" if sql is None else sql
        )
        if parsed.model is None or sql is None:
            salvaged = _as_salvaged(parsed) if parsed.model is not None else _salvaged(parsed, path, errors)
            pending.endpoints.append(
                checks.BrokenEndpoint.guess(parsed.data, path.stem, _rel(root, sql_path), sql, salvaged)
            )
            continue
        errors += checks.check_file_name(parsed.model, path, parsed.source)
        taken = {**{s.name: sources[s.key] for s in schemas}, **sources}
        if parsed.model.name in taken:
            errors.append(_duplicate(f"name {parsed.model.name!r}", parsed.source, taken[parsed.model.name]))
            pending.endpoints.append(
                checks.BrokenEndpoint.guess(parsed.data, path.stem, _rel(root, sql_path), sql, _as_salvaged(parsed))
            )
            continue
        endpoints.append(parsed.model)
        sources.setdefault(parsed.model.name, parsed.source)

    for path in _files(root / WORKFLOWS_DIR, ".sql"):
        if not path.with_suffix(".yaml").exists():
            errors.append(
                DefinitionError(
                    _rel(root, path), 1,
                    f"SQL file without a definition: add {_rel(root, path.with_suffix('.yaml'))} "
                    "(name, owner, schedule, ...) or remove it",
                )
            )

    catalog = Catalog(root, tuple(schemas), tuple(endpoints), sources)
    errors += checks.check_catalog(catalog, pending)
    if errors:
        raise DefinitionErrors(errors)
    return catalog


def parse_definition(
    rel: str,
    text: str | None,
    model: type[_M],
    errors: list[DefinitionError],
    *,
    sql: str | None = None,
) -> tuple[_M | None, Source, Any]:
    """One definition file's text → (model or None, its Source, the raw YAML data).

    Appends every shape problem of the file to `errors` as `rel:line: message` (the
    cross-checks of `definitions.checks` are separate). `sql` is the text of an
    endpoint's `.sql` file, merged in as its `sql` key.
    """
    parsed = _parse(rel, text, model, errors, Path(rel).stem, sql=sql)
    return parsed.model, parsed.source, parsed.data


@dataclass(frozen=True)
class _Parsed:
    model: Any
    source: Source
    data: Any
    salvage: Salvage | None = None
    reported: frozenset[int] = frozenset()


def _parse(
    rel: str, text: str | None, model: type[BaseModel], errors: list[DefinitionError], stem: str, *, sql: str | None = None
) -> _Parsed:
    source = Source(rel, {(): 1})
    if text is None:
        return _Parsed(None, source, None)
    duplicates: list[DuplicateKey] = []
    try:
        data, lines = load_with_lines(text, duplicates)
    except YamlSyntaxError as exc:
        errors.append(DefinitionError(rel, exc.line, str(exc)))
        return _Parsed(None, source, None)
    source = Source(rel, lines)
    for dup in duplicates:
        errors.append(
            DefinitionError(
                rel, dup.line,
                f"{messages.format_loc(dup.loc)!r} is given twice (first on line {dup.first_line}); keep one",
            )
        )
    if not isinstance(data, dict):
        errors.append(DefinitionError(rel, 1, "expected a mapping of keys (name:, owner:, ...)"))
        return _Parsed(None, source, data)
    extra: dict[str, Any] = {}
    if sql is not None:
        extra["sql"] = sql
        if "sql" in data:
            errors.append(source.error(("sql",), f"put the SQL in {Path(rel).with_suffix('.sql').as_posix()}, not in the YAML"))
            data = {k: v for k, v in data.items() if k != "sql"}
    try:
        return _Parsed(model.model_validate({**data, **extra}), source, data)
    except ValidationError as exc:
        found = [source.error(loc, message) for loc, message in messages.describe_errors(exc.errors(), model, data)]
        errors += found
        return _Parsed(
            None, source, data,
            salvage(data, lines, exc.errors(), model, stem, extra),
            frozenset(e.line for e in found),
        )


def _duplicate(what: str, source: Source, first: Source) -> DefinitionError:
    """A second definition of a name: it stays out of the catalog, the first one is used."""
    return source.error(("name",), f"duplicate {what}: also defined in {first.path}; rename or remove one")


def _as_salvaged(parsed: _Parsed) -> Any:
    """A definition that loaded but stays out of the catalog (a duplicate, no SQL): still checked."""
    return checks.Salvaged(parsed.model, parsed.source, frozenset())


def _salvaged(parsed: _Parsed, path: Path, errors: list[DefinitionError]) -> Any:
    """The repaired model of a file that did not load, with its file-name check (see repair)."""
    if parsed.salvage is None:
        return None
    source = Source(parsed.source.path, parsed.salvage.lines)
    salvaged = checks.Salvaged(parsed.salvage.model, source, parsed.reported)
    errors += [source.error(loc, message) for loc, message in parsed.salvage.later]
    errors += salvaged.keep(checks.check_file_name(salvaged.model, path, source))
    return salvaged


def _files(directory: Path, suffix: str) -> list[Path]:
    """Definition files, sorted; hidden files (editor locks and backups) are not definitions."""
    return sorted(p for p in directory.glob(f"*{suffix}") if not p.name.startswith("."))


def _misnamed(root: Path) -> list[DefinitionError]:
    """`.yml` files would be skipped without a word: say so instead."""
    return [
        DefinitionError(
            _rel(root, path), 1, f"definitions use the .yaml extension: rename it to {path.with_suffix('.yaml').name}"
        )
        for directory in (SCHEMAS_DIR, WORKFLOWS_DIR)
        for path in _files(root / directory, ".yml")
    ]


def _read(path: Path, rel: str, errors: list[DefinitionError]) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        errors.append(DefinitionError(rel, 1, f"cannot read the file: {exc.strerror or exc}"))
        return None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        errors.append(DefinitionError(rel, line, "not UTF-8 text; save the file as UTF-8"))
        return None


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
