// The chat page: each assistant bubble follows its run's events over a WebSocket.
//
// Protocol (studio/events.py): events arrive in `seq` order; `?after=<seq>` replays what came
// after it. We remember the last seq seen and reconnect with it, so a dropped socket loses
// nothing and repeats nothing. Model text is untrusted: it is rendered as Markdown through
// markdown.js (parsed, then sanitised), at most once per frame while it streams.
(function () {
  "use strict";

  const TERMINAL = ["run.finished", "run.failed"];
  const MAX_RETRIES = 8;

  // The embed widget (widget.js) follows its runs on its own socket, with its token.
  function socketUrl(runId, after) {
    if (window.studioWidget) return window.studioWidget.socketUrl(runId, after);
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}/ws/runs/${runId}/?after=${after}&batch=1`;
  }

  // The reason of a run its user stopped (conversations/services.py's STOPPED).
  const STOPPED = "stopped by the user";

  // A "Copy" button in an answer's meta line, copying its Markdown.
  function addCopy(bubble, markdown) {
    const meta = bubble.querySelector(".meta");
    if (!meta || meta.querySelector(".copy")) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link copy";
    button.textContent = "Copy";
    button.addEventListener("click", () => {
      navigator.clipboard.writeText(markdown()).then(() => {
        button.textContent = "Copied";
        window.setTimeout(() => { button.textContent = "Copy"; }, 1500);
      });
    });
    meta.append(" · ", button);
  }

  // Only the conversation's last answer may be asked again.
  function showRegenerate() {
    const buttons = document.querySelectorAll("#messages .regenerate");
    buttons.forEach((button, index) => {
      button.classList.toggle("hidden", index !== buttons.length - 1);
    });
  }

  function scrollToEnd() {
    const list = document.getElementById("messages");
    if (list) list.scrollTop = list.scrollHeight;
  }

  // A link to the run's page, where the page may show runs (not in the embed widget).
  // The meta line's "View run" link, after a separator (none without a run page).
  function runLink(bubble, label) {
    if (!bubble.dataset.runUrl) return "";
    const link = document.createElement("a");
    link.href = bubble.dataset.runUrl;
    link.className = "run-link";
    link.textContent = label;
    const part = document.createDocumentFragment();
    part.append(" · ", link);
    return part;
  }

  function follow(bubble) {
    if (bubble.dataset.following) return;
    bubble.dataset.following = "true";
    const runId = bubble.dataset.runId;
    const text = bubble.querySelector(".text");
    const meta = bubble.querySelector(".meta");
    const state = meta.querySelector(".state");
    // Which nodes' tokens form the answer: a comma-separated `data-nodes`; absent means all.
    const nodes = bubble.dataset.nodes ? bubble.dataset.nodes.split(",") : null;
    let lastSeq = 0;
    let ended = false;
    let retries = 0;
    // Citations of the run's knowledge retrieval nodes, shown as the answer's sources.
    const sources = [];
    // Whether an answer node stopped at its token limit rather than at its end.
    let cut = false;
    // The answer's Markdown so far, rendered on the next frame.
    let raw = "";
    let drawing = false;

    function show(markdown) {
      raw = markdown;
      if (drawing) return;
      drawing = true;
      window.requestAnimationFrame(() => {
        drawing = false;
        window.studioMarkdown.render(text, raw);
        scrollToEnd();
      });
    }

    function showSources() {
      if (!sources.length) return;
      const list = document.createElement("ol");
      list.className = "sources";
      list.setAttribute("aria-label", "Sources");
      for (const source of sources) {
        const item = document.createElement("li");
        const where = [source.document];
        if (source.page) where.push(`page ${source.page}`);
        if (source.section) where.push(source.section);
        item.textContent = `[${source.index}] ${where.join(", ")}`;
        item.title = (source.text || "").slice(0, 400);
        list.append(item);
      }
      bubble.insertBefore(list, meta);
    }

    function finish(event) {
      bubble.classList.remove("streaming");
      bubble.classList.add("done");
      const outputs = event.data.outputs || {};
      if (!raw) {
        // No streamed tokens (a flow without a streaming node): show the answer whole.
        const answer = outputs.text ?? Object.values(outputs).find((v) => typeof v === "string");
        show(answer ?? "```json\n" + JSON.stringify(outputs, null, 2) + "\n```");
      }
      showSources();
      const usage = event.data.usage || {};
      const ending = cut ? "Cut at the token limit" : "Done";
      state.textContent = `${ending} · ${usage.output_tokens ?? 0} tokens`;
      if (cut) bubble.classList.add("cut");
      addCopy(bubble, () => raw);
      meta.append(runLink(bubble, "View run"));
    }

    function fail(reason) {
      bubble.classList.remove("streaming");
      if (reason === STOPPED) {
        // Stopped by its user: what it wrote stays, as written so far.
        bubble.classList.add("done", "stopped");
        state.textContent = "Stopped";
        if (raw) addCopy(bubble, () => raw);
        meta.append(runLink(bubble, "View run"));
        return;
      }
      bubble.classList.add("failed");
      const error = document.createElement("p");
      error.className = "error-text";
      error.textContent = reason;
      bubble.insertBefore(error, meta);
      state.textContent = "Failed";
      meta.append(runLink(bubble, "View run"));
    }

    // An agent's tool calls, each a collapsed line above the answer; its result fills it in.
    const steps = {};
    function showStep(event) {
      const data = event.data || {};
      let step = steps[data.key];
      if (!step) {
        step = document.createElement("details");
        step.className = "agent-step";
        step.append(document.createElement("summary"));
        const args = document.createElement("pre");
        args.textContent = JSON.stringify(data.arguments ?? {}, null, 2);
        step.append(args);
        bubble.insertBefore(step, text);
        steps[data.key] = step;
      }
      const summary = step.querySelector("summary");
      if (event.type === "tool.call") {
        summary.textContent = `Calling ${data.tool}…`;
        state.textContent = `Calling ${data.tool}…`;
      } else {
        summary.textContent = `Called ${data.tool}`;
        const result = document.createElement("pre");
        result.className = "tool-result";
        result.textContent = String(data.content ?? "");
        step.append(result);
      }
    }

    // A tool call waiting for a person: its tool and arguments, with Approve / Reject for a
    // member, sent to the run page's answer view (its checks, its one answer path); the run then
    // goes on in this bubble. The embed widget's visitors cannot approve: a line says it waits.
    const approvals = {};
    // Where the current agent step's streamed text began in the answer.
    let stepStart = 0;
    function showApproval(event) {
      const asked = event.data;
      if (approvals[asked.key]) return;
      const card = document.createElement("section");
      card.className = "approval";
      card.setAttribute("aria-label", "Waiting for approval");
      const tool = document.createElement("code");
      tool.textContent = asked.tool;
      const title = document.createElement("p");
      title.append("The agent wants to call ", tool, " with these arguments:");
      const args = document.createElement("pre");
      args.setAttribute("aria-label", "Arguments");
      args.textContent = JSON.stringify(asked.arguments ?? {}, null, 2);
      card.append(title, args);
      approvals[asked.key] = card;
      bubble.insertBefore(card, text);
      if (!bubble.dataset.runUrl) {
        const note = document.createElement("p");
        note.className = "approval-note";
        note.textContent = "The answer waits for a person's approval of this call.";
        card.append(note);
        state.textContent = "Waiting for approval…";
        return;
      }
      card.append(approvalForm(event.node, asked.key));
      state.textContent = "Waiting for your approval…";
    }

    function approvalForm(node, key) {
      const form = document.createElement("form");
      const reason = document.createElement("input");
      reason.type = "text";
      reason.name = "reason";
      reason.maxLength = 2000;
      reason.placeholder = "Reason (optional, told to the agent if you reject)";
      reason.setAttribute("aria-label", "Reason (optional)");
      const status = document.createElement("p");
      status.className = "error-text";
      status.setAttribute("role", "status");
      const buttons = [["true", "Approve", ""], ["false", "Reject", "danger"]].map(([value, label, kind]) => {
        const button = document.createElement("button");
        button.type = "submit";
        button.value = value;
        button.textContent = label;
        button.className = kind;
        return button;
      });
      form.append(reason, ...buttons, status);
      form.addEventListener("submit", (submitted) => {
        submitted.preventDefault();
        const approve = (submitted.submitter || buttons[0]).value === "true";
        buttons.forEach((button) => { button.disabled = true; });
        const body = new URLSearchParams({ approve: String(approve), reason: reason.value, key });
        const headers = { "HX-Request": "true", ...JSON.parse(document.body.getAttribute("hx-headers") || "{}") };
        fetch(`${bubble.dataset.runUrl}answer/${encodeURIComponent(node)}`, { method: "POST", body, headers })
          .then(async (response) => {
            if (response.status === 404) throw new Error("This call no longer waits for an answer.");
            if (response.status === 403) throw new Error("You may not answer for this run.");
            if (!response.ok) throw new Error((await response.text()) || `HTTP ${response.status}`);
            settleApproval(key, approve ? "Approved: the call runs." : "Rejected: the agent goes on without it.");
            state.textContent = "Working…";
          })
          .catch((error) => {
            status.textContent = `Not sent: ${error.message}`;
            buttons.forEach((button) => { button.disabled = false; });
          });
      });
      return form;
    }

    // The call was answered (here, on the run's page or over the API): its buttons go.
    function settleApproval(key, outcome) {
      const card = approvals[key];
      const form = card && card.querySelector("form");
      if (!form) return;
      const done = document.createElement("p");
      done.className = "approval-note";
      done.textContent = outcome;
      form.replaceWith(done);
    }

    // Each event is shown here, then told to the page (the builder's preview shows more of
    // an agent's run: its steps and thoughts).
    function handle(event) {
      showEvent(event);
      bubble.dispatchEvent(new CustomEvent("studio:run-event", { bubbles: true, detail: event }));
    }

    function showEvent(event) {
      if (event.type === "tool.result" && approvals[event.data.key]) settleApproval(event.data.key, "Answered.");
      if (event.type === "tool.call" || event.type === "tool.result") {
        showStep(event);
      } else if (event.type === "run.waiting" && (event.data || {}).kind === "approval") {
        showApproval(event);
      } else if (event.type === "agent.step") {
        if (!nodes || nodes.includes(event.node)) stepStart = raw.length;
      } else if (event.type === "agent.thought") {
        // What the step streamed was the model thinking before its tool calls, not the answer.
        if (!nodes || nodes.includes(event.node)) show(raw.slice(0, stepStart));
      } else if (event.type === "token") {
        if (nodes && !nodes.includes(event.node)) return;
        show(raw + event.data.text);
        state.textContent = "Writing…";
      } else if (event.type === "node.retry") {
        // The node starts again (a retry, or a lost worker): its streamed text starts over.
        if (!nodes || nodes.includes(event.node)) show("");
      } else if (event.type === "node.loading") {
        state.textContent = "Loading the model (the first answer after a start takes longer)…";
      } else if (event.type === "node.finished" && event.data.type === "knowledge_retrieval") {
        const found = (event.data.outputs || {}).citations;
        if (Array.isArray(found)) sources.push(...found);
      } else if (event.type === "node.finished" && event.data.finish_reason === "length") {
        if (!nodes || nodes.includes(event.node)) cut = true;
      } else if (event.type === "run.finished") {
        Object.keys(approvals).forEach((key) => settleApproval(key, "Answered."));
        finish(event);
      } else if (event.type === "run.failed") {
        Object.keys(approvals).forEach((key) => settleApproval(key, "Not answered: the run ended."));
        fail(event.data.reason || "The run failed.");
      }
      scrollToEnd();
    }

    function connect() {
      const socket = new WebSocket(socketUrl(runId, lastSeq));
      socket.addEventListener("message", (message) => {
        // ``batch=1``: a message holds the events that were ready together, in order.
        const data = JSON.parse(message.data);
        for (const event of Array.isArray(data) ? data : [data]) {
          if (event.seq <= lastSeq) continue; // already shown
          lastSeq = event.seq;
          retries = 0;
          handle(event);
          if (TERMINAL.includes(event.type)) {
            ended = true;
            socket.close();
            return;
          }
        }
      });
      socket.addEventListener("close", (closing) => {
        if (ended) return;
        if (closing.code === 4403) { // refused: retrying will not help
          ended = true;
          fail("You do not have access to this run.");
          return;
        }
        retries += 1;
        if (retries > MAX_RETRIES) {
          ended = true;
          fail("Lost the connection to this run. Its page shows how it ended.");
          return;
        }
        state.textContent = "Reconnecting…";
        window.setTimeout(connect, Math.min(250 * 2 ** retries, 5000));
      });
    }

    connect();
  }

  htmx.onLoad((element) => {
    const bubbles = element.matches("[data-run-id]")
      ? [element]
      : element.querySelectorAll("[data-run-id]");
    bubbles.forEach(follow);
    // Answers the page was rendered with: their Markdown, as the server sent it (escaped text).
    window.studioMarkdown.renderAll(element, (done, markdown) => {
      addCopy(done.closest(".bubble"), () => markdown);
    });
    showRegenerate();
    scrollToEnd();
  });

  // A refused message (400: empty, unpublished flow; 429: past a limit) still renders its
  // error bubble. beforeSwap fires on the swap target, which names the chat's requests here.
  const REFUSED = [400, 429];
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.target.id === "messages" && REFUSED.includes(event.detail.xhr.status)) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // A suggested question is sent as if typed; the suggestions go once the conversation starts.
  document.addEventListener("click", (event) => {
    const suggestion = event.target.closest(".suggestion");
    if (!suggestion) return;
    const form = document.getElementById("chat-form");
    form.querySelector("input[name=message]").value = suggestion.dataset.text;
    form.requestSubmit();
  });

  // A message past the limit (the same as the server's) is not sent: the page says why and the
  // Send button waits until it is short enough. Nothing is cut.
  const numbers = new Intl.NumberFormat("en");

  function overLimit(form) {
    const box = form.querySelector("input[name=message]");
    const max = Number(box.dataset.maxChars);
    return max > 0 && box.value.length > max ? { length: box.value.length, max } : null;
  }

  function checkLength(form) {
    const over = overLimit(form);
    const box = form.querySelector("input[name=message]");
    const button = form.querySelector("button[type=submit]");
    const note = document.getElementById("message-limit");
    if (note) {
      note.hidden = !over;
      note.textContent = over
        ? `The message is ${numbers.format(over.length)} characters; a message is at most ${numbers.format(over.max)}. Shorten it to send it.`
        : "";
    }
    box.setAttribute("aria-invalid", over ? "true" : "false");
    if (button && !box.disabled) {
      button.disabled = Boolean(over);
      button.title = over ? "The message is too long to send" : "";
    }
  }

  document.addEventListener("input", (event) => {
    const form = event.target.closest("#chat-form");
    if (form && event.target.name === "message") checkLength(form);
  });

  document.addEventListener("htmx:beforeRequest", (event) => {
    const form = event.detail.elt;
    if (form.id === "chat-form" && overLimit(form)) {
      event.preventDefault();
      checkLength(form);
    }
  });

  document.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    if (form.id !== "chat-form") return;
    if (event.detail.successful) {
      form.reset();
      document.querySelectorAll("#messages .suggestions").forEach((list) => list.remove());
    } else if (!REFUSED.includes(event.detail.xhr.status)) {
      const bubble = document.createElement("div");
      bubble.className = "bubble assistant failed";
      bubble.setAttribute("role", "alert");
      bubble.textContent = `The message could not be sent (HTTP ${event.detail.xhr.status || "error"}).`;
      document.getElementById("messages").append(bubble);
    }
    checkLength(form);
    form.querySelector("input[name=message]").focus();
    scrollToEnd();
  });
})();
