// Requests to the studio (with the page's CSRF token) and a run's events over its WebSocket.

function csrfToken() {
  try {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  } catch {
    return "";
  }
}

/** POST JSON; resolves to {ok, status, body} whatever the status, rejects on network errors. */
export async function postJSON(url, payload) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      "Content-Type": "application/json",
      Accept: "application/json",
      "X-CSRFToken": csrfToken(),
    },
    body: JSON.stringify(payload),
  });
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = { error: `The studio answered HTTP ${response.status}.` };
  }
  return { ok: response.ok, status: response.status, body };
}

export async function getJSON(url) {
  const response = await fetch(url, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

const TERMINAL = ["run.finished", "run.failed"];
const MAX_RETRIES = 8;

/**
 * Follow a run's events (studio/events.py): they arrive in `seq` order, and `?after=<seq>`
 * replays what came after it, so a reconnect loses nothing and repeats nothing. A message is
 * one event or an array of them; `onEvent` gets each in order. Returns a function that stops
 * following.
 */
export function followRun(runId, onEvent, onLost) {
  let lastSeq = 0;
  let ended = false;
  let retries = 0;
  let socket = null;

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    // ``batch=1``: one message holds the events that were ready together, in order, which
    // saves the per-message cost on both ends while tokens stream.
    socket = new WebSocket(`${scheme}//${window.location.host}/ws/runs/${runId}/?after=${lastSeq}&batch=1`);
    socket.addEventListener("message", (message) => {
      const data = JSON.parse(message.data);
      for (const event of Array.isArray(data) ? data : [data]) {
        // Stopped (or ended) by an earlier event of this message: the rest is not wanted.
        if (ended) return;
        if (event.seq <= lastSeq) continue; // already delivered before a reconnect
        lastSeq = event.seq;
        retries = 0;
        onEvent(event);
        if (TERMINAL.includes(event.type)) {
          ended = true;
          socket.close();
          return;
        }
      }
    });
    socket.addEventListener("close", (closing) => {
      if (ended) return;
      if (closing.code === 4403) {
        ended = true;
        onLost("You do not have access to this run.");
        return;
      }
      retries += 1;
      if (retries > MAX_RETRIES) {
        ended = true;
        onLost("Lost the connection to this run; its trace page shows how it ended.");
        return;
      }
      window.setTimeout(connect, Math.min(250 * 2 ** retries, 5000));
    });
  }

  connect();
  return () => {
    ended = true;
    if (socket) socket.close();
  };
}
