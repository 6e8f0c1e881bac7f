"""The usage page: calls recorded by ``usage_record`` add up to the right totals, days and models
(PostgreSQL computes them, percentiles included); the filters narrow them; a limited member sees
only their own calls; the CSV defuses formulas; a bad filter is a form error, never a 500."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django.utils import timezone
from pytest_django.asserts import assertContains, assertNotContains

from catalog.models import Usage
from catalog.selectors.usage import (
    usage_by_day,
    usage_by_model,
    usage_filtered,
    usage_report,
    usage_totals,
)
from catalog.services import model_create
from catalog.services.usage import usage_record
from studio.roles import group_name
from workspaces.models import Workspace
from workspaces.services import api_key_create

TODAY = timezone.localdate()


def at(days_ago: int, hour: int = 12) -> datetime:
    return timezone.make_aware(datetime.combine(TODAY - timedelta(days=days_ago), time(hour)))


def record(days_ago: int, **kwargs) -> Usage:
    """A call through the real writer, then moved to ``days_ago`` (``created_at`` is set on
    insert to now)."""
    row = usage_record(**kwargs)
    Usage.objects.filter(id=row.id).update(created_at=at(days_ago))
    return row


@pytest.fixture
def alpha(workspace, owner):
    return model_create(
        slug="alpha",
        name="Alpha",
        engine="echo",
        workspace=workspace,
        price_input="1",
        price_output="2",
        actor=owner,
    )


@pytest.fixture
def beta(workspace, owner):
    return model_create(
        slug="beta",
        name="Beta",
        engine="echo",
        workspace=workspace,
        price_input="10",
        price_output="20",
        actor=owner,
    )


@pytest.fixture
def key(workspace, owner):
    return api_key_create(workspace=workspace, name="ci-key", user=owner)[0]


@pytest.fixture
def calls(workspace, owner, alpha, beta, key):
    """Five calls over three days with known numbers (prices are per million tokens)."""
    ws = workspace.id
    return [
        # alpha: (1000·1 + 500·2) / 1e6 = 0.002
        record(2, workspace_id=ws, model=alpha, input_tokens=1000, output_tokens=500,
               latency_ms=100, ttft_ms=10, flow_slug="support", api_key_id=key.id),
        # alpha: 0.004
        record(2, workspace_id=ws, model=alpha, input_tokens=2000, output_tokens=1000,
               latency_ms=200, ttft_ms=20, flow_slug="support"),
        # a cache hit: free, and not counted in latency
        record(1, workspace_id=ws, model=alpha, input_tokens=3000, output_tokens=0,
               latency_ms=300, ttft_ms=30, cache_hit=True, flow_slug="faq"),
        # a failed call: free, no first token
        record(0, workspace_id=ws, model=beta, input_tokens=100, output_tokens=100,
               latency_ms=400, ok=False, error="boom", flow_slug="faq"),
        # beta from the playground: (400·10 + 600·20) / 1e6 = 0.016
        record(0, workspace_id=ws, model=beta, input_tokens=400, output_tokens=600,
               latency_ms=500, ttft_ms=50, source="playground", user_id=owner.id),
    ]  # fmt: skip


def filtered(workspace, user, **filters):
    filters.setdefault("since", TODAY - timedelta(days=29))
    filters.setdefault("until", TODAY)
    return usage_filtered(workspace.id, user=user, **filters)


# --- aggregation ----------------------------------------------------------------------------


def test_totals_add_up_the_recorded_calls(calls, workspace, owner):
    totals = usage_totals(filtered(workspace, owner))

    assert totals["calls"] == 5
    assert (totals["tokens_in"], totals["tokens_out"], totals["tokens"]) == (6500, 2200, 8700)
    assert totals["total_cost"] == Decimal("0.022")
    assert (totals["cache_hits"], totals["errors"]) == (1, 1)
    # percentile_cont over the served calls' latencies 100, 200, 400, 500 (the cache hit's 300
    # is left out): the median is interpolated between 200 and 400; p95 at 0.95·3 = 2.85.
    assert totals["latency_p50"] == pytest.approx(300)
    assert totals["latency_p95"] == pytest.approx(485)
    # First tokens 10, 20, 50 (the failed call has none).
    assert totals["ttft_p50"] == pytest.approx(20)
    assert totals["ttft_p95"] == pytest.approx(47)


def test_days_are_summed_and_the_range_has_no_gaps(calls, workspace, owner):
    since = TODAY - timedelta(days=29)
    days = usage_by_day(filtered(workspace, owner), since, TODAY)

    assert [row["day"] for row in days] == [since + timedelta(days=n) for n in range(30)]
    by_day = {row["day"]: row for row in days}
    two_ago, one_ago = TODAY - timedelta(days=2), TODAY - timedelta(days=1)
    assert by_day[two_ago] == {
        "day": two_ago,
        "calls": 2,
        "tokens_in": 3000,
        "tokens_out": 1500,
        "tokens": 4500,
        "total_cost": Decimal("0.006"),
    }
    assert (by_day[one_ago]["calls"], by_day[one_ago]["total_cost"]) == (1, Decimal(0))
    assert (by_day[TODAY]["calls"], by_day[TODAY]["tokens"]) == (2, 1200)
    assert by_day[TODAY]["total_cost"] == Decimal("0.016")
    assert sum(row["calls"] for row in days) == 5
    assert by_day[since]["calls"] == 0  # an empty day is there, with zeros


def test_models_are_summed_with_latency_and_cache_hit_rate(calls, workspace, owner):
    alpha, beta = usage_by_model(filtered(workspace, owner))

    assert alpha["model_slug"] == "alpha"  # most calls first
    assert (alpha["calls"], alpha["tokens"], alpha["total_cost"]) == (3, 7500, Decimal("0.006"))
    assert alpha["latency_avg"] == pytest.approx(150)  # the cache hit is not a model's latency
    assert alpha["latency_p50"] == pytest.approx(150)
    assert alpha["ttft_avg"] == pytest.approx(15)
    assert alpha["cache_hit_rate"] == pytest.approx(1 / 3)
    assert alpha["errors"] == 0
    assert beta["model_slug"] == "beta"
    assert (beta["calls"], beta["tokens"], beta["total_cost"]) == (2, 1200, Decimal("0.016"))
    assert (beta["latency_avg"], beta["ttft_avg"]) == (pytest.approx(450), pytest.approx(50))
    assert (beta["cache_hit_rate"], beta["errors"]) == (0, 1)


def test_the_report_reads_in_four_queries(calls, workspace, owner, django_assert_num_queries):
    rows = filtered(workspace, owner)
    with django_assert_num_queries(4):  # totals, days, models, agents: none per row or group
        usage_report(rows, TODAY - timedelta(days=29), TODAY)


def test_a_deleted_model_keeps_its_usage_under_its_slug(calls, workspace, owner, beta):
    from catalog.services import model_delete

    model_delete(model=beta, actor=owner)

    slugs = [row["model_slug"] for row in usage_by_model(filtered(workspace, owner))]
    assert slugs == ["alpha", "beta"]
    assert usage_totals(filtered(workspace, owner))["total_cost"] == Decimal("0.022")


def test_no_calls_give_zeros_not_errors(workspace, owner):
    totals = usage_totals(filtered(workspace, owner))
    assert (totals["calls"], totals["tokens"], totals["total_cost"]) == (0, 0, Decimal(0))
    assert totals["latency_p50"] is None
    assert usage_by_model(filtered(workspace, owner)) == []


# --- filters --------------------------------------------------------------------------------


def test_filters_narrow_the_calls(calls, workspace, owner, beta, key):
    def count(**filters) -> int:
        return usage_totals(filtered(workspace, owner, **filters))["calls"]

    assert count() == 5
    assert count(model_id=beta.id) == 2
    assert count(flow_slug="support") == 2
    assert count(api_key_id=key.id) == 1
    assert count(source="playground") == 1
    assert count(source="flow") == 4
    assert count(since=TODAY - timedelta(days=2), until=TODAY - timedelta(days=2)) == 2
    assert count(since=TODAY - timedelta(days=1)) == 3
    assert count(model_id=beta.id, source="flow") == 1


def test_the_page_filters_by_its_form(client, calls, owner, beta):
    client.force_login(owner)

    response = client.get(reverse("catalog:usage"), {"model": beta.id})

    assert response.status_code == 200
    assert response.context["report"]["totals"]["calls"] == 2
    assertContains(response, '<span class="value" id="total-calls">2</span>', html=True)
    rows = response.context["report"]["by_model"]
    assert [row["model_slug"] for row in rows] == ["beta"]


def test_the_page_defaults_to_the_last_30_days(client, calls, owner, workspace, alpha):
    record(45, workspace_id=workspace.id, model=alpha, input_tokens=9)  # outside the range
    client.force_login(owner)

    response = client.get(reverse("catalog:usage"))

    form = response.context["form"]
    assert (form.cleaned_data["since"], form.cleaned_data["until"]) == (
        TODAY - timedelta(days=29),
        TODAY,
    )
    assert response.context["report"]["totals"]["calls"] == 5
    assertContains(response, f'value="{(TODAY - timedelta(days=29)).isoformat()}"')

    wider = client.get(
        reverse("catalog:usage"), {"since": (TODAY - timedelta(days=60)).isoformat()}
    )
    assert wider.context["report"]["totals"]["calls"] == 6
    # An end date alone gives the 30 days up to it.
    earlier = client.get(
        reverse("catalog:usage"), {"until": (TODAY - timedelta(days=40)).isoformat()}
    )
    assert earlier.context["form"].cleaned_data["since"] == TODAY - timedelta(days=69)
    assert earlier.context["report"]["totals"]["calls"] == 1


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"since": "not-a-date"}, "Enter a valid date."),
        ({"since": "2025-05-10", "until": "2025-05-01"}, "The start date is after the end date."),
        ({"since": "2020-01-01", "until": "2025-01-01"}, "Choose a range of at most 366 days."),
        ({"model": "999999"}, "Select a valid choice."),
        ({"model": "abc"}, "Select a valid choice."),
        ({"api_key": "-1"}, "Select a valid choice."),
        ({"flow": "no-such-flow"}, "Select a valid choice."),
        ({"source": "email"}, "Select a valid choice."),
    ],
)
def test_a_bad_filter_is_a_form_error(client, calls, owner, query, message):
    client.force_login(owner)

    response = client.get(reverse("catalog:usage"), query)

    assert response.status_code == 200
    assertContains(response, message)
    assertContains(response, "The filter could not be applied")
    assert "report" not in response.context
    data = client.get(reverse("catalog:usage-data"), query)
    assert data.status_code == 400
    assert message in json.dumps(data.json()["errors"])
    export = client.get(reverse("catalog:usage-export"), query)
    assert export.status_code == 400
    assert message in export.content.decode()


# --- who sees what --------------------------------------------------------------------------


def test_a_viewer_sees_the_page(client, calls, viewer):
    client.force_login(viewer)

    response = client.get(reverse("catalog:usage"))

    assert response.status_code == 200
    assert response.context["report"]["totals"]["calls"] == 5
    assertContains(response, "<code>alpha</code>", html=True)
    assertContains(response, 'id="chart-days"')
    assertContains(response, 'id="chart-models-tokens"')
    assertContains(response, 'id="usage-series" type="application/json"')


def test_another_workspaces_usage_never_appears(client, calls, outsider, alpha):
    other = Workspace.objects.get(slug="other")
    theirs = model_create(slug="theirs", name="Theirs", engine="echo", workspace=other)
    record(0, workspace_id=other.id, model=theirs, input_tokens=7, flow_slug="their-flow")
    client.force_login(outsider)

    response = client.get(reverse("catalog:usage"))

    assert response.context["report"]["totals"]["calls"] == 1
    assertContains(response, "<code>theirs</code>", html=True)
    assertNotContains(response, "alpha")
    assertNotContains(response, "support")
    # Naming acme's model in the filter is no way in: it is not one of the choices.
    response = client.get(reverse("catalog:usage"), {"model": alpha.id})
    assertContains(response, "Select a valid choice.")
    assert "report" not in response.context
    rows = list(
        csv.DictReader(io.StringIO(client.get(reverse("catalog:usage-export")).content.decode()))
    )
    assert [row["model"] for row in rows] == ["theirs"]
    assert client.get(reverse("catalog:usage-data")).json()["models"]["labels"] == ["theirs"]


def test_a_limited_member_sees_only_their_own_calls(client, calls, workspace, make_member, alpha):
    limited = make_member("editor", limited=True)
    record(0, workspace_id=workspace.id, model=alpha, input_tokens=42, user_id=limited.id)
    client.force_login(limited)

    response = client.get(reverse("catalog:usage"))

    totals = response.context["report"]["totals"]
    assert (totals["calls"], totals["tokens_in"]) == (1, 42)
    # The flows of others' calls are not even offered as a filter.
    assertNotContains(response, "support")
    export = client.get(reverse("catalog:usage-export")).content.decode()
    assert len(list(csv.DictReader(io.StringIO(export)))) == 1


def test_a_limited_admin_sees_everything_as_admins_do(client, calls, make_member):
    admin = make_member("admin", limited=True)
    client.force_login(admin)

    assert client.get(reverse("catalog:usage")).context["report"]["totals"]["calls"] == 5


def test_a_role_without_view_usage_is_refused(client, calls, viewer):
    perm = Permission.objects.get(content_type__app_label="catalog", codename="view_usage")
    Group.objects.get(name=group_name("viewer")).permissions.remove(perm)
    client.force_login(viewer)

    for name in ("catalog:usage", "catalog:usage-data", "catalog:usage-export"):
        assert client.get(reverse(name)).status_code == 403


def test_pages_need_a_login_and_only_answer_get(client, owner):
    for name in ("catalog:usage", "catalog:usage-data", "catalog:usage-export"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    client.force_login(owner)
    for name in ("catalog:usage", "catalog:usage-data", "catalog:usage-export"):
        assert client.post(reverse(name)).status_code == 405


# --- JSON and CSV ---------------------------------------------------------------------------


def test_the_json_has_the_charts_series(client, calls, owner):
    client.force_login(owner)

    data = client.get(reverse("catalog:usage-data")).json()

    assert data["totals"]["calls"] == 5
    assert data["totals"]["total_cost"] == pytest.approx(0.022)
    assert len(data["days"]["labels"]) == 30
    assert data["days"]["labels"][-1] == TODAY.isoformat()
    assert data["days"]["calls"][-3:] == [2, 1, 2]
    assert data["days"]["input_tokens"][-3:] == [3000, 3000, 500]
    assert data["days"]["cost"][-3:] == pytest.approx([0.006, 0, 0.016])
    assert data["models"] == {
        "labels": ["alpha", "beta"],
        "calls": [3, 2],
        "tokens": [7500, 1200],
        "cost": pytest.approx([0.006, 0.016]),
    }
    # The page embeds the same series for its charts.
    page = client.get(reverse("catalog:usage"))
    assert page.context["series"] == data


def test_the_csv_lists_each_call_and_defuses_formulas(client, workspace, owner, alpha):
    record(
        0,
        workspace_id=workspace.id,
        model=alpha,
        input_tokens=1000,
        output_tokens=1000,
        flow_slug="=cmd|' /C calc'!A0",
        node_id="+node",
        error="@SUM(A1:A9)",
        user_id=owner.id,
    )
    client.force_login(owner)

    export = client.get(reverse("catalog:usage-export"))

    assert export["Content-Type"] == "text/csv"
    assert export["Content-Disposition"].startswith('attachment; filename="usage-acme-')
    (row,) = csv.DictReader(io.StringIO(export.content.decode()))
    assert row["flow"] == "'=cmd|' /C calc'!A0"
    assert row["node"] == "'+node"
    assert row["error"] == "'@SUM(A1:A9)"
    assert (row["model"], row["user"], row["source"]) == ("alpha", "olive", "flow")
    assert (row["input_tokens"], row["output_tokens"]) == ("1000", "1000")
    assert Decimal(row["cost"]) == Decimal("0.003")
    assert (row["cache_hit"], row["ok"], row["ttft_ms"]) == ("False", "True", "")


def test_the_csv_names_a_key_only_to_those_who_may_see_it(client, calls, owner, viewer, key):
    def key_cells(user) -> set[str]:
        client.force_login(user)
        export = client.get(reverse("catalog:usage-export"), {"flow": "support"})
        return {row["api_key"] for row in csv.DictReader(io.StringIO(export.content.decode()))}

    assert key_cells(owner) == {"ci-key", ""}
    assert key_cells(viewer) == {"(hidden)", ""}  # viewers do not see the keys page's keys


def test_the_key_filter_offers_only_keys_the_user_may_see(client, calls, viewer, owner, key):
    client.force_login(viewer)
    response = client.get(reverse("catalog:usage"), {"api_key": key.id})
    assertContains(response, "Select a valid choice.")

    client.force_login(owner)
    response = client.get(reverse("catalog:usage"), {"api_key": key.id})
    assert response.context["report"]["totals"]["calls"] == 1


# --- agents ---------------------------------------------------------------------------------


def test_calls_of_an_agent_s_steps_are_filtered_grouped_and_exported_by_agent(
    client, calls, workspace, owner, alpha
):
    ws = workspace.id
    for node_id, tokens in (("step-1", 100), ("step-2", 50), ("extract", 10)):
        record(0, workspace_id=ws, model=alpha, input_tokens=tokens, source="agent",
               agent_slug="helper", node_id=node_id, user_id=owner.id)  # fmt: skip
    record(0, workspace_id=ws, model=alpha, input_tokens=7, source="agent", agent_slug="scout")
    client.force_login(owner)

    page = client.get(reverse("catalog:usage"))

    assert page.status_code == 200
    report = page.context["report"]
    agents = [(r["agent_slug"], r["calls"], r["tokens"]) for r in report["by_agent"]]
    assert agents == [("helper", 3, 160), ("scout", 1, 7)]  # calls of no agent are not a row
    assertContains(page, '<option value="helper">helper</option>', html=True)
    assertContains(page, "<h2>Per agent</h2>", html=True)

    only = client.get(reverse("catalog:usage"), {"agent": "helper"})
    assert only.context["report"]["totals"]["calls"] == 3
    unknown = client.get(reverse("catalog:usage"), {"agent": "nobody"})
    assert "agent" in unknown.context["form"].errors  # not a choice: a form error, not a 500

    export = client.get(reverse("catalog:usage-export"), {"agent": "helper"})
    rows = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert sorted((row["agent"], row["node"]) for row in rows) == [
        ("helper", "extract"),
        ("helper", "step-1"),
        ("helper", "step-2"),
    ]
