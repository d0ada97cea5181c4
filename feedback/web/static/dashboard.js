/* Draws the dashboard and unit-page charts with Chart.js from the page's JSON data block.
   Every chart has a table or text equivalent in the page, so nothing is lost without JavaScript. */
(function () {
  "use strict";
  var block = document.getElementById("dashboard-charts");
  if (!block || typeof Chart === "undefined") { return; }
  var data = JSON.parse(block.textContent);
  var reduced = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  Chart.defaults.animation = reduced ? false : Chart.defaults.animation;
  Chart.defaults.font.family = "system-ui, sans-serif";
  var INK = "#1d3557", GOOD = "#2a6f4e", LIMIT = "#8a4b08", BAD = "#b00020", GREY = "#6b6b6b";
  var percent = function (v) { return v + "%"; };

  function sparklines(series) {
    document.querySelectorAll("canvas[data-spark]").forEach(function (canvas) {
      var values = series[canvas.getAttribute("data-spark")] || [];
      new Chart(canvas, {
        type: "line",
        data: { labels: values.map(function (_, i) { return i + 1; }),
                datasets: [{ data: values, borderColor: INK, borderWidth: 2, pointRadius: 0, spanGaps: true }] },
        options: { responsive: false, events: [], plugins: { legend: { display: false }, tooltip: { enabled: false } },
                   scales: { x: { display: false }, y: { display: false, min: 0, max: 100 } } }
      });
    });
  }

  function pChart(canvas, p) {
    var centre = p.labels.map(function () { return p.centre; });
    new Chart(canvas, {
      type: "line",
      data: {
        labels: p.labels,
        datasets: [
          { label: p.names.p, data: p.p, borderColor: INK, backgroundColor: INK, spanGaps: true,
            pointRadius: p.signals.map(function (s) { return s ? 6 : 3; }),
            pointBackgroundColor: p.signals.map(function (s) { return s ? BAD : INK; }) },
          { label: p.names.ucl, data: p.ucl, borderColor: LIMIT, borderDash: [6, 4], pointRadius: 0, stepped: "middle" },
          { label: p.names.lcl, data: p.lcl, borderColor: LIMIT, borderDash: [6, 4], pointRadius: 0, stepped: "middle" },
          { label: p.names.centre, data: centre, borderColor: GREY, borderWidth: 1, pointRadius: 0 }
        ]
      },
      options: { maintainAspectRatio: false, scales: { y: { min: 0, max: 100, ticks: { callback: percent } } } }
    });
  }

  function bars(canvas, chart, colour, max) {
    new Chart(canvas, {
      type: "bar",
      data: { labels: chart.labels, datasets: [{ label: chart.label, data: chart.values, backgroundColor: colour }] },
      options: { maintainAspectRatio: false, plugins: { legend: { display: false } },
                 scales: { y: { beginAtZero: true, max: max } } }
    });
  }

  if (data.sparklines) { sparklines(data.sparklines); }
  var el = document.getElementById("chart-p");
  if (el && data.p_chart) { pChart(el, data.p_chart); }
  el = document.getElementById("chart-levels");
  if (el && data.levels) { bars(el, data.levels, GOOD); }
  el = document.getElementById("chart-indicators");
  if (el && data.indicators) { bars(el, data.indicators, INK, 100); }
}());
