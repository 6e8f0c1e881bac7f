"""The ``{{ name }}`` variables of a prompt text.

The same syntax as the flows' templates (``flows/runtime/templating.py``): the catalog may not
import flows, so the pattern is defined here too. The two must stay identical, or a library
prompt would declare variables that the LLM node fills differently.
"""

from __future__ import annotations

import re

# ``{{name}}``, or ``{{node_id.port}}``: a flow's reference to another node's output.
VARIABLE = re.compile(
    r"\{\{\s*([A-Za-z_][A-Za-z0-9_\-]*\.[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_]*)\s*\}\}"
)


def variables(text: str) -> list[str]:
    """The distinct variable names of ``text``, in order of first appearance."""
    return list(dict.fromkeys(VARIABLE.findall(text)))


def prompt_variables(system: str, template: str) -> list[str]:
    """The variables of a prompt version: its system text's first, then its template's."""
    return variables(system + "\n" + template)
