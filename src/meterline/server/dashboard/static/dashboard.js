// meterline dashboard: draws time charts (uPlot) from JSON blocks, asks before destructive posts.
(function () {
  "use strict";
  function money(v) { return v == null ? "" : "$" + v.toFixed(v !== 0 && Math.abs(v) < 0.01 ? 6 : 2); }
  function tick(v) { return v == null ? "" : "$" + (Math.abs(v) >= 1 ? v.toFixed(2) : String(+v.toPrecision(3))); }
  function draw(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(function (el) {
      var src = document.getElementById(el.getAttribute("data-chart"));
      if (!src || el.dataset.drawn) return;
      var data = JSON.parse(src.textContent);
      el.dataset.drawn = "1";
      if (!data.x.length) { el.textContent = "No data in this range."; return; }
      var width = Math.max(300, el.clientWidth || 600);
      new uPlot({
        width: width, height: 220,
        scales: { x: { time: true } },
        axes: [{}, { values: function (u, vals) { return vals.map(tick); }, size: 80 }],
        series: [{}, { label: "spend (USD)", stroke: "#2563eb", fill: "rgba(37,99,235,0.12)", width: 2,
                       value: function (u, v) { return money(v); } }],
        legend: { show: true }
      }, [data.x, data.y], el);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSwap", function (ev) { draw(ev.target); });
  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });
  document.addEventListener("click", function (ev) {
    var t = ev.target.closest("[data-copy]");
    if (!t) return;
    var field = document.getElementById(t.getAttribute("data-copy"));
    if (field) { field.select(); try { navigator.clipboard.writeText(field.value); } catch (e) {} }
  });
})();
