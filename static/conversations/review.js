// A conversation under review: its answers, rendered as Markdown (markdown.js) like the chat's.
(function () {
  "use strict";
  document.querySelectorAll(".text[data-markdown]").forEach((done) => {
    window.studioMarkdown.render(done, done.textContent);
    done.removeAttribute("data-markdown");
  });
})();
