// Behaviour declared in markup, for every page (the Content-Security-Policy allows no inline
// handlers): a form with data-confirm="…" asks before it is sent, a field with
// data-autosubmit sends its form when it changes.
document.addEventListener(
  "submit",
  (event) => {
    const message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  },
  true, // capture: asked before htmx or any other listener sees the submission
);

document.addEventListener("change", (event) => {
  const field = event.target;
  if (field.matches && field.matches("[data-autosubmit]") && field.form) {
    field.form.requestSubmit();
  }
});
