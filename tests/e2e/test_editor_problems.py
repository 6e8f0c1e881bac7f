"""The flow editor never loses work silently: an edit that would drop a connection keeps it as a
visible problem, the toolbar's count and the node panel list the same problems, the variable
picker writes the short {{name}}, the test-run panel leaves the canvas its room, and a phone is
told that the editor needs a larger screen."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from flows.demo import assistant_graph
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def flow(workspace, owner, echo_model):
    """input_1 → llm_1 (prompt "{{message}}") → output_1, opened as a person left it."""
    from flows.services import flow_create

    return flow_create(
        workspace=workspace,
        slug="kept",
        name="Kept",
        graph=assistant_graph(model="echo"),
        user=owner,
    )


def open_editor(page, flow) -> None:
    log_in(page, "olive", PASSWORD)
    page.goto(f"/flows/{flow.slug}/edit")
    expect(page.locator(".react-flow__node")).to_have_count(3)


def settings_of(page, node: str):
    page.locator(f'.react-flow__node[data-id="{node}"] .node-header').click()
    panel = page.get_by_role("complementary", name="Node settings")
    expect(panel.locator(f'form[data-node="{node}"]')).to_be_visible()
    return panel


def saved(page) -> None:
    expect(page.get_by_test_id("save-state")).to_contain_text("Draft saved", timeout=10_000)


def test_a_prompt_that_drops_its_variable_keeps_the_edge_as_a_problem(page, owner, flow):
    open_editor(page, flow)
    panel = settings_of(page, "llm_1")
    prompt = panel.get_by_label("Prompt", exact=True)
    prompt.fill("Say hello")
    prompt.press("Tab")  # the panel applies the change as the field is left

    # The connection into {{message}} is kept, red and dashed, on a handle marked as gone.
    stale = page.locator(".react-flow__edge.edge-stale")
    expect(stale).to_have_count(1)
    expect(page.locator(".react-flow__edge:not(.reference-edge)")).to_have_count(2)
    expect(page.locator('.react-flow__node[data-id="llm_1"] .port-missing')).to_have_text(
        "messagegone"
    )
    saved(page)
    count = page.get_by_test_id("problem-count")
    expect(count).to_have_text("1 problem")
    flow.refresh_from_db()
    assert ("input_1", "llm_1") in [(e["source"], e["target"]) for e in flow.draft["edges"]]

    # The toolbar's list and the node's panel say the same thing.
    wanted = (
        "has no input port 'message': its settings no longer use {{message}}; the connection "
        "from input_1.message is kept until you remove it or use the variable again"
    )
    count.click()
    problems = page.get_by_role("region", name="Problems of the draft")
    expect(problems).to_have_text(f"llm_1: {wanted}Close")
    settings_of(page, "output_1")
    panel = settings_of(page, "llm_1")
    expect(panel.locator(".node-problems-panel li")).to_have_text(wanted)

    # The edit is undoable like any other, and redoable.
    toolbar = page.get_by_role("toolbar", name="Editor")
    toolbar.get_by_role("button", name="Undo").click()
    expect(stale).to_have_count(0)
    expect(count).to_have_text("No problems", timeout=10_000)
    toolbar.get_by_role("button", name="Redo").click()
    expect(stale).to_have_count(1)
    expect(count).to_have_text("1 problem", timeout=10_000)

    # Using the variable again heals the connection: nothing was lost.
    panel = settings_of(page, "llm_1")
    prompt = panel.get_by_label("Prompt", exact=True)
    prompt.fill("Say hello to {{message}}")
    prompt.press("Tab")
    expect(stale).to_have_count(0)
    saved(page)
    expect(count).to_have_text("No problems")


def test_a_node_connected_to_nothing_is_a_counted_problem(page, owner, flow):
    open_editor(page, flow)
    page.locator('.palette-item[data-type="guardrail"]').click()
    node = page.locator('.react-flow__node[data-id="guardrail_1"]')
    expect(node).to_be_visible()
    saved(page)
    # Its unconnected input, and the node itself, which nothing reads and which reads nothing.
    expect(page.get_by_test_id("problem-count")).to_have_text("2 problems")
    expect(node.locator(".node-problems-list li")).to_have_text(
        [
            "input 'text' is not connected",
            "is connected to nothing: connect it to the flow or delete it",
        ],
        use_inner_text=False,
    )
    page.get_by_test_id("problem-count").click()
    expect(page.get_by_role("region", name="Problems of the draft")).to_contain_text(
        "guardrail_1: is connected to nothing"
    )


def chain(flow, owner) -> None:
    """input_1 → llm_1 → llm_2 (its prompt "{{text}}") → output_1, as the draft."""
    from flows.services.drafts import flow_draft_save

    graph = assistant_graph(model="echo")
    second = {
        "id": "llm_2",
        "type": "llm",
        "position": {"x": 560, "y": 240},
        "config": {"model": "echo", "prompt": "{{text}}"},
    }
    graph["nodes"].insert(2, second)
    for edge in graph["edges"]:
        if edge["target"] == "output_1":
            edge["source"] = "llm_2"
    graph["edges"].append(
        {
            "id": "e9",
            "source": "llm_1",
            "source_port": "text",
            "target": "llm_2",
            "target_port": "text",
        }
    )
    flow_draft_save(flow=flow, graph=graph, user=owner)


def test_the_variable_picker_writes_the_short_name_and_says_both_work(page, owner, flow):
    chain(flow, owner)
    log_in(page, "olive", PASSWORD)
    page.goto(f"/flows/{flow.slug}/edit")
    expect(page.locator(".react-flow__edge")).to_have_count(3)
    panel = settings_of(page, "llm_2")
    prompt = panel.get_by_label("Prompt", exact=True)
    expect(panel.locator("#f-config-prompt-help")).to_contain_text(
        "Write {{name}} to use an input; {{node_id.name}} also works."
    )
    prompt.fill("{{text}} for ")
    prompt.press("End")
    # An output two nodes up: the short {{message}}, and the canvas draws its edge.
    panel.get_by_label("Insert a variable into Prompt").click()
    panel.get_by_role("menuitem", name="{{message}} from input_1.message").click()
    expect(prompt).to_have_value("{{text}} for {{message}}")
    expect(page.locator(".react-flow__edge:not(.reference-edge)")).to_have_count(4)
    expect(page.locator(".react-flow__edge.reference-edge")).to_have_count(0)
    saved(page)
    expect(page.get_by_test_id("problem-count")).to_have_text("No problems")
    flow.refresh_from_db()
    into_llm_2 = [
        (e["source"], e["source_port"], e["target_port"])
        for e in flow.draft["edges"]
        if e["target"] == "llm_2"
    ]
    assert sorted(into_llm_2) == [("input_1", "message", "message"), ("llm_1", "text", "text")]


def test_the_open_run_panel_leaves_the_canvas_its_room(page, owner, flow):
    open_editor(page, flow)  # the default page: 1100 x 760
    page.get_by_role("toolbar", name="Editor").get_by_role("button", name="Test run").click()
    expect(page.get_by_role("region", name="Test run").get_by_label("Message")).to_be_visible()

    canvas = page.locator(".canvas").bounding_box()
    assert canvas["width"] >= 0.6 * 1100, canvas
    assert canvas["height"] >= 300, canvas
    toolbar = page.get_by_role("toolbar", name="Editor").bounding_box()
    button = page.get_by_role("button", name="Fit view", exact=True).bounding_box()
    assert toolbar["height"] < 2 * button["height"], (toolbar, button)  # one row, not wrapped


def test_a_phone_is_told_the_editor_needs_a_larger_screen(browser, live_studio, owner, flow):
    context = browser.new_context(base_url=live_studio, viewport={"width": 390, "height": 844})
    page = context.new_page()
    log_in(page, "olive", PASSWORD)
    page.goto(f"/flows/{flow.slug}/edit")
    expect(
        page.get_by_role("heading", name="Kept: the editor needs a larger screen")
    ).to_be_visible()
    expect(page.locator(".react-flow__pane")).to_be_hidden()
    back = page.get_by_role("link", name="Back to the flow's page")
    back.click()
    expect(page).to_have_url(f"{live_studio}/flows/{flow.slug}/")
    context.close()
