// The editor's toolbar: editing actions, the draft's save state, its problem count, test runs
// and publishing (with an optional note for the version).
import { useState } from "react";

function timeOf(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString();
}

function savedLabel(save) {
  return {
    none: "Not edited yet",
    pending: "Unsaved changes…",
    saving: "Saving…",
    saved: `Draft saved ${timeOf(save.at)}${save.by ? ` by ${save.by}` : ""}`,
    error: `Not saved: ${save.message}`,
  }[save.state];
}

function countLabel(problems) {
  if (!problems.length) return "No problems";
  return `${problems.length} problem${problems.length === 1 ? "" : "s"}`;
}

/** One row, never wrapped: the editing actions scroll sideways when the window is narrow, while
 * the draft's state, its problems, test runs and publishing stay in view. */
export function Toolbar({ readOnly, canPublish, history, save, problems, problemsOpen, actions, runOpen }) {
  return (
    <div className="editor-toolbar" role="toolbar" aria-label="Editor">
      <div className="toolbar-actions">
      {!readOnly && (
        <>
          <button type="button" onClick={actions.undo} disabled={!history.undo} title="Undo (Ctrl+Z)">Undo</button>
          <button type="button" onClick={actions.redo} disabled={!history.redo} title="Redo (Ctrl+Shift+Z)">Redo</button>
          <button type="button" onClick={actions.layout} title="Arrange the nodes left to right">Auto-layout</button>
          <button type="button" onClick={actions.copy} title="Copy the selected nodes (Ctrl+C)">Copy</button>
          <button type="button" onClick={actions.paste} title="Paste (Ctrl+V)">Paste</button>
          <button type="button" onClick={actions.remove} title="Delete the selection (Delete)">Delete</button>
        </>
      )}
      <button type="button" onClick={actions.fit}>Fit view</button>
      </div>
      <span className="toolbar-spacer" />
      {readOnly ? (
        <span className="badge muted">Read only</span>
      ) : (
        <span className={`save-state save-${save.state}`} role="status" data-testid="save-state">
          {savedLabel(save)}
        </span>
      )}
      <button type="button" className={`badge problem-count ${problems.length ? "error" : "ok"}`}
        data-testid="problem-count" aria-expanded={problemsOpen} aria-controls="editor-problems"
        disabled={!problems.length} onClick={actions.toggleProblems} title="List the problems">
        {countLabel(problems)}
      </button>
      <button type="button" onClick={actions.toggleRun} aria-expanded={runOpen}>Test run</button>
      {canPublish && (
        <button type="button" className="primary" onClick={actions.togglePublish}>Publish…</button>
      )}
    </div>
  );
}

export function PublishForm({ onPublish, onCancel }) {
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState(false);

  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    const done = await onPublish(note);
    setBusy(false);
    if (done) setNote("");
  }

  return (
    <form className="publish-form" onSubmit={submit} aria-label="Publish">
      <label htmlFor="publish-note">Note for this version (optional)</label>
      <input id="publish-note" type="text" maxLength={500} value={note}
        onChange={(event) => setNote(event.target.value)} />
      <button type="submit" className="primary" disabled={busy}>
        {busy ? "Publishing…" : "Publish the draft"}
      </button>
      <button type="button" className="link" onClick={onCancel}>Cancel</button>
    </form>
  );
}

/** Every problem of the draft, the toolbar's count spelled out; a node's problem selects it. */
export function ProblemList({ problems, onSelect, onClose }) {
  return (
    <div className="problem-list" id="editor-problems" role="region" aria-label="Problems of the draft">
      <ul>
        {problems.map((problem, index) => (
          <li key={index} className={problem.warning ? "warning" : "error"}>
            {problem.node ? (
              <button type="button" className="link" onClick={() => onSelect(problem.node)}>{problem.text}</button>
            ) : (
              problem.text
            )}
          </li>
        ))}
      </ul>
      <button type="button" className="link" onClick={onClose}>Close</button>
    </div>
  );
}
