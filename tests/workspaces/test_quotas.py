"""Request and token limits of API keys and workspaces: the Redis primitive under concurrency,
the 429 answers of the real API, the tokens of real model calls, and the keys page that sets
the limits."""

from __future__ import annotations

import secrets
import threading
import time

import httpx
import pytest

from catalog.services.usage import usage_record, usage_record_many, usage_row
from studio import redis_client
from studio.quotas import (
    MINUTE,
    PREFIX,
    Limit,
    quota_admission,
    quota_admit,
    quota_spend,
    quota_usage,
)
from workspaces.models import ApiKey, AuditEvent, Workspace
from workspaces.quotas import key_subject, workspace_admit, workspace_subject
from workspaces.services import api_key_create


@pytest.fixture(autouse=True)
def _fresh_counters(redis_server):
    """Counters of an earlier session (same ids, same day) must not count here."""
    client = redis_client.client()
    for name in client.scan_iter(match=f"{PREFIX}*", count=1000):
        client.delete(name)


@pytest.fixture(autouse=True)
def _same_minute():
    """Each test counts requests within one minute window: start it early in a minute."""
    if time.time() % MINUTE > MINUTE - 8:
        time.sleep(MINUTE - time.time() % MINUTE + 0.05)


def _subject() -> str:
    return f"test:{secrets.token_hex(6)}"


def _get_models(client, key: str):
    return client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})


def _make_key(workspace, name="limited", **limits) -> tuple[ApiKey, str]:
    return api_key_create(workspace=workspace, name=name, **limits)


# --- the primitive --------------------------------------------------------------------------


def test_requests_past_the_limit_are_refused_until_the_minute_ends():
    subject = _subject()
    limits = [Limit(subject, 3, None, label="The widget")]

    assert [quota_admit(limits) for _ in range(3)] == [None, None, None]
    refusal = quota_admit(limits)

    assert refusal is not None
    assert (refusal.subject, refusal.kind, refusal.limit) == (subject, "requests", 3)
    assert 1 <= refusal.retry_after <= MINUTE
    assert refusal.message.startswith("The widget allows 3 requests a minute")
    assert quota_usage(subject) == (3, 0)  # the refused one counted nothing


def test_a_refused_request_counts_against_no_subject():
    roomy, tight = _subject(), _subject()
    limits = [Limit(roomy, 100, None), Limit(tight, 1, None)]

    assert quota_admission(limits).requests == (1, 1)
    refusal = quota_admit(limits)
    quota_admit(limits)

    assert refusal is not None and refusal.subject == tight
    assert quota_usage(roomy) == (1, 0)
    assert quota_usage(tight) == (1, 0)


def test_tokens_spent_up_to_the_daily_quota_refuse_the_next_request():
    subject, other = _subject(), _subject()
    limits = [Limit(subject, None, 100)]
    quota_spend([subject, other], 99)
    assert quota_admit(limits) is None

    quota_spend([subject], 1)
    refusal = quota_admit(limits)

    assert refusal is not None and (refusal.kind, refusal.limit) == ("tokens", 100)
    assert 1 <= refusal.retry_after <= 86_400
    assert quota_usage(subject) == (1, 100)
    assert quota_usage(other) == (0, 99)
    day_key = next(redis_client.client().scan_iter(match=f"{PREFIX}d:{subject}:*"))
    assert 0 < redis_client.client().ttl(day_key) <= 86_400 + 3_600


def test_no_limits_count_requests_and_refuse_nothing():
    subject = _subject()
    assert all(quota_admit([Limit(subject, None, None)]) is None for _ in range(20))
    quota_spend([subject], 10**12)
    assert quota_admit([Limit(subject, None, None)]) is None
    assert quota_usage(subject) == (21, 10**12)
    assert quota_admit([]) is None


