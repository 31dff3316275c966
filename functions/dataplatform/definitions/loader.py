"""Load `schemas/` and `workflows/` into a `Catalog`, collecting every error in one pass.

Loading is pure and strict: nothing stops at the first problem. Each file is parsed with
line numbers (`yaml_lines`), validated into frozen models, then the cross-checks of
`definitions.checks` run over everything that parsed. All problems are raised together as
one `DefinitionErrors`, each rendered `path:line: message`, with "did you mean" hints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from dataplatform.definitions import messages
from dataplatform.definitions.models import Endpoint, EventSchema
from dataplatform.definitions.yaml_lines import Loc, YamlSyntaxError, line_of, load_with_lines
from dataplatform.errors import PlatformError

SCHEMAS_DIR = "schemas"
WORKFLOWS_DIR = "workflows"


@dataclass(frozen=True, order=True)
class DefinitionError:
    """One problem in one definition file, at a line."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class DefinitionErrors(PlatformError):
    """Every problem found in the definitions, sorted by file and line."""

    def __init__(self, errors: list[DefinitionError]) -> None:
        self.errors = sorted(set(errors))
        count = len(self.errors)
        super().__init__(
            "\n".join(map(str, self.errors))
            + f"\n{count} error{'s' if count != 1 else ''} in the definitions"
        )


@dataclass(frozen=True)
class Source:
    """Where a definition came from: repo-relative path and its line map."""

    path: str
    lines: Mapping[Loc, int] = field(default_factory=dict)

    def line(self, loc: Loc = ()) -> int:
        return line_of(dict(self.lines), loc)

    def error(self, loc: Loc, message: str) -> DefinitionError:
        return DefinitionError(self.path, self.line(loc), message)


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
    from dataplatform.definitions import checks  # checks import compile/, which imports models

    root = Path(root)
    errors: list[DefinitionError] = []
    schemas: list[EventSchema] = []
    endpoints: list[Endpoint] = []
    sources: dict[str, Source] = {}

    for path in sorted((root / SCHEMAS_DIR).glob("*.yaml")):
        parsed = _parse(root, path, EventSchema, {}, errors)
        if parsed:
            schema, source = parsed
            errors += checks.check_file_name(schema, path, source)
            schemas.append(schema)
            sources.setdefault(schema.key, source)

    for path in sorted((root / WORKFLOWS_DIR).glob("*.yaml")):
        rel = _rel(root, path)
        sql_path = path.with_suffix(".sql")
        extra: dict[str, Any] = {}
        if sql_path.exists():
            extra["sql"] = sql_path.read_text()
        else:
            errors.append(
                DefinitionError(rel, 1, f"missing SQL file {_rel(root, sql_path)} next to it")
            )
            extra["sql"] = "SELECT 1"  # keep checking the YAML itself
        parsed = _parse(root, path, Endpoint, extra, errors)
        if parsed and sql_path.exists():
            endpoint, source = parsed
            errors += checks.check_file_name(endpoint, path, source)
            endpoints.append(endpoint)
            sources.setdefault(endpoint.name, source)

    catalog = Catalog(root, tuple(schemas), tuple(endpoints), sources)
    errors += checks.check_catalog(catalog)
    if errors:
        raise DefinitionErrors(errors)
    return catalog


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _parse(
    root: Path,
    path: Path,
    model: type[BaseModel],
    extra: dict[str, Any],
    errors: list[DefinitionError],
) -> tuple[Any, Source] | None:
    rel = _rel(root, path)
    try:
        data, lines = load_with_lines(path.read_text())
    except YamlSyntaxError as exc:
        errors.append(DefinitionError(rel, exc.line, str(exc)))
        return None
    source = Source(rel, lines)
    if not isinstance(data, dict):
        errors.append(DefinitionError(rel, 1, "expected a mapping of keys (name:, owner:, ...)"))
        return None
    if "sql" in data and "sql" in extra:
        errors.append(source.error(("sql",), f"put the SQL in {Path(rel).with_suffix('.sql')}, not in the YAML"))
        data = {k: v for k, v in data.items() if k != "sql"}
    try:
        return model.model_validate({**data, **extra}), source
    except ValidationError as exc:
        for err in exc.errors():
            loc = messages.data_loc(err["loc"], data)
            errors.append(source.error(loc, messages.describe(err, loc, model)))
        return None
