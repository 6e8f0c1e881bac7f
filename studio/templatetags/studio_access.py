"""``{% can obj "share" as allowed %}``: whether the page's user may take an action on an object,
asked through the access layer, so templates show only the buttons that will work."""

from __future__ import annotations

from django import template

from studio import access

register = template.Library()


@register.simple_tag(takes_context=True)
def can(context, obj, action: str) -> bool:
    return access.has_perm(context["request"].user, obj, action)
