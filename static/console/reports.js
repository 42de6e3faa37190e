// Console reports: draws the charts from the JSON the page embeds (no network calls).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var accent = "#0f766e";
  function chart(id, config) {
    var el = document.getElementById(id);
    if (el && window.Chart) { new window.Chart(el, config); }
  }
  chart("chart-refund-rate", {
    type: "line",
    data: {
      labels: data.refund_rate.map(function (r) { return r.day; }),
      datasets: [{ label: "refund rate %", data: data.refund_rate.map(function (r) { return r.rate_pct; }), borderColor: accent, tension: 0.2 }]
    },
    options: { animation: false, scales: { y: { beginAtZero: true } } }
  });
  chart("chart-outcomes", {
    type: "doughnut",
    data: {
      labels: data.outcomes.map(function (r) { return r.outcome; }),
      datasets: [{ data: data.outcomes.map(function (r) { return r.count; }), backgroundColor: ["#0f766e", "#f59e0b", "#b91c1c", "#6366f1", "#9ca3af"] }]
    },
    options: { animation: false }
  });
  chart("chart-reasons", {
    type: "bar",
    data: {
      labels: data.top_reasons.map(function (r) { return r.sku + " · " + r.reason; }),
      datasets: [{ label: "refunds", data: data.top_reasons.map(function (r) { return r.count; }), backgroundColor: accent }]
    },
    options: { animation: false, indexAxis: "y" }
  });
  chart("chart-channels", {
    type: "bar",
    data: {
      labels: data.channel_failures.map(function (r) { return r.channel; }),
      datasets: [{ label: "failure rate %", data: data.channel_failures.map(function (r) { return r.rate_pct; }), backgroundColor: "#b91c1c" }]
    },
    options: { animation: false, scales: { y: { beginAtZero: true, max: 100 } } }
  });
  chart("chart-arrival", {
    type: "bar",
    data: {
      labels: data.time_to_arrival.map(function (r) { return r.bucket; }),
      datasets: [{ label: "refunds", data: data.time_to_arrival.map(function (r) { return r.refunds; }), backgroundColor: accent }]
    },
    options: { animation: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
  });
  // One amount series per currency (major units, exact decimal strings from the server: amounts in
  // different currencies are never added), and the number of commissions on a second axis.
  var days = [];
  data.clawbacks.forEach(function (r) { if (days.indexOf(r.day) < 0) { days.push(r.day); } });
  var currencies = [];
  data.clawbacks.forEach(function (r) { if (currencies.indexOf(r.currency) < 0) { currencies.push(r.currency); } });
  var palette = ["#b91c1c", "#6366f1", "#f59e0b", "#0f766e"];
  var datasets = currencies.map(function (c, i) {
    return {
      type: "bar", label: "clawed back (" + c + ")", yAxisID: "y", backgroundColor: palette[i % palette.length],
      data: days.map(function (d) {
        var row = data.clawbacks.find(function (r) { return r.day === d && r.currency === c; });
        return row ? Number(row.major) : 0;
      })
    };
  });
  datasets.push({
    type: "line", label: "commissions", yAxisID: "y1", borderColor: "#374151",
    data: days.map(function (d) {
      return data.clawbacks.filter(function (r) { return r.day === d; }).reduce(function (n, r) { return n + r.commissions; }, 0);
    })
  });
  chart("chart-clawbacks", {
    data: { labels: days, datasets: datasets },
    options: {
      animation: false,
      scales: {
        y: { beginAtZero: true, position: "left" },
        y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, ticks: { precision: 0 } }
      }
    }
  });
})();
