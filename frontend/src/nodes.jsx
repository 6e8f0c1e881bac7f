// How a node looks on the canvas: typed handles for its ports, its problems, its run state.
import { createContext, memo, useContext } from "react";
import { Handle, Position } from "@xyflow/react";

import { INNER, TRIGGER, isReferencePort } from "./graph.js";

/** The palette by type, and whether the canvas is read-only. */
export const EditorContext = createContext({ palette: new Map(), readOnly: true });

const RUN_LABELS = {
  running: "Running…",
  succeeded: "Done",
  skipped: "Skipped",
  failed: "Failed",
  handled: "Failed, handled",
  waiting: "Waiting",
};

function summary(kind, config) {
  if (!config || typeof config !== "object") return "";
  if (config.route) return `route ${config.route}`;
  if (config.model) return config.model;
  if (config.knowledge_base) return config.knowledge_base;
  if (Array.isArray(config.fields)) return config.fields.map((f) => f?.name).filter(Boolean).join(", ");
  return "";
}

function runLine(run) {
  if (!run) return null;
  const parts = [RUN_LABELS[run.status] || run.status];
  if (run.output_tokens) parts.push(`${run.output_tokens} tokens`);
  if (run.latency_ms != null) parts.push(`${Math.round(run.latency_ms)} ms`);
  return parts.join(" · ");
}

function Problems({ problems }) {
  if (!problems.length) return null;
  return (
    <div className="node-problems" role="note">
      <span className="node-problems-badge" aria-label={`${problems.length} problems`}>
        !{problems.length > 1 ? problems.length : ""}
      </span>
      <ul className="node-problems-list">
        {problems.map((message, index) => (
          <li key={index}>{message}</li>
        ))}
      </ul>
    </div>
  );
}

function PortRow({ name, type, side, connectable }) {
  const reference = side === "in" && isReferencePort(name);
  return (
    <div className={`port port-${side}${reference ? " port-reference" : ""}`} data-port={name}>
      <Handle
        type={side === "in" ? "target" : "source"}
        position={side === "in" ? Position.Left : Position.Right}
        id={name}
        className={`handle type-${type}`}
        isConnectable={connectable && !reference}
        title={reference ? `{{${name}}}: wired by the reference` : `${name}: ${type}`}
      />
      <span className="port-name">{name}</span>
      <span className="port-type">{type}</span>
    </div>
  );
}

function classes(data, selected, extra) {
  return [
    "studio-node",
    extra,
    `kind-${data.kind}`,
    selected ? "selected" : "",
    data.problems.length ? "has-problems" : "",
    data.run ? `run-${data.run.status}` : "",
  ]
    .filter(Boolean)
    .join(" ");
}

function Header({ id, data, entry, connectable }) {
  return (
    <div className="node-header" title={entry?.description || ""}>
      {data.kind !== "input" && (
        <Handle
          type="target"
          position={Position.Left}
          id={TRIGGER}
          className="handle handle-trigger"
          isConnectable={connectable}
          title="Run after: connect any output here to run this node after it"
        />
      )}
      <span className="node-label">{entry?.label || data.kind}</span>
      <span className="node-id">{data.title || id}</span>
      <Problems problems={data.problems} />
    </div>
  );
}

/** A port the node's settings no longer make but an edge still names: drawn (so the edge stays
 * visible, as a problem) and not connectable. */
function MissingPort({ name, side }) {
  return (
    <div className={`port port-${side} port-missing`} data-port={name}>
      <Handle
        type={side === "in" ? "target" : "source"}
        position={side === "in" ? Position.Left : Position.Right}
        id={name}
        className="handle handle-missing"
        isConnectable={false}
        title={`${name}: no longer used; remove the connection or use {{${name}}} again`}
      />
      <span className="port-name">{name}</span>
      <span className="port-type">gone</span>
    </div>
  );
}

function Ports({ data, connectable }) {
  const inputs = Object.entries(data.ports?.inputs || {});
  const outputs = Object.entries(data.ports?.outputs || {});
  const missing = data.missing || { inputs: [], outputs: [] };
  if (!inputs.length && !outputs.length && !missing.inputs.length && !missing.outputs.length) {
    return null;
  }
  return (
    <div className="node-ports">
      <div className="ports-in">
        {inputs.map(([name, type]) => (
          <PortRow key={name} name={name} type={type} side="in" connectable={connectable} />
        ))}
        {missing.inputs.map((name) => <MissingPort key={name} name={name} side="in" />)}
      </div>
      <div className="ports-out">
        {outputs.map(([name, type]) => (
          <PortRow key={name} name={name} type={type} side="out" connectable={connectable} />
        ))}
        {missing.outputs.map((name) => <MissingPort key={name} name={name} side="out" />)}
      </div>
    </div>
  );
}

function Footer({ data }) {
  const line = runLine(data.run);
  const about = summary(data.kind, data.config);
  if (!line && !about) return null;
  return (
    <div className="node-footer">
      {about && <span className="node-summary">{about}</span>}
      {line && <span className="node-run">{line}</span>}
    </div>
  );
}

export const StudioNode = memo(function StudioNode({ id, data, selected }) {
  const { palette, readOnly } = useContext(EditorContext);
  const entry = palette.get(data.kind);
  return (
    <div className={classes(data, selected)} data-node-id={id}>
      <Header id={id} data={data} entry={entry} connectable={!readOnly} />
      <Ports data={data} connectable={!readOnly} />
      <Footer data={data} />
    </div>
  );
});

/** An iteration or a loop: a group whose inner ports feed the nodes placed inside it. */
export const StudioContainer = memo(function StudioContainer({ id, data, selected }) {
  const { palette, readOnly } = useContext(EditorContext);
  const entry = palette.get(data.kind);
  const inner = Object.entries(data.ports?.inner || {});
  return (
    <div className={classes(data, selected, "studio-container")} data-node-id={id}>
      <div className="container-outer">
        <Header id={id} data={data} entry={entry} connectable={!readOnly} />
        <Ports data={data} connectable={!readOnly} />
        <Footer data={data} />
      </div>
      <div className="container-inner" aria-label="Inside the container">
        {inner.map(([name, type]) => (
          <div className="port port-inner" key={name} data-port={INNER + name}>
            <span className="port-name">{name}</span>
            <Handle
              type="source"
              position={Position.Right}
              id={INNER + name}
              className={`handle type-${type}`}
              isConnectable={!readOnly}
              title={`${name}: ${type}, for the nodes inside`}
            />
          </div>
        ))}
        {!inner.length && <p className="container-hint">Drop nodes here</p>}
      </div>
    </div>
  );
});

export const nodeTypes = { studioNode: StudioNode, studioContainer: StudioContainer };
