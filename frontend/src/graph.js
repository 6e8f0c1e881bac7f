// The stored flow graph (flows/schema.py) and React Flow's nodes and edges, one from the other.
//
// Stored: {nodes: [{id, type, title, config, position, parent, policy}], edges: [{id, source,
// source_port, target, target_port}]}. On the canvas a node's `data` holds everything stored but
// its position and parent, plus its ports (from the server's report) and what the editor shows
// (problems, run state). A container's inner ports are handles named `inner:<port>`, so that
// they never clash with its outputs; stored edges name the port alone.

export const TRIGGER = "_trigger";
export const INNER = "inner:";
export const NODE_WIDTH = 230;
export const CONTAINER_MIN = { width: 420, height: 240 };
export const CONTAINER_PAD = { left: 160, top: 120, right: 30, bottom: 30 };
const IDENT = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const REFERENCE = /\{\{\s*([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

export const DEFAULT_POLICY = {
  timeout_s: null,
  retries: 0,
  retry_backoff_s: 1.0,
  on_error: "fail",
  default: {},
};

export function compatible(source, target) {
  return source === target || source === "any" || target === "any";
}

export function isReferencePort(port) {
  return port.includes(".");
}

function clone(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

function emptyPorts() {
  return { inputs: {}, outputs: {}, inner: {} };
}

/** The React Flow node for a stored node. */
export function flowNode(stored, entry, ports) {
  const container = Boolean(entry && entry.container);
  const node = {
    id: stored.id,
    type: container ? "studioContainer" : "studioNode",
    position: { x: stored.position?.x ?? 0, y: stored.position?.y ?? 0 },
    data: {
      kind: stored.type,
      title: stored.title || "",
      config: clone(stored.config) || {},
      policy: { ...DEFAULT_POLICY, ...(clone(stored.policy) || {}) },
      ports: clone(ports || entry?.ports) || emptyPorts(),
      problems: [],
      run: null,
    },
  };
  if (stored.parent) node.parentId = stored.parent;
  if (container) node.style = { ...CONTAINER_MIN };
  return node;
}

/** Parents first: React Flow needs a group before the nodes inside it. */
export function sortParentsFirst(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = (node) => {
    let d = 0;
    let current = node;
    const seen = new Set();
    while (current?.parentId && byId.has(current.parentId) && !seen.has(current.id)) {
      seen.add(current.id);
      current = byId.get(current.parentId);
      d += 1;
    }
    return d;
  };
  return nodes
    .map((node, index) => ({ node, index, depth: depth(node) }))
    .sort((a, b) => a.depth - b.depth || a.index - b.index)
    .map((item) => item.node);
}

/** The containers around a node, nearest first. */
export function ancestorsOf(nodes, id) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const chain = [];
  let current = byId.get(id);
  while (current?.parentId && byId.has(current.parentId) && !chain.includes(current.parentId)) {
    chain.push(current.parentId);
    current = byId.get(current.parentId);
  }
  return chain;
}

/** A node and every node inside it, at any depth. */
export function withDescendants(nodes, ids) {
  const chosen = new Set(ids);
  let grew = true;
  while (grew) {
    grew = false;
    for (const node of nodes) {
      if (node.parentId && chosen.has(node.parentId) && !chosen.has(node.id)) {
        chosen.add(node.id);
        grew = true;
      }
    }
  }
  return chosen;
}

function flowEdge(stored, nodes) {
  const sourceIsContainer = ancestorsOf(nodes, stored.target).includes(stored.source);
  return {
    id: stored.id,
    source: stored.source,
    target: stored.target,
    sourceHandle: sourceIsContainer ? INNER + stored.source_port : stored.source_port,
    targetHandle: stored.target_port,
    className: stored.target_port === TRIGGER ? "trigger-edge" : undefined,
  };
}

/** React Flow's nodes and edges for a stored graph; `ports` by node id (the last report). */
export function toFlow(graph, palette, ports = {}) {
  const entries = new Map(palette.map((p) => [p.type, p]));
  const nodes = sortParentsFirst(
    (graph.nodes || []).map((stored) => flowNode(stored, entries.get(stored.type), ports[stored.id]))
  );
  const used = new Set();
  const edges = (graph.edges || []).map((stored, index) => {
    let id = stored.id || `e${index + 1}`;
    while (used.has(id)) id = `${id}_`;
    used.add(id);
    return flowEdge({ ...stored, id }, nodes);
  });
  return { nodes: fitContainers(nodes), edges };
}

/** The stored graph of the canvas (reference edges are derived, never stored). */
export function toGraph(nodes, edges) {
  const round = (value) => Math.round(value * 10) / 10;
  return {
    nodes: nodes.map((node) => {
      const stored = {
        id: node.id,
        type: node.data.kind,
        title: node.data.title || "",
        config: node.data.config,
        position: { x: round(node.position.x), y: round(node.position.y) },
        parent: node.parentId || null,
        policy: node.data.policy,
      };
      return stored;
    }),
    edges: edges
      .filter((edge) => !edge.data?.implicit)
      .map((edge) => ({
        id: edge.id,
        source: edge.source,
        source_port: (edge.sourceHandle || "").replace(INNER, ""),
        target: edge.target,
        target_port: edge.targetHandle || "",
      })),
  };
}

/** `llm_1`, `llm_2`…: the first free id for a node type. */
export function nextNodeId(type, taken) {
  const base = IDENT.test(`${type}_1`) ? type.slice(0, 56) : "node";
  for (let n = 1; ; n += 1) {
    const id = `${base}_${n}`;
    if (!taken.has(id)) return id;
  }
}

export function nextEdgeId(taken) {
  for (let n = taken.size + 1; ; n += 1) {
    const id = `e${n}`;
    if (!taken.has(id)) return id;
  }
}

/** The dashed edges of `{{node_id.port}}` references: drawn, never stored. */
export function referenceEdges(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const edges = [];
  for (const node of nodes) {
    for (const port of Object.keys(node.data.ports?.inputs || {})) {
      if (!isReferencePort(port)) continue;
      const [source, sourcePort] = port.split(".", 2);
      const from = byId.get(source);
      if (!from || source === node.id) continue;
      const inner = ancestorsOf(nodes, node.id).includes(source);
      const handles = inner ? from.data.ports?.inner : from.data.ports?.outputs;
      if (!handles || !(sourcePort in handles)) continue;
      edges.push({
        id: `ref:${source}.${sourcePort}>${node.id}`,
        source,
        target: node.id,
        sourceHandle: inner ? INNER + sourcePort : sourcePort,
        targetHandle: port,
        className: "reference-edge",
        selectable: false,
        deletable: false,
        focusable: false,
        data: { implicit: true },
      });
    }
  }
  return edges;
}

/** Every string inside a config, rewritten by `fn`. */
function mapStrings(value, fn) {
  if (typeof value === "string") return fn(value);
  if (Array.isArray(value)) return value.map((item) => mapStrings(item, fn));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapStrings(v, fn)]));
  }
  return value;
}

