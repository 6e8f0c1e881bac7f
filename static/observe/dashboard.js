// The dashboard's charts, drawn from the page's own numbers (Django's json_script); the tables
// beside them need no script. The same pattern as the usage page's charts.
(function () {
  "use strict";

  const source = document.getElementById("dashboard-series");
  if (!source || !window.studioCharts) return;
  const series = JSON.parse(source.textContent);

  const { chart, money } = window.studioCharts;
  const colors = {
    runs: "#2b8a3e", errors: "#c92a2a", input: "#748ffc", output: "#3b5bdb", cost: "#e8590c",
    p50: "#3b5bdb", p95: "#748ffc", ttft50: "#2b8a3e", ttft95: "#8ce99a",
  };
  const percent = (value) => `${Math.round(value * 100)}%`;
  const ms = (value) => (value >= 1000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`);
  // "2025-05-01" → "05-01": the period is at most 90 days, and the table has full dates.
  const dayAxis = {
    grid: { display: false },
    ticks: { callback(value) { return this.getLabelForValue(value).slice(5); } },
  };

  const line = (label, data, color, axis) => ({
    type: "line", label, data, borderColor: color, backgroundColor: color, yAxisID: axis,
    tension: 0.2, pointRadius: 2, spanGaps: true,
  });

  chart("chart-runs", {
    data: {
      labels: series.labels,
      datasets: [
        { type: "bar", label: "Runs", data: series.runs, backgroundColor: colors.runs, yAxisID: "runs" },
        line("Error rate", series.error_rate, colors.errors, "rate"),
      ],
    },
    options: {
      scales: {
        x: dayAxis,
        runs: { type: "linear", position: "left", beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "runs" } },
        rate: { type: "linear", position: "right", min: 0, max: 1, grid: { drawOnChartArea: false }, ticks: { callback: percent }, title: { display: true, text: "errors" } },
      },
    },
  });

  chart("chart-latency", {
    data: {
      labels: series.labels,
      datasets: [
        line("Run time p50", series.duration_p50, colors.p50, "ms"),
        line("Run time p95", series.duration_p95, colors.p95, "ms"),
        line("First token p50", series.ttft_p50, colors.ttft50, "ms"),
        line("First token p95", series.ttft_p95, colors.ttft95, "ms"),
      ],
    },
    options: {
      scales: { x: dayAxis, ms: { type: "linear", beginAtZero: true, ticks: { callback: ms } } },
    },
  });

  chart("chart-tokens", {
    data: {
      labels: series.labels,
      datasets: [
        { type: "bar", label: "Input tokens", data: series.input_tokens, backgroundColor: colors.input, stack: "tokens", yAxisID: "tokens" },
        { type: "bar", label: "Output tokens", data: series.output_tokens, backgroundColor: colors.output, stack: "tokens", yAxisID: "tokens" },
        line("Cost", series.cost, colors.cost, "cost"),
      ],
    },
    options: {
      scales: {
        x: Object.assign({ stacked: true }, dayAxis),
        tokens: { type: "linear", position: "left", stacked: true, beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "tokens" } },
        cost: { type: "linear", position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "cost" }, ticks: { callback: money } },
      },
    },
  });
})();
