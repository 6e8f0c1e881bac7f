import pytest
from django.apps import apps
from tests.studio.test_routes_access import test_no_route_reaches_another_workspaces_objects as target, victim, personas, runs_never_wait  # noqa

def _fetch(label, **lookup):
    return apps.get_model(label).objects.get(**lookup)

MUTATIONS = {
    "key no check": ("studio.access.access_key", lambda user, key_id, perm: _fetch("studio.ApiKey", id=key_id)),
    "object no check": ("studio.access.access_object", lambda user, kind, oid, perm: _fetch(__import__("studio.access").access.KINDS[kind].label, id=oid)),
    "published flow any ws": ("studio.access.access_published_flow", lambda key, slug: apps.get_model("flows.Flow").objects.select_related("published_version").get(slug=slug)),
    "catalog all models": ("catalog.selectors.models_visible", lambda user, wid: apps.get_model("catalog.Model").objects.all()),
    "run no check": ("studio.access.access_run", lambda user, run_id, perm: _fetch("flows.Run", id=run_id)),
}

@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_mutation(mutation, victim, personas, runs_never_wait, monkeypatch):
    path, fn = MUTATIONS[mutation]
    monkeypatch.setattr(path, fn)
    with pytest.raises(AssertionError) as info:
        target(victim, personas, None)
    text = str(info.value)
    print("\n=== ", mutation, "\n", "\n".join(l for l in text.splitlines() if l and not l.startswith(" "))[:1500])