/** A config whose references to renamed nodes follow them (`{{a.x}}` and plain `a.x`). */
export function renameReferences(config, renamed) {
  return mapStrings(config, (text) => {
    const plain = /^([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_]*)$/.exec(text);
    if (plain && renamed.has(plain[1])) return `${renamed.get(plain[1])}.${plain[2]}`;
    return text.replace(REFERENCE, (match, node, port) =>
      renamed.has(node) ? `{{${renamed.get(node)}.${port}}}` : match
    );
  });
}

function renamePorts(ports, renamed) {
  const inputs = {};
  for (const [name, type] of Object.entries(ports.inputs || {})) {
    const [node, port] = name.split(".", 2);
    inputs[port !== undefined && renamed.has(node) ? `${renamed.get(node)}.${port}` : name] = type;
  }
  return { ...ports, inputs };
}

/** Copies of `copied` nodes and the edges among them, with new ids, moved by `offset`. */
export function pasteNodes(clipboard, existing, existingEdges, offset) {
  const taken = new Set(existing.map((n) => n.id));
  const existingIds = new Set(taken);
  const renamed = new Map();
  for (const node of clipboard.nodes) {
    const id = nextNodeId(node.data.kind, taken);
    taken.add(id);
    renamed.set(node.id, id);
  }
  const nodes = clipboard.nodes.map((node) => {
    const copy = {
      ...node,
      id: renamed.get(node.id),
      selected: true,
      data: {
        ...clone(node.data),
        config: renameReferences(clone(node.data.config), renamed),
        ports: renamePorts(clone(node.data.ports), renamed),
        problems: [],
        run: null,
      },
    };
    delete copy.measured;
    if (node.parentId && renamed.has(node.parentId)) {
      copy.parentId = renamed.get(node.parentId);
    } else if (node.parentId && existingIds.has(node.parentId)) {
      copy.position = { x: node.position.x + offset, y: node.position.y + offset };
    } else {
      delete copy.parentId;
      copy.position = { x: node.position.x + offset, y: node.position.y + offset };
    }
    return copy;
  });
  const edgeIds = new Set(existingEdges.map((e) => e.id));
  const edges = clipboard.edges.map((edge) => {
    const id = nextEdgeId(edgeIds);
    edgeIds.add(id);
    return {
      ...edge,
      id,
      source: renamed.get(edge.source),
      target: renamed.get(edge.target),
      selected: false,
    };
  });
  return { nodes, edges };
}

