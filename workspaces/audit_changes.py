"""What an audit entry changed, in words: "top_k: 5 → 8", "graph changed (3 nodes → 4 nodes)".

Entries keep the whole before and after state as JSON (the CSV export gives it all); the page
shows only the fields that differ, each value short: a flow graph is counted, not printed, and
a long text is cut. Pure functions, so the page and any later reader say the same thing.
"""

from __future__ import annotations

import json
from typing import Any

ARROW = "→"
EMPTY = "–"
# Past this a value is summarised ("412 characters") rather than shown.
MAX_VALUE_CHARS = 60
# An entry that touched more fields than this shows the first ones and "and 3 more".
MAX_LINES = 12


def audit_changes(before: Any, after: Any) -> list[str]:
    """One line per field that differs between ``before`` and ``after`` (either may be None:
    an object made or removed). A state that is not an object counts as one field, "value"."""
    old, new = _fields(before), _fields(after)
    if old is None and new is None:
        return []
    if old is None or new is None:
        # Made or removed: what it was or is, field by field (empty fields left out).
        state = new if old is None else old
        lines = [f"{key}: {_short(key, value)}" for key, value in state.items() if _set(value)]
    else:
        keys = [*new, *(key for key in old if key not in new)]
        lines = [
            _changed(key, old.get(key), new.get(key))
            for key in keys
            if old.get(key) != new.get(key)
        ]
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"and {len(lines) - MAX_LINES} more"]
    return lines


def _fields(state: Any) -> dict[str, Any] | None:
    if state is None:
        return None
    return state if isinstance(state, dict) else {"value": state}


def _set(value: Any) -> bool:
    return value not in (None, "", [], {})


def _changed(key: str, old: Any, new: Any) -> str:
    old_text, new_text = _short(key, old), _short(key, new)
    if _set(old) and _set(new) and (_summarised(key, old) or _summarised(key, new)):
        if old_text == new_text:  # same size, other content: say only that it changed
            return f"{key} changed"
        return f"{key} changed ({old_text} {ARROW} {new_text})"
    return f"{key}: {old_text} {ARROW} {new_text}"


def _summarised(key: str, value: Any) -> bool:
    """Whether ``_short`` gives a summary of ``value`` rather than the value itself."""
    if _is_graph(value):
        return True
    if isinstance(value, dict | list):
        return len(_json(value)) > MAX_VALUE_CHARS
    return isinstance(value, str) and (len(value) > MAX_VALUE_CHARS or "\n" in value)


def _short(key: str, value: Any) -> str:
    if value is None or value == "":
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if _is_graph(value):
        return _count(len(value.get("nodes") or []), "node")
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS or "\n" in value:
            return _count(len(value), "character")
        return value
    if isinstance(value, dict | list):
        text = _json(value)
        if len(text) <= MAX_VALUE_CHARS:
            return ", ".join(map(str, value)) if _flat_list(value) else text
        noun = "item" if isinstance(value, list) else "field"
        return _count(len(value), noun)
    return str(value)


def _is_graph(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("nodes"), list)


def _flat_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str | int | float) for item in value)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
