"""How a view chooses between its page and one of its htmx partials.

A history restore (the browser's back button after htmx pushed a URL, with the page no longer in
htmx's cache) comes by htmx yet must get the whole page: rendering the partial there would
replace the page with a fragment. Every view that answers htmx with a partial asks here.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def wants_partial(request: HttpRequest, target: str | None = None) -> bool:
    """Whether htmx asks for a fragment: a real htmx request, not a history restore, and aimed
    at the element ``target`` when one is named (other htmx requests get the page)."""
    htmx = getattr(request, "htmx", None)
    if not htmx or htmx.history_restore_request:
        return False
    return target is None or htmx.target == target


def render_page_or_partial(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    partial: str,
    target: str | None = None,
    status: int = 200,
) -> HttpResponse:
    """``template#partial`` when ``wants_partial(request, target)``, else the whole ``template``."""
    name = f"{template}#{partial}" if wants_partial(request, target) else template
    return render(request, name, context, status=status)