function size(node) {
  if (node.style?.width) return { width: node.style.width, height: node.style.height };
  return {
    width: node.measured?.width ?? NODE_WIDTH,
    height: node.measured?.height ?? 90,
  };
}

/** Each container as large as what it holds (the stored graph keeps no sizes), innermost first.
 * Children dragged above or left of the container's content area are moved back into it. */
export function fitContainers(nodes) {
  const result = nodes.map((node) => ({ ...node }));
  const byId = new Map(result.map((n) => [n.id, n]));
  const containers = result.filter((n) => n.type === "studioContainer");
  const depth = (node) => ancestorsOf(result, node.id).length;
  containers.sort((a, b) => depth(b) - depth(a));
  for (const container of containers) {
    let width = CONTAINER_MIN.width;
    let height = CONTAINER_MIN.height;
    for (const child of result) {
      if (child.parentId !== container.id) continue;
      const x = Math.max(child.position.x, CONTAINER_PAD.left);
      const y = Math.max(child.position.y, CONTAINER_PAD.top);
      if (x !== child.position.x || y !== child.position.y) {
        byId.get(child.id).position = { x, y };
      }
      const own = size(child);
      width = Math.max(width, x + own.width + CONTAINER_PAD.right);
      height = Math.max(height, y + own.height + CONTAINER_PAD.bottom);
    }
    byId.get(container.id).style = { ...container.style, width, height };
  }
  return result;
}

/** A node's position on the canvas, adding up its containers' positions. */
export function absolutePosition(nodes, id) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  let node = byId.get(id);
  let x = 0;
  let y = 0;
  const seen = new Set();
  while (node && !seen.has(node.id)) {
    seen.add(node.id);
    x += node.position.x;
    y += node.position.y;
    node = node.parentId ? byId.get(node.parentId) : null;
  }
  return { x, y };
}

/** The innermost container under a canvas point, other than `exclude` and its nodes. */
export function containerAt(nodes, point, exclude = new Set()) {
  let found = null;
  let foundDepth = -1;
  for (const node of nodes) {
    if (node.type !== "studioContainer" || exclude.has(node.id)) continue;
    const at = absolutePosition(nodes, node.id);
    const own = size(node);
    const inside =
      point.x >= at.x && point.x <= at.x + own.width && point.y >= at.y && point.y <= at.y + own.height;
    const d = ancestorsOf(nodes, node.id).length;
    if (inside && d > foundDepth) {
      found = node;
      foundDepth = d;
    }
  }
  return found;
}

/** Whether an edge from `source` to `target` would close a cycle. */
export function makesCycle(edges, source, target) {
  if (source === target) return true;
  const outgoing = new Map();
  for (const edge of edges) {
    if (!outgoing.has(edge.source)) outgoing.set(edge.source, []);
    outgoing.get(edge.source).push(edge.target);
  }
  const stack = [target];
  const seen = new Set();
  while (stack.length) {
    const id = stack.pop();
    if (id === source) return true;
    if (seen.has(id)) continue;
    seen.add(id);
    stack.push(...(outgoing.get(id) || []));
  }
  return false;
}

/** The type of a handle: an output, an inner port, or an input of a node. */
export function handleType(node, handle, direction) {
  if (!node) return null;
  const ports = node.data.ports || {};
  if (direction === "source") {
    if (handle?.startsWith(INNER)) return ports.inner?.[handle.slice(INNER.length)] ?? null;
    return ports.outputs?.[handle] ?? null;
  }
  if (handle === TRIGGER) return "trigger";
  return ports.inputs?.[handle] ?? null;
}
