// Sightline dashboard: charts (uPlot), auto-refresh, self-submitting selects.
// Loaded as a file: the Content-Security-Policy forbids inline script.
(function () {
  "use strict";
  var PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777"];

  // Money with at least two significant digits, as the pages' Jinja filter ``usd`` (_web.py):
  // $1,234.56, $0.0482, $0.000042.
  function usd(v) {
    if (v == null || !isFinite(v)) { return "–"; }
    var a = Math.abs(v);
    if (a >= 1 || a === 0) {
      return "$" + v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    }
    if (a >= 0.001) { return "$" + v.toFixed(4); }
    return "$" + v.toFixed(Math.min(12, 1 - Math.floor(Math.log10(a))));
  }

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
  // Labels stay inside the plot: one that would cross the right edge ends at its line instead
  // of starting there. A label that would overlap another goes one row down; past MAX_STACK - 1
  // rows it is counted in a "+N more" on the last row (a deploy often brings a new service
  // version, model and prompt version in the same minute: the demo has seven at "now").
  var MAX_STACK = 3;
  var ROW_H = 13;

  function stopClick(ev) { ev.stopPropagation(); }

  // Put a label at its line (x) on a row; return its box [from, to] in the plot.
  function placeLabel(u, node, x, row) {
    var width = u.over.clientWidth;
    node.classList.remove("end");
    node.style.top = (row * ROW_H) + "px";
    node.style.left = x + "px";
    if (!node.parentNode) { u.over.appendChild(node); }
    var w = node.offsetWidth;
    var from = x;
    if (x + w > width) {
      node.classList.add("end");
      from = Math.max(0, x - w + 1);
      node.style.left = from + "px";
    }
    return [from, from + w];
  }

  function overlaps(box, boxes) {
    return boxes.some(function (b) { return box[0] < b[1] + 3 && b[0] < box[1] + 3; });
  }

  function placeMarkers(u, markers, fig) {
    u.over.querySelectorAll(".release-marker, .release-line, .release-more")
      .forEach(function (n) { n.remove(); });
    var width = u.over.clientWidth;
    var rows = [];
    for (var r = 0; r < MAX_STACK; r++) { rows.push([]); }
    var mores = [];
    markers.slice().sort(function (x, y) { return x.t - y.t; }).forEach(function (m) {
      var x = u.valToPos(m.t, "x");
      if (!isFinite(x) || x < 0 || x > width) { return; }
      // the line lets clicks through to the chart; only a label is a link
      var line = document.createElement("div");
      line.className = "release-line";
      line.style.left = x + "px";
      u.over.appendChild(line);
      var a = document.createElement("a");
      a.className = "release-marker";
      a.href = m.link;
      a.title = m.label + " (" + m.kind + "): compare before/after";
      a.textContent = m.label;
      a.addEventListener("click", stopClick);
      for (var row = 0; row < MAX_STACK - 1; row++) {
        var box = placeLabel(u, a, x, row);
        if (!overlaps(box, rows[row])) { rows[row].push(box); return; }
      }
      a.remove();
      // no free row: counted in the "+N more" its label would have overlapped, or a new one
      var last = MAX_STACK - 1;
      var more = document.createElement("span");
      more.className = "release-more";
      more.textContent = "+1 more";
      var mine = placeLabel(u, more, x, last);
      var hit = mores.filter(function (o) { return overlaps(mine, [o.box]); })[0];
      if (hit) {
        more.remove();
        hit.names.push(m.label + " (" + m.kind + ")");
        hit.node.textContent = "+" + hit.names.length + " more";
        hit.node.title = hit.names.join("\n");
        hit.box = placeLabel(u, hit.node, hit.x, last);
        return;
      }
      more.title = m.label + " (" + m.kind + ")";
      more.addEventListener("click", stopClick);
      mores.push({ node: more, x: x, box: mine, names: [m.label + " (" + m.kind + ")"] });
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
    var money = fig.getAttribute("data-unit") === "USD";
    data.series.forEach(function (s, i) {
      var opts = {
        label: s.name, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: false,
        points: { show: true, size: 5 },
      };
      // the legend's value under the cursor (uPlot's default keeps 3 decimals: $0.000042 was 0)
      if (money) { opts.value = function (u, v) { return v == null ? "--" : usd(v); }; }
      series.push(opts);
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
