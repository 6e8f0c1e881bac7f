// A test run of the draft: save it, start the run, then follow the run's events over the
// WebSocket: each node's state, its streamed tokens, and at the end what each node received
// (from the stored results, which the events do not carry).
import { useCallback, useEffect, useRef, useState } from "react";

import { followRun, getJSON, postJSON } from "./api.js";

/** The canvas node an event names: inside a container a node runs as `llm_1[3]`. */
export function canvasId(eventNode) {
  return (eventNode || "").replace(/\[.*$/, "");
}

export function useTestRun({ urls, readOnly, flush, onReport, onNodeRun, onStart }) {
  const [run, setRun] = useState(null);
  const [busy, setBusy] = useState(false);
  const stopFollowing = useRef(null);
  const hooks = useRef({ onNodeRun, onStart, onReport });
  hooks.current = { onNodeRun, onStart, onReport };

  const updateNode = useCallback((id, change) => {
    setRun((current) => {
      if (!current) return current;
      const nodes = [...current.nodes];
      const index = nodes.findIndex((n) => n.id === id);
      if (index === -1) nodes.push({ id, status: "running", text: "", ...change(null) });
      else nodes[index] = { ...nodes[index], ...change(nodes[index]) };
      return { ...current, nodes };
    });
  }, []);

  const both = useCallback(
    (id, about) => {
      updateNode(id, () => about);
      hooks.current.onNodeRun(canvasId(id), about);
    },
    [updateNode]
  );

  const onEvent = useCallback(
    (event) => {
      const id = event.node;
      const data = event.data || {};
      switch (event.type) {
        case "run.started":
          setRun((r) => r && { ...r, status: "running" });
          break;
        case "node.started":
          both(id, { status: "running" });
          break;
        case "token":
          updateNode(id, (entry) => ({ text: (entry?.text || "") + (data.text || "") }));
          break;
        case "node.finished":
          both(id, {
            status: data.status || "succeeded",
            outputs: data.outputs,
            input_tokens: data.input_tokens,
            output_tokens: data.output_tokens,
            latency_ms: data.latency_ms,
            error: data.error || undefined,
          });
          break;
        case "node.skipped":
          both(id, { status: "skipped" });
          break;
        case "node.retry":
          // A failed attempt: the node starts again, and its streamed text with it.
          updateNode(id, () => ({
            status: "running",
            text: "",
            error: `Attempt ${data.attempt} failed (${data.error}); trying again in ${data.delay_s} s.`,
          }));
          break;
        case "run.waiting":
          // A person's answer is needed: the run's trace page takes it.
          setRun((r) => r && { ...r, status: "waiting" });
          if (id) both(id, { status: "waiting" });
          break;
        case "run.finished":
          setRun((r) => r && { ...r, status: "succeeded", outputs: data.outputs });
          setBusy(false);
          break;
        case "run.failed":
          setRun((r) => r && { ...r, status: "failed", error: data.reason || "The run failed." });
          if (id) both(id, { status: "failed", error: data.reason });
          setBusy(false);
          break;
        default:
          break;
      }
    },
    [both, updateNode]
  );

  const fillFromResults = useCallback(
    async (runId) => {
      try {
        const found = await getJSON(urls.runNodes.replace("RUN_ID", runId));
        setRun((current) => {
          if (!current || current.id !== runId) return current;
          const nodes = [...current.nodes];
          for (const result of found.nodes) {
            const index = nodes.findIndex((n) => n.id === result.node_id);
            const known = {
              id: result.node_id,
              status: result.status,
              inputs: result.inputs,
              outputs: result.outputs,
              error: result.error || undefined,
              latency_ms: result.latency_ms,
              input_tokens: result.input_tokens,
              output_tokens: result.output_tokens,
            };
            if (index === -1) nodes.push({ text: "", ...known });
            else nodes[index] = { ...nodes[index], ...known };
          }
          return { ...current, nodes };
        });
      } catch {
        // The events already showed the run; its trace page has the rest.
      }
    },
    [urls.runNodes]
  );

  const failed = (error) => {
    setRun({ id: null, status: "failed", nodes: [], error });
    setBusy(false);
  };

  const start = useCallback(
    async (inputs) => {
      setBusy(true);
      stopFollowing.current?.();
      hooks.current.onStart();
      if (!readOnly && !(await flush())) {
        failed("The draft could not be saved, so it was not run.");
        return;
      }
      let answer;
      try {
        answer = await postJSON(urls.run, { inputs });
      } catch {
        failed("The studio could not be reached.");
        return;
      }
      const { ok, body } = answer;
      if (!ok) {
        if (body.report) hooks.current.onReport(body.report);
        const reasons = (body.problems || []).map((p) => (p.node ? `${p.node}: ${p.message}` : p.message));
        failed([body.error, ...reasons].filter(Boolean).join(" · ") || "The run could not start.");
        return;
      }
      setRun({ id: body.run, status: "queued", nodes: [], traceUrl: body.trace_url });
      stopFollowing.current = followRun(
        body.run,
        (event) => {
          onEvent(event);
          if (event.type === "run.finished" || event.type === "run.failed") fillFromResults(body.run);
        },
        (reason) => {
          setRun((r) => r && { ...r, error: reason });
          setBusy(false);
        }
      );
    },
    [fillFromResults, flush, onEvent, readOnly, urls.run]
  );

  useEffect(() => () => stopFollowing.current?.(), []);

  return { run, busy, start };
}
