"""Conversation variables: named values a conversation keeps between turns.

A run started from a conversation carries its variables in ``Run.variables``. Nodes read them in
templates as ``{{conversation.<name>}}`` (a missing one renders empty, as any missing variable);
a variable assigner whose scope is ``conversation`` writes them, for the later nodes of the run
and, once the answer settles, for the conversation's later turns. A run outside a conversation
(an editor test run, the run API) starts with none and keeps what it writes to itself.

The limits are what one conversation may hold, checked on every write: a write past them fails
the node and leaves the stored variables as they were.

A run's writes are a delta: the node results that wrote say which names (``WRITTEN`` in their
details), the run's variables hold their last values. Settling a turn merges that delta into the
conversation's variables as they are then, so two turns running at once keep each other's
writes (a merge past the limits keeps none of the later turn's, and its answer says so); a
sub-flow's child run hands its delta to the parent's sub-flow node the same way.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.exceptions import ValidationError

from flows.models import NodeStatus, Run

# The namespace of conversation variables in templates, and the key under which inline nodes
# find the run's current variables among its inputs (no input field can take it).
CONVERSATION = "conversation"
SYSTEM_VARIABLES = "sys.variables"
PREFIX = CONVERSATION + "."
# The key of a node result's details listing the conversation variables the node wrote.
WRITTEN = "conversation_variables"

MAX_VARIABLES = 100
MAX_BYTES = 64 * 1024
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def variables_problem(values: Any) -> str | None:
    """What is wrong with ``values`` as a conversation's variables, or None."""
    if not isinstance(values, dict):
        return "conversation variables must be an object of names to values"
    if len(values) > MAX_VARIABLES:
        return f"a conversation holds at most {MAX_VARIABLES} variables ({len(values)} given)"
    for name in values:
        if not isinstance(name, str) or not NAME.match(name):
            shown = str(name)[:70]
            return (
                f"{shown!r} is not a conversation variable name (a letter or _, then letters, "
                "digits or _, at most 64)"
            )
    try:
        size = len(json.dumps(values, ensure_ascii=False).encode())
    except (TypeError, ValueError):
        return "conversation variables must be JSON values"
    if size > MAX_BYTES:
        return (
            f"conversation variables take {size:,} bytes as JSON; at most {MAX_BYTES:,} may be kept"
        )
    return None


def variables_clean(values: Any) -> dict:
    """``values`` checked (None is none): ValidationError saying what is wrong."""
    if values is None:
        return {}
    problem = variables_problem(values)
    if problem:
        raise ValidationError(problem)
    return dict(values)


def variables_merge(current: dict, written: dict) -> dict:
    """``current`` with ``written`` set over it; ValueError (the node's failure) when the result
    would be past a limit, in which case nothing is kept."""
    merged = {**current, **written}
    problem = variables_problem(merged)
    if problem:
        raise ValueError(f"cannot keep the conversation variables: {problem}")
    return merged


def conversation_reads(ports: dict[str, Any]) -> dict[str, str]:
    """The input ports that read a conversation variable (``conversation.name``), by name."""
    return {port: port[len(PREFIX) :] for port in ports if port.startswith(PREFIX)}


def variables_written(run: Run) -> dict[str, Any]:
    """The conversation variables ``run`` wrote (its delta), with their last values: the names
    its succeeded nodes list under ``WRITTEN`` (a variable assigner, a sub-flow whose child
    wrote some), inside containers too."""
    results = run.node_results.filter(status=NodeStatus.SUCCEEDED, details__has_key=WRITTEN)
    names: set[str] = set()
    for written in results.values_list(f"details__{WRITTEN}", flat=True):
        if isinstance(written, list):
            names.update(name for name in written if isinstance(name, str))
    return {name: run.variables[name] for name in sorted(names) if name in run.variables}
