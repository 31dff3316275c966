"""Where a definition problem is: a file, a line, a message — and all of them together.

Kept apart from the loader so the checks (which the loader runs) can build errors without
importing the loader back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dataplatform.definitions.yaml_lines import Loc, line_of
from dataplatform.errors import PlatformError


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
