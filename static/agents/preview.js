// The builder's live preview: a chat with the agent's saved draft.
//
// Each answer is a chat bubble that conversations/chat.js follows over /ws/runs/<id>/ (resumed
// from the last seq after a dropped connection; tool calls, approvals, the streamed answer);
// chat.js then tells each event to the page ("studio:run-event"), and here the preview adds
// what only it shows: "Step n", the model's thought, tool calls open with their results
// shortened (expandable), and the outcome of a limit. The conversation so far is sent with each
// message as the history of the next run. Model text is untrusted: it is set as text only.
(function () {
  "use strict";

  const SHORT_RESULT = 400; // characters of a tool result shown before "Show all"
  // agent.finished's reason for each limit (agents/loop.py), as the builder's settings name it.
  const LIMITS = {
    max_steps: "steps per run",
    max_tokens: "tokens per run",
    max_seconds: "seconds per run",
  };

  const list = document.getElementById("preview-messages");
  const form = document.getElementById("preview-form");
  if (!list || !form) return;

  function scrollToEnd() {
    list.scrollTop = list.scrollHeight;
  }

  function before(bubble, element) {
    bubble.insertBefore(element, bubble.querySelector(".text"));
  }

  function line(className, text) {
    const element = document.createElement("p");
    element.className = className;
    element.textContent = text;
    return element;
  }

  // A long tool result is cut to a few lines; a button shows all of it (as the server sent it,
  // itself shortened past its own limit).
  function shorten(result) {
    if (!result || result.dataset.shortened || result.textContent.length <= SHORT_RESULT) return;
    result.dataset.shortened = "true";
    result.classList.add("clamped");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link show-all";
    button.textContent = "Show all";
    button.setAttribute("aria-expanded", "false");
    button.addEventListener("click", () => {
      const open = result.classList.toggle("clamped") === false;
      button.textContent = open ? "Show less" : "Show all";
      button.setAttribute("aria-expanded", String(open));
    });
    result.after(button);
  }

  list.addEventListener("studio:run-event", (raised) => {
    const bubble = raised.target;
    const event = raised.detail;
    const data = event.data || {};
    if (event.type === "agent.step") {
      before(bubble, line("preview-step", `Step ${data.step}`));
    } else if (event.type === "agent.thought" && data.text) {
      before(bubble, line("preview-thought", data.text));
    } else if (event.type === "tool.call") {
      const steps = bubble.querySelectorAll("details.agent-step");
      if (steps.length) steps[steps.length - 1].open = true;
    } else if (event.type === "tool.result") {
      bubble.querySelectorAll("details.agent-step pre.tool-result").forEach(shorten);
    } else if (event.type === "agent.finished" && data.outcome === "limited") {
      bubble.classList.add("limited");
      const which = LIMITS[data.reason] || data.reason;
      before(bubble, line("preview-limit", `Stopped at a limit: ${which} (see the answer).`));
    } else if (event.type === "run.finished") {
      const outputs = data.outputs || {};
      bubble.dataset.answer = typeof outputs.text === "string" ? outputs.text : "";
    }
    scrollToEnd();
  });

  // The turns so far: each message with its answer, once the answer is in.
  function history() {
    const turns = [];
    list.querySelectorAll(".exchange").forEach((exchange) => {
      const question = exchange.querySelector(".bubble.user .text");
      const answer = exchange.querySelector(".bubble[data-answer]");
      if (!question || !answer) return;
      turns.push({ role: "user", content: question.textContent });
      turns.push({ role: "assistant", content: answer.dataset.answer });
    });
    return turns.slice(-100);
  }

  document.addEventListener("htmx:configRequest", (event) => {
    if (event.detail.elt !== form) return;
    event.detail.parameters.history = JSON.stringify(history());
  });

  document.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.elt !== form) return;
    if (event.detail.successful) form.querySelector("input[name=message]").value = "";
    else if (![400, 429].includes(event.detail.xhr.status)) {
      const failed = line("bubble assistant failed", `The message could not be sent (HTTP ${event.detail.xhr.status || "error"}).`);
      failed.setAttribute("role", "alert");
      list.append(failed);
    }
    form.querySelector("input[name=message]").focus();
    scrollToEnd();
  });

  // A new conversation: the turns so far are forgotten (runs still going are left to end).
  document.getElementById("preview-reset").addEventListener("click", () => {
    list.replaceChildren();
    form.querySelector("input[name=message]").focus();
  });
})();
