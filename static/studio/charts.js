// The studio's chart defaults for Chart.js (vendored), shared by the usage page and the
// dashboard: `window.studioCharts.chart(id, config)` draws on the canvas `id` (none: null), and
// `money` formats the small costs of model calls; `ink` is the colour of titles.
(function () {
  "use strict";

  if (typeof Chart === "undefined") return;
  const ink = "#1d2330";
  const muted = "#6b7280";
  Chart.defaults.color = muted;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  const reduceMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  function chart(id, config) {
    const canvas = document.getElementById(id);
    if (!canvas) return null;
    config.options = Object.assign(
      {
        responsive: true,
        maintainAspectRatio: false,
        animation: reduceMotion ? false : { duration: 300 },
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { labels: { color: ink, boxWidth: 12 } } },
      },
      config.options
    );
    return new Chart(canvas, config);
  }

  // Costs are small numbers (a fraction of a cent per call): show enough digits to see them.
  const money = (value) =>
    Number(value).toLocaleString(undefined, { maximumSignificantDigits: 4 });

  window.studioCharts = { chart, money, ink };
})();
