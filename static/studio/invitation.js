// An invitation link carries its token in the fragment (#…), which browsers never send, so no
// access log records it: take it out of the address bar and send it in the form's body.
(function () {
  const form = document.getElementById("invitation-open");
  const token = decodeURIComponent(window.location.hash.slice(1));
  if (!form || !token) return;
  window.history.replaceState(null, "", window.location.pathname);
  form.elements.token.value = token;
  form.submit();
})();
