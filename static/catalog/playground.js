// The compare playground: each answer pane follows its side's events over Server-Sent Events.
//
// Protocol (studio/events.py): an event's `seq` is its SSE id, so when a connection drops,
// EventSource reconnects with Last-Event-ID and the server resumes after it; panes also skip
// any seq they have already shown. Model text is untrusted: it only ever becomes text nodes.
(function () {
  "use strict";

  const open = new Set(); // the EventSources of the panes on screen

  function milliseconds(ms) {
    return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
  }

  function money(cost) {
    const value = Number(cost);
    return value ? `$${value.toPrecision(3)}` : "$0";
  }

  function follow(pane) {
    if (pane.dataset.following) return;
    pane.dataset.following = "true";
    const answer = pane.querySelector(".answer");
    const state = pane.querySelector(".state");
    const figures = pane.querySelector(".figures");
    const source = new EventSource(pane.dataset.streamUrl);
    open.add(source);
    let lastSeq = 0;
    let ended = false;

    function end(outcome) {
      ended = true;
      source.close();
      open.delete(source);
      pane.classList.remove("streaming");
      pane.classList.add(outcome);
    }

    function fail(reason) {
      end("failed");
      const error = document.createElement("p");
      error.className = "error-text";
      error.setAttribute("role", "alert");
      error.textContent = reason;
      pane.insertBefore(error, state);
      state.textContent = "Failed";
    }

    // The event of a message not shown yet, else null (a replay after a reconnect).
    function fresh(message) {
      const seq = Number(message.lastEventId);
      if (ended || seq <= lastSeq) return null;
      lastSeq = seq;
      return JSON.parse(message.data);
    }

    source.addEventListener("run.started", (message) => {
      if (fresh(message)) state.textContent = "Generating…";
    });
    source.addEventListener("token", (message) => {
      const event = fresh(message);
      if (!event) return;
      answer.append(document.createTextNode(event.data.text));
      state.textContent = "Writing…";
    });
    source.addEventListener("run.finished", (message) => {
      const event = fresh(message);
      if (!event) return;
      const data = event.data;
      end("done");
      state.textContent = data.finish_reason === "length" ? "Done · stopped at max tokens" : "Done";
      const shown = {
        tokens: `${data.input_tokens} in · ${data.output_tokens} out`,
        ttft: milliseconds(data.ttft_ms),
        latency: milliseconds(data.latency_ms),
        cost: money(data.cost),
      };
      for (const [name, text] of Object.entries(shown)) {
        figures.querySelector(`[data-figure="${name}"]`).textContent = text;
      }
      figures.hidden = false;
    });
    source.addEventListener("run.failed", (message) => {
      const event = fresh(message);
      if (event) fail(event.data.reason || "The model failed.");
    });
    source.addEventListener("error", () => {
      if (ended) return;
      if (source.readyState === EventSource.CLOSED) {
        // Refused (404: not yours, or expired) or not a stream: retrying will not help.
        fail("This answer can no longer be followed. Run the comparison again.");
      } else {
        state.textContent = "Reconnecting…";
      }
    });
  }

  function closeAll() {
    open.forEach((source) => source.close());
    open.clear();
  }

  htmx.onLoad((element) => {
    const panes = element.matches("[data-stream-url]")
      ? [element]
      : element.querySelectorAll("[data-stream-url]");
    panes.forEach(follow);
  });

  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.target.id !== "workbench") return;
    if (event.detail.xhr.status === 400) {
      // A refused form comes back with its errors: show them.
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
    if (event.detail.shouldSwap) closeAll(); // the old panes are about to go
  });

  document.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    if (form.id !== "playground-form" || event.detail.successful) return;
    if (event.detail.xhr.status === 400) return;
    const alert = document.createElement("div");
    alert.className = "alert error";
    alert.setAttribute("role", "alert");
    const status = event.detail.xhr.status;
    alert.textContent =
      status === 403 || status === 404
        ? "You may not use one of these models any more. Reload the page to see which you may."
        : `The comparison could not start (HTTP ${status || "error"}).`;
    form.prepend(alert);
  });
})();
