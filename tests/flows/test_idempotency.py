"""``Idempotency-Key`` on run creation: a retried POST answers with the run the first one
started, never a second run; the key belongs to its API key and to its request."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from flows.models import Run


@pytest.fixture
def flow(echo_model, make_flow):
    return make_flow(echo_model)


def post(base: str, key: str, body: dict, idempotency_key: str | None, slug: str = "assistant"):
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return httpx.post(f"{base}/api/v1/flows/{slug}/runs", json=body, headers=headers, timeout=60)


def test_a_retried_post_answers_with_the_first_run(live_studio, flow, api_key):
    body = {"inputs": {"message": "charge the card once"}}

    first = post(live_studio, api_key, body, "order-1234")
    again = post(live_studio, api_key, body, "order-1234")
    streamed = post(live_studio, api_key, body | {"stream": True}, "order-1234")

    assert first.status_code == again.status_code == streamed.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert first.json()["run_id"] in streamed.text  # the same run's events, from the start
    assert Run.objects.count() == 1
    # Without the header every POST is a run of its own.
    post(live_studio, api_key, body, None)
    assert Run.objects.count() == 2


def test_posts_racing_with_one_key_start_one_run(live_studio, flow, api_key):
    body = {"inputs": {"message": "at the same time"}}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(live_studio, api_key, body, "race-1"), range(8)))

    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["run_id"] for a in answers}) == 1
    assert Run.objects.count() == 1
    assert sum("Idempotent-Replayed" not in a.headers for a in answers) == 1


def test_a_key_used_for_another_request_is_refused(live_studio, echo_model, make_flow, api_key):
    make_flow(echo_model)
    make_flow(echo_model, slug="other")
    post(live_studio, api_key, {"inputs": {"message": "first"}}, "k-1")

    other_inputs = post(live_studio, api_key, {"inputs": {"message": "second"}}, "k-1")
    other_flow = post(live_studio, api_key, {"inputs": {"message": "first"}}, "k-1", "other")

    for refused in (other_inputs, other_flow):
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "idempotency_key_reused"
    assert Run.objects.count() == 1


def test_each_api_key_has_its_own_keys(live_studio, flow, api_key, workspace):
    from workspaces.services import api_key_create

    another = api_key_create(workspace=workspace, name="another")[1]
    body = {"inputs": {"message": "same words"}}

    mine = post(live_studio, api_key, body, "shared-name").json()["run_id"]
    theirs = post(live_studio, another, body, "shared-name").json()["run_id"]

    assert mine != theirs
    assert Run.objects.count() == 2


@pytest.mark.parametrize("bad", ["", "x" * 256, "with space", "naïve"])
def test_a_malformed_key_is_refused_and_starts_nothing(live_studio, flow, api_key, bad):
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": bad.encode("utf-8")}
    response = httpx.post(
        f"{live_studio}/api/v1/flows/assistant/runs",
        json={"inputs": {"message": "hi"}},
        headers=headers,
        timeout=60,
    )
    if bad == "":
        assert response.status_code == 200  # an empty header is no key at all
        return
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert not Run.objects.exists()
