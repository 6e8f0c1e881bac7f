// Copy buttons: <button data-copy="ID"> copies the text of the element #ID and says so in the
// element #ID-copied (a polite live region). No inline handlers: the pages run under a strict CSP.
(function () {
  "use strict";

  function fallbackCopy(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    let done = false;
    try {
      done = document.execCommand("copy");
    } catch (error) {
      done = false;
    }
    area.remove();
    return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        return fallbackCopy(text);
      });
    }
    return fallbackCopy(text);
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    const status = document.getElementById(button.dataset.copy + "-copied");
    copy(source.textContent).then(
      function () {
        if (status) status.textContent = "Copied";
      },
      function () {
        if (status) status.textContent = "Select the text and copy it";
      },
    );
  });
})();
