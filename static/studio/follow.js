// Pages that follow a stream of events instead of polling (a run's trace, a document's status,
// a knowledge base's documents table).
//
// An element with an `id`, `data-follow` (a Server-Sent Events URL) and `data-refresh` (the URL
// of its own fragment) is fetched again through htmx on each event. The server sends
// `stream.ready` on every (re)connect, so the state missed while disconnected is rendered first,
// and `stream.end` when nothing more will come. A fragment that comes back without
// `data-follow` is over: its stream is closed. Events arriving while a fetch is in flight are
// coalesced into one more fetch after it, so the last state is always rendered.
(function () {
  "use strict";

  const EVENTS = [
    "stream.ready",
    "stream.end",
    "document.changed",
    "run.started",
    "node.started",
    "node.finished",
    "node.skipped",
    "node.retry",
    "run.waiting",
    "run.finished",
    "run.failed",
  ];
  const followers = new Map(); // element id -> {source, url, busy, dirty}

  function refresh(id) {
    const follower = followers.get(id);
    const element = document.getElementById(id);
    if (!follower || !element) return;
    if (follower.busy) {
      follower.dirty = true;
      return;
    }
    follower.busy = true;
    follower.dirty = false;
    const done = () => {
      follower.busy = false;
      if (follower.dirty) refresh(id);
    };
    htmx
      .ajax("GET", element.dataset.refresh, { source: element, target: element, swap: "outerHTML" })
      .then(done, done);
  }

  function start(element) {
    const id = element.id;
    const source = new EventSource(element.dataset.follow);
    followers.set(id, { source, url: element.dataset.follow, busy: false, dirty: false });
    for (const name of EVENTS) source.addEventListener(name, () => refresh(id));
  }

  // Close the streams of fragments that are over or gone; start those of new ones.
  function sync() {
    for (const [id, follower] of followers) {
      const element = document.getElementById(id);
      if (!element || element.dataset.follow !== follower.url) {
        follower.source.close();
        followers.delete(id);
      }
    }
    document.querySelectorAll("[id][data-follow][data-refresh]").forEach((element) => {
      if (!followers.has(element.id)) start(element);
    });
  }

  htmx.onLoad(sync);
})();
