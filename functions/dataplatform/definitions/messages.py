"""Turn pydantic's validation errors into messages a person can act on.

sqlglot-style: say what was found, where (the key path; the loader adds `path:line`), what
was expected, and "did you mean" for a misspelt key, type, policy or name.

Pydantic reports one mistake as several errors more often than not: a misspelt key is
both "extra input" and "field required", a bad list item also makes the list "too short",
a value that fits no member of a union fails once per member. `describe_errors` folds each
of those back into the one message a person would write.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from dataplatform.definitions.yaml_lines import Loc


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest candidate, or `""` when none is close."""
    pool = {c.lower(): c for c in candidates if c}
    close = difflib.get_close_matches(str(word).lower(), pool, n=1, cutoff=0.6)
    return f" (did you mean {pool[close[0]]!r}?)" if close else ""


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate `did_you_mean` would suggest, or None."""
    pool = {c.lower(): c for c in candidates if c}
    close = difflib.get_close_matches(str(word).lower(), pool, n=1, cutoff=0.6)
    return pool[close[0]] if close else None


def format_loc(loc: Loc) -> str:
    """('fields', 2, 'type') → `fields[2].type`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def readable_loc(loc: Loc, data: Any = None) -> str:
    """Like `format_loc`, but a field is named by its dotted path: `field 'context.ip' privacy`.

    `fields[12].fields[1]` makes the reader count list items; the field's own name does
    not. Falls back to indices where a name is missing or not a string.
    """
    names: list[str] = []
    current = data
    rest = loc
    while len(rest) >= 2 and rest[0] == "fields" and isinstance(rest[1], int):
        items = current.get("fields") if isinstance(current, dict) else None
        item = items[rest[1]] if isinstance(items, list) and rest[1] < len(items) else None
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            break
        names.append(name)
        current, rest = item, rest[2:]
    if not names:
        return format_loc(loc)
    head = f"field {'.'.join(names)!r}"
    return f"{head} {format_loc(rest)}" if rest else head


def _prefix(loc: Loc, data: Any = None) -> str:
    return f"{readable_loc(loc, data)}: " if loc else ""


# --------------------------------------------------------------------------- locations


_SCALAR_NAMES = {"str": "a string", "int": "a number", "float": "a number", "bool": "true/false"}


@dataclass(frozen=True)
class Resolved:
    """A pydantic error location read against the model: where it is in the YAML data.

    `loc` drops what pydantic adds that is not in the file (the tag of a discriminated
    union member, the member name of a plain union); `keys` are the keys allowed in the
    mapping that holds the last part; `member` is the union member name, if any.
    """

    loc: Loc
    keys: tuple[str, ...]
    member: str | None = None
    holders: tuple[type[BaseModel], ...] = ()
    """The model(s) whose key `loc[-1]` is (several while a union member is undecided)."""


def resolve(model: type[BaseModel], loc: Sequence[Any]) -> Resolved:
    out: list[str | int] = []
    annotations: list[Any] = [model]
    keys: tuple[str, ...] = tuple(model.model_fields)
    member: str | None = None
    holders: list[type[BaseModel]] = [model]
    for part in loc:
        candidates = [c for ann in annotations for c in _unwrap(ann)]
        models = [c for c in candidates if _is_model(c)]
        if isinstance(part, str):
            tagged = [m for m in models if part in _tags(m)] if len(models) > 1 else []
            if tagged:  # the tag pydantic adds for a discriminated union member
                annotations = tagged
                continue
            scalar = [c for c in candidates if getattr(c, "__name__", None) == part and not _is_model(c)]
            if len(candidates) > 1 and scalar:  # the member name pydantic adds for a plain union
                member = part
                annotations = scalar
                continue
            holders = [m for m in models if part in m.model_fields] or models
            keys = tuple(dict.fromkeys(k for m in holders for k in m.model_fields))
            annotations = [m.model_fields[part].annotation for m in holders if part in m.model_fields]
        else:
            annotations = [
                arg
                for c in candidates
                if typing.get_origin(c) in (tuple, list)
                for arg in typing.get_args(c)[:1]
            ]
        out.append(part)
    return Resolved(tuple(out), keys, member, tuple(holders))


def data_loc(loc: tuple[Any, ...], data: Any) -> Loc:
    """Pydantic's loc → the loc in the YAML data (drops discriminated-union tags).

    Kept for callers without the model at hand; `resolve` is exact where this guesses.
    """
    out: list[Any] = []
    current = data
    for part in loc:
        if isinstance(current, dict) and current.get("type") == part and not (
            part in current and part == loc[-1]
        ):
            continue  # the tag pydantic adds for a discriminated union member
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
        else:
            current = None
        out.append(part)
    return tuple(out)


def _tags(model: type[BaseModel]) -> tuple[str, ...]:
    field = model.model_fields.get("type")
    if field is None or typing.get_origin(field.annotation) is not typing.Literal:
        return ()
    return tuple(str(a) for a in typing.get_args(field.annotation))


def _model_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys allowed at the mapping that holds `loc[-1]`, following the model's types."""
    return list(resolve(model, loc).keys)


