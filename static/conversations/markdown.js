// Model answers as Markdown, made safe: marked parses (GitHub's flavour: lists, tables, code
// blocks), DOMPurify then keeps only harmless HTML. Model text is untrusted, so:
// - raw HTML in the answer is shown as text, never parsed (marked's `html` renderer escapes it);
// - links keep only http(s) and mailto targets (no `javascript:`), and open in a new tab without
//   the opener;
// - no images, unless the flow allows remote images (`data-remote-images` on a container of the
//   answer): a remote image calls a server chosen by whoever wrote the text; then only https
//   images, sent without a referrer;
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

  const OPTIONS = { gfm: true, breaks: true, async: false };
  const withImages = new marked.Marked(OPTIONS, {
    renderer: {
      html(token) {
        return escapeHtml(token.text);
      },
    },
  });
  const parser = new marked.Marked(OPTIONS, {
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

  const PURIFY_IMAGES = {
    ...PURIFY,
    FORBID_TAGS: PURIFY.FORBID_TAGS.filter((tag) => tag !== "img"),
  };

  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A" && node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
    if (node.tagName === "IMG") {
      if (!/^https:/i.test(node.getAttribute("src") || "")) node.removeAttribute("src");
      node.setAttribute("referrerpolicy", "no-referrer");
      node.setAttribute("loading", "lazy");
    }
  });

  function render(element, raw) {
    const images = element.closest("[data-remote-images]") !== null;
    const html = (images ? withImages : parser).parse(raw);
    element.innerHTML = DOMPurify.sanitize(html, images ? PURIFY_IMAGES : PURIFY);
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
