"""YAML → plain Python data plus a map from each value's path to its line number.

Errors must say `path:line`, so definitions are composed with PyYAML's node API (which
keeps marks) instead of `safe_load`, and every mapping key and sequence item records the
1-based line where it starts.
"""

from __future__ import annotations

from typing import Any

import yaml

Loc = tuple[str | int, ...]


class YamlSyntaxError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def load_with_lines(text: str) -> tuple[Any, dict[Loc, int]]:
    """Parse one YAML document; return (data, {loc: line}). Loc () is the document start."""
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
    try:
        return _build(node, (), lines, constructor), lines
    finally:
        constructor.dispose()


def _build(node: yaml.Node, loc: Loc, lines: dict[Loc, int], constructor: yaml.SafeLoader) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _build(key_node, (), {}, constructor)
            child = (*loc, key)
            lines[child] = key_node.start_mark.line + 1
            out[key] = _build(value_node, child, lines, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*loc, i), lines, constructor) for i, item in enumerate(node.value)]
    return constructor.construct_object(node)


def line_of(lines: dict[Loc, int], loc: Loc) -> int:
    """The line of `loc`, or of its nearest ancestor that has one (a missing key → its parent)."""
    while loc not in lines and loc:
        loc = loc[:-1]
    return lines.get(loc, 1)
