"""Turn pydantic's validation errors into messages a person can act on.

sqlglot-style: say what was found, where (the key path; the loader adds `path:line`), what
was expected, and "did you mean" for a misspelt key, type, policy or name.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from dataplatform.definitions.yaml_lines import Loc


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest candidate, or `""` when none is close."""
    pool = {c.lower(): c for c in candidates if c}
    close = difflib.get_close_matches(str(word).lower(), pool, n=1, cutoff=0.6)
    return f" (did you mean {pool[close[0]]!r}?)" if close else ""


def format_loc(loc: Loc) -> str:
    """('fields', 2, 'type') → `fields[2].type`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def data_loc(loc: tuple[Any, ...], data: Any) -> Loc:
    """Pydantic's loc → the loc in the YAML data (drops discriminated-union tags)."""
    out: list[Any] = []
    current = data
    for part in loc:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
        elif isinstance(current, dict) and current.get("type") == part:
            continue  # the tag pydantic adds for a discriminated union member
        else:
            current = None
        out.append(part)
    return tuple(out)


def _model_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys allowed at the mapping that holds `loc[-1]`, following the model's types."""
    annotations: list[Any] = [model]
    for part in loc[:-1]:
        next_annotations: list[Any] = []
        for ann in annotations:
            for candidate in _unwrap(ann):
                if isinstance(part, str) and _is_model(candidate) and part in candidate.model_fields:
                    next_annotations.append(candidate.model_fields[part].annotation)
                elif isinstance(part, int) and typing.get_origin(candidate) in (tuple, list):
                    next_annotations.extend(typing.get_args(candidate)[:1])
        annotations = next_annotations
    keys: list[str] = []
    for ann in annotations:
        for candidate in _unwrap(ann):
            if _is_model(candidate):
                keys += list(candidate.model_fields)
    return keys


def _unwrap(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return [c for arg in typing.get_args(annotation) for c in _unwrap(arg)]
    return [annotation]


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


_QUOTED = re.compile(r"'([^']*)'")

_PATTERN_HINTS = {
    "name": "use lower_snake_case starting with a letter (at most 63 characters)",
    "owner": "use a team slug like team-playback (lower case, digits, - and _)",
    "domain": "use a slug like playback (lower case, digits, - and _)",
    "readers": "use an IAM member like group:analysts@example.com (user:, group:, serviceAccount:, domain:)",
}


def describe(error: dict[str, Any], loc: Loc, model: type[BaseModel]) -> str:
    """One pydantic error → `where: what was found, what was expected (did you mean …)`."""
    kind = error["type"]
    where = format_loc(loc)
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        key = loc[-1]
        allowed = _model_keys(model, loc)
        return f"unknown key {key!r}{did_you_mean(str(key), allowed)}"
    if kind == "missing":
        return f"missing required key {where!r}"
    if kind == "literal_error":
        expected = _QUOTED.findall(str(ctx.get("expected", "")))
        what = {"type": "field type", "privacy": "privacy policy"}.get(str(loc[-1]), "value")
        return (
            f"{where}: unknown {what} {value!r}{did_you_mean(str(value), expected)}; "
            f"expected one of {', '.join(expected)}"
        )
    if kind == "union_tag_invalid":
        expected = _QUOTED.findall(str(ctx.get("expected_tags", "")))
        return (
            f"{where}: unknown check type {ctx.get('tag')!r}"
            f"{did_you_mean(str(ctx.get('tag')), expected)}; expected one of {', '.join(expected)}"
        )
    if kind == "string_pattern_mismatch":
        field = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
        hint = _PATTERN_HINTS.get(field, f"must match {ctx.get('pattern')}")
        return f"{where}: {value!r} is not valid: {hint}"
    message = error["msg"]
    if kind.startswith("value_error"):
        message = message.removeprefix("Value error, ")
    shown = f" (got {value!r})" if not isinstance(value, (dict, list)) else ""
    return f"{where}: {message[0].lower()}{message[1:]}{shown}"
