// The flow editor's canvas: palette, nodes and typed edges, undo and redo, copy and paste,
// containers, autosave of the draft with the server's report, test runs and publishing.
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  applyEdgeChanges,
  applyNodeChanges,
  useReactFlow,
  useUpdateNodeInternals,
} from "@xyflow/react";

import { postJSON } from "./api.js";
import {
  INNER,
  NODE_WIDTH,
  TRIGGER,
  absolutePosition,
  ancestorsOf,
  compatible,
  containerAt,
  fitContainers,
  flowNode,
  handleType,
  isReferencePort,
  makesCycle,
  nextEdgeId,
  nextNodeId,
  pasteNodes,
  referenceEdges,
  sortParentsFirst,
  toFlow,
  toGraph,
  withDescendants,
} from "./graph.js";
import { History } from "./history.js";
import { allProblems, graphProblems, missingPorts, nodeProblems, wiredEdge, withReport } from "./problems.js";
import { autoLayout } from "./layout.js";
import { EditorContext, nodeTypes } from "./nodes.jsx";
import { DRAG_TYPE, Palette } from "./Palette.jsx";
import { connectPanel } from "./panel.js";
import { RunPanel } from "./RunPanel.jsx";
import { ProblemList, PublishForm, Toolbar } from "./Toolbar.jsx";
import { useDraft } from "./useDraft.js";
import { canvasId, useTestRun } from "./useTestRun.js";

const CLIPBOARD_KEY = "studio.flow-editor.clipboard";
const TOP_LEVEL_ONLY = new Set(["input", "output"]);

function snapshotOf(state) {
  return {
    graph: toGraph(state.nodes, state.edges),
    ports: Object.fromEntries(state.nodes.map((n) => [n.id, n.data.ports])),
  };
}

function isTyping(target) {
  return Boolean(
    target?.closest?.("input, textarea, select, [contenteditable='true'], #node-panel, .run-panel, dialog")
  );
}

