/* Draws every <canvas data-chart="…"> with Chart.js (vendored, see vendor/chartjs/README.md).
   The figures are also in the table under each chart; the chart is a reading aid. */
(function () {
  "use strict";
  // Okabe–Ito: told apart by people with the common colour-vision deficiencies.
  var PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
                 "#8C510A", "#7F7F7F"];
  var quiet = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  function draw(canvas) {
    var spec = JSON.parse(canvas.getAttribute("data-chart"));
    var round = spec.type === "doughnut";
    var datasets = spec.datasets.map(function (set, i) {
      var colour = round ? spec.labels.map(function (_, j) { return PALETTE[j % PALETTE.length]; }) : PALETTE[i % PALETTE.length];
      return { label: set.label, data: set.data, backgroundColor: colour, borderColor: round ? "#fff" : colour,
               borderWidth: round ? 2 : 1 };
    });
    var value = { ticks: { precision: spec.whole ? 0 : undefined,
                           callback: function (v) { return spec.percent ? v + " %" : v; } }, beginAtZero: true,
                  stacked: spec.stacked };
    var category = { stacked: spec.stacked, ticks: { autoSkip: true, maxRotation: 0 } };
    new window.Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        indexAxis: spec.horizontal ? "y" : "x",
        maintainAspectRatio: false,
        animation: quiet ? false : { duration: 300 },
        devicePixelRatio: Math.max(window.devicePixelRatio || 1, 2),
        plugins: { legend: { display: datasets.length > 1 || round, position: "bottom" } },
        scales: round ? {} : (spec.horizontal ? { x: value, y: category } : { x: category, y: value })
      }
    });
  }

  function start() {
    if (!window.Chart) { return; }
    window.Chart.defaults.font.family = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    window.Chart.defaults.color = "#1b1f23";
    Array.prototype.forEach.call(document.querySelectorAll("canvas[data-chart]"), draw);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
