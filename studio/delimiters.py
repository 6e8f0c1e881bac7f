"""Delimiters around untrusted text a model reads (retrieved passages, tool results, a tool's
output): whatever inside could pass for one of the delimiting tags is defused, so the text
cannot close its block early and speak as the prompt.

Anything a model could read as such a tag is caught: "<", its full-width and small forms or an
HTML escape of it, then any spacing (invisible characters included) around an optional slash,
then the tag's name in any case and with any separator. Defusing more than a strict parser
would accept costs nothing: this text only ever reaches a model.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_SPACING = r"[\s\u00ad\u200b-\u200f\u2060\ufeff]*"
_OPENING = r"(?:<|\uff1c|\ufe64|&lt;?|&#0*60;?|&#x0*3c;?)"
# What replaces the tag's "<", in whatever spelling it came: nothing tag-like is left.
_SAFE = "\u2039"


def defuser(*names: str) -> Callable[[str], str]:
    """A function that defuses every spelling of the tags ``names`` (regular expressions of a
    name, e.g. ``r"tool[\\s_-]*result"``) in a text."""
    pattern = re.compile(
        rf"{_OPENING}(?P<rest>{_SPACING}[/\uff0f\u2215]?{_SPACING}(?:{'|'.join(names)}))",
        re.IGNORECASE,
    )
    return lambda text: pattern.sub(lambda m: _SAFE + m.group("rest"), text)


def attribute(defuse: Callable[[str], str], value: str, limit: int) -> str:
    """``value`` made safe inside a tag's double-quoted attribute, on one line."""
    return defuse(value).replace('"', "'").replace("\n", " ")[:limit]
