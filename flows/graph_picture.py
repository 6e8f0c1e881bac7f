"""A small SVG picture of a flow graph, drawn on the server: a box per node where the graph puts
it, and a curve per edge (dashed where a ``{{node.port}}`` reference links two nodes).

Every text in the picture (node ids, types, anything from the graph) is escaped: the same
renderer may draw graphs that users wrote. Colours come from CSS classes (``static/flows/
pages.css``), never from inline styles, so the pages keep their strict Content-Security-Policy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import slugify

from flows.nodes import node_types

NODE_WIDTH = 200
NODE_HEIGHT = 64
PADDING = 16
MAX_NODES = 200  # a picture, not a canvas: a bigger graph is drawn by its first nodes only
MAX_LABEL = 22
REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][\w-]*)\.[A-Za-z_]")


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    # NaN and infinities would make an unusable viewBox.
    return number if abs(number) < 1e6 else 0.0


def _n(number: float) -> str:
    # format_html escapes its arguments into strings first, so numbers are formatted here.
    return f"{number:g}"


def _short(text: Any) -> str:
    text = str(text)
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _references(node: dict, ids: set[str]) -> set[str]:
    """The other nodes this node's settings refer to with ``{{node.port}}``."""
    found = set()
    for text in _strings(node.get("config")):
        found.update(m for m in REFERENCE.findall(text) if m in ids and m != node.get("id"))
    return found


def _curve(start: tuple[float, float], end: tuple[float, float]) -> str:
    (x1, y1), (x2, y2) = start, end
    bend = max(40.0, abs(x2 - x1) / 2)
    return f"M{x1:g},{y1:g} C{x1 + bend:g},{y1:g} {x2 - bend:g},{y2:g} {x2:g},{y2:g}"


def graph_svg(graph: Any, *, title: str = "") -> SafeString:
    """The picture of ``graph`` (``{"nodes": [...], "edges": [...]}``) as inline SVG markup,
    scaled by its viewBox to the width CSS gives it. A malformed graph draws what it can."""
    graph = graph if isinstance(graph, dict) else {}
    nodes = [n for n in graph.get("nodes") or [] if isinstance(n, dict)][:MAX_NODES]
    kinds = node_types()
    boxes: dict[str, tuple[float, float]] = {}
    for node in nodes:
        position = node.get("position") if isinstance(node.get("position"), dict) else {}
        boxes[str(node.get("id", ""))] = (_number(position.get("x")), _number(position.get("y")))
    if boxes:
        left = min(x for x, _ in boxes.values()) - PADDING
        top = min(y for _, y in boxes.values()) - PADDING
        width = max(x for x, _ in boxes.values()) + NODE_WIDTH + PADDING - left
        height = max(y for _, y in boxes.values()) + NODE_HEIGHT + PADDING - top
    else:
        left, top, width, height = 0.0, 0.0, float(NODE_WIDTH), float(NODE_HEIGHT)

    links: dict[tuple[str, str], bool] = {}  # (source, target) -> drawn dashed (a reference)
    for edge in graph.get("edges") or []:
        if isinstance(edge, dict):
            pair = (str(edge.get("source", "")), str(edge.get("target", "")))
            if pair[0] in boxes and pair[1] in boxes:
                links[pair] = False
    ids = set(boxes)
    for node in nodes:
        target = str(node.get("id", ""))
        for source in _references(node, ids):
            links.setdefault((source, target), True)

    def anchor(node_id: str, side: str) -> tuple[float, float]:
        x, y = boxes[node_id]
        return (x + NODE_WIDTH if side == "out" else x, y + NODE_HEIGHT / 2)

    edges = format_html_join(
        "",
        '<path class="{}" d="{}"/>',
        (
            ("gp-edge gp-ref" if dashed else "gp-edge", _curve(anchor(s, "out"), anchor(t, "in")))
            for (s, t), dashed in links.items()
        ),
    )

    def box(node: dict) -> tuple:
        node_id = str(node.get("id", ""))
        kind = kinds.get(str(node.get("type", "")))
        group = slugify(kind.group) if kind else "unknown"
        label = kind.label if kind else str(node.get("type", ""))
        x, y = boxes[node_id]
        return (
            group,
            _n(x),
            _n(y),
            NODE_WIDTH,
            NODE_HEIGHT,
            _n(x + 12),
            _n(y + 26),
            _short(node_id),
            _n(x + 12),
            _n(y + 48),
            _short(label),
        )

    drawn = format_html_join(
        "",
        '<g class="gp-node gp-{}"><rect x="{}" y="{}" width="{}" height="{}" rx="8"/>'
        '<text class="gp-id" x="{}" y="{}">{}</text>'
        '<text class="gp-type" x="{}" y="{}">{}</text></g>',
        (box(n) for n in nodes),
    )
    return format_html(
        '<svg class="graph-picture" xmlns="http://www.w3.org/2000/svg" viewBox="{} {} {} {}"'
        ' role="img" aria-label="{}"><title>{}</title>{}{}</svg>',
        _n(left),
        _n(top),
        _n(width),
        _n(height),
        title or "Flow graph",
        title or "Flow graph",
        edges,
        drawn,
    )
