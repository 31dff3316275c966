"""Definitions that did not load, kept so the rest of the catalog can still be checked.

Why: one mistake must not multiply. An endpoint reading a schema whose file has a typo
should not also get "unknown table"; an endpoint whose YAML is broken should still have
its SQL checked; a file with a misspelt key should still get its cross-checks (on the
repair in `definitions.repair`). Nothing here ever joins the `Catalog`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from dataplatform.definitions.models import ENDPOINTS_DATASET, EVENTS_DATASET, Endpoint, EventSchema
from dataplatform.definitions.source import DefinitionError, Source


@dataclass(frozen=True)
class Salvaged:
    """A best-effort repair of a file that did not load (see `definitions.repair`).

    Its cross-checks run like any other file's, except on `reported_lines`, the lines that
    already have a shape error: a check there would judge the repair, not the file.
    """

    model: EventSchema | Endpoint
    source: Source
    reported_lines: frozenset[int]

    def keep(self, errors: list[DefinitionError]) -> list[DefinitionError]:
        return [e for e in errors if e.path != self.source.path or e.line not in self.reported_lines]


@dataclass(frozen=True)
class BrokenSchema:
    """What can still be read of a schema file that did not load.

    Endpoints that read its table then get no follow-on "unknown table" error: the
    schema's own errors are the ones to fix.
    """

    name: str
    version: int | None
    salvaged: Salvaged | None = None

    @classmethod
    def guess(cls, data: Any, stem: str, salvaged: Salvaged | None = None) -> BrokenSchema:
        data = data if isinstance(data, dict) else {}
        name, version = data.get("name"), data.get("version")
        if not isinstance(name, str):
            match = re.fullmatch(r"(.+)_v(\d+)", stem)
            name = match.group(1) if match else stem
        if not isinstance(version, int) or isinstance(version, bool):
            version = None
        return cls(name, version, salvaged)

    def covers(self, ref: str) -> bool:
        match = re.fullmatch(rf"{EVENTS_DATASET}\.(.+)_v(\d+)(_dedup)?", ref)
        return bool(match) and match.group(1) == self.name and (
            self.version is None or int(match.group(2)) == self.version
        )


@dataclass(frozen=True)
class BrokenEndpoint:
    """What can still be read of an endpoint whose YAML did not load (or has no SQL).

    Its SQL is still parsed and checked, so one pass shows the SQL's mistakes too.
    """

    name: str
    sql_path: str
    sql: str | None
    salvaged: Salvaged | None = None

    @classmethod
    def guess(
        cls, data: Any, stem: str, sql_path: str, sql: str | None, salvaged: Salvaged | None = None
    ) -> BrokenEndpoint:
        name = data.get("name") if isinstance(data, dict) else None
        return cls(name if isinstance(name, str) else stem, sql_path, sql, salvaged)

    def covers(self, ref: str) -> bool:
        return ref == f"{ENDPOINTS_DATASET}.{self.name}"


@dataclass
class Pending:
    """The definitions that did not load, kept so their names still resolve."""

    schemas: list[BrokenSchema] = dc_field(default_factory=list)
    endpoints: list[BrokenEndpoint] = dc_field(default_factory=list)

    def covers(self, ref: str) -> bool:
        return any(b.covers(ref) for b in [*self.schemas, *self.endpoints])

    def tables(self) -> list[str]:
        """The table names these definitions would have had, for "did you mean"."""
        out = [f"{ENDPOINTS_DATASET}.{b.name}" for b in self.endpoints]
        for b in self.schemas:
            if b.version is not None:
                out += [f"{EVENTS_DATASET}.{b.name}_v{b.version}", f"{EVENTS_DATASET}.{b.name}_v{b.version}_dedup"]
        return out
