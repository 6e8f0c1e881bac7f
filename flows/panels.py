"""Panels that other apps add to the flows pages without ``flows`` importing them.

On the publish page (the flow's detail page): the last evaluation comparison, the online A/B
experiment. On a run's page: its conversation and feedback. Each app registers its panels from its
``ready()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from django.utils.safestring import SafeString

if TYPE_CHECKING:
    from django.http import HttpRequest

# "publish": the flow's detail page, the object a Flow; "run": a run's page, the object a Run.
Place = Literal["publish", "run"]

# (request, object, actions) -> the panel's rendered HTML, or None to show nothing. ``actions``
# are what the member may do to the flow (``studio.access.object_actions``): the page has already
# checked ``view`` (``run`` for a run's page); a panel checks anything more it shows or offers.
Panel = Callable[["HttpRequest", Any, frozenset[str]], SafeString | None]

_PANELS: dict[Place, dict[str, tuple[int, Panel]]] = {"publish": {}, "run": {}}


def register_panel(place: Place, name: str, panel: Panel, *, order: int = 100) -> None:
    """Add ``panel`` to the pages of ``place``; lower ``order`` first. Registering a name again
    replaces the panel."""
    _PANELS[place][name] = (order, panel)


def panels(
    place: Place, request: HttpRequest, obj: Any, actions: frozenset[str]
) -> list[SafeString]:
    """The registered panels' HTML for ``obj`` and this member, in order."""
    found = []
    for _order, panel in sorted(_PANELS[place].values(), key=lambda item: item[0]):
        html = panel(request, obj, actions)
        if html:
            found.append(html)
    return found
