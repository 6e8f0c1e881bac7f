// The test-run panel: a form from the input node's fields, then each node of the run as it
// starts, streams, finishes, is skipped or fails. Model text is untrusted: React renders it as
// text, never as HTML.
import { useState } from "react";

const STATUS = {
  queued: "Queued",
  running: "Running",
  succeeded: "Succeeded",
  failed: "Failed",
  waiting: "Waiting for input",
  skipped: "Skipped",
  handled: "Failed, handled",
};

function initialValue(field) {
  if (field.type === "boolean") return false;
  return "";
}

/** The form's values as the run's inputs: numbers as numbers, JSON parsed. */
export function inputsFromForm(fields, values) {
  const inputs = {};
  const errors = {};
  for (const field of fields) {
    const raw = values[field.name];
    if (field.type === "boolean") {
      inputs[field.name] = Boolean(raw);
      continue;
    }
    if (raw === undefined || raw === "") {
      if (field.required !== false) errors[field.name] = "Fill this in.";
      continue;
    }
    if (field.type === "number") {
      const number = Number(raw);
      if (Number.isNaN(number)) errors[field.name] = "Type a number.";
      else inputs[field.name] = number;
    } else if (field.type === "json") {
      try {
        inputs[field.name] = JSON.parse(raw);
      } catch {
        errors[field.name] = "This is not valid JSON.";
      }
    } else if (field.type === "any") {
      try {
        inputs[field.name] = JSON.parse(raw);
      } catch {
        inputs[field.name] = raw;
      }
    } else {
      inputs[field.name] = raw;
    }
  }
  return { inputs, errors };
}

function FieldInput({ field, value, onChange, disabled }) {
  const id = `run-input-${field.name}`;
  const label = field.label || field.name;
  if (field.type === "boolean") {
    return (
      <label className="run-field run-field-check" htmlFor={id}>
        <input id={id} type="checkbox" checked={Boolean(value)} disabled={disabled}
          onChange={(event) => onChange(event.target.checked)} />
        {label}
      </label>
    );
  }
  return (
    <div className="run-field">
      <label htmlFor={id}>{label}</label>
      {field.type === "number" ? (
        <input id={id} type="number" step="any" value={value} disabled={disabled}
          onChange={(event) => onChange(event.target.value)} />
      ) : (
        <textarea id={id} rows={field.type === "text" ? 2 : 3} value={value} disabled={disabled}
          placeholder={field.type === "json" ? "JSON" : ""}
          onChange={(event) => onChange(event.target.value)} />
      )}
    </div>
  );
}

function show(value) {
  if (value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

function NodeEntry({ entry, onSelect }) {
  const [open, setOpen] = useState(false);
  const outputs = entry.outputs && Object.keys(entry.outputs).length ? entry.outputs : null;
  return (
    <li className={`run-node run-${entry.status}`} data-node={entry.id}>
      <div className="run-node-head">
        <button type="button" className="link" onClick={() => onSelect(entry.id)}>{entry.id}</button>
        <span className={`badge status-${entry.status}`}>{STATUS[entry.status] || entry.status}</span>
        {entry.latency_ms != null && <span className="muted">{Math.round(entry.latency_ms)} ms</span>}
        {(entry.input_tokens > 0 || entry.output_tokens > 0) && (
          <span className="muted">{entry.input_tokens || 0} in · {entry.output_tokens || 0} out tokens</span>
        )}
        {(outputs || entry.inputs) && (
          <button type="button" className="link" aria-expanded={open} onClick={() => setOpen(!open)}>
            {open ? "Hide details" : "Details"}
          </button>
        )}
      </div>
      {entry.text && <p className="run-stream">{entry.text}</p>}
      {entry.error && <p className="error-text" role="alert">{entry.error}</p>}
      {open && (
        <div className="run-node-details">
          {entry.inputs && (
            <>
              <h4>Inputs</h4>
              <pre className="code">{show(entry.inputs)}</pre>
            </>
          )}
          {outputs && (
            <>
              <h4>Outputs</h4>
              <pre className="code">{show(outputs)}</pre>
            </>
          )}
        </div>
      )}
    </li>
  );
}

export function RunPanel({ fields, canRun, run, busy, onRun, onSelect, open, onToggle }) {
  const [values, setValues] = useState({});
  const [errors, setErrors] = useState({});

  function submit(event) {
    event.preventDefault();
    const found = inputsFromForm(fields, values);
    setErrors(found.errors);
    if (!Object.keys(found.errors).length) onRun(found.inputs);
  }

  const status = run ? STATUS[run.status] || run.status : null;
  return (
    <section className={`run-panel${open ? " open" : ""}`} aria-label="Test run">
      <header className="run-panel-head">
        <button type="button" className="link run-toggle" aria-expanded={open} onClick={onToggle}>
          {open ? "▾" : "▸"} Test run
        </button>
        {status && <span className={`badge status-${run.status}`} data-testid="run-status">{status}</span>}
        {run?.traceUrl && <a href={run.traceUrl} target="_blank" rel="noopener">Open the run's trace</a>}
      </header>
      {open && (
        <div className="run-panel-body">
          <form className="run-form" onSubmit={submit}>
            {!fields.length && <p className="muted">Add an input node to give the flow inputs.</p>}
            {fields.map((field) => (
              <div key={field.name}>
                <FieldInput field={field} value={values[field.name] ?? initialValue(field)}
                  disabled={!canRun || busy}
                  onChange={(value) => setValues({ ...values, [field.name]: value })} />
                {errors[field.name] && <p className="field-error">{errors[field.name]}</p>}
              </div>
            ))}
            <button type="submit" className="primary" disabled={!canRun || busy}>
              {busy ? "Running…" : "Run"}
            </button>
            {!canRun && <p className="muted">You may not run this flow.</p>}
          </form>
          <div className="run-output" aria-live="polite">
            {run?.error && <p className="alert error" role="alert">{run.error}</p>}
            {run && (
              <ol className="run-nodes">
                {run.nodes.map((entry) => (
                  <NodeEntry key={entry.id} entry={entry} onSelect={onSelect} />
                ))}
              </ol>
            )}
            {run?.outputs && (
              <div className="run-result">
                <h4>Result</h4>
                <pre className="code" data-testid="run-result">{show(run.outputs)}</pre>
              </div>
            )}
          </div>
        </div>
      )}
    </section>
  );
}
