// What the draft's report (the server's graph check: flows/schema.py) says, as the canvas shows
// it: the problems by node, the whole list the toolbar counts, the ports edges still name after
// an edit removed them, and the edge a variable picked as a short {{name}} needs.
import { compatible, handleType, nextEdgeId } from "./graph.js";

export function nodeProblems(report) {
  const found = new Map();
  for (const problem of report?.problems || []) {
    if (!problem.node) continue;
    if (!found.has(problem.node)) found.set(problem.node, []);
    found.get(problem.node).push(problem.message);
  }
  return found;
}

/** Problems of the graph as a whole, and of edges without a node to show them on. */
export function graphProblems(report) {
  return (report?.problems || [])
    .filter((p) => !p.node)
    .map((p) => (p.edge ? `Edge ${p.edge}: ${p.message}` : p.message));
}

/** Every problem of the report, as the toolbar lists them: the one list the node badges, the
 * settings panel and the count all come from (the server's graph check). */
export function allProblems(report, nodes) {
  const titles = new Map(nodes.map((n) => [n.id, n.data.title || n.id]));
  return (report?.problems || []).map((p) => ({
    node: p.node,
    warning: Boolean(p.warning),
    text: p.node ? `${titles.get(p.node) || p.node}: ${p.message}` : p.edge ? `Edge ${p.edge}: ${p.message}` : p.message,
  }));
}

/** The ports that edges still name but that their nodes' settings no longer make: the edges
 * are kept (shown as problems) and these handles drawn so that they stay visible. */
export function missingPorts(nodes, edges) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const missing = new Map();
  const add = (id, side, port) => {
    if (!missing.has(id)) missing.set(id, { inputs: [], outputs: [] });
    const list = missing.get(id)[side];
    if (!list.includes(port)) list.push(port);
  };
  const stale = new Set();
  for (const edge of edges) {
    const source = byId.get(edge.source);
    const target = byId.get(edge.target);
    if (source && handleType(source, edge.sourceHandle, "source") === null) {
      add(source.id, "outputs", edge.sourceHandle || "");
      stale.add(edge.id);
    }
    if (target && handleType(target, edge.targetHandle, "target") === null) {
      add(target.id, "inputs", edge.targetHandle || "");
      stale.add(edge.id);
    }
  }
  return { missing, stale };
}

export function withReport(nodes, report) {
  if (!report) return nodes;
  const problems = nodeProblems(report);
  return nodes.map((node) => {
    const ports = report.ports?.[node.id] || node.data.ports;
    const mine = problems.get(node.id) || [];
    if (
      JSON.stringify(ports) === JSON.stringify(node.data.ports) &&
      JSON.stringify(mine) === JSON.stringify(node.data.problems)
    ) {
      return node;
    }
    return { ...node, data: { ...node.data, ports, problems: mine } };
  });
}

/** The edge a variable picked as a short `{{port}}` needs: from the output it names into the
 * node's new port, when that port exists, takes the output's type and has no edge yet. */
export function wiredEdge(wire, nodes, edges) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const source = byId.get(wire.source);
  const target = byId.get(wire.node);
  const out = handleType(source, wire.sourcePort, "source");
  const into = handleType(target, wire.port, "target");
  if (out === null || into === null || !compatible(out, into)) return null;
  if (edges.some((e) => e.target === wire.node && e.targetHandle === wire.port)) return null;
  return {
    id: nextEdgeId(new Set(edges.map((e) => e.id))),
    source: wire.source,
    target: wire.node,
    sourceHandle: wire.sourcePort,
    targetHandle: wire.port,
  };
}
