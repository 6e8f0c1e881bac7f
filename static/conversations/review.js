// A conversation under review: its answers, rendered as Markdown (markdown.js) like the chat's.
window.studioMarkdown.renderAll(document);
