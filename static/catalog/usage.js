// The usage page's charts. The numbers come from the page itself (Django's json_script, the
// same series /catalog/usage/data.json answers); the tables beside the charts need no script.
(function () {
  "use strict";

  const source = document.getElementById("usage-series");
  if (!source || !window.studioCharts) return;
  const series = JSON.parse(source.textContent);

  const { chart, money, ink } = window.studioCharts;
  const colors = { input: "#748ffc", output: "#3b5bdb", cost: "#e8590c", calls: "#2b8a3e" };

  const days = series.days;
  chart("chart-days", {
    data: {
      labels: days.labels,
      datasets: [
        { type: "bar", label: "Input tokens", data: days.input_tokens, backgroundColor: colors.input, stack: "tokens", yAxisID: "tokens" },
        { type: "bar", label: "Output tokens", data: days.output_tokens, backgroundColor: colors.output, stack: "tokens", yAxisID: "tokens" },
        { type: "line", label: "Cost", data: days.cost, borderColor: colors.cost, backgroundColor: colors.cost, yAxisID: "cost", tension: 0.2, pointRadius: 2 },
      ],
    },
    options: {
      scales: {
        // "2025-05-01" → "05-01": the range is at most a year, and the table has full dates.
        x: {
          stacked: true,
          grid: { display: false },
          ticks: { callback(value) { return this.getLabelForValue(value).slice(5); } },
        },
        tokens: { type: "linear", position: "left", stacked: true, beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "tokens" } },
        cost: { type: "linear", position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "cost" }, ticks: { callback: money } },
      },
    },
  });

  // One small chart per measure: calls, tokens and cost differ by orders of magnitude, and bars
  // on three axes of one chart would all look alike.
  const models = series.models;
  const perModel = [
    ["chart-models-calls", "Calls", models.calls, colors.calls, undefined],
    ["chart-models-tokens", "Tokens", models.tokens, colors.output, undefined],
    ["chart-models-cost", "Cost", models.cost, colors.cost, money],
  ];
  for (const [id, label, data, color, format] of perModel) {
    chart(id, {
      type: "bar",
      data: { labels: models.labels, datasets: [{ label, data, backgroundColor: color }] },
      options: {
        plugins: { legend: { display: false }, title: { display: true, text: label, color: ink } },
        scales: {
          x: { grid: { display: false } },
          y: { beginAtZero: true, ticks: format ? { callback: format } : { precision: 0 } },
        },
      },
    });
  }
})();