def test_forty_concurrent_requests_admit_exactly_the_limit():
    own, shared = _subject(), _subject()
    limits = [Limit(own, 10, None), Limit(shared, 1000, None)]
    start = threading.Barrier(40)
    outcomes: list = []

    def knock() -> None:
        start.wait()
        outcomes.append(quota_admit(limits))

    threads = [threading.Thread(target=knock) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(o is None for o in outcomes) == 10
    assert quota_usage(own) == (10, 0)
    assert quota_usage(shared) == (10, 0)  # the 30 refused ones took nothing from it


# --- the API --------------------------------------------------------------------------------


def test_a_key_past_its_rate_gets_429_with_retry_after(client, workspace):
    _, key = _make_key(workspace, requests_per_minute=3)

    answers = [_get_models(client, key) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining-Requests"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["X-RateLimit-Limit-Requests"] == "3"
    refused = answers[3]
    assert 1 <= int(refused.headers["Retry-After"]) <= MINUTE
    assert refused.headers["X-RateLimit-Remaining-Requests"] == "0"
    body = refused.json()["error"]
    assert (body["type"], body["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert body["message"].startswith("This API key allows 3 requests a minute")


def test_an_unlimited_key_gets_no_rate_limit_headers(client, workspace, api_key):
    answer = _get_models(client, api_key)
    assert answer.status_code == 200
    assert "X-RateLimit-Limit-Requests" not in answer.headers


def test_a_run_read_is_limited_too(client, workspace, echo_model, make_flow):
    from flows.models import RunSource
    from flows.services import run_create

    flow = make_flow(echo_model)
    api_key, key = _make_key(workspace, requests_per_minute=1)
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "hi"},
        source=RunSource.API,
        api_key=api_key,
    )
    headers = {"Authorization": f"Bearer {key}"}

    assert client.get(f"/api/v1/runs/{run.id}", headers=headers).status_code == 200
    refused = client.get(f"/api/v1/runs/{run.id}", headers=headers)

    assert refused.status_code == 429 and "Retry-After" in refused.headers


def test_the_workspace_rate_bounds_all_its_keys_and_refusals_spend_none_of_it(client, workspace):
    Workspace.objects.filter(id=workspace.id).update(requests_per_minute=3)
    _, tight = _make_key(workspace, "tight", requests_per_minute=1)
    _, roomy = _make_key(workspace, "roomy")

    assert _get_models(client, tight).status_code == 200
    # Refused by the key's own limit: the workspace's budget stays with the other key.
    assert [_get_models(client, tight).status_code for _ in range(3)] == [429] * 3
    assert [_get_models(client, roomy).status_code for _ in range(2)] == [200, 200]
    refused = _get_models(client, roomy)

    assert refused.status_code == 429
    assert refused.json()["error"]["message"].startswith("This workspace allows 3 requests")
    assert refused.headers["X-RateLimit-Limit-Requests"] == "3"
    assert quota_usage(workspace_subject(workspace.id))[0] == 3


def test_another_workspace_is_not_limited_by_this_one(client, workspace):
    from workspaces.services import workspace_create

    Workspace.objects.filter(id=workspace.id).update(requests_per_minute=1)
    _, key = _make_key(workspace)
    _, other_key = _make_key(workspace_create(slug="elsewhere", name="Elsewhere"), "other")
    assert [_get_models(client, key).status_code for _ in range(2)] == [200, 429]
    assert [_get_models(client, other_key).status_code for _ in range(3)] == [200] * 3


def test_a_wrong_key_is_401_whatever_the_limits(client, workspace):
    Workspace.objects.filter(id=workspace.id).update(requests_per_minute=1)
    for _ in range(3):
        assert _get_models(client, "sk-studio-00000000.wrong").status_code == 401


def test_tokens_recorded_for_a_key_past_its_quota_refuse_it_with_insufficient_quota(
    client, workspace
):
    api_key, key = _make_key(workspace, tokens_per_day=10)
    _, sibling = _make_key(workspace, "sibling")
    usage_record(
        workspace_id=workspace.id,
        model=None,
        input_tokens=4,
        output_tokens=5,
        api_key_id=api_key.id,
    )
    assert _get_models(client, key).status_code == 200

    usage_record(workspace_id=workspace.id, model=None, input_tokens=1, api_key_id=api_key.id)
    refused = _get_models(client, key)

    assert refused.status_code == 429
    body = refused.json()["error"]
    assert (body["type"], body["code"]) == ("insufficient_quota", "insufficient_quota")
    assert 60 <= int(refused.headers["Retry-After"]) or time.gmtime().tm_hour == 23
    assert _get_models(client, sibling).status_code == 200  # the workspace has no quota
    assert quota_usage(key_subject(api_key.id))[1] == 10
    assert quota_usage(workspace_subject(workspace.id))[1] == 10


def test_a_members_model_calls_count_against_the_workspace_quota(
    client, workspace, owner, django_capture_on_commit_callbacks
):
    Workspace.objects.filter(id=workspace.id).update(tokens_per_day=50)
    _, key = _make_key(workspace)
    # A member's call in the studio (no key), and a cache hit, which costs nothing; written
    # with the caller's transaction, as a run's node results are.
    row = usage_row(
        workspace_id=workspace.id,
        model=None,
        input_tokens=30,
        output_tokens=20,
        user_id=owner.id,
        source="playground",
    )
    cache_hit = usage_row(workspace_id=workspace.id, model=None, input_tokens=999, cache_hit=True)
    with django_capture_on_commit_callbacks(execute=True):
        usage_record_many([row, cache_hit])
        assert quota_usage(workspace_subject(workspace.id))[1] == 0  # not before the commit

    assert quota_usage(workspace_subject(workspace.id))[1] == 50
    refused = _get_models(client, key)
    assert refused.status_code == 429
    assert refused.json()["error"]["message"].startswith("This workspace has spent its 50")


def test_workspace_admit_counts_a_members_request(workspace):
    Workspace.objects.filter(id=workspace.id).update(requests_per_minute=2)
    assert workspace_admit(workspace.id) is None
    assert workspace_admit(Workspace.objects.get(id=workspace.id)) is None
    refusal = workspace_admit(workspace.id)
    assert refusal is not None and refusal.subject == workspace_subject(workspace.id)


def test_a_real_run_spends_its_tokens_and_the_next_request_is_refused(
    live_studio, workspace, echo_model, make_flow
):
    make_flow(echo_model)
    api_key, key = _make_key(workspace, tokens_per_day=3)
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{live_studio}/api/v1/flows/assistant/runs"

    ran = httpx.post(
        url, json={"inputs": {"message": "one two three"}}, headers=headers, timeout=60
    )
    assert ran.status_code == 200, ran.text
    spent = ran.json()["usage"]["input_tokens"] + ran.json()["usage"]["output_tokens"]
    assert spent >= 3
    refused = httpx.post(url, json={"inputs": {"message": "again"}}, headers=headers, timeout=60)

    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "insufficient_quota"
    assert quota_usage(key_subject(api_key.id))[1] == spent


def test_forty_concurrent_requests_to_the_live_server_admit_exactly_ten(
    studio_server, transactional_db, workspace
):
    _, key = _make_key(workspace, requests_per_minute=10)
    start = threading.Barrier(40)
    codes: list[int] = []

    def knock() -> None:
        start.wait()
        answer = httpx.get(
            f"{studio_server}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
        codes.append(answer.status_code)

    threads = [threading.Thread(target=knock) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(codes) == [200] * 10 + [429] * 30


# --- the keys page --------------------------------------------------------------------------


def test_an_admin_creates_a_key_with_limits_and_sees_its_usage(client, workspace, owner):
    client.force_login(owner)
    response = client.post(
        "/keys/create",
        {
            "name": "metered",
            "flow_access": "none",
            "expires_in": "30",
            "requests_per_minute": "60",
            "tokens_per_day": "100000",
        },
    )

    assert response.status_code == 200, response.text
    api_key = ApiKey.objects.get(name="metered")
    assert (api_key.requests_per_minute, api_key.tokens_per_day) == (60, 100000)
    created = AuditEvent.objects.get(action="key.create")
    assert created.after["requests_per_minute"] == 60

    quota_spend([key_subject(api_key.id)], 1234)
    quota_admit([Limit(key_subject(api_key.id), 60, None)])
    page = client.get("/keys/")
    assert "1 / 60 requests this minute" in page.text
    assert "1234 / 100000 tokens today" in page.text


def test_an_admin_changes_a_keys_limits_and_it_is_audited(client, workspace, owner):
    api_key, _ = _make_key(workspace, requests_per_minute=5)
    client.force_login(owner)

    response = client.post(
        f"/keys/{api_key.id}/limits",
        {f"limits{api_key.id}-requests_per_minute": "", f"limits{api_key.id}-tokens_per_day": "7"},
    )

    assert response.status_code == 302
    api_key.refresh_from_db()
    assert (api_key.requests_per_minute, api_key.tokens_per_day) == (None, 7)
    event = AuditEvent.objects.get(action="key.limits")
    assert event.before == {"requests_per_minute": 5, "tokens_per_day": None}
    assert event.after == {"requests_per_minute": None, "tokens_per_day": 7}
    assert event.actor == owner


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("requests_per_minute", "-1", "greater than or equal to 1"),
        ("requests_per_minute", "0", "greater than or equal to 1"),
        ("requests_per_minute", "1000001", "less than or equal to 1000000"),
        ("tokens_per_day", "1000000000001", "less than or equal to 1000000000000"),
        ("tokens_per_day", "99999999999999999999999999", "less than or equal to"),
        ("tokens_per_day", "lots", "Enter a whole number"),
        ("requests_per_minute", "2.5", "Enter a whole number"),
    ],
)
def test_bad_limits_are_refused_with_a_form_error_and_change_nothing(
    client, workspace, owner, field, value, message
):
    api_key, _ = _make_key(workspace, requests_per_minute=5, tokens_per_day=9)
    client.force_login(owner)
    audited = AuditEvent.objects.count()

    on_key = client.post(f"/keys/{api_key.id}/limits", {f"limits{api_key.id}-{field}": value})
    on_workspace = client.post("/workspace/limits", {f"workspace-{field}": value})
    on_create = client.post("/keys/create", {"name": "bad", "expires_in": "30", field: value})

    for response in (on_key, on_workspace, on_create):
        assert response.status_code == 400
        assert message in response.text
    api_key.refresh_from_db()
    workspace.refresh_from_db()
    assert (api_key.requests_per_minute, api_key.tokens_per_day) == (5, 9)
    assert (workspace.requests_per_minute, workspace.tokens_per_day) == (None, None)
    assert not ApiKey.objects.filter(name="bad").exists()
    assert AuditEvent.objects.count() == audited


def test_the_service_refuses_bad_limits_whoever_calls_it(workspace):
    from django.core.exceptions import ValidationError

    for bad in (0, -5, 10**13, True, "12", 1.5):
        with pytest.raises(ValidationError):
            api_key_create(workspace=workspace, name="x", requests_per_minute=bad)
    assert not ApiKey.objects.filter(name="x").exists()


def test_an_admin_sets_the_workspace_limits_and_everyone_sees_the_usage(
    client, workspace, owner, make_member
):
    admin = make_member("admin")
    client.force_login(admin)

    response = client.post(
        "/workspace/limits",
        {"workspace-requests_per_minute": "120", "workspace-tokens_per_day": "5000"},
    )

    assert response.status_code == 302
    workspace.refresh_from_db()
    assert (workspace.requests_per_minute, workspace.tokens_per_day) == (120, 5000)
    event = AuditEvent.objects.get(action="workspace.limits")
    assert event.after == {"requests_per_minute": 120, "tokens_per_day": 5000}
    assert event.actor == admin
    quota_spend([workspace_subject(workspace.id)], 42)
    page = client.get("/keys/")
    assert "42 / 5000 tokens today" in page.text
    assert 'name="workspace-tokens_per_day"' in page.text


def test_who_may_not_manage_keys_may_not_set_limits(client, workspace, owner, make_member):
    api_key, _ = _make_key(workspace, requests_per_minute=5)
    editor = make_member("editor")
    client.force_login(editor)

    page = client.get("/keys/")
    assert 'name="workspace-requests_per_minute"' not in page.text
    denied_key = client.post(
        f"/keys/{api_key.id}/limits", {f"limits{api_key.id}-requests_per_minute": "9"}
    )
    denied_workspace = client.post("/workspace/limits", {"workspace-requests_per_minute": "9"})

    assert denied_key.status_code in (403, 404)
    assert denied_workspace.status_code == 403
    api_key.refresh_from_db()
    workspace.refresh_from_db()
    assert api_key.requests_per_minute == 5 and workspace.requests_per_minute is None


def test_another_workspaces_key_limits_are_404(client, workspace, outsider):
    api_key, _ = _make_key(workspace, requests_per_minute=5)
    client.force_login(outsider)

    response = client.post(
        f"/keys/{api_key.id}/limits", {f"limits{api_key.id}-requests_per_minute": "9"}
    )
    # Their own workspace's limits change, never this one's.
    client.post("/workspace/limits", {"workspace-requests_per_minute": "9"})

    assert response.status_code == 404
    api_key.refresh_from_db()
    workspace.refresh_from_db()
    assert api_key.requests_per_minute == 5 and workspace.requests_per_minute is None
    assert Workspace.objects.get(slug="other").requests_per_minute == 9


def test_limits_routes_take_post_only(client, workspace, owner):
    api_key, _ = _make_key(workspace)
    client.force_login(owner)
    assert client.get(f"/keys/{api_key.id}/limits").status_code == 405
    assert client.get("/workspace/limits").status_code == 405


def test_anonymous_visitors_are_sent_to_log_in(client, workspace):
    api_key, _ = _make_key(workspace)
    response = client.post(
        f"/keys/{api_key.id}/limits", {f"limits{api_key.id}-requests_per_minute": "9"}
    )
    assert response.status_code == 302 and "/accounts/login/" in response.url
    api_key.refresh_from_db()
    assert api_key.requests_per_minute is None