def _unwrap(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return [c for arg in typing.get_args(annotation) for c in _unwrap(arg)]
    return [annotation]


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


# --------------------------------------------------------------------------- messages


_QUOTED = re.compile(r"'([^']*)'")

_PATTERN_HINTS = {
    "name": "use lower_snake_case starting with a letter (at most 63 characters)",
    "owner": "use a team slug like team-playback (lower case, digits, - and _)",
    "domain": "use a slug like playback (lower case, digits, - and _)",
    "readers": "use an IAM member like group:analysts@example.com (user:, group:, serviceAccount:, domain:)",
    "clustering": "use a column name in lower_snake_case",
    "columns": "use a column name in lower_snake_case",
    "column": "use a column name in lower_snake_case",
    "field": "use a column name in lower_snake_case",
    "partition_field": "use a column name in lower_snake_case",
}

_WHAT = {"type": "field type", "privacy": "privacy policy", "partitioning": "partitioning", "severity": "severity"}


def literal_options(error: dict[str, Any]) -> list[str]:
    """The allowed values of a pydantic `literal_error`, in the model's order."""
    return _QUOTED.findall(str((error.get("ctx") or {}).get("expected", "")))


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "nothing (an empty value)"
    return "a string"


def describe_errors(
    errors: Iterable[dict[str, Any]], model: type[BaseModel], data: Any = None
) -> list[tuple[Loc, str]]:
    """Pydantic's errors of one file → one (loc, message) per mistake, locs in the YAML data.

    With the file's `data`, fields are named by their path instead of list indices.
    """
    items = [(resolve(model, e["loc"]), e) for e in errors]

    # A union value that fits no member fails once per member: report it once.
    by_loc: dict[Loc, list[tuple[Resolved, dict[str, Any]]]] = {}
    for resolved, error in items:
        by_loc.setdefault(resolved.loc, []).append((resolved, error))

    # A bad item also makes its list "too short": the item's error is the one that helps.
    def has_inner(loc: Loc) -> bool:
        return any(len(other) > len(loc) and other[: len(loc)] == loc for other in by_loc)

    # A misspelt key is also a missing one: report the misspelling, with its suggestion.
    meant: set[Loc] = set()
    for resolved, error in items:
        if error["type"] == "extra_forbidden":
            missing_here = {
                r.loc[-1]
                for r, e in items
                if e["type"] == "missing" and r.loc[:-1] == resolved.loc[:-1]
            }
            guess = closest(str(resolved.loc[-1]), resolved.keys)
            if guess in missing_here:
                meant.add((*resolved.loc[:-1], guess))

    out: list[tuple[Loc, str]] = []
    for loc, group in by_loc.items():
        kinds = {e["type"] for _, e in group}
        if "too_short" in kinds and has_inner(loc):
            group = [(r, e) for r, e in group if e["type"] != "too_short"]
        if not group:
            continue
        if loc in meant and kinds == {"missing"}:
            continue
        members = [r.member for r, _ in group if r.member]
        if len(members) > 1:
            names = list(dict.fromkeys(_SCALAR_NAMES.get(m, m) for m in members))
            wanted = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
            out.append((loc, f"{_prefix(loc, data)}expected {wanted}, not {_kind_of(group[0][1].get('input'))}"))
            continue
        for resolved, error in group:
            out.append((loc, _message(error, resolved, data)))
    return out


def describe(error: dict[str, Any], loc: Loc, model: type[BaseModel]) -> str:
    """One pydantic error → `where: what was found, what was expected (did you mean …)`."""
    resolved = resolve(model, error["loc"])
    return _message(error, Resolved(loc, resolved.keys, resolved.member))


def _message(error: dict[str, Any], resolved: Resolved, data: Any = None) -> str:
    kind = error["type"]
    loc = resolved.loc
    where = readable_loc(loc, data)
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        key = loc[-1]
        return f"{_prefix(loc[:-1], data)}unknown key {key!r}{did_you_mean(str(key), resolved.keys)}"
    if kind == "missing":
        return f"{_prefix(loc[:-1], data)}missing required key {loc[-1]!r}"
    if kind == "literal_error":
        expected = literal_options(error)
        what = _WHAT.get(str(loc[-1]), "value")
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
    if kind == "union_tag_not_found":
        return f"{_prefix(loc, data)}missing required key {ctx.get('discriminator', 'type').strip(chr(39))!r}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{_prefix(loc, data)}expected a mapping of keys, not {_kind_of(value)}"
    if kind in ("tuple_type", "list_type"):
        return f"{_prefix(loc, data)}expected a list, not {_kind_of(value)}"
    if kind == "string_pattern_mismatch":
        field = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
        hint = _PATTERN_HINTS.get(field, f"must match {ctx.get('pattern')}")
        return f"{where}: {value!r} is not valid: {hint}"
    message = error["msg"]
    if kind.startswith("value_error"):
        message = message.removeprefix("Value error, ")
    shown = (
        f" (got {value!r})"
        if not isinstance(value, (dict, list)) and repr(value) not in message
        else ""
    )
    return f"{_prefix(loc, data)}{message[0].lower()}{message[1:]}{shown}"
