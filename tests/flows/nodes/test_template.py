"""The template node renders sandboxed Jinja2: its ports come from the template, a syntax error
is refused at save with its line, and a render that asks for too much stops with a reason."""

from __future__ import annotations

import time

import pytest

from flows.models import NodeResult, RunStatus
from flows.nodes import node_types
from flows.nodes.template import TemplateError
from flows.runtime import template_renderer
from flows.runtime.template_sandbox import template_render
from flows.schema import GraphError, check_graph
from tests.flows.nodes.graphs import edge, graph, node, run_graph

TEMPLATE = node_types()["template"]


def config(template: str):
    return TEMPLATE.Config.model_validate({"template": template})


def render(template: str, **inputs) -> str:
    return TEMPLATE.run(config(template), inputs, {}).outputs["text"]


def test_ports_are_the_undeclared_variables_references_included():
    letter = config(
        "Dear {{ customer.name }},\n"
        "{% for item in order['items'] %}- {{ item.title | upper }}\n{% endfor %}"
        "{% set total = order.total %}Total: {{ total }} ({{ topic }}), "
        "{{ range(3) | join(',') }} {{ customer.name }} {{ greeting.strip() }}"
    )
    assert TEMPLATE.group == "Transform" and TEMPLATE.description
    # Loop variables, set variables and the sandbox's globals are not ports.
    assert TEMPLATE.input_ports(letter) == {
        "customer.name": "any",
        "order.items": "any",
        "order.total": "any",
        "topic": "any",
        # A method called on a variable does not make it a node.
        "greeting": "any",
    }
    assert TEMPLATE.output_ports(letter) == {"text": "text"}


def test_references_become_mappings_of_the_node_outputs():
    text = render(
        "Dear {{ customer.name }}, about {{ topic }}:"
        "{% for item in order['items'] %} {{ loop.index }}.{{ item.title }}{% endfor %}"
        " — {{ order.total }} {{ order.items | length }} {{ customer['items'] }}",
        **{
            "customer.name": "Ada",
            # A port named like a dict method is still the port.
            "customer.items": "3 things",
            "order.items": [{"title": "tea"}, {"title": "scones"}],
            "order.total": 12.5,
            "topic": "your order",
        },
    )
    assert text == "Dear Ada, about your order: 1.tea 2.scones — 12.5 2 3 things"


def test_none_renders_empty_and_objects_as_json():
    assert render("[{{ a }}] {{ b }} {{ c }}", a=None, b={"k": [1, True]}, c=False) == (
        '[] {"k": [1, true]} false'
    )
    assert render("no variables\n") == "no variables\n"


def test_a_missing_variable_fails_with_its_name_and_line():
    with pytest.raises(TemplateError) as caught:
        render("Hello\n{{ customer.name }} {{ customer.nickname }}", **{"customer.name": "Ada"})
    assert str(caught.value) == "line 2: 'customer.nickname' is undefined"
    with pytest.raises(TemplateError, match=r"line 1: 'topic' is undefined"):
        render("{{ topic }}")


def test_python_errors_and_the_sandbox_fail_with_the_line():
    with pytest.raises(TemplateError, match=r"line 2: ZeroDivisionError"):
        render("a\n{{ 1 / 0 }}")
    with pytest.raises(TemplateError, match=r"__class__"):
        render("{{ ''.__class__.__mro__ }}")
    with pytest.raises(TemplateError, match=r"append"):
        render("{% set xs = [] %}{{ xs.append(1) }}")


@pytest.mark.parametrize(
    "template",
    [
        '{{ "x" * 10**9 }}',
        '{{ "x".ljust(10**9) }}',
        '{{ "x" | center(10**9) }}',
        '{{ "x" | indent(10**9) }}',
        '{{ "%999999999s" | format(1) }}',
        '{{ "{:>999999999}".format(1) }}',
        '{{ "ab" | replace("", "x" * 999999) }}',
        '{{ range(10000) | join("x" * 200) }}',
        '{% set s = "xxxxxxxxxx" %}' + "{% set s = s ~ s %}" * 30 + "{{ s | length }}",
        "{% for i in range(10000) %}{{ 'x' * 200 }}{% endfor %}",
        "{{ 10 ** 1000000 }}",
    ],
)
def test_a_render_that_would_blow_up_stops_with_a_reason(template):
    started = time.monotonic()
    with pytest.raises(
        TemplateError, match=r"longer than 1,000,000 characters|too big|limited to six digits"
    ):
        render(template)
    assert time.monotonic() - started < 1


def test_range_is_limited_and_endless_loops_stop_at_the_deadline():
    assert render("{{ range(10000) | length }}") == "10000"
    with pytest.raises(TemplateError, match=r"range\(\) is limited to 10,000 items"):
        render("{{ range(10001) | length }}")
    started = time.monotonic()
    with pytest.raises(TemplateError, match=r"rendering took longer than 2 s"):
        render("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}")
    assert time.monotonic() - started < 4


def text_graph(template: str) -> dict:
    return graph(
        node("letter", "template", {"template": template}),
        edges=[edge("input_1.message", "letter.message"), edge("letter.text", "output_1.text")],
    )


