// The bridge between the canvas and the settings panel, which the server renders with htmx.
//
// The island asks for a node's form (`open`); every request from the panel carries the current
// graph (the form's `graph` field is filled as the request leaves); the server answers with the
// form again (errors inline) and a `studio:node-config` event carrying the node's cleaned
// settings, which the island applies. Variable pickers insert a variable at the cursor: the short
// `{{port}}` where an edge carries the output in (or the canvas draws one as it is picked), else
// `{{node.port}}`.
//
// The form applies itself on every change, so a response may arrive while the person goes on
// typing or has a picker open: what they typed meanwhile, the open pickers and the cursor
// survive the swap, and a response for a node no longer selected is not shown.

const PANEL_ID = "node-panel";
const NODE_IN_HTML = /data-node="([^"]*)"/;

function formValues(form) {
  const values = new Map();
  for (const element of form.elements) {
    if (!element.name || element.name === "graph" || element.type === "submit") continue;
    if (element.type === "checkbox") values.set(`${element.name}=${element.value}`, element.checked);
    else values.set(element.name, element.value);
  }
  return values;
}

function changed(field) {
  field.dispatchEvent(new Event("input", { bubbles: true }));
  field.dispatchEvent(new Event("change", { bubbles: true }));
}

export function connectPanel({ panelUrl, currentGraph, onNodeConfig, onWire }) {
  const panel = document.getElementById(PANEL_ID);
  let selectedNode = null;
  let sent = null; // the form's values when its request left
  let carried = null; // what to put back after the swap
  let caret = null; // where the cursor was in a text field: {id, start, end}

  function form() {
    return panel?.querySelector("form.node-form") || null;
  }

  document.body.addEventListener("htmx:configRequest", (event) => {
    const source = event.detail.elt;
    if (!panel || !source || !panel.contains(source)) return;
    event.detail.parameters.graph = JSON.stringify(currentGraph());
    const current = form();
    sent = current && current.contains(source) ? formValues(current) : null;
  });

  document.body.addEventListener("studio:node-config", (event) => onNodeConfig(event.detail));

  document.body.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.target?.id !== PANEL_ID) return;
    // A refused form (400) still shows its inline errors.
    if (event.detail.xhr.status === 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
    const node = NODE_IN_HTML.exec(event.detail.serverResponse || "")?.[1];
    if (node !== undefined && node !== selectedNode) {
      event.detail.shouldSwap = false; // the settings still reached the canvas
      return;
    }
    const current = form();
    carried = { values: new Map(), open: [] };
    if (current && sent && current.dataset.node === node) {
      for (const [name, value] of formValues(current)) {
        if (sent.get(name) !== value) carried.values.set(name, value);
      }
    }
    carried.open = [...panel.querySelectorAll("details[open][id]")].map((d) => d.id);
  });

  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target?.id !== PANEL_ID) return;
    const current = form();
    if (current && carried) {
      for (const id of carried.open) document.getElementById(id)?.setAttribute("open", "");
      for (const [key, value] of carried.values) {
        const [name, option] = key.split("=");
        for (const element of current.elements) {
          if (element.name !== name) continue;
          if (element.type === "checkbox" && element.value === option) element.checked = value;
          else if (element.type !== "checkbox") element.value = value;
        }
      }
      if (carried.values.size) current.dispatchEvent(new Event("change", { bubbles: true }));
    }
    carried = null;
    // Settings too large for a response header come inside the panel's HTML.
    const source = panel.querySelector("[data-apply-settings] script");
    if (source) onNodeConfig(JSON.parse(source.textContent));
  });

  function remember(event) {
    const field = event.target;
    if (field.matches?.("textarea, input[type=text]")) {
      caret = { id: field.id, start: field.selectionStart, end: field.selectionEnd };
    }
  }
  panel?.addEventListener("focusout", remember);
  panel?.addEventListener("keyup", remember);
  panel?.addEventListener("mouseup", remember);

  panel?.addEventListener("click", (event) => {
    const button = event.target.closest("[data-insert]");
    if (!button) return;
    event.preventDefault();
    const field = document.getElementById(button.dataset.target);
    if (!field) return;
    const at = caret?.id === field.id ? caret : null;
    if (button.dataset.wire && selectedNode) {
      // A short {{name}} for an output no edge carries in yet: the canvas draws that edge once
      // the settings with the new port come back.
      const [source, sourcePort] = button.dataset.wire.split(".", 2);
      onWire({
        node: selectedNode,
        source,
        sourcePort,
        port: button.dataset.wirePort,
      });
    }
    if (button.dataset.mode === "reference" && field.tagName === "INPUT") {
      replaceValue(field, button.dataset.insert);
    } else if (button.dataset.mode === "reference") {
      insertLine(field, button.dataset.insert, at);
    } else {
      insertAtCursor(field, button.dataset.insert, at);
    }
    const menu = button.closest("details");
    if (menu) menu.open = false;
  });

  function hint(text) {
    panel.innerHTML = "";
    const message = document.createElement("p");
    message.className = "muted panel-hint";
    message.textContent = text;
    panel.append(message);
  }

  return {
    open(nodeId) {
      selectedNode = nodeId;
      caret = null;
      if (!panel) return;
      if (!nodeId) {
        hint("Select a node to see its settings.");
        return;
      }
      window.htmx.ajax("POST", panelUrl, {
        target: `#${PANEL_ID}`,
        swap: "innerHTML",
        source: panel,
        values: { node: nodeId },
      });
    },
    showMany(count) {
      selectedNode = null;
      if (panel) hint(`${count} nodes selected. Select one to see its settings.`);
    },
    /** The selected node's problems from the draft's latest report (the toolbar's list): the
     * panel says what the toolbar counts even after an edit on the canvas. A form with inline
     * errors keeps its own list, which leaves out what those errors already say. */
    showProblems(problemsOf) {
      const current = form();
      if (!current || current.dataset.node !== selectedNode) return;
      if (current.querySelector(".field-error, .form-errors")) return;
      showNodeProblems(current, problemsOf(selectedNode));
    },
  };
}

