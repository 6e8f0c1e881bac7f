"""The flow editor in a real browser: a person builds a flow on the canvas, sets a prompt with the
variable picker, the draft saves itself, a test run streams its answer, and the flow is
published."""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import WebSocketRoute, expect

from flows.demo import assistant_graph
from flows.models import Flow, VersionKind
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e

MESSAGE = "hello from the editor"


@pytest.fixture
def page(browser, live_studio):
    """A desktop-sized window: the editor shows the palette, canvas and settings side by side."""
    context = browser.new_context(base_url=live_studio, viewport={"width": 1500, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


@pytest.fixture
def new_flow(workspace, owner, echo_model):
    """A flow whose draft is an empty canvas, as a person starts one."""
    from catalog.services import model_create
    from flows.services import flow_create
    from flows.services.drafts import flow_draft_save

    flow = flow_create(
        workspace=workspace,
        slug="built",
        name="Built in the editor",
        graph=assistant_graph(model="echo"),
        user=owner,
    )
    flow_draft_save(flow=flow, graph={"nodes": [], "edges": []}, user=owner)
    model_create(slug="slower", name="Slower", engine="echo", settings={"delay_ms": 300})
    return flow


def drop(page, node_type: str, x: int, y: int) -> None:
    pane = page.locator(".react-flow__pane")
    page.locator(f'.palette-item[data-type="{node_type}"]').drag_to(
        pane, target_position={"x": x, "y": y}
    )


def handle(page, node: str, port: str, kind: str):
    return page.locator(
        f'.react-flow__node[data-id="{node}"] .react-flow__handle.{kind}[data-handleid="{port}"]'
    )


def connect(page, source: tuple[str, str], target: tuple[str, str]) -> None:
    """Drag from an output handle to an input handle, as a hand would."""
    start = handle(page, *source, "source").bounding_box()
    end = handle(page, *target, "target").bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=20)
    page.mouse.up()


def saved(page) -> None:
    expect(page.get_by_test_id("save-state")).to_contain_text("Draft saved", timeout=10_000)


def test_a_person_builds_runs_and_publishes_a_flow(page, owner, new_flow):
    log_in(page, "olive", PASSWORD)
    page.goto(f"/flows/{new_flow.slug}/edit")
    expect(page.locator(".react-flow__pane")).to_be_visible()
    expect(page.locator(".react-flow__node")).to_have_count(0)

    drop(page, "input", 140, 160)
    drop(page, "llm", 460, 160)
    drop(page, "output", 780, 160)

    nodes = page.locator(".react-flow__node")
    expect(nodes).to_have_count(3)
    for node in ("input_1", "llm_1", "output_1"):
        expect(page.locator(f'.react-flow__node[data-id="{node}"]')).to_be_visible()
    # Unconnected nodes have problems, marked on them once the draft is saved.
    saved(page)
    expect(page.get_by_test_id("problem-count")).not_to_have_text("No problems")
    expect(page.locator('.react-flow__node[data-id="output_1"] .node-problems')).to_be_visible()

    connect(page, ("input_1", "message"), ("llm_1", "message"))
    connect(page, ("llm_1", "text"), ("output_1", "text"))
    page.screenshot(path="/tmp/editor-connected.png")
    expect(page.locator(".react-flow__edge")).to_have_count(2)
    # A second wire into a taken input replaces the first, and an output into its own node is
    # refused: the count stays.
    connect(page, ("input_1", "message"), ("llm_1", "message"))
    connect(page, ("llm_1", "text"), ("llm_1", "message"))
    expect(page.locator(".react-flow__edge")).to_have_count(2)

    # The LLM's settings, in the side panel: the model is the workspace's first chat model.
    page.locator('.react-flow__node[data-id="llm_1"] .node-header').click()
    panel = page.get_by_role("complementary", name="Node settings")
    expect(panel.get_by_role("heading", name="LLM llm_1")).to_be_visible()
    expect(panel.get_by_label("Model")).to_have_value("echo")

    # A slower echo, picked from the catalog picker: 300 ms a token, to see the answer stream.
    panel.get_by_label("Model").select_option(label="Slower (slower)")
    expect(panel.get_by_label("Model")).to_have_value("slower")
    # The panel applies the change with a request: let its answer land before typing on (on a
    # loaded machine it can arrive after the next keystrokes, which the note on the panel's race
    # in the closing note describes).
    expect(page.locator("#node-form.htmx-request")).to_have_count(0)
    expect(
        panel.locator('form[data-node="llm_1"] select option[value="slower"]:checked')
    ).to_have_count(1)

    prompt = panel.get_by_label("Prompt", exact=True)
    prompt.fill("Reply: ")
    prompt.press("End")
    panel.get_by_label("Insert a variable into Prompt").click()
    panel.get_by_role("menuitem", name="input_1.message").click()
    expect(panel.get_by_label("Prompt", exact=True)).to_have_value("Reply: {{message}}")

    # The picker writes the short {{message}}: it reads the edge already drawn into the port.
    llm = page.locator('.react-flow__node[data-id="llm_1"]')
    expect(llm.locator('[data-handleid="message"]')).to_have_count(1)
    expect(page.locator(".react-flow__edge.reference-edge")).to_have_count(0)
    saved(page)
    expect(page.get_by_test_id("problem-count")).to_have_text("No problems")

    new_flow.refresh_from_db()
    llm_node = next(n for n in new_flow.draft["nodes"] if n["id"] == "llm_1")
    assert llm_node["config"]["prompt"] == "Reply: {{message}}"
    assert llm_node["config"]["model"] == "slower"
    assert sorted((e["source"], e["target"]) for e in new_flow.draft["edges"]) == [
        ("input_1", "llm_1"),
        ("llm_1", "output_1"),
    ]

    # A test run with an input typed in the run panel: the answer streams in, over a socket
    # that takes the events ready together in one message.
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.get_by_role("button", name="Test run").first.click()
    run_panel = page.get_by_role("region", name="Test run")
    run_panel.get_by_label("Message").fill(MESSAGE)
    run_panel.get_by_role("button", name="Run", exact=True).click()

    stream = run_panel.locator('.run-node[data-node="llm_1"] .run-stream')
    expect(stream).to_contain_text("Reply:")
    assert "editor" not in stream.text_content()  # a partial answer: it streams
    expect(stream).to_have_text(f"Reply: {MESSAGE}")
    expect(run_panel.get_by_test_id("run-status")).to_have_text("Succeeded")
    expect(run_panel.get_by_test_id("run-result")).to_contain_text(f"Reply: {MESSAGE}")
    expect(llm.locator(".studio-node")).to_have_class(re.compile(r"\brun-succeeded\b"))
    expect(run_panel.get_by_role("link", name="Open the run's trace")).to_have_attribute(
        "href", re.compile(r"^/runs/[0-9a-f-]{36}/$")
    )
    run_sockets = [url for url in sockets if "/ws/runs/" in url]
    assert len(run_sockets) == 1 and run_sockets[0].endswith("?after=0&batch=1"), sockets
    snapshot = new_flow.runs.get().flow_version
    assert (snapshot.kind, snapshot.number) == (VersionKind.DRAFT, None)

    # Publish with a note: the draft becomes version 2.
    page.get_by_role("button", name="Publish…").click()
    page.get_by_label("Note for this version (optional)").fill("built in the editor")
    page.get_by_role("button", name="Publish the draft").click()
    expect(page.get_by_role("status").filter(has_text="Published version 2.")).to_be_visible()
    page.screenshot(path="/tmp/editor.png")

    published = Flow.objects.get(id=new_flow.id).published_version
    assert (published.number, published.note) == (2, "built in the editor")
    assert published.graph["edges"] == new_flow.draft["edges"]


def test_undo_redo_copy_paste_and_a_viewer_s_read_only_canvas(
    page, browser, owner, viewer, new_flow
):
    log_in(page, "olive", PASSWORD)
    page.goto(f"/flows/{new_flow.slug}/edit")
    drop(page, "llm", 300, 200)
    nodes = page.locator(".react-flow__node")
    expect(nodes).to_have_count(1)

    # Typed ports: a JSON output does not go into a text input; a text output does.
    drop(page, "knowledge_retrieval", 300, 420)
    connect(page, ("knowledge_retrieval_1", "citations"), ("llm_1", "message"))
    expect(page.locator(".react-flow__edge")).to_have_count(0)
    connect(page, ("knowledge_retrieval_1", "context"), ("llm_1", "message"))
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    page.get_by_role("button", name="Undo").click()
    page.get_by_role("button", name="Undo").click()
    expect(nodes).to_have_count(1)

    page.get_by_role("button", name="Undo").click()
    expect(nodes).to_have_count(0)
    page.get_by_role("button", name="Redo").click()
    expect(nodes).to_have_count(1)

    page.locator('.react-flow__node[data-id="llm_1"] .node-header').click()
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    expect(page.locator('.react-flow__node[data-id="llm_2"]')).to_be_visible()
    page.keyboard.press("Control+z")
    expect(nodes).to_have_count(1)
    saved(page)

    viewing = browser.new_context(
        base_url=page.url.split("/flows/")[0], viewport={"width": 1500, "height": 900}
    ).new_page()
    log_in(viewing, "victor", PASSWORD)
    viewing.goto(f"/flows/{new_flow.slug}/edit")
    expect(viewing.locator('.react-flow__node[data-id="llm_1"]')).to_be_visible()
    expect(viewing.locator(".palette")).to_have_count(0)
    expect(viewing.get_by_text("Read only")).to_be_visible()
    viewing.locator('.react-flow__node[data-id="llm_1"] .node-header').click()
    expect(viewing.get_by_text("You may view these settings but not change them.")).to_be_visible()
    viewing.context.close()


def test_the_picker_offers_the_conversation_variables_the_flow_keeps(page, owner, new_flow):
    from flows.services.drafts import flow_draft_save

    graph = assistant_graph(model="echo")
    keep = {"variables": [{"name": "topic", "value": "{{text}}"}], "scope": "conversation"}
    graph["nodes"].append({"id": "keep", "type": "variable_assigner", "config": keep})
    graph["edges"].append(
        {
            "id": "e3",
            "source": "llm_1",
            "source_port": "text",
            "target": "keep",
            "target_port": "text",
        }
    )
    flow_draft_save(flow=new_flow, graph=graph, user=owner)
    log_in(page, "olive", PASSWORD)
    page.goto(f"/flows/{new_flow.slug}/edit")

    # The model runs before the assigner: it reads the topic an earlier turn kept.
    page.locator('.react-flow__node[data-id="llm_1"] .node-header').click()
    panel = page.get_by_role("complementary", name="Node settings")
    panel.get_by_label("Prompt", exact=True).fill("Still on ")
    panel.get_by_label("Prompt", exact=True).press("End")
    panel.get_by_label("Insert a variable into Prompt").click()
    choice = panel.get_by_role("menuitem", name="{{conversation.topic}}")
    expect(choice).to_contain_text("kept between turns")
    choice.click()
    expect(panel.get_by_label("Prompt", exact=True)).to_have_value(
        "Still on {{conversation.topic}}"
    )
    # The panel applies the pick as the field is left, then the canvas saves the draft.
    panel.get_by_label("Prompt", exact=True).blur()
    expect(page.get_by_test_id("problem-count")).to_have_text("No problems")

    def prompt_saved() -> str:
        new_flow.refresh_from_db()
        return next(n for n in new_flow.draft["nodes"] if n["id"] == "llm_1")["config"]["prompt"]

    deadline = time.monotonic() + 15
    while prompt_saved() != "Still on {{conversation.topic}}" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert prompt_saved() == "Still on {{conversation.topic}}"


def test_the_agent_node_picks_an_agent_and_pins_one_of_its_versions(page, owner, new_flow):
    from catalog.services import model_create
    from flows.services.drafts import flow_draft_save
    from tests.agents.test_agent_node import agent_graph, published_agent

    model_create(slug="remote", name="Remote", engine="echo", workspace=new_flow.workspace)
    published_agent(new_flow.workspace, owner, "maths")
    published_agent(new_flow.workspace, owner, "secret")
    graph = agent_graph("maths")
    for index, node in enumerate(graph["nodes"]):  # side by side, none over another
        node["position"] = {"x": 80 + 320 * index, "y": 120}
    flow_draft_save(flow=new_flow, graph=graph, user=owner)
    log_in(page, "olive", PASSWORD)
    page.goto(f"/flows/{new_flow.slug}/edit")

    page.locator('.react-flow__node[data-id="agent_1"] .node-header').click()
    panel = page.get_by_role("complementary", name="Node settings")
    expect(panel.get_by_label("Agent", exact=True)).to_have_value("maths")
    panel.get_by_label("Agent", exact=True).select_option(label="Secret (secret), v1")
    # The panel comes back with the chosen agent's versions to pin.
    version = panel.locator('form[data-node="agent_1"] select[name="config.version"]')
    expect(version.locator('option[value="1"]')).to_have_text("v1 (published now)")
    expect(page.locator("#node-form.htmx-request")).to_have_count(0)
    panel.locator('form[data-node="agent_1"] select[name="config.version"]').select_option("1")
    expect(page.locator("#node-form.htmx-request")).to_have_count(0)

    def pinned() -> dict:
        new_flow.refresh_from_db()
        return next(n for n in new_flow.draft["nodes"] if n["id"] == "agent_1")["config"]

    deadline = time.monotonic() + 15
    while pinned().get("version") != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (pinned()["agent"], pinned()["version"]) == ("secret", 1)


def test_a_test_run_applies_batched_frames_in_order_and_each_event_once(page, owner, new_flow):
    """The run's events, held back by the test and then sent as the first ones one by one and
    all of them again in one frame: the editor applies each event once, in order, whatever the
    shape of the message."""
    from flows.services.drafts import flow_draft_save

    flow_draft_save(flow=new_flow, graph=assistant_graph(model="echo"), user=owner)
    urls: list[str] = []
    frames: list[str] = []
    events: list[dict] = []

    def hold_then_resend(ws: WebSocketRoute) -> None:
        urls.append(ws.url)
        server = ws.connect_to_server()

        def on_server_message(message) -> None:
            frames.append(message)
            data = json.loads(message)
            events.extend(data if isinstance(data, list) else [data])
            if events[-1]["type"] not in ("run.finished", "run.failed"):
                return
            # Up to the first token one event a message (the unbatched shape), then every event
            # again in one frame: the ones seen already must not be applied twice.
            first_token = next(i for i, event in enumerate(events) if event["type"] == "token")
            for event in events[: first_token + 1]:
                ws.send(json.dumps(event))
            ws.send(json.dumps(events))

        server.on_message(on_server_message)

    page.route_web_socket(re.compile(r"/ws/runs/"), hold_then_resend)
    log_in(page, "olive", PASSWORD)
    page.goto(f"/flows/{new_flow.slug}/edit")
    page.get_by_role("button", name="Test run").first.click()
    run_panel = page.get_by_role("region", name="Test run")
    run_panel.get_by_label("Message").fill(MESSAGE)
    run_panel.get_by_role("button", name="Run", exact=True).click()

    expect(run_panel.get_by_test_id("run-status")).to_have_text("Succeeded")
    expect(run_panel.locator('.run-node[data-node="llm_1"] .run-stream')).to_have_text(MESSAGE)
    for node in ("input_1", "llm_1", "output_1"):
        expect(run_panel.locator(f'.run-node[data-node="{node}"]')).to_have_class(
            re.compile(r"\brun-succeeded\b")
        )
    expect(page.locator('.react-flow__node[data-id="llm_1"] .studio-node')).to_have_class(
        re.compile(r"\brun-succeeded\b")
    )
    assert len(urls) == 1 and urls[0].endswith("?after=0&batch=1"), urls
    assert all(frame.startswith("[") for frame in frames), frames  # the server batches
    tokens = [event["data"]["text"] for event in events if event["type"] == "token"]
    # The first token goes out alone, the rest after it: the frame holds more than one.
    assert len(tokens) >= 2 and "".join(tokens) == MESSAGE, tokens