def test_a_graph_with_the_node_is_accepted_references_wired_without_edges():
    checked = check_graph(text_graph("Hi {{ message }} ({{ input_1.message | length }})"))
    assert checked.nodes["letter"].inputs == {"message": "any", "input_1.message": "any"}
    assert {(link.source, link.target_port) for link in checked.incoming("letter")} == {
        ("input_1", "message"),
        ("input_1", "input_1.message"),
    }


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Hi {{ message }}\n\n{% if message %}", "line 3: Unexpected end of template"),
        ("Hi {{ message }", "line 1: unexpected '}'"),
        ("{{ message }} {{ message.text }}", "'message' is used both as a variable"),
        ("{{ message }} {{ ghost.text }}", "{{ghost.text}} refers to a node 'ghost' that does"),
        ("x" * 100_001, "template: String should have at most 100000 characters"),
        ("{{ a" + ".b" * 30_000 + " }}", "the template nests too deeply"),
    ],
)
def test_a_bad_template_is_refused_at_save_naming_the_node(template, message):
    with pytest.raises(GraphError) as caught:
        check_graph(text_graph(template))
    assert any(e.startswith("node 'letter': ") and message in e for e in caught.value.errors), (
        caught.value.errors
    )


def test_a_run_renders_the_template(worker, workspace, owner):
    run = run_graph(
        workspace=workspace,
        owner=owner,
        graph=text_graph(
            "{{ input_1.message | upper }}: "
            "{% for word in message.split() %}{{ word | capitalize }} {% endfor %}"
        ),
        inputs={"message": "hello sandboxed world"},
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "HELLO SANDBOXED WORLD: Hello Sandboxed World "}
    assert NodeResult.objects.get(run=run, node_id="letter").inputs == {
        "message": "hello sandboxed world",
        "input_1.message": "hello sandboxed world",
    }


# --- the renderer process: the deadline holds whatever the template does ----------------------

NESTED_LOOPS = (
    "{% for a in message %}{% for b in message %}{% for c in message %}"
    "{% endfor %}{% endfor %}{% endfor %}"
)


def test_nested_loops_over_a_long_text_stop_at_the_deadline_with_the_line():
    # A billion empty iterations: no call, no operator, no range() for a check to see.
    render("{{ 1 }}")  # a renderer started (its start is not part of any deadline)
    started = time.monotonic()
    with pytest.raises(TemplateError) as caught:
        render(NESTED_LOOPS, message="x" * 1000)
    assert str(caught.value) == "line 1: rendering took longer than 2 s"
    assert time.monotonic() - started < 3


def test_a_render_that_never_checks_the_deadline_is_killed_at_it():
    # urlize on a megabyte takes seconds in Jinja's own code, called by map(): no check runs.
    render("{{ 1 }}")
    started = time.monotonic()
    with pytest.raises(TemplateError) as caught:
        render("{{ [t, t, t, t, t, t] | map('urlize') | map('length') | list }}", t="a. " * 333_333)
    assert str(caught.value) == "rendering took longer than 2 s"
    assert time.monotonic() - started < 3.5
    # The killed renderer was replaced: the next render works.
    assert render("{{ message | upper }}", message="still here") == "STILL HERE"


def test_a_render_that_asks_for_too_much_memory_is_refused():
    # Ten thousand strings of a megabyte each, every one under the output cap.
    with pytest.raises(TemplateError) as caught:
        render("{{ range(10000) | map('string') | map('center', 999999) | list | length }}")
    assert str(caught.value) == "rendering needs more than 512 MB of memory"
    assert render("{{ range(3) | map('string') | join(',') }}") == "0,1,2"


@pytest.mark.parametrize(
    ("template", "inputs"),
    [
        (
            "Hi {{ name }}{% for w in words %} {{ loop.index }}/{{ loop.length }} {{ w | upper }}"
            "{% if loop.last %}.{% endif %}{% endfor %}",
            {"name": "Ada", "words": ["tea", "jam"]},
        ),
        (
            "{% for k, v in order.items() if v %}{{ k }}={{ v }};{% else %}none{% endfor %}",
            {"order": {"tea": 2, "jam": 0, "scones": 1.5}},
        ),
        (
            "{% for row in rows | batch(2) %}{{ row | join('+') }}|{% endfor %}{{ none }}{{ obj }}",
            {"rows": [1, 2, 3], "none": None, "obj": {"é": [True, None]}},
        ),
        ("{% for c in text %}{{ c }}{% endfor %}{{ text | length }}", {"text": "naïve\n"}),
    ],
)
def test_a_render_in_the_renderer_equals_the_render_in_process(template, inputs):
    assert render(template, **inputs) == template_render(template, inputs)


def test_a_renderer_reads_no_secret_from_the_worker_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://studio:hunter2@db/studio")
    renderer = template_renderer._Renderer(64)
    try:
        environ = open(f"/proc/{renderer.process.pid}/environ", "rb").read()
    finally:
        renderer.kill()
    assert b"hunter2" not in environ
