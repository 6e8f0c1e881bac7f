"""The dataset pages: creating a dataset for a flow, cases by hand, CSV and JSONL imports (good
files, and bad ones that store nothing), export read back, versions, adding a run as a case, and
who may do what (403 for a viewer's edits, 404 across workspaces, 405 for a wrong method)."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from agents.services import agent_create, agent_draft_save, agent_publish
from conversations.services import conversation_start, message_feedback, message_send
from evals.models import Case, CaseOrigin, Dataset
from evals.schemas import CaseData
from evals.services import case_add, dataset_create
from evals.transfer import MAX_ROWS
from flows.models import Run, RunSource, RunStatus
from flows.services import run_create


@pytest.fixture
def flow(make_flow, echo_model):
    return make_flow(echo_model)


@pytest.fixture
def dataset(flow, workspace, owner):
    dataset = dataset_create(
        workspace=workspace, name="Smoke", slug="smoke", target=flow, actor=owner
    )
    case_add(
        dataset=dataset,
        data=CaseData(inputs={"message": "Hi"}, expected_output="Hello", tags=["greeting"]),
    )
    return dataset


def url(name: str, *args) -> str:
    return reverse(f"evals:{name}", args=args)


def upload(name: str, text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode())


# --- the pages ------------------------------------------------------------------------------


def test_an_owner_creates_a_dataset_for_a_flow_and_sees_it_listed(client, owner, flow):
    client.force_login(owner)
    page = client.get(url("dataset-new"))
    assert page.status_code == 200 and f"flow:{flow.slug}" in page.content.decode()
    response = client.post(url("dataset-new"), {"name": "Greetings", "target": f"flow:{flow.slug}"})
    assert response.status_code == 302
    dataset = Dataset.objects.get(slug="greetings")
    assert (dataset.flow, dataset.agent) == (flow, None)
    listed = client.get(url("dataset-list")).content.decode()
    assert "Greetings" in listed and "Evaluations" in listed


def test_cases_are_added_edited_and_deleted_by_hand(client, owner, dataset):
    client.force_login(owner)
    response = client.post(
        url("case-add", dataset.slug),
        {
            "message": "What is 2+2?",
            "expected_output": "4",
            "expected_sources": "maths.pdf\n\nsums.txt",
            "tags": "maths, easy",
        },
    )
    assert response.status_code == 302
    case = dataset.cases.order_by("id").last()
    assert case.inputs == {"message": "What is 2+2?"}
    assert (case.expected_sources, case.tags) == (["maths.pdf", "sums.txt"], ["maths", "easy"])
    response = client.post(
        url("case-edit", dataset.slug, case.id),
        {"inputs": '{"message": "2+3?", "lang": "en"}', "expected_output": "5"},
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.inputs, case.expected_output, case.tags) == (
        {"message": "2+3?", "lang": "en"},
        "5",
        [],
    )
    response = client.post(url("case-delete", dataset.slug, case.id), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'id="cases"' in response.content.decode()
    assert not Case.objects.filter(id=case.id).exists()


def test_a_case_without_inputs_or_with_bad_json_is_refused(client, owner, dataset):
    client.force_login(owner)
    response = client.post(url("case-add", dataset.slug), {"expected_output": "x"})
    assert response.status_code == 400
    assert "a case needs inputs" in response.content.decode()
    response = client.post(url("case-add", dataset.slug), {"inputs": "[1,"})
    assert response.status_code == 400 and "Not valid JSON" in response.content.decode()
    assert dataset.cases.count() == 1


# --- import and export ----------------------------------------------------------------------

CSV = (
    "input,expected_output,criteria,expected_sources,tags\n"
    'What is ATP?,"Energy, for cells",Mentions energy,bio.pdf|cells.pdf,bio\n'
    "Capital of France?,Paris,,,geo\n"
)


def test_a_csv_file_is_imported(client, owner, dataset):
    client.force_login(owner)
    response = client.post(url("dataset-import", dataset.slug), {"file": upload("c.csv", CSV)})
    assert response.status_code == 302
    imported = list(dataset.cases.filter(origin=CaseOrigin.IMPORT).order_by("id"))
    assert [c.inputs["message"] for c in imported] == ["What is ATP?", "Capital of France?"]
    assert imported[0].expected_output == "Energy, for cells"
    assert imported[0].expected_sources == ["bio.pdf", "cells.pdf"]


def test_a_jsonl_file_is_imported(client, owner, dataset):
    client.force_login(owner)
    lines = [
        {"input": "Hi", "expected_output": "Hello"},
        {"inputs": {"message": "Yo", "lang": "en"}, "tags": ["slang"], "criteria": "Friendly"},
    ]
    body = "\n".join(json.dumps(line) for line in lines) + "\n\n"
    response = client.post(url("dataset-import", dataset.slug), {"file": upload("c.jsonl", body)})
    assert response.status_code == 302
    last = dataset.cases.order_by("id").last()
    assert (last.inputs, last.tags, last.criteria) == (
        {"message": "Yo", "lang": "en"},
        ["slang"],
        "Friendly",
    )


@pytest.mark.parametrize(
    "name, body, errors",
    [
        (
            "bad.jsonl",
            '{"input": "ok"}\nnot json\n["a list"]\n'
            '{"input": "x", "colour": "red"}\n{"tags": ["t"]}\n',
            [
                "Line 2: not JSON",
                "Line 3: not a JSON object",
                "Line 4: unknown column 'colour'",
                "Line 5: inputs: Value error, a case needs inputs",
            ],
        ),
        ("bad.csv", "input,inputs\nfine,\nx,{oops\n", ["Line 3: Expecting property name"]),
        ("cases.txt", "input\nx\n", ["Choose a .csv or .jsonl file."]),
        ("empty.csv", "input\n", ["The file holds no cases."]),
        ("latin.csv", None, ["The file is not UTF-8 text."]),
    ],
)
def test_a_bad_file_stores_nothing_and_says_which_rows(client, owner, dataset, name, body, errors):
    client.force_login(owner)
    file = SimpleUploadedFile(name, body.encode() if body else "input\ncafé\n".encode("latin-1"))
    response = client.post(url("dataset-import", dataset.slug), {"file": file})
    assert response.status_code == 400
    page = response.content.decode()
    for error in errors:
        assert error.replace("'", "&#x27;") in page
    assert dataset.cases.count() == 1


def test_too_many_rows_or_bytes_are_refused(client, owner, dataset, settings):
    client.force_login(owner)
    rows = "input\n" + "".join(f"q{i}\n" for i in range(MAX_ROWS + 1))
    response = client.post(url("dataset-import", dataset.slug), {"file": upload("many.csv", rows)})
    assert response.status_code == 400 and f"more than {MAX_ROWS} rows" in response.content.decode()
    huge = upload("huge.jsonl", '{"input": "' + "x" * (3 * 1024 * 1024) + '"}\n')
    response = client.post(url("dataset-import", dataset.slug), {"file": huge})
    assert response.status_code == 400 and "larger than 2 MB" in response.content.decode()
    assert dataset.cases.count() == 1


@pytest.mark.parametrize("fmt, ext", [("jsonl", "jsonl"), ("csv", "csv")])
def test_an_export_imports_back_to_the_same_cases(
    client, owner, dataset, flow, workspace, fmt, ext
):
    client.force_login(owner)
    case_add(
        dataset=dataset,
        data=CaseData(inputs={"message": "a, b", "n": 2}, expected_sources=["x.pdf", "y.pdf"]),
    )
    response = client.get(url("dataset-export", dataset.slug), {"format": fmt})
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="smoke.{ext}"'
    copy = dataset_create(workspace=workspace, name="Copy", slug="copy", target=flow)
    file = upload(f"smoke.{ext}", response.content.decode())
    assert client.post(url("dataset-import", "copy"), {"file": file}).status_code == 302
    fields = ("inputs", "expected_output", "criteria", "expected_sources", "tags")
    assert list(copy.cases.values_list(*fields)) == list(dataset.cases.values_list(*fields))


# --- versions -------------------------------------------------------------------------------


def test_a_version_freezes_the_cases(client, owner, dataset):
    client.force_login(owner)
    assert client.post(url("version-create", dataset.slug), {"note": "first"}).status_code == 302
    dataset.cases.update(expected_output="changed")
    client.post(url("version-create", dataset.slug))
    first, second = dataset.versions.order_by("number")
    assert (first.number, first.note, second.number) == (1, "first", 2)
    assert first.cases[0]["expected_output"] == "Hello"
    assert second.cases[0]["expected_output"] == "changed"
    assert first.cases[0]["case_id"] == dataset.cases.get().id


# --- from a run -----------------------------------------------------------------------------


def test_a_finished_run_becomes_a_case(client, owner, dataset, flow):
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "Hi there"},
        source=RunSource.STUDIO,
        user=owner,
    )
    client.force_login(owner)
    page = client.get(reverse("flows:run-detail", args=[run.id])).content.decode()
    assert "Add to dataset" not in page  # not finished yet
    # In a ``db`` test no worker runs it: written as the executor ends a run.
    run.status, run.outputs = RunStatus.SUCCEEDED, {"text": "Hello there"}
    run.save()
    page = client.get(reverse("flows:run-detail", args=[run.id])).content.decode()
    assert url("case-from-run", run.id) in page
    chooser = client.get(url("case-from-run", run.id)).content.decode()
    assert 'value="smoke"' in chooser
    response = client.post(url("case-from-run", run.id), {"dataset": "smoke"})
    assert response.status_code == 302
    case = dataset.cases.order_by("id").last()
    assert (case.inputs, case.expected_output) == ({"message": "Hi there"}, "Hello there")
    assert (case.origin, case.origin_run) == (CaseOrigin.RUN, str(run.id))


# --- permissions ----------------------------------------------------------------------------


def test_a_viewer_reads_but_cannot_change(client, viewer, dataset):
    client.force_login(viewer)
    page = client.get(url("dataset-detail", dataset.slug))
    assert page.status_code == 200 and "Add a case" not in page.content.decode()
    assert client.get(url("dataset-export", dataset.slug)).status_code == 200
    case = dataset.cases.get()
    for response in (
        client.post(url("case-add", dataset.slug), {"message": "x"}),
        client.post(url("case-edit", dataset.slug, case.id), {"message": "x"}),
        client.post(url("case-delete", dataset.slug, case.id)),
        client.post(url("dataset-import", dataset.slug), {"file": upload("c.csv", CSV)}),
        client.post(url("version-create", dataset.slug)),
        client.post(url("dataset-delete", dataset.slug)),
        client.get(url("dataset-new")),
    ):
        assert response.status_code == 403
    assert dataset.cases.count() == 1 and not dataset.versions.exists()
    assert Dataset.objects.filter(id=dataset.id).exists()


def test_another_workspace_gets_404(client, outsider, dataset):
    client.force_login(outsider)
    case = dataset.cases.get()
    for response in (
        client.get(url("dataset-detail", dataset.slug)),
        client.get(url("dataset-export", dataset.slug)),
        client.post(url("case-edit", dataset.slug, case.id), {"message": "x"}),
        client.post(url("dataset-delete", dataset.slug)),
    ):
        assert response.status_code == 404
    assert "Smoke" not in client.get(url("dataset-list")).content.decode()
    assert Dataset.objects.filter(id=dataset.id).exists()


def test_a_limited_member_sees_only_datasets_of_what_is_shared(client, make_member, dataset):
    client.force_login(make_member("editor", limited=True))
    assert client.get(url("dataset-detail", dataset.slug)).status_code == 404
    assert "Smoke" not in client.get(url("dataset-list")).content.decode()


def test_wrong_methods_get_405(client, owner, dataset):
    client.force_login(owner)
    case = dataset.cases.get()
    assert client.post(url("dataset-detail", dataset.slug)).status_code == 405
    assert client.post(url("dataset-export", dataset.slug)).status_code == 405
    assert client.get(url("case-delete", dataset.slug, case.id)).status_code == 405
    assert client.get(url("dataset-import", dataset.slug)).status_code == 405
    assert client.get(url("version-create", dataset.slug)).status_code == 405
    assert client.get(url("dataset-delete", dataset.slug)).status_code == 405


def test_a_rated_answer_is_added_from_the_review_page(client, owner, dataset, flow):
    conversation = conversation_start(flow=flow, user=owner)
    answer = message_send(
        conversation=conversation, text="Hi?", source=RunSource.CHAT, user=owner
    ).answer
    # In a ``db`` test no worker runs it: written as the executor ends a run.
    Run.objects.filter(id=answer.run_id).update(
        status=RunStatus.SUCCEEDED, outputs={"text": "Whatever."}
    )
    message_feedback(message=answer, rating=-1, comment="Too vague")
    client.force_login(owner)
    review = reverse("conversations:review-detail", args=[flow.slug, conversation.id])
    assert url("case-from-run", answer.run_id) in client.get(review).content.decode()
    assert client.post(url("case-from-run", answer.run_id), {"dataset": "smoke"}).status_code == 302
    case = dataset.cases.order_by("id").last()
    assert (case.origin, case.expected_output, case.criteria) == (
        CaseOrigin.FEEDBACK,
        "",
        "Rated bad: Too vague",
    )


def test_a_dataset_for_an_agent_follows_the_agents_access(
    client, workspace, owner, viewer, echo_model
):
    agent = agent_create(workspace=workspace, name="Helper", slug="helper", actor=owner)
    agent_draft_save(agent=agent, spec={"model": echo_model.slug}, actor=owner)
    agent_publish(agent=agent, actor=owner)
    client.force_login(owner)
    response = client.post(url("dataset-new"), {"name": "Helper cases", "target": "agent:helper"})
    assert response.status_code == 302
    dataset = Dataset.objects.get(slug="helper-cases")
    assert (dataset.agent, dataset.flow) == (agent, None)
    # A run of the agent's backing flow is added to the agent's datasets.
    agent.refresh_from_db()
    run = run_create(
        flow=agent.flow,
        version=agent.flow.published_version,
        inputs={"message": "Help?"},
        source=RunSource.STUDIO,
        user=owner,
    )
    Run.objects.filter(id=run.id).update(status=RunStatus.SUCCEEDED, outputs={"text": "Sure."})
    chooser = client.get(url("case-from-run", run.id)).content.decode()
    assert 'value="helper-cases"' in chooser
    client.force_login(viewer)
    assert client.get(url("dataset-detail", dataset.slug)).status_code == 200
    # A viewer may not add to it: the dataset is not among those offered.
    response = client.post(url("case-from-run", run.id), {"dataset": "helper-cases"})
    assert response.status_code == 404 and not dataset.cases.exists()


def test_a_taken_slug_is_refused_on_the_form(client, owner, dataset, flow):
    client.force_login(owner)
    response = client.post(
        url("dataset-new"), {"name": "Other", "slug": "smoke", "target": f"flow:{flow.slug}"}
    )
    assert response.status_code == 400 and Dataset.objects.filter(slug="smoke").count() == 1