function Canvas({ data }) {
  const { palette, can, urls } = data;
  const readOnly = !can.change;
  const paletteMap = useMemo(() => new Map(palette.map((p) => [p.type, p])), [palette]);
  const groups = useMemo(() => {
    const byGroup = new Map();
    for (const entry of palette) {
      if (!byGroup.has(entry.group)) byGroup.set(entry.group, []);
      byGroup.get(entry.group).push(entry);
    }
    return [...byGroup.entries()];
  }, [palette]);
  const context = useMemo(() => ({ palette: paletteMap, readOnly }), [paletteMap, readOnly]);

  const initial = useMemo(() => {
    const flow = toFlow(data.graph, palette, data.report?.ports || {});
    return { nodes: withReport(flow.nodes, data.report), edges: flow.edges };
  }, []);
  const [flow, setFlow] = useState(initial);
  const state = useRef(initial);
  const history = useRef(new History(snapshotOf(initial)));
  const lastReport = useRef(data.report);
  const [historyState, setHistoryState] = useState({ undo: false, redo: false });
  const [problems, setProblems] = useState(graphProblems(data.report));
  const [notice, setNotice] = useState(null);
  const [runOpen, setRunOpen] = useState(false);
  const [publishOpen, setPublishOpen] = useState(false);
  const [problemsOpen, setProblemsOpen] = useState(false);
  const pasteCount = useRef(0);
  const changedPorts = useRef(new Set());
  const selected = useRef(null);
  const panel = useRef(null);
  const wrapper = useRef(null);
  const { screenToFlowPosition, fitView, deleteElements } = useReactFlow();
  const updateNodeInternals = useUpdateNodeInternals();

  // --- state ------------------------------------------------------------------------------

  const setState = useCallback((next) => {
    const before = state.current;
    const portsBefore = new Map(before.nodes.map((n) => [n.id, n.data.ports]));
    for (const node of next.nodes) {
      if (portsBefore.has(node.id) && portsBefore.get(node.id) !== node.data.ports) {
        changedPorts.current.add(node.id);
      }
    }
    state.current = next;
    setFlow(next);
  }, []);

  const applyReport = useCallback(
    (report) => {
      lastReport.current = report;
      setProblems(graphProblems(report));
      panel.current?.showProblems((id) => nodeProblems(report).get(id) || []);
      setState({ ...state.current, nodes: withReport(state.current.nodes, report) });
    },
    [setState]
  );

  const { saveState, schedule: scheduleSave, flush } = useDraft({
    url: urls.draft,
    readOnly,
    currentGraph: () => toGraph(state.current.nodes, state.current.edges),
    onReport: applyReport,
    savedAt: data.draft?.saved_at,
    savedBy: data.draft?.saved_by,
  });

  const refreshHistory = useCallback(() => {
    setHistoryState({ undo: history.current.canUndo, redo: history.current.canRedo });
  }, []);

  /** A change the user made: it is undoable and saved. */
  const commit = useCallback(
    (next) => {
      const fitted = { ...next, nodes: fitContainers(next.nodes) };
      setState(fitted);
      if (history.current.push(snapshotOf(fitted))) scheduleSave();
      refreshHistory();
    },
    [refreshHistory, scheduleSave, setState]
  );

  const restore = useCallback(
    (snapshot) => {
      if (!snapshot) return;
      const restored = toFlow(snapshot.graph, palette, snapshot.ports);
      setState({ nodes: withReport(restored.nodes, lastReport.current), edges: restored.edges });
      scheduleSave();
      refreshHistory();
    },
    [palette, refreshHistory, scheduleSave, setState]
  );

  const undo = useCallback(() => !readOnly && restore(history.current.undo()), [readOnly, restore]);
  const redo = useCallback(() => !readOnly && restore(history.current.redo()), [readOnly, restore]);

  useEffect(() => {
    if (!changedPorts.current.size) return;
    const ids = [...changedPorts.current];
    changedPorts.current.clear();
    updateNodeInternals(ids);
  }, [flow, updateNodeInternals]);

  // --- the settings panel --------------------------------------------------------------------

  // A variable picked as a short {{name}} whose edge the canvas draws with the new settings.
  const pendingWire = useRef(null);

  const applyNodeConfig = useCallback(
    (detail) => {
      const current = state.current;
      const target = current.nodes.find((n) => n.id === detail.node);
      if (!target || readOnly) return;
      const node = {
        ...target,
        data: {
          ...target.data,
          config: detail.config,
          policy: detail.policy || target.data.policy,
          title: detail.title ?? target.data.title,
          ports: detail.ports || target.data.ports,
        },
      };
      const nodes = current.nodes.map((n) => (n.id === node.id ? node : n));
      // A port the new settings removed keeps its edges: they show as problems until the
      // person removes them or uses the variable again, so no connection is lost unseen.
      const wire = pendingWire.current;
      const edge = wire?.node === node.id ? wiredEdge(wire, nodes, current.edges) : null;
      if (wire?.node === node.id) pendingWire.current = null;
      commit({ nodes, edges: edge ? [...current.edges, edge] : current.edges });
    },
    [commit, readOnly]
  );

  const applyRef = useRef(applyNodeConfig);
  applyRef.current = applyNodeConfig;

  useEffect(() => {
    panel.current = connectPanel({
      panelUrl: urls.panel,
      currentGraph: () => toGraph(state.current.nodes, state.current.edges),
      // Registered once: it must reach the latest callback.
      onNodeConfig: (detail) => applyRef.current(detail),
      onWire: (wire) => {
        if (!readOnly) pendingWire.current = wire;
      },
    });
    panel.current.open(null);
  }, []);

  const onSelectionChange = useCallback(({ nodes }) => {
    const ids = nodes.map((n) => n.id);
    const key = ids.join(",");
    if (key === selected.current) return;
    selected.current = key;
    if (ids.length === 1) panel.current?.open(ids[0]);
    else if (ids.length > 1) panel.current?.showMany(ids.length);
    else panel.current?.open(null);
  }, []);

  // --- canvas events -------------------------------------------------------------------------

  const onNodesChange = useCallback(
    (changes) => {
      const allowed = readOnly
        ? changes.filter((c) => c.type === "select" || c.type === "dimensions")
        : changes;
      if (!allowed.length) return;
      setState({ ...state.current, nodes: applyNodeChanges(allowed, state.current.nodes) });
    },
    [readOnly, setState]
  );

  const onEdgesChange = useCallback(
    (changes) => {
      const allowed = readOnly ? changes.filter((c) => c.type === "select") : changes;
      if (!allowed.length) return;
      setState({ ...state.current, edges: applyEdgeChanges(allowed, state.current.edges) });
    },
    [readOnly, setState]
  );

  const onDelete = useCallback(() => commit(state.current), [commit]);

  const isValidConnection = useCallback((connection) => {
    const { nodes, edges } = state.current;
    const source = nodes.find((n) => n.id === connection.source);
    const target = nodes.find((n) => n.id === connection.target);
    if (!source || !target || source.id === target.id) return false;
    const out = handleType(source, connection.sourceHandle, "source");
    const into = handleType(target, connection.targetHandle, "target");
    if (out === null || into === null || isReferencePort(connection.targetHandle || "")) return false;
    if (into !== "trigger" && !compatible(out, into)) return false;
    const around = ancestorsOf(nodes, target.id);
    const inner = (connection.sourceHandle || "").startsWith(INNER);
    // A container's inner ports feed only the nodes inside it; a node reads only the nodes of
    // its own container and of the containers around it.
    if (inner) return around.includes(source.id);
    if (around.includes(source.id)) return false;
    const scope = [target.parentId || null, ...around, null];
    if (!scope.includes(source.parentId || null)) return false;
    const links = [...edges, ...referenceEdges(nodes)].filter(
      (e) => !(e.sourceHandle || "").startsWith(INNER)
    );
    return !makesCycle(links, source.id, target.id);
  }, []);

  const onConnect = useCallback(
    (connection) => {
      if (readOnly || !isValidConnection(connection)) return;
      const current = state.current;
      const trigger = connection.targetHandle === TRIGGER;
      let edges = current.edges;
      if (trigger) {
        const same = edges.some(
          (e) =>
            e.source === connection.source &&
            e.sourceHandle === connection.sourceHandle &&
            e.target === connection.target &&
            e.targetHandle === TRIGGER
        );
        if (same) return;
      } else {
        // One edge per input: the new connection replaces the old one.
        edges = edges.filter(
          (e) => !(e.target === connection.target && e.targetHandle === connection.targetHandle)
        );
      }
      const id = nextEdgeId(new Set(current.edges.map((e) => e.id)));
      edges = [
        ...edges,
        {
          id,
          source: connection.source,
          target: connection.target,
          sourceHandle: connection.sourceHandle,
          targetHandle: connection.targetHandle,
          className: trigger ? "trigger-edge" : undefined,
        },
      ];
      commit({ ...current, edges });
    },
    [commit, isValidConnection, readOnly]
  );

  const addNode = useCallback(
    (type, point) => {
      const entry = paletteMap.get(type);
      if (!entry || readOnly) return;
      const current = state.current;
      const id = nextNodeId(type, new Set(current.nodes.map((n) => n.id)));
      const container = TOP_LEVEL_ONLY.has(type) ? null : containerAt(current.nodes, point);
      const origin = container ? absolutePosition(current.nodes, container.id) : { x: 0, y: 0 };
      const position = { x: point.x - origin.x - NODE_WIDTH / 2, y: point.y - origin.y - 20 };
      const node = {
        ...flowNode({ id, type, config: entry.config, position, parent: container?.id }, entry, entry.ports),
        selected: true,
      };
      const nodes = sortParentsFirst([
        ...current.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)),
        node,
      ]);
      commit({ ...current, nodes });
    },
    [commit, paletteMap, readOnly]
  );

  const onDragOver = useCallback((event) => {
    if (!event.dataTransfer.types.includes(DRAG_TYPE)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
  }, []);

  const onDrop = useCallback(
    (event) => {
      const type = event.dataTransfer.getData(DRAG_TYPE);
      if (!type) return;
      event.preventDefault();
      addNode(type, screenToFlowPosition({ x: event.clientX, y: event.clientY }));
    },
    [addNode, screenToFlowPosition]
  );

  const addInView = useCallback(
    (type) => {
      const box = wrapper.current?.getBoundingClientRect();
      const point = box
        ? screenToFlowPosition({ x: box.left + box.width / 2, y: box.top + box.height / 3 })
        : { x: 0, y: 0 };
      addNode(type, point);
    },
    [addNode, screenToFlowPosition]
  );

  /** Dropped over a container: it moves inside (positions become relative); dragged out of
   * one: back to the level it lands on. */
  const onNodeDragStop = useCallback(
    (_event, _node, dragged) => {
      if (readOnly) return;
      let nodes = state.current.nodes;
      const moving = new Set(dragged.map((n) => n.id));
      for (const item of dragged) {
        const node = nodes.find((n) => n.id === item.id);
        if (!node || TOP_LEVEL_ONLY.has(node.data.kind)) continue;
        if (ancestorsOf(nodes, node.id).some((id) => moving.has(id))) continue;
        const at = absolutePosition(nodes, node.id);
        const width = node.measured?.width ?? NODE_WIDTH;
        const center = { x: at.x + width / 2, y: at.y + 20 };
        const inside = containerAt(nodes, center, withDescendants(nodes, [node.id]));
        const parent = inside ? inside.id : null;
        if (parent === (node.parentId || null)) continue;
        const origin = inside ? absolutePosition(nodes, inside.id) : { x: 0, y: 0 };
        const moved = { ...node, position: { x: at.x - origin.x, y: at.y - origin.y } };
        if (parent) moved.parentId = parent;
        else delete moved.parentId;
        nodes = sortParentsFirst(nodes.map((n) => (n.id === node.id ? moved : n)));
      }
      commit({ ...state.current, nodes });
    },
    [commit, readOnly]
  );

  // --- toolbar actions -----------------------------------------------------------------------

  const layout = useCallback(() => {
    if (readOnly) return;
    const current = state.current;
    commit({ ...current, nodes: autoLayout(current.nodes, [...current.edges, ...referenceEdges(current.nodes)]) });
    window.setTimeout(() => fitView({ padding: 0.2, duration: 200 }), 50);
  }, [commit, fitView, readOnly]);

  const copy = useCallback(() => {
    const { nodes, edges } = state.current;
    const chosen = withDescendants(nodes, nodes.filter((n) => n.selected).map((n) => n.id));
    if (!chosen.size) return;
    const clipboard = {
      nodes: nodes.filter((n) => chosen.has(n.id)),
      edges: edges.filter((e) => chosen.has(e.source) && chosen.has(e.target)),
    };
    pasteCount.current = 0;
    try {
      window.localStorage.setItem(CLIPBOARD_KEY, JSON.stringify(clipboard));
    } catch {
      // Storage full or refused: copy and paste still work within this page.
    }
    window.studioClipboard = clipboard;
    setNotice(`Copied ${clipboard.nodes.length} node${clipboard.nodes.length === 1 ? "" : "s"}.`);
  }, []);

  const paste = useCallback(() => {
    if (readOnly) return;
    let clipboard = window.studioClipboard;
    try {
      clipboard = JSON.parse(window.localStorage.getItem(CLIPBOARD_KEY) || "null") || clipboard;
    } catch {
      // Fall back to this page's clipboard.
    }
    if (!clipboard?.nodes?.length) return;
    pasteCount.current += 1;
    const current = state.current;
    const known = new Set(palette.map((p) => p.type));
    const usable = { ...clipboard, nodes: clipboard.nodes.filter((n) => known.has(n.data.kind)) };
    const pasted = pasteNodes(usable, current.nodes, current.edges, 40 * pasteCount.current);
    commit({
      nodes: sortParentsFirst([
        ...current.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)),
        ...pasted.nodes,
      ]),
      edges: [...current.edges, ...pasted.edges],
    });
  }, [commit, palette, readOnly]);

  const removeSelected = useCallback(() => {
    if (readOnly) return;
    const { nodes, edges } = state.current;
    deleteElements({
      nodes: nodes.filter((n) => n.selected).map((n) => ({ id: n.id })),
      edges: edges.filter((e) => e.selected).map((e) => ({ id: e.id })),
    });
  }, [deleteElements, readOnly]);

  useEffect(() => {
    function onKey(event) {
      if (!(event.ctrlKey || event.metaKey) || isTyping(event.target)) return;
      const key = event.key.toLowerCase();
      const actions = {
        z: event.shiftKey ? redo : undo,
        y: redo,
        c: copy,
        v: paste,
      };
      if (!actions[key]) return;
      event.preventDefault();
      actions[key]();
    }
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [copy, paste, redo, undo]);

  // --- test runs -----------------------------------------------------------------------------

  const setNodeRun = useCallback(
    (id, run) => {
      const nodes = state.current.nodes.map((n) =>
        n.id === id ? { ...n, data: { ...n.data, run: { ...(n.data.run || {}), ...run } } } : n
      );
      setState({ ...state.current, nodes });
    },
    [setState]
  );

  const clearRuns = useCallback(() => {
    const nodes = state.current.nodes.map((n) =>
      n.data.run ? { ...n, data: { ...n.data, run: null } } : n
    );
    setState({ ...state.current, nodes });
  }, [setState]);

  const testRun = useTestRun({
    urls,
    readOnly,
    flush,
    onReport: applyReport,
    onNodeRun: setNodeRun,
    onStart: clearRuns,
  });

  const selectNode = useCallback(
    (eventNode) => {
      const id = canvasId(eventNode);
      const nodes = state.current.nodes.map((n) => ({ ...n, selected: n.id === id }));
      setState({ ...state.current, nodes });
      const node = nodes.find((n) => n.id === id);
      if (node) fitView({ nodes: [{ id }], duration: 200, maxZoom: 1.2 });
    },
    [fitView, setState]
  );

  // --- publishing ----------------------------------------------------------------------------

  /** Save, then publish the draft as the next version; resolves to whether it did. */
  const publish = useCallback(
    async (note) => {
      if (!readOnly && !(await flush())) {
        setNotice("The draft could not be saved, so it was not published.");
        return false;
      }
      try {
        const { ok, body } = await postJSON(urls.publish, { note });
        if (!ok) {
          if (body.report) applyReport(body.report);
          setNotice(body.error || "Not published: fix the problems marked on the nodes.");
          return false;
        }
        setNotice(`Published version ${body.version}.`);
        setPublishOpen(false);
        const badge = document.getElementById("published-badge");
        if (badge) {
          badge.textContent = `v${body.version} published`;
          badge.className = "badge ok";
        }
        return true;
      } catch {
        setNotice("The studio could not be reached; nothing was published.");
        return false;
      }
    },
    [applyReport, flush, readOnly, urls.publish]
  );

  // --- rendering -----------------------------------------------------------------------------

  const dangling = useMemo(() => missingPorts(flow.nodes, flow.edges), [flow]);

  const shownNodes = useMemo(
    () =>
      flow.nodes.map((node) =>
        dangling.missing.has(node.id)
          ? { ...node, data: { ...node.data, missing: dangling.missing.get(node.id) } }
          : node
      ),
    [flow, dangling]
  );

  const shownEdges = useMemo(() => {
    const problemEdges = new Set(
      (lastReport.current?.problems || []).filter((p) => p.edge).map((p) => p.edge)
    );
    const stored = flow.edges.map((edge) => {
      const extra = [
        problemEdges.has(edge.id) || dangling.stale.has(edge.id) ? "edge-problem" : "",
        dangling.stale.has(edge.id) ? "edge-stale" : "",
      ].filter(Boolean);
      return extra.length ? { ...edge, className: [edge.className, ...extra].filter(Boolean).join(" ") } : edge;
    });
    return [...stored, ...referenceEdges(flow.nodes)];
  }, [flow, dangling]);

  const inputFields = useMemo(() => {
    const input = flow.nodes.find((n) => n.data.kind === "input");
    const fields = input?.data.config?.fields;
    return Array.isArray(fields) ? fields.filter((f) => f && typeof f.name === "string") : [];
  }, [flow.nodes]);

  const problemList = allProblems(lastReport.current, flow.nodes);

  return (
    <EditorContext.Provider value={context}>
      <div className={`editor-island${readOnly ? " read-only" : ""}`}>
        <Toolbar
          readOnly={readOnly}
          canPublish={can.publish}
          history={historyState}
          save={saveState}
          problems={problemList}
          problemsOpen={problemsOpen && problemList.length > 0}
          runOpen={runOpen}
          actions={{
            undo,
            redo,
            layout,
            copy,
            paste,
            remove: removeSelected,
            fit: () => fitView({ padding: 0.2, duration: 200 }),
            toggleRun: () => setRunOpen(!runOpen),
            toggleProblems: () => setProblemsOpen(!problemsOpen),
            togglePublish: () => setPublishOpen(!publishOpen),
          }}
        />
        {problemsOpen && problemList.length > 0 && (
          <ProblemList problems={problemList} onSelect={selectNode} onClose={() => setProblemsOpen(false)} />
        )}
        {publishOpen && <PublishForm onPublish={publish} onCancel={() => setPublishOpen(false)} />}
        {notice && (
          <p className="editor-notice" role="status">
            {notice} <button type="button" className="link" onClick={() => setNotice(null)}>Dismiss</button>
          </p>
        )}
        {problems.length > 0 && (
          <ul className="graph-problems" role="alert" aria-label="Problems of the flow">
            {problems.map((message, index) => <li key={index}>{message}</li>)}
          </ul>
        )}
        <div className="editor-body">
          {!readOnly && <Palette groups={groups} onAdd={addInView} />}
          <div className="canvas" ref={wrapper} onDragOver={onDragOver} onDrop={onDrop}>
            <ReactFlow
              nodes={shownNodes}
              edges={shownEdges}
              nodeTypes={nodeTypes}
              onNodesChange={onNodesChange}
              onEdgesChange={onEdgesChange}
              onConnect={onConnect}
              onDelete={onDelete}
              onNodeDragStop={onNodeDragStop}
              onSelectionChange={onSelectionChange}
              isValidConnection={isValidConnection}
              nodesDraggable={!readOnly}
              nodesConnectable={!readOnly}
              edgesReconnectable={false}
              deleteKeyCode={readOnly ? null : ["Backspace", "Delete"]}
              multiSelectionKeyCode={["Meta", "Control"]}
              snapToGrid
              snapGrid={[10, 10]}
              minZoom={0.2}
              maxZoom={2}
              // Fit an opened flow once; an empty canvas keeps its place as nodes are dropped.
              fitView={initial.nodes.length > 0}
              fitViewOptions={{ padding: 0.2, maxZoom: 1 }}
            >
              <Background gap={20} />
              <MiniMap pannable zoomable ariaLabel="Minimap" />
              <Controls showInteractive={false} />
            </ReactFlow>
          </div>
        </div>
        <RunPanel
          fields={inputFields}
          canRun={can.run}
          run={testRun.run}
          busy={testRun.busy}
          onRun={testRun.start}
          onSelect={selectNode}
          open={runOpen}
          onToggle={() => setRunOpen(!runOpen)}
        />
      </div>
    </EditorContext.Provider>
  );
}

export function Editor({ data }) {
  return (
    <ReactFlowProvider>
      <Canvas data={data} />
    </ReactFlowProvider>
  );
}
