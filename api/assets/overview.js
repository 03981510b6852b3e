// The overview's charts (the page works without them: the same series are in the table
// below the charts, and each chart has a text summary). Draws one uPlot line chart per
// series from the JSON the server embedded in #overview-data, follows the container's
// width, and folds the data table away (it stays one click away).
(function () {
  'use strict';
  var el = document.getElementById('overview-data');
  if (!el || typeof window.uPlot !== 'function') return;
  var data;
  try {
    data = JSON.parse(el.textContent);
  } catch (e) {
    return;
  }
  var uPlot = window.uPlot;
  document.documentElement.classList.add('js');

  var count = function (v) { return v == null ? '–' : String(Math.round(v)); };
  var rate = function (v) { return v == null ? '–' : (v * 100).toFixed(1) + ' %'; };
  var usd = function (v) {
    return v == null ? '–' : '$' + v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  };
  var usdAxis = function (v) { return '$' + v.toLocaleString('en-US', { maximumFractionDigits: 0 }); };
  var rateAxis = function (v) { return (v * 100).toFixed(0) + ' %'; };
  // Colours of the dashboard's palette (dashboard.css), each ≥ 4.5:1 on white.
  var spec = {
    sessions: { label: 'Sessions', color: '#4338ca', value: count, axis: count },
    saves: { label: 'Saves', color: '#0b6e4f', value: count, axis: count },
    // Days without a decided session have no rate: the line joins the days around them.
    save_rate: { label: 'Save rate', color: '#8a4b00', value: rate, axis: rateAxis, spanGaps: true },
    saved_mrr: { label: 'Saved MRR', color: '#a4161a', value: usd, axis: usdAxis }
  };
  // The buckets are the tenant's local dates, sent as if they were UTC: label them in UTC.
  var tzDate = function (ts) { return uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'); };
  var height = 200;
  var charts = [];

  document.querySelectorAll('[data-chart]').forEach(function (box) {
    var key = box.getAttribute('data-chart');
    var s = spec[key];
    var ys = data.series && data.series[key];
    if (!s || !ys) return;
    var few = data.x.length <= 31;
    var opts = {
      width: Math.max(box.clientWidth, 200),
      height: height,
      tzDate: tzDate,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true },
        // From 0; a rate up to 100 %, a count at least up to 1 (an empty series stays flat).
        y: { range: function (u, lo, hi) { return [0, Math.max(hi || 0, 1)]; } }
      },
      axes: [
        { stroke: '#4f566b', grid: { stroke: '#e6e9ee' }, ticks: { stroke: '#d5dbe1' } },
        { stroke: '#4f566b', grid: { stroke: '#e6e9ee' }, ticks: { stroke: '#d5dbe1' }, size: 60,
          values: function (u, vals) { return vals.map(s.axis); } }
      ],
      series: [
        { label: data.interval === 'week' ? 'Week of' : 'Day', value: '{YYYY}-{MM}-{DD}' },
        { label: s.label, stroke: s.color, width: 2, fill: s.color + '1a', value: function (u, v) { return s.value(v); },
          spanGaps: !!s.spanGaps, points: { show: few, size: 5 } }
      ]
    };
    var u = new uPlot(opts, [data.x, ys], box);
    box.classList.add('drawn');
    charts.push({ u: u, box: box });
  });

  if (charts.length) {
    var table = document.querySelector('details.chart-table');
    if (table) table.open = false;
    var resize = function () {
      charts.forEach(function (c) {
        var w = Math.max(c.box.clientWidth, 200);
        if (w !== c.u.width) c.u.setSize({ width: w, height: height });
      });
    };
    if (typeof ResizeObserver === 'function') {
      var ro = new ResizeObserver(resize);
      charts.forEach(function (c) { ro.observe(c.box); });
    } else {
      window.addEventListener('resize', resize);
    }
  }
})();