function showNodeProblems(form, messages) {
  let box = form.querySelector(".node-problems-panel");
  if (!messages.length) {
    box?.remove();
    return;
  }
  if (!box) {
    box = document.createElement("div");
    box.className = "node-problems-panel";
    const title = document.createElement("h3");
    title.textContent = "Problems of this node in the flow";
    const list = document.createElement("ul");
    list.className = "problems";
    box.append(title, list);
    const fieldset = form.querySelector("fieldset");
    if (fieldset) fieldset.after(box);
    else form.append(box);
  }
  const list = box.querySelector("ul.problems");
  list.replaceChildren(
    ...messages.map((message) => {
      const item = document.createElement("li");
      item.textContent = message;
      return item;
    })
  );
}

function span(field, at) {
  const length = field.value.length;
  if (!at) return { start: length, end: length };
  return { start: Math.min(at.start ?? length, length), end: Math.min(at.end ?? length, length) };
}

/** Insert `text` where the cursor was (or replace the selection) and tell the form. */
export function insertAtCursor(field, text, at = null) {
  const { start, end } = span(field, at);
  field.value = field.value.slice(0, start) + text + field.value.slice(end);
  const cursor = start + text.length;
  field.focus();
  field.setSelectionRange(cursor, cursor);
  changed(field);
}

/** A field that names one output (`node_id.port`): the pick replaces what was there. */
function replaceValue(field, text) {
  field.value = text;
  field.focus();
  changed(field);
}

/** A list of outputs, one per line: the pick goes on a line of its own at the cursor. */
function insertLine(field, text, at = null) {
  const { end } = span(field, at);
  const before = field.value.slice(0, end);
  const after = field.value.slice(end);
  const line =
    (before && !before.endsWith("\n") ? "\n" : "") + text + (after && !after.startsWith("\n") ? "\n" : "");
  field.value = before + line + after;
  field.focus();
  changed(field);
}
