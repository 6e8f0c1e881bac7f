// Auto-layout with dagre, left to right: each level (the top, and the inside of each container)
// is laid out on its own, innermost first, so a container is sized before its level is.
import dagre from "@dagrejs/dagre";

import { CONTAINER_PAD, NODE_WIDTH, fitContainers } from "./graph.js";

function size(node) {
  if (node.style?.width) return { width: node.style.width, height: node.style.height };
  return { width: node.measured?.width ?? NODE_WIDTH, height: node.measured?.height ?? 90 };
}

function levelOf(byId, id, level) {
  // The node at `level` that holds `id` (itself, or the container around it at that level).
  let node = byId.get(id);
  while (node && (node.parentId || null) !== level) {
    node = node.parentId ? byId.get(node.parentId) : null;
  }
  return node ? node.id : null;
}

export function autoLayout(nodes, edges) {
  let result = fitContainers(nodes);
  const depth = (node) => {
    let d = 0;
    let current = node;
    const byId = new Map(result.map((n) => [n.id, n]));
    while (current?.parentId) {
      current = byId.get(current.parentId);
      d += 1;
    }
    return d;
  };
  const levels = [...new Set(result.map((n) => n.parentId || null))];
  const levelDepth = (level) => (level === null ? -1 : depth(result.find((n) => n.id === level)));
  levels.sort((a, b) => levelDepth(b) - levelDepth(a));
  for (const level of levels) {
    const byId = new Map(result.map((n) => [n.id, n]));
    const members = result.filter((n) => (n.parentId || null) === level);
    const graph = new dagre.graphlib.Graph();
    graph.setGraph({ rankdir: "LR", nodesep: 40, ranksep: 90, marginx: 0, marginy: 0 });
    graph.setDefaultEdgeLabel(() => ({}));
    for (const node of members) graph.setNode(node.id, size(node));
    for (const edge of edges) {
      const source = levelOf(byId, edge.source, level);
      const target = levelOf(byId, edge.target, level);
      if (source && target && source !== target) graph.setEdge(source, target);
    }
    dagre.layout(graph);
    const origin = level === null ? { x: 0, y: 0 } : { x: CONTAINER_PAD.left, y: CONTAINER_PAD.top };
    const placed = new Map();
    for (const node of members) {
      const at = graph.node(node.id);
      const own = size(node);
      placed.set(node.id, { x: origin.x + at.x - own.width / 2, y: origin.y + at.y - own.height / 2 });
    }
    result = fitContainers(
      result.map((node) => (placed.has(node.id) ? { ...node, position: placed.get(node.id) } : node))
    );
  }
  return result;
}
