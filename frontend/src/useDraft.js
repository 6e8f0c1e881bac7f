// The draft's autosave: a change schedules a save a second later (changes in between join it);
// one save is in flight at a time; `flush` saves now and resolves to whether it worked. Each
// answer carries the server's report (problems, ports), handed to `onReport`.
import { useCallback, useEffect, useRef, useState } from "react";

import { postJSON } from "./api.js";

const SAVE_DELAY_MS = 1000;
const RETRY_MS = 5000;

export function useDraft({ url, readOnly, currentGraph, onReport, savedAt, savedBy }) {
  const [saveState, setSaveState] = useState({
    state: savedAt ? "saved" : "none",
    at: savedAt,
    by: savedBy,
  });
  const save = useRef({ timer: null, inFlight: null, dirty: false, ok: true });
  const latest = useRef({ currentGraph, onReport });
  latest.current = { currentGraph, onReport };
  const scheduleRef = useRef(null);

  const send = useCallback(async () => {
    setSaveState((s) => ({ ...s, state: "saving" }));
    try {
      const { ok, body } = await postJSON(url, { graph: latest.current.currentGraph() });
      save.current.ok = ok;
      if (ok) {
        if (save.current.dirty) {
          // A change made meanwhile is saved next; its report, not this stale one, is shown.
          setSaveState((s) => ({ ...s, state: "pending" }));
        } else {
          setSaveState({ state: "saved", at: body.saved_at, by: null });
          latest.current.onReport(body.report);
        }
      } else {
        const reasons = (body.problems || []).map((p) => p.message);
        setSaveState({ state: "error", message: body.error || reasons.join("; ") || "refused" });
      }
    } catch {
      save.current.ok = false;
      setSaveState({ state: "error", message: "the studio could not be reached; retrying" });
      window.setTimeout(() => scheduleRef.current(), RETRY_MS);
    }
  }, [url]);

  const flush = useCallback(async () => {
    window.clearTimeout(save.current.timer);
    for (;;) {
      if (save.current.inFlight) {
        await save.current.inFlight;
        continue;
      }
      if (!save.current.dirty) return save.current.ok;
      save.current.dirty = false;
      save.current.inFlight = send().finally(() => {
        save.current.inFlight = null;
      });
    }
  }, [send]);

  const schedule = useCallback(() => {
    if (readOnly) return;
    save.current.dirty = true;
    setSaveState((s) => (s.state === "saving" ? s : { ...s, state: "pending" }));
    window.clearTimeout(save.current.timer);
    save.current.timer = window.setTimeout(flush, SAVE_DELAY_MS);
  }, [flush, readOnly]);
  scheduleRef.current = schedule;

  useEffect(() => {
    function onLeave(event) {
      if (save.current.dirty || save.current.inFlight) {
        flush();
        event.preventDefault();
        event.returnValue = "";
      }
    }
    window.addEventListener("beforeunload", onLeave);
    return () => window.removeEventListener("beforeunload", onLeave);
  }, [flush]);

  return { saveState, schedule, flush };
}
