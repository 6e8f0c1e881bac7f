// The paste form of a knowledge base's page: says how big the pasted text is and about how many
// chunks it will make (from the base's chunk size and overlap: a token is about 4 characters),
// warns past the base's threshold, and holds the button back past the paste limit, saying why.
// The server checks the same limit (knowledge.services.documents.MAX_PASTE_CHARS).
(function () {
  "use strict";

  const number = new Intl.NumberFormat("en");

  function bytesText(bytes) {
    if (bytes < 1024) return `${bytes} bytes`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  function estimateChunks(chars, size, overlap) {
    const tokens = Math.ceil(chars / 4);
    return Math.ceil(tokens / Math.max(1, size - overlap));
  }

  function update(form, box, out, button) {
    const text = box.value;
    const max = Number(box.dataset.maxChars);
    const chars = text.length;
    if (!chars) {
      out.hidden = true;
      button.disabled = false;
      return;
    }
    const bytes = new TextEncoder().encode(text).length;
    const chunks = estimateChunks(
      chars,
      Number(form.dataset.chunkSize),
      Number(form.dataset.chunkOverlap),
    );
    const over = max && chars > max;
    let message = `${number.format(chars)} characters (${bytesText(bytes)}), about ${number.format(chunks)} chunk${chunks === 1 ? "" : "s"}.`;
    if (over) {
      message += ` Too long to paste: a paste is at most ${number.format(max)} characters; upload it as a file for more.`;
    } else if (chunks > Number(form.dataset.warnChunks)) {
      message += " Ingesting this many chunks takes a while; it can be cancelled from the documents table.";
    }
    out.textContent = message;
    out.hidden = false;
    out.classList.toggle("warning", !over && chunks > Number(form.dataset.warnChunks));
    out.classList.toggle("error-text", Boolean(over));
    button.disabled = Boolean(over);
    button.title = over ? "The text is longer than a paste may be" : "";
  }

  function start() {
    const form = document.getElementById("text-form");
    if (!form) return;
    const box = form.querySelector("textarea[name=text]");
    const out = document.getElementById("paste-size");
    const button = form.querySelector("button[type=submit]");
    if (!box || !out || !button) return;
    box.closest(".field")?.append(out); // under the box it measures, not under the metadata
    box.setAttribute("aria-describedby", `${box.getAttribute("aria-describedby") || ""} paste-size`.trim());
    const refresh = () => update(form, box, out, button);
    box.addEventListener("input", refresh);
    form.addEventListener("submit", (event) => {
      if (button.disabled) event.preventDefault();
    });
    refresh();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
