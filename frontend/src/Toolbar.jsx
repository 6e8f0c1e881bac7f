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

export function Toolbar({ readOnly, canPublish, history, save, problemCount, actions, runOpen }) {
  return (
    <div className="editor-toolbar" role="toolbar" aria-label="Editor">
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
      <span className="toolbar-spacer" />
      {readOnly ? (
        <span className="badge muted">Read only</span>
      ) : (
        <span className={`save-state save-${save.state}`} role="status" data-testid="save-state">
          {savedLabel(save)}
        </span>
      )}
      <span className={`badge ${problemCount ? "error" : "ok"}`} data-testid="problem-count">
        {problemCount ? `${problemCount} problem${problemCount === 1 ? "" : "s"}` : "No problems"}
      </span>
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
