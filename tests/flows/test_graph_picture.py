"""The server-side SVG picture of a flow graph: where the nodes sit, the edges between them,
and every text escaped."""

from __future__ import annotations

from xml.etree import ElementTree

from flows.graph_picture import graph_svg
from flows.starters import starters

SVG = "{http://www.w3.org/2000/svg}"


def parsed(markup: str) -> ElementTree.Element:
    return ElementTree.fromstring(markup)


def test_a_starter_is_drawn_with_a_box_per_node_and_a_curve_per_link():
    graph = starters()["knowledge_chat"].graph

    svg = parsed(graph_svg(graph, title="Knowledge chat"))

    assert svg.get("viewBox") == "-16 -16 1072 216"  # from the nodes' positions
    groups = svg.findall(f"{SVG}g")
    assert [g.find(f"{SVG}text").text for g in groups] == ["input", "kb", "llm", "output"]
    assert groups[1].get("class") == "gp-node gp-knowledge"
    assert groups[2].find(f"{SVG}text[@class='gp-type']").text == "LLM"
    paths = svg.findall(f"{SVG}path")
    # Four edges, and the dashed reference {{kb.context}} from kb to llm.
    assert len(paths) == 5
    assert [p.get("class") for p in paths].count("gp-edge gp-ref") == 1
    assert svg.find(f"{SVG}title").text == "Knowledge chat"


def test_every_text_in_the_picture_is_escaped():
    graph = {
        "nodes": [
            {"id": '<script>alert("x")</script>', "type": "input", "position": {"x": 0, "y": 0}},
            {"id": "b", "type": "<img src=x onerror=1>", "position": {"x": "1e400", "y": None}},
        ],
        "edges": [{"source": '<script>alert("x")</script>', "target": "b"}],
    }

    markup = graph_svg(graph, title='"><script>')

    assert "<script>" not in markup and "<img" not in markup
    svg = parsed(markup)  # still well-formed XML
    assert svg.find(f"{SVG}g/{SVG}text").text == '<script>alert("x")</script>'[:21] + "…"
    assert len(svg.findall(f"{SVG}path")) == 1


def test_a_malformed_graph_draws_an_empty_picture():
    for graph in (None, [], {"nodes": "x"}, {"nodes": [1, "a"], "edges": [None]}):
        svg = parsed(graph_svg(graph))

        assert svg.findall(f"{SVG}g") == []
