// Model answers as Markdown, made safe: marked parses (GitHub's flavour: lists, tables, code
// blocks), DOMPurify then keeps only harmless HTML. Model text is untrusted, so:
// - raw HTML in the answer is shown as text, never parsed (marked's `html` renderer escapes it);
// - links keep only http(s) and mailto targets (no `javascript:`), and open in a new tab without
//   the opener;
// - no images: a remote image would call a server chosen by whoever wrote the text;
// - no styles, forms, frames, SVG or MathML.
(function () {
  "use strict";

  function escapeHtml(text) {
    return text
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }

  const parser = new marked.Marked({
    gfm: true,
    breaks: true,
    async: false,
    renderer: {
      html(token) {
        return escapeHtml(token.text);
      },
      image(token) {
        return escapeHtml(token.text || "");
      },
    },
  });

  const PURIFY = {
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
    FORBID_TAGS: ["img", "style", "form", "input", "button", "textarea", "select", "iframe", "svg", "math"],
    FORBID_ATTR: ["style"],
  };

  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A" && node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  });

  function render(element, raw) {
    element.innerHTML = DOMPurify.sanitize(parser.parse(raw), PURIFY);
    element.classList.add("markdown");
  }

  // Every answer under `root` that the server rendered as escaped text (`data-markdown`),
  // rendered once; `each(element, markdown)` is then called with the Markdown it held.
  function renderAll(root, each) {
    root.querySelectorAll(".text[data-markdown]").forEach((element) => {
      const markdown = element.textContent;
      render(element, markdown);
      element.removeAttribute("data-markdown");
      if (each) each(element, markdown);
    });
  }

  window.studioMarkdown = { render, renderAll };
})();
