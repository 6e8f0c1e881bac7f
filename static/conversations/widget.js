// The embed widget's page (in a frame on another web site, or opened alone): gets a short-lived
// token for its end user, sends it with every request (never a cookie), renews it before it
// expires, and keeps an anonymous visitor's conversations through the visitor id it is given.
// chat.js then streams the answers, on the widget's socket (`window.studioWidget`).
(function () {
  "use strict";

  const body = document.body;
  const embedId = body.dataset.embedId;
  // What the widget keeps between visits (the visitor's secret, the open conversation): in
  // its own storage, or, where the browser keeps a frame of another site from storage (third-
  // party storage blocked), in the host page's, through the bubble script (embed.js).
  const memory = {};
  let own = true;
  try {
    window.localStorage.getItem("studio-widget");
  } catch (e) {
    own = false;
  }
  const storage = {
    get(name) {
      if (!own) return memory[name] ?? null;
      return window.localStorage.getItem(`studio-widget:${embedId}:${name}`);
    },
    set(name, value) {
      if (!own) {
        memory[name] = value;
        if (window.parent !== window) {
          window.parent.postMessage({ type: "studio-widget-save", name, value }, hostOrigin());
        }
        return;
      }
      const key = `studio-widget:${embedId}:${name}`;
      if (value == null) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, value);
    },
  };

  // Where the frame has no storage of its own, what the bubble script kept for it (or nothing
  // after a moment: a plain iframe embed has no script to ask).
  function restore() {
    if (own || window.parent === window) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = window.setTimeout(resolve, 1000);
      window.addEventListener("message", function kept(event) {
        if (event.source !== window.parent || event.origin !== hostOrigin()) return;
        if (!event.data || event.data.type !== "studio-widget-state") return;
        window.removeEventListener("message", kept);
        window.clearTimeout(timer);
        for (const name of ["visitor", "conversation"]) {
          if (typeof event.data[name] === "string") memory[name] = event.data[name];
        }
        resolve();
      });
      window.parent.postMessage({ type: "studio-widget-ready" }, hostOrigin());
    });
  }

  let token = null;
  let member = false;
  let renewal = null;

  // The origin of the page that frames the widget (the studio's own when opened alone).
  function hostOrigin() {
    if (window.top === window) return window.location.origin;
    if (window.location.ancestorOrigins && window.location.ancestorOrigins.length) {
      return window.location.ancestorOrigins[0];
    }
    try { return new URL(document.referrer).origin; } catch (e) { return ""; }
  }

  function status(text) {
    document.getElementById("widget-status").textContent = text || "";
  }

  // The composer is held back until the widget has a token; its Send says why meanwhile.
  function composer(reason) {
    document.querySelectorAll("#chat-form input, #chat-form button").forEach((e) => { e.disabled = Boolean(reason); });
    const send = document.querySelector("#chat-form button[type=submit]");
    if (reason) send.title = reason;
    else send.removeAttribute("title");
  }

  function ready(value, expiresIn) {
    token = value;
    window.clearTimeout(renewal);
    // Renewed a minute before it expires (or at four fifths of a short life).
    renewal = window.setTimeout(openSession, Math.max(5, Math.min(expiresIn - 60, expiresIn * 0.8)) * 1000);
    document.getElementById("widget-sign-in").classList.add("hidden");
    composer(null);
    status("");
  }

  async function openSession() {
    const headers = { "Content-Type": "application/json" };
    if (member && token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(body.dataset.sessionUrl, {
        method: "POST",
        headers,
        credentials: "omit",
        body: JSON.stringify({ origin: hostOrigin(), visitor: storage.get("visitor") || "" }),
      });
    } catch (e) {
      if (!token) composer("The chat cannot be reached");
      status("The chat cannot be reached: check the connection, then reload the page.");
      return false;
    }
    const answer = await response.json().catch(() => ({}));
    if (response.ok) {
      if (answer.visitor) storage.set("visitor", answer.visitor);
      ready(answer.token, answer.expires_in);
      return true;
    }
    const error = answer.error || {};
    if (response.status === 401 && error.code === "sign_in") {
      member = false;
      token = null;
      const box = document.getElementById("widget-sign-in");
      box.dataset.url = response.headers.get("X-Sign-In");
      box.classList.remove("hidden");
      composer("Sign in first to chat");
      status("");
      return false;
    }
    const refused = error.message || `The chat is not available here (HTTP ${response.status}).`;
    if (!token) composer(refused);  // a renewal refused leaves the current token its last minute
    status(refused);
    return false;
  }

  function load(url, conversationId) {
    document.getElementById("conversation-id").value = conversationId || "";
    storage.set("conversation", conversationId || null);
    return htmx.ajax("GET", url, { target: "#messages", swap: "innerHTML" });
  }

  function loadList() {
    return htmx.ajax("GET", body.dataset.conversationsUrl, { target: "#conversation-list", swap: "innerHTML" });
  }

  function openLast() {
    const last = storage.get("conversation");
    if (last && /^[0-9a-f-]{36}$/.test(last)) {
      return load(`${window.location.pathname}c/${last}/`, last);
    }
    return load(body.dataset.newUrl, "");
  }

  async function start() {
    await restore();
    if (await openSession()) {
      loadList();
      openLast();
    }
  }

  window.studioWidget = {
    socketUrl(runId, after) {
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      const query = `after=${after}&batch=1&token=${encodeURIComponent(token || "")}`;
      return `${scheme}//${window.location.host}${body.dataset.socketPath}${runId}/?${query}`;
    },
  };

  document.addEventListener("htmx:configRequest", (event) => {
    if (token) event.detail.headers.Authorization = `Bearer ${token}`;
  });

  document.addEventListener("htmx:responseError", (event) => {
    const xhr = event.detail.xhr;
    if (xhr.status === 401) {
      status("The chat's session ended: renewing it, try again in a moment.");
      openSession();
    } else if (xhr.status === 404) {
      // A conversation deleted elsewhere, or gone: start afresh.
      storage.set("conversation", null);
    }
  });

  document.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.elt.id !== "chat-form" || !event.detail.successful) return;
    window.setTimeout(() => {
      storage.set("conversation", document.getElementById("conversation-id").value || null);
      loadList();
    }, 0);
  });

  document.addEventListener("click", (event) => {
    const opened = event.target.closest(".open-conversation");
    if (opened) {
      load(opened.dataset.url, opened.dataset.id);
      document.getElementById("widget-history").open = false;
    } else if (event.target.id === "widget-new") {
      load(body.dataset.newUrl, "");
    } else if (event.target.id === "widget-sign-in-button") {
      const url = document.getElementById("widget-sign-in").dataset.url;
      window.open(url, "studio-sign-in", "popup,width=480,height=640");
    }
  });

  // A member's token from the sign-in window (a page of this same origin).
  window.addEventListener("message", (event) => {
    if (event.origin !== window.location.origin || !event.data || event.data.type !== "studio-widget-token") return;
    member = true;
    ready(event.data.token, event.data.expiresIn);
    loadList();
    openLast();
  });

  document.addEventListener("DOMContentLoaded", start);
})();
