"""YAML → plain Python data plus a map from each value's path to its line number.

Errors must say `path:line`, so definitions are composed with PyYAML's node API (which
keeps marks) instead of `safe_load`, and every mapping key and sequence item records the
1-based line where it starts.

Plain YAML silently keeps the last of two equal keys; in a definition that is almost
always a mistake (a pasted block, a second `privacy:`), so duplicates are collected and
reported by the loader instead of being swallowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

Loc = tuple[str | int, ...]


class YamlSyntaxError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class DuplicateKey:
    """A mapping key given twice: where the repeat is and where the first one was."""

    loc: Loc
    line: int
    first_line: int


def load_with_lines(
    text: str, duplicates: list[DuplicateKey] | None = None
) -> tuple[Any, dict[Loc, int]]:
    """Parse one YAML document; return (data, {loc: line}). Loc () is the document start.

    Repeated keys are appended to `duplicates` when given (the later value wins, as in YAML).
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlSyntaxError(line, f"invalid YAML: {exc.problem or exc}") from None
    lines: dict[Loc, int] = {(): 1}
    if node is None:
        return None, lines
    constructor = yaml.SafeLoader("")
    found: list[DuplicateKey] = [] if duplicates is None else duplicates
    try:
        return _build(node, (), lines, constructor, found), lines
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlSyntaxError(mark.line + 1 if mark else 1, f"invalid YAML: {exc.problem or exc}") from None
    finally:
        constructor.dispose()


def _build(
    node: yaml.Node,
    loc: Loc,
    lines: dict[Loc, int],
    constructor: yaml.SafeLoader,
    duplicates: list[DuplicateKey],
) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _build(key_node, (), {}, constructor, duplicates)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise YamlSyntaxError(key_node.start_mark.line + 1, "invalid YAML: a key must be a plain value")
            child = (*loc, key)
            line = key_node.start_mark.line + 1
            if key in out:
                duplicates.append(DuplicateKey(child, line, lines[child]))
                _forget(lines, child)
            lines[child] = line
            out[key] = _build(value_node, child, lines, constructor, duplicates)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*loc, i), lines, constructor, duplicates) for i, item in enumerate(node.value)]
    return constructor.construct_object(node)


def _forget(lines: dict[Loc, int], loc: Loc) -> None:
    """Drop the line entries of a value that a repeated key replaces."""
    for key in [k for k in lines if k[: len(loc)] == loc]:
        del lines[key]


def line_of(lines: dict[Loc, int], loc: Loc) -> int:
    """The line of `loc`, or of its nearest ancestor that has one (a missing key → its parent)."""
    while loc not in lines and loc:
        loc = loc[:-1]
    return lines.get(loc, 1)
