// The sign-in window of an embed widget: hands the member's widget token to the widget that
// opened it. Only a window of the studio's own origin (the widget's frame) can receive it.
(function () {
  "use strict";
  const result = document.getElementById("sign-in-result");
  if (window.opener && result) {
    window.opener.postMessage(
      { type: "studio-widget-token", token: result.dataset.token, expiresIn: Number(result.dataset.expiresIn) },
      window.location.origin,
    );
    window.setTimeout(() => window.close(), 300);
  }
})();
