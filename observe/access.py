"""Access to the observe app's own objects (alert rules), through their flow's access."""

from __future__ import annotations

from django.http import Http404

from flows.access import access_flow
from observe.models import AlertRule
from workspaces.models import Workspace


def access_alert_rule(user, workspace: Workspace, slug: str, rule_id: int, perm: str) -> AlertRule:
    """An alert rule of the flow ``slug``, if ``user`` may take ``perm`` on that flow (``view``
    to read it, ``change`` to edit or delete it); Http404 for a rule of another flow."""
    flow = access_flow(user, workspace, slug, perm)
    rule = AlertRule.objects.filter(flow=flow, pk=rule_id).first()
    if rule is None:
        raise Http404
    rule.flow = flow
    return rule
