// The studio's chat bubble for other web sites. Pasted as
//   <script src="https://studio.example/static/conversations/embed.js"
//           data-studio-widget="https://studio.example/embed/<id>/" data-colour="#2563eb" defer></script>
// it adds a round button in the page's corner that opens the chat in a frame of the studio's
// own origin. Nothing of the host page reaches the studio but its origin (the frame checks it
// against the flow's list), and nothing of the studio reaches the host page. The button lives
// in a shadow root, so the page's styles do not change it, nor its styles the page.
(function () {
  "use strict";

  const script = document.currentScript;
  if (!script || !script.dataset.studioWidget) return;
  let url;
  try {
    url = new URL(script.dataset.studioWidget, script.src);
  } catch (e) {
    return;
  }
  if (!/^https?:$/.test(url.protocol)) return;
  const colour = /^#[0-9a-fA-F]{6}$/.test(script.dataset.colour || "") ? script.dataset.colour : "#2563eb";

  const host = document.createElement("div");
  host.setAttribute("data-studio-chat", "");
  const root = host.attachShadow({ mode: "open" });
  const style = document.createElement("style");
  style.textContent = `
    :host { all: initial; }
    button { position: fixed; right: 20px; bottom: 20px; width: 56px; height: 56px; border-radius: 50%;
      border: 0; background: ${colour}; color: #fff; font: 24px/1 sans-serif; cursor: pointer;
      box-shadow: 0 4px 14px rgba(0, 0, 0, .25); z-index: 2147483000; }
    button:focus-visible { outline: 3px solid #000; outline-offset: 2px; }
    .panel { position: fixed; right: 20px; bottom: 88px; width: min(400px, calc(100vw - 40px));
      height: min(620px, calc(100vh - 120px)); border-radius: 12px; overflow: hidden; background: #fff;
      box-shadow: 0 8px 30px rgba(0, 0, 0, .25); z-index: 2147483000; }
    .panel[hidden] { display: none; }
    iframe { width: 100%; height: 100%; border: 0; }
    @media (max-width: 480px) { .panel { right: 0; bottom: 0; width: 100vw; height: calc(100vh - 80px); border-radius: 0; } }
  `;
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "💬";
  button.setAttribute("aria-label", "Open the chat");
  button.setAttribute("aria-expanded", "false");
  const panel = document.createElement("div");
  panel.className = "panel";
  panel.hidden = true;
  root.append(style, panel, button);

  function toggle(open) {
    if (open && !panel.firstChild) {
      const frame = document.createElement("iframe");
      frame.src = url.href;
      frame.title = "Chat";
      frame.setAttribute("allow", "clipboard-write");
      panel.append(frame);
    }
    panel.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    button.setAttribute("aria-label", open ? "Close the chat" : "Open the chat");
    button.textContent = open ? "×" : "💬";
  }

  // The chat keeps its visitor's id and open conversation here, in this page's storage, when
  // the browser keeps the studio's frame from storage of its own (third-party storage blocked).
  // Only the studio's frame is listened to, and only the widget's two values are kept.
  const KEPT = ["visitor", "conversation"];
  const prefix = `studio-widget:${url.href}:`;
  function kept(name) {
    try { return window.localStorage.getItem(prefix + name); } catch (e) { return null; }
  }
  window.addEventListener("message", (event) => {
    const frame = panel.querySelector("iframe");
    if (!frame || event.source !== frame.contentWindow || event.origin !== url.origin) return;
    const data = event.data || {};
    if (data.type === "studio-widget-ready") {
      const state = { type: "studio-widget-state" };
      for (const name of KEPT) state[name] = kept(name);
      frame.contentWindow.postMessage(state, url.origin);
    } else if (data.type === "studio-widget-save" && KEPT.includes(data.name)) {
      try {
        if (data.value == null) window.localStorage.removeItem(prefix + data.name);
        else window.localStorage.setItem(prefix + data.name, String(data.value).slice(0, 200));
      } catch (e) { /* no storage here either: the visitor is new on each visit */ }
    }
  });

  button.addEventListener("click", () => toggle(panel.hidden));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) {
      toggle(false);
      button.focus();
    }
  });
  (document.body || document.documentElement).append(host);
})();
