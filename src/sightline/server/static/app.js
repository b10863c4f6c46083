// Sightline dashboard: charts (uPlot), auto-refresh, self-submitting selects.
// Loaded as a file: the Content-Security-Policy forbids inline script.
(function () {
  "use strict";
  var PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777"];

  function bucketLink(base, from, to, seriesName) {
    var u = new URL(base, window.location.href);
    u.searchParams.delete("range");
    u.searchParams.set("from", String(from));
    u.searchParams.set("to", String(to));
    if (seriesName && seriesName !== "all") { u.searchParams.set("model", seriesName); }
    return u.pathname + u.search;
  }

  // Release markers: a labelled vertical line per release, linking to its before/after page.
  // Built as DOM nodes over the plot (textContent, never HTML: versions are untrusted text).
  function placeMarkers(u, markers, fig) {
    u.over.querySelectorAll(".release-marker, .release-line").forEach(function (n) { n.remove(); });
    // labels closer than a label's width stack downwards instead of overlapping (a deploy often
    // brings a new service version, model and prompt version in the same minute)
    var placed = [];
    markers.slice().sort(function (x, y) { return x.t - y.t; }).forEach(function (m) {
      var left = u.valToPos(m.t, "x");
      if (!isFinite(left) || left < 0 || left > u.over.clientWidth) { return; }
      var level = placed.filter(function (p) { return left - p < 110; }).length;
      placed.push(left);
      var a = document.createElement("a");
      a.className = "release-marker";
      a.href = m.link;
      a.title = m.label + " (" + m.kind + "): compare before/after";
      a.textContent = m.label;
      a.style.left = left + "px";
      a.style.top = (level * 13) + "px";
      a.addEventListener("click", function (ev) { ev.stopPropagation(); });
      // the line lets clicks through to the chart; only the label at its top is the link
      var line = document.createElement("div");
      line.className = "release-line";
      line.style.left = left + "px";
      u.over.appendChild(line);
      u.over.appendChild(a);
    });
    fig.setAttribute("data-markers", String(u.over.querySelectorAll("a.release-marker").length));
  }

  function drawChart(fig) {
    var raw = fig.querySelector("script.chart-data");
    if (!raw || typeof uPlot === "undefined") { return; }
    var data = JSON.parse(raw.textContent);
    if (!data.x.length) {
      var p = document.createElement("p");
      p.className = "empty";
      p.textContent = "No data in this range.";
      fig.appendChild(p);
      return;
    }
    var step = data.step || 60;
    var series = [{}];
    var cols = [data.x];
    data.series.forEach(function (s, i) {
      series.push({
        label: s.name, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: false,
        points: { show: true, size: 5 },
      });
      cols.push(s.values);
    });
    var link = fig.getAttribute("data-link");
    var from = Number(document.body.getAttribute("data-from"));
    var to = Number(document.body.getAttribute("data-to"));
    var scales = { x: { time: true } };
    if (from && to && to > from) {
      scales.x.range = function () { return [from, to]; };
    }
    var width = Math.max(280, fig.clientWidth - 8);
    var markers = data.markers || [];
    var hooks = link ? { ready: [function (u) {
        u.over.addEventListener("click", function () {
          var idx = u.cursor.idx;
          if (idx == null) { return; }
          var bucket = data.x[idx];
          var sIdx = 1;
          var best = Infinity;
          var top = u.cursor.top;
          for (var k = 1; k < cols.length; k++) {
            var v = cols[k][idx];
            if (v == null) { continue; }
            var d = Math.abs(u.valToPos(v, "y") - top);
            if (d < best) { best = d; sIdx = k; }
          }
          window.location.href = bucketLink(link, bucket, bucket + step, data.series[sIdx - 1].name);
        });
      }] } : {};
    if (markers.length) {
      hooks.draw = [function (u) { placeMarkers(u, markers, fig); }];
    }
    var plot = new uPlot({
      width: width, height: 180, series: series, scales: scales,
      cursor: { drag: { x: false, y: false } },
      legend: { show: true },
      hooks: hooks,
    }, cols, fig);
    plot.root.classList.add("clickable");
  }

  function setupRefresh() {
    var box = document.getElementById("autorefresh");
    if (!box) { return; }
    box.checked = window.localStorage.getItem("sl-autorefresh") === "1";
    if (document.body.getAttribute("data-refresh") === "off") {
      // the answer to a form (a new API key...): a reload would send the form again
      box.disabled = true;
      box.title = "not on the answer to a form: reloading would send it again";
      return;
    }
    var timer = null;
    function arm() {
      if (timer) { window.clearTimeout(timer); timer = null; }
      if (box.checked) { timer = window.setTimeout(function () { window.location.reload(); }, 30000); }
    }
    box.addEventListener("change", function () {
      window.localStorage.setItem("sl-autorefresh", box.checked ? "1" : "0");
      arm();
    });
    arm();
  }

  function setupAutosubmit() {
    document.querySelectorAll("select.autosubmit").forEach(function (sel) {
      sel.addEventListener("change", function () { sel.form.submit(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("figure.chart").forEach(drawChart);
    setupRefresh();
    setupAutosubmit();
  });
})();
