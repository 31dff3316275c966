"""Patch a definition that failed validation just enough for its cross-checks to run.

Why: "every error in one pass" means a misspelt key in field 2 must not hide that field 5
has a privacy policy its type cannot take, or that the endpoint's checks name columns the
query does not return. So after the shape errors of a file are reported, the file is
repaired the way its author most likely meant it — a misspelt key gets its value under the
key it was close to, an unknown type or policy becomes the suggested one, a bad optional
value falls back to its default, a bad list item is left out — and the cross-checks run
on the repaired model. A required value with no sensible stand-in (e.g. `fields: []`)
gives up: the file then gets only its shape errors, as before.

The repaired model never joins the catalog: nothing downstream can see a guess. The
loader drops cross-check errors on lines that already have a shape error (they would be
about the guess, not the file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from dataplatform.definitions import messages
from dataplatform.definitions.yaml_lines import Loc, line_of

MAX_ROUNDS = 4


@dataclass(frozen=True)
class Salvage:
    """A repaired model with the line map of the repaired data, plus what later rounds found.

    `later` are shape errors only visible after a repair (a value moved from a misspelt
    key that is itself invalid), as (loc in the repaired data, message).
    """

    model: BaseModel
    lines: dict[Loc, int]
    later: tuple[tuple[Loc, str], ...]


class _GiveUp(Exception):
    pass


def salvage(
    data: dict[str, Any],
    lines: dict[Loc, int],
    errors: list[dict[str, Any]],
    model: type[BaseModel],
    stem: str,
    extra: dict[str, Any] | None = None,
) -> Salvage | None:
    """Repair `data` (validated with `extra` merged in) until `model` accepts it, or None."""
    data = _copy(data)
    lines = dict(lines)
    later: list[tuple[Loc, str]] = []
    moved: set[Loc] = set()
    for round_ in range(MAX_ROUNDS):
        if round_:
            try:
                return Salvage(model.model_validate({**data, **(extra or {})}), lines, tuple(later))
            except ValidationError as exc:
                errors = exc.errors()
                # Only a value moved from a misspelt key is the file's own, unreported mistake;
                # anything else a later round finds comes from an earlier repair.
                later += [
                    (loc, message)
                    for loc, message in messages.describe_errors(errors, model, data)
                    if any(loc[: len(m)] == m for m in moved)
                ]
        try:
            ops = _plan(data, errors, model, stem)
            _apply(data, lines, ops)
        except _GiveUp:
            return None
        moved |= {(*op.loc[:-1], op.value) for op in ops if op.kind == "move"}
    return None


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _Op:
    kind: str  # "move" | "delete" | "set" | "remove"
    loc: Loc
    value: Any = None


def _plan(data: dict[str, Any], errors: list[dict[str, Any]], model: type[BaseModel], stem: str) -> list[_Op]:
    resolved = [messages.resolve(model, e["loc"]) for e in errors]
    ops: list[_Op] = []
    for error, where in zip(errors, resolved):
        if error["type"] == "extra_forbidden":
            ops.append(_repair(data, where.loc, error["type"], error, where, stem))
    filled = {(*op.loc[:-1], op.value) for op in ops if op.kind == "move"}
    for error, where in zip(errors, resolved):
        loc, kind = where.loc, error["type"]
        if kind == "extra_forbidden" or (kind == "missing" and loc in filled):
            continue  # a misspelt key's value fills the key it was meant to be
        if kind == "too_short" and any(len(o.loc) > len(loc) and o.loc[: len(loc)] == loc for o in resolved):
            continue  # its items' errors are repaired instead
        ops.append(_repair(data, loc, kind, error, where, stem))
    return ops


def _repair(
    data: dict[str, Any], loc: Loc, kind: str, error: dict[str, Any], resolved: messages.Resolved, stem: str
) -> _Op:
    if not loc:
        raise _GiveUp
    key = loc[-1]
    parent = _get(data, loc[:-1])
    if kind == "extra_forbidden":
        meant = messages.closest(str(key), resolved.keys)
        if meant and isinstance(parent, dict) and meant not in parent:
            return _Op("move", loc, meant)
        return _Op("delete", loc)
    if isinstance(key, int) or kind in ("union_tag_invalid", "union_tag_not_found"):
        return _remove_item(loc)
    optional = bool(resolved.holders) and all(
        key in m.model_fields and not m.model_fields[key].is_required() for m in resolved.holders
    )
    if kind == "literal_error":
        guess = messages.closest(str(error.get("input")), messages.literal_options(error))
        if guess:
            return _Op("set", loc, guess)
    if optional:
        return _Op("delete", loc)  # back to the default
    value = _stand_in(str(key), loc, error.get("input"), parent, stem)
    if value is not None:
        return _Op("set", loc, value)
    return _remove_item(loc)


NEUTRAL_CHECK: dict[str, Any] = {"type": "row_count", "min": 0}
"""Stands in for a broken quality check: keeps the other checks' indices (messages name
them, `checks[3]`) and can fail no cross-check."""


def _remove_item(loc: Loc) -> _Op:
    """Leave out the list item (a reader, a value, a column) that holds `loc`."""
    for end in range(len(loc), 0, -1):
        if isinstance(loc[end - 1], int) and loc[0] != "fields":
            if loc[: end - 1] == ("checks",):
                return _Op("set", loc[:end], dict(NEUTRAL_CHECK))
            return _Op("remove", loc[:end])
    raise _GiveUp  # a field or a top-level key: leaving it out would change the other checks


_STAND_INS: dict[str, Any] = {
    "description": "-",
    "version": 1,
    "retention_days": 30,
    "schedule": "0 0 * * *",
}


def _stand_in(key: str, loc: Loc, value: Any, parent: Any, stem: str) -> Any:
    """A valid value for a required key, as close to what was written as possible."""
    if key in _STAND_INS:
        return _STAND_INS[key]
    if key == "name" and loc[:-1] and loc[0] == "checks":
        return None
    if key in ("name", "column", "field"):
        fallback = _identifier(stem) if len(loc) == 1 else None
        return _identifier(value) or fallback or ("invalid_name" if key == "name" else None)
    if key in ("owner", "domain"):
        return _identifier(value, dash=True) or "unknown"
    if key == "type" and loc[0] == "fields":
        return "RECORD" if isinstance(parent, dict) and parent.get("fields") else "STRING"
    return None


def _identifier(value: Any, dash: bool = False) -> str | None:
    if not isinstance(value, str):
        return None
    allowed = r"[^a-z0-9_-]+" if dash else r"[^a-z0-9_]+"
    text = re.sub(allowed, "_", value.strip().lower()).strip("_-")
    text = re.sub(r"^[^a-z]+", "", text)[:63]
    return text or None


# --------------------------------------------------------------------------- applying


def _apply(data: dict[str, Any], lines: dict[Loc, int], ops: list[_Op]) -> None:
    removed = sorted({op.loc for op in ops if op.kind == "remove"}, key=_order, reverse=True)
    replaced = [op.loc for op in ops if op.kind == "set"]
    ops = [
        op
        for op in ops
        if not any(op.loc[: len(r)] == r for r in removed)
        and not any(len(op.loc) > len(r) and op.loc[: len(r)] == r for r in replaced)
    ]
    for op in ops:
        parent = _get(data, op.loc[:-1])
        if op.kind == "move" and isinstance(parent, dict) and op.loc[-1] in parent:
            parent[op.value] = parent.pop(op.loc[-1])
            _rename(lines, op.loc, (*op.loc[:-1], op.value))
        elif op.kind == "delete" and isinstance(parent, dict):
            parent.pop(op.loc[-1], None)
            _drop(lines, op.loc)
        elif op.kind == "set" and (
            isinstance(parent, dict) or (isinstance(parent, list) and isinstance(op.loc[-1], int))
        ):
            parent[op.loc[-1]] = op.value  # type: ignore[index]
            _drop(lines, op.loc, keep=True)
            lines.setdefault(op.loc, line_of(lines, op.loc))
        elif op.kind != "remove":
            raise _GiveUp
    for loc in removed:
        items = _get(data, loc[:-1])
        index = loc[-1]
        if not isinstance(items, list) or not isinstance(index, int) or index >= len(items):
            raise _GiveUp
        del items[index]
        _drop(lines, loc)
        for later in range(index + 1, len(items) + 1):
            _rename(lines, (*loc[:-1], later), (*loc[:-1], later - 1))


def _order(loc: Loc) -> list[tuple[int, Any]]:
    return [(0, p) if isinstance(p, int) else (1, str(p)) for p in loc]


def _rename(lines: dict[Loc, int], old: Loc, new: Loc) -> None:
    moved = {k: v for k, v in lines.items() if k[: len(old)] == old}
    for k in moved:
        del lines[k]
    for k, v in moved.items():
        lines[(*new, *k[len(old):])] = v


def _drop(lines: dict[Loc, int], loc: Loc, keep: bool = False) -> None:
    for k in [k for k in lines if k[: len(loc)] == loc and (not keep or k != loc)]:
        del lines[k]


def _get(data: Any, loc: Loc) -> Any:
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
