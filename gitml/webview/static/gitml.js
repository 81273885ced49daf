/*
 * gitml web viewer, browser side: metric charts (uPlot), live run updates,
 * parallel coordinates and small table helpers. Plain ES2018, no build step.
 *
 * Run names, metric keys and params come from users and may hold markup or
 * quotes: they reach the DOM only through textContent and setAttribute, and
 * are matched by comparing strings in JS, never spliced into HTML or into
 * CSS selectors.
 */
(function () {
  "use strict";

  const POLL_MS = 3000;
  const CHART_HEIGHT = 240;
  const MANY_POINTS = 500;
  // Runs per sampled-history request: a page of 100 runs is 4 requests a metric, which `gitml ui`'s
  // worker processes read from git in parallel (one request would keep one core busy).
  const SAMPLED_BATCH = 25;
  const PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
  ];
  const X_MODES = [
    ["step", "Step"],
    ["wall", "Wall time"],
    ["relative", "Relative time (s)"],
  ];
  const EMPTY_HISTORY = { steps: [], timestamps: [], values: [] };

  /* ---------- DOM and data helpers ---------- */

  function h(tag, attrs, children) {
    const el = document.createElement(tag);
    for (const name of Object.keys(attrs || {})) el.setAttribute(name, attrs[name]);
    if (children != null) el.append(...[].concat(children));
    return el;
  }

  function svg(tag, attrs, text) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const name of Object.keys(attrs || {})) el.setAttribute(name, attrs[name]);
    if (text != null) el.textContent = text;
    return el;
  }

  // Keys such as "constructor" or "__proto__" are ordinary metric names here.
  function has(obj, key) {
    return obj != null && Object.prototype.hasOwnProperty.call(obj, key);
  }

  function readJSONAttr(el, name, fallback) {
    try {
      const value = JSON.parse(el.getAttribute(name));
      return value == null ? fallback : value;
    } catch (e) {
      return fallback;
    }
  }

  async function fetchJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) {
      const error = new Error(url + ": HTTP " + response.status);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  function runUrl(runId) {
    return "/api/runs/" + encodeURIComponent(runId);
  }

  function metricUrl(runId, key) {
    return runUrl(runId) + "/metrics/" + encodeURIComponent(key);
  }

  // The run's metric keys, so that charts only ask for histories that exist;
  // null when unknown (then every key is tried).
  async function fetchRunKeys(runId) {
    try {
      const answer = await fetchJSON(runUrl(runId));
      return new Set((answer.metric_keys || []).map(String));
    } catch (error) {
      return error.status === 404 ? new Set() : null;
    }
  }

  // A run without this metric answers 404: it simply has no line.
  function fetchHistory(runId, key, offset) {
    const query = offset ? "?offset=" + offset : "";
    return fetchJSON(metricUrl(runId, key) + query).catch((error) => {
      if (error.status === 404) return EMPTY_HISTORY;
      throw error;
    });
  }

  // The chart view across runs: metric `key` of many runs in one request, each sampled to at
  // most maxPoints points (first, last, and each stretch's lowest and highest) by the server.
  function fetchSampled(runIds, key, maxPoints) {
    const query = ["key=" + encodeURIComponent(key), "max_points=" + maxPoints]
      .concat(runIds.map((runId) => "run=" + encodeURIComponent(runId)));
    return fetchJSON("/api/metrics/sampled?" + query.join("&"));
  }

  // Histories only grow: a live refresh asks for the points after those it has.
  // Should the history have shrunk (rewritten by a merge), it is fetched whole again.
  async function refreshHistory(runId, key, known) {
    const have = known ? known.values.length : 0;
    if (!have) return fetchHistory(runId, key);
    const tail = await fetchHistory(runId, key, have);
    if (tail.total === undefined || tail.total < have) return fetchHistory(runId, key);
    if (!tail.values.length) return known;
    return {
      steps: known.steps.concat(tail.steps),
      timestamps: known.timestamps.concat(tail.timestamps),
      values: known.values.concat(tail.values),
    };
  }

  // "//host" and "/\host" are read by browsers as other hosts.
  function isLocalPath(href) {
    return typeof href === "string" && href.startsWith("/") &&
      !href.startsWith("//") && !href.startsWith("/\\");
  }

  function formatNumber(value) {
    if (typeof value !== "number" || !isFinite(value)) return "—";
    if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
    return String(Number(value.toPrecision(6)));
  }

  // Axis labels that read at any magnitude: 0.001 and 1e-5 on a log scale, never a row of 0s.
  // Axis colours from the page's theme (uPlot paints them on the canvas).
  function axis() {
    const grid = cssVar("--border", "#d0d7de");
    return { stroke: cssVar("--axis-text", "#424a53"), grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  }

  function formatTick(value) {
    if (value == null) return "";
    if (value === 0) return "0";
    const size = Math.abs(value);
    if (size < 1e-3 || size >= 1e6) return value.toExponential(Math.max(0, Math.min(3, significant(value) - 1)));
    return String(Number(value.toPrecision(6)));
  }

  function significant(value) {
    const digits = value.toExponential(12).split("e")[0].replace("-", "").replace(".", "").replace(/0+$/, "");
    return Math.max(1, digits.length);
  }

  function solid(hex) {
    return hex;
  }

  function faint(hex) {
    return hex + "4d"; // 30% alpha
  }

  /* ---------- metric series ---------- */

  function minOf(values) {
    let min = Infinity;
    for (let i = 0; i < values.length; i++) if (values[i] < min) min = values[i];
    return min;
  }

  function xValues(history, xMode) {
    if (xMode === "step") return Float64Array.from(history.steps);
    const stamps = history.timestamps;
    const origin = xMode === "relative" ? minOf(stamps) : 0;
    const xs = new Float64Array(stamps.length);
    for (let i = 0; i < stamps.length; i++) xs[i] = (stamps[i] - origin) / 1000;
    return xs;
  }

  // Indices that sort xs ascending, or null when it already is (the usual case).
  function sortingOrder(xs) {
    let sorted = true;
    for (let i = 1; i < xs.length && sorted; i++) sorted = xs[i - 1] <= xs[i];
    if (sorted) return null;
    const order = new Uint32Array(xs.length).map((_, i) => i);
    return order.sort((a, b) => xs[a] - xs[b] || a - b);
  }

  function positiveOrNull(value) {
    return value > 0 ? value : null;
  }

  // TensorBoard's smoothing: an exponential moving average divided by the
  // weight it has accumulated, so the first points are not pulled towards 0.
  function smoothEMA(ys, weight) {
    const out = new Array(ys.length);
    let average = 0;
    let accumulated = 0;
    for (let i = 0; i < ys.length; i++) {
      const y = ys[i];
      if (y == null) {
        out[i] = null;
        continue;
      }
      average = average * weight + (1 - weight) * y;
      accumulated = accumulated * weight + (1 - weight);
      out[i] = average / accumulated;
    }
    return out;
  }

  function prepareSeries(history, options) {
    let xs = xValues(history, options.xMode);
    let ys = options.logScale ? history.values.map(positiveOrNull) : history.values;
    const order = sortingOrder(xs);
    if (order) {
      const unsortedXs = xs;
      const unsortedYs = ys;
      xs = new Float64Array(order.length);
      ys = new Array(order.length);
      for (let i = 0; i < order.length; i++) {
        xs[i] = unsortedXs[order[i]];
        ys[i] = unsortedYs[order[i]];
      }
    }
    const smoothed = options.smoothing > 0 ? smoothEMA(ys, options.smoothing) : null;
    return { xs, ys, smoothed };
  }

  // The sorted union of ascending x arrays (a k-way merge, no duplicates).
  function unionOf(xArrays) {
    if (xArrays.length === 1) return xArrays[0];
    let total = 0;
    for (const xs of xArrays) total += xs.length;
    const union = new Float64Array(total);
    const heads = new Uint32Array(xArrays.length);
    let n = 0;
    for (;;) {
      let min = Infinity;
      for (let r = 0; r < xArrays.length; r++) {
        if (heads[r] < xArrays[r].length && xArrays[r][heads[r]] < min) min = xArrays[r][heads[r]];
      }
      if (min === Infinity) break;
      union[n++] = min;
      for (let r = 0; r < xArrays.length; r++) {
        while (heads[r] < xArrays[r].length && xArrays[r][heads[r]] === min) heads[r]++;
      }
    }
    return union.subarray(0, n);
  }

  function sameValues(a, b) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  // ys laid out on the union grid. Where this run has no point the value is
  // undefined, which uPlot bridges; null (a NaN/inf value) stays a gap.
  function placeOnGrid(grid, xs, ys) {
    if (grid === xs || sameValues(grid, xs)) return ys;
    const out = new Array(grid.length).fill(undefined);
    let j = 0;
    for (let i = 0; i < xs.length; i++) {
      while (grid[j] < xs[i]) j++;
      out[j] = ys[i];
    }
    return out;
  }

  // uPlot's data: [x, raw series per run..., smoothed series per run...].
  function alignedData(parts, withSmoothed) {
    const grid = unionOf(parts.map((part) => part.xs));
    const data = [grid];
    for (const part of parts) data.push(placeOnGrid(grid, part.xs, part.ys));
    if (withSmoothed) for (const part of parts) data.push(placeOnGrid(grid, part.xs, part.smoothed));
    return data;
  }

  // ys on the union grid, read off the run's line: where it has no point of its own, between two
  // of its points, the value is interpolated; outside its range, or next to a NaN, it is null.
  // Runs sampled (or logged) at different steps then still average point by point.
  function interpolateOnGrid(grid, xs, ys) {
    if (grid === xs || sameValues(grid, xs)) return ys;
    const out = new Array(grid.length).fill(null);
    let i = 0;
    for (let j = 0; j < grid.length && xs.length; j++) {
      const x = grid[j];
      if (x < xs[0] || x > xs[xs.length - 1]) continue;
      while (i < xs.length - 1 && xs[i + 1] <= x) i++;
      if (xs[i] === x) {
        out[j] = ys[i];
      } else if (i + 1 < xs.length && ys[i] != null && ys[i + 1] != null) {
        out[j] = ys[i] + (ys[i + 1] - ys[i]) * (x - xs[i]) / (xs[i + 1] - xs[i]);
      }
    }
    return out;
  }

  // Runs grouped by a param: per group, the mean of its runs at each x and their min and max
  // (uPlot data: [x, mean per group..., min per group..., max per group...]).
  function groupedData(parts, groups) {
    const grid = unionOf(parts.map((part) => part.xs));
    const placed = parts.map((part) => interpolateOnGrid(grid, part.xs, part.ys));
    const means = [], mins = [], maxs = [];
    for (const group of groups) {
      const mean = new Array(grid.length), low = new Array(grid.length), high = new Array(grid.length);
      for (let j = 0; j < grid.length; j++) {
        let sum = 0, n = 0, lo = Infinity, hi = -Infinity;
        for (const r of group.runs) {
          const y = placed[r][j];
          if (y == null || !isFinite(y)) continue;
          sum += y;
          n++;
          if (y < lo) lo = y;
          if (y > hi) hi = y;
        }
        mean[j] = n ? sum / n : null;
        low[j] = n ? lo : null;
        high[j] = n ? hi : null;
      }
      means.push(mean);
      mins.push(low);
      maxs.push(high);
    }
    return [grid].concat(means, mins, maxs);
  }

  function yAxisSize(u, values) {
    if (!values || !values.length) return 40;
    let longest = 0;
    for (const text of values) longest = Math.max(longest, String(text).length);
    return 16 + 7 * longest;
  }

  function legendValue(u, value) {
    return value == null ? "" : formatNumber(value);
  }

  /* ---------- one chart card per metric key ---------- */

  class ChartCard {
    constructor(panel, key) {
      this.panel = panel;
      this.key = key;
      this.histories = panel.runs.map(() => null);
      this.plot = null;
      this.shape = "";
      this.points = 0;
      this.drawStarted = null;
      this.body = h("div", { class: "chart" });
      this.note = h("p", { class: "chart-note muted" }, "Loading…");
      this.el = h("div", { class: "card chart-card" }, [
        h("h3", { class: "chart-title" }, key),
        this.body,
        this.note,
      ]);
      this.el.setAttribute("data-chart-key", key);
    }

    async load(runIndexes) {
      if (this.panel.samplePoints) return this.loadSampled(runIndexes);
      const failed = [];
      const wanted = runIndexes.filter((i) => this.panel.mayHave(i, this.key));
      for (const i of runIndexes) if (!wanted.includes(i)) this.histories[i] = EMPTY_HISTORY;
      await Promise.all(wanted.map((i) =>
        refreshHistory(this.panel.runs[i], this.key, this.histories[i]).then(
          (history) => { this.histories[i] = history; },
          () => { failed.push(this.panel.labelOf(i)); })));
      this.note.textContent = failed.length ? "Could not load: " + failed.join(", ") : "";
      if (this.histories.some((history) => history !== null)) this.draw();
    }

    // A few requests for every run of the panel (SAMPLED_BATCH runs each), not one a run; a
    // history longer than the panel's samplePoints comes sampled, and the card says so.
    async loadSampled(runIndexes) {
      const limit = this.panel.samplePoints;
      const batches = [];
      for (let b = 0; b < runIndexes.length; b += SAMPLED_BATCH) batches.push(runIndexes.slice(b, b + SAMPLED_BATCH));
      try {
        await Promise.all(batches.map(async (batch) => {
          const answer = await fetchSampled(batch.map((i) => this.panel.runs[i]), this.key, limit);
          answer.runs.forEach((history, n) => { this.histories[batch[n]] = history; });
        }));
      } catch (error) {
        this.note.textContent = "Could not load " + this.key + ": " + error.message;
        return;
      }
      let sampled = 0, longest = 0;
      for (const history of this.histories) {
        if (!history) continue;
        if (history.total > history.values.length) sampled++;
        longest = Math.max(longest, history.total || 0);
      }
      this.el.setAttribute("data-sampled", String(sampled));
      this.note.textContent = sampled
        ? "Sampled to at most " + limit + " points per run (" + sampled + " of " + this.histories.length +
          " runs, up to " + longest.toLocaleString("en") + " points): the first, the last, and each stretch's " +
          "lowest and highest. A run's own page charts every point."
        : "";
      this.draw();
    }

    draw() {
      this.drawStarted = performance.now();
      // A metric logged once per run (a final score) reads better as values and bars than as
      // a chart of lone dots; it becomes a chart when a run logs a second point.
      const longest = this.histories.reduce((n, history) => Math.max(n, history ? history.values.length : 0), 0);
      if (longest <= 1) {
        this.drawValues();
        return;
      }
      if (this.valuesEl) {
        this.valuesEl.remove();
        this.valuesEl = null;
        this.el.removeAttribute("data-single");
      }
      const options = this.panel.options;
      const groups = this.panel.groups();
      const withSmoothed = options.smoothing > 0 && !groups;
      const parts = this.histories.map((history) => prepareSeries(history || EMPTY_HISTORY, options));
      const data = groups ? groupedData(parts, groups) : alignedData(parts, withSmoothed);
      this.points = this.histories.reduce((n, history) => n + (history ? history.values.length : 0), 0);
      const many = this.points > MANY_POINTS;
      const shape = [options.xMode, options.logScale, withSmoothed, many, options.groupBy].join();
      if (this.plot && shape === this.shape) {
        this.update(data);
      } else {
        if (this.plot) this.plot.destroy();
        this.plot = new uPlot(this.panel.plotOptions(this, withSmoothed, many), data, this.body);
        this.shape = shape;
        if (withSmoothed) this.hideRawFromLegend();
      }
      const grid = data[0];
      this.xRange = grid.length ? [grid[0], grid[grid.length - 1]] : null;
    }

    drawValues() {
      if (this.plot) {
        this.plot.destroy();
        this.plot = null;
        this.shape = "";
      }
      const values = this.histories.map((history) =>
        history && history.values.length ? history.values[0] : null);
      const finite = values.filter((v) => typeof v === "number" && isFinite(v));
      const top = finite.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const rows = values.map((value, i) => {
        if (value === null || !this.panel.mayHave(i, this.key)) return null;
        const width = top > 0 && typeof value === "number" && isFinite(value) ? (Math.abs(value) / top) * 100 : 0;
        const bar = h("span", { class: "value-bar" });
        bar.style.width = width.toFixed(1) + "%";
        bar.style.background = PALETTE[i % PALETTE.length];
        const full = typeof value === "number" ? String(value) : "NaN";
        return h("div", { class: "value-row" }, [
          h("span", { class: "value-label" }, this.panel.labelOf(i)),
          h("span", { class: "value-track" }, [bar]),
          h("span", { class: "value-number", title: full }, formatNumber(value)),
        ]);
      }).filter((row) => row !== null);
      const box = h("div", { class: "value-list" }, rows);
      if (this.valuesEl) this.valuesEl.replaceWith(box);
      else this.body.append(box);
      this.valuesEl = box;
      this.points = rows.length;
      this.el.setAttribute("data-single", "1");
      this.drawn();
    }

    // Keeps the user's zoom across live updates; otherwise rescales to the data.
    update(data) {
      const x = this.plot.scales.x;
      const zoomed = this.xRange != null && (x.min > this.xRange[0] || x.max < this.xRange[1]);
      if (zoomed) {
        this.plot.setData(data, false);
        this.plot.setScale("x", { min: x.min, max: x.max });
      } else {
        this.plot.setData(data);
      }
    }

    hideRawFromLegend() {
      const rows = this.plot.root.querySelectorAll(".u-legend .u-series");
      for (let i = 1; i <= this.panel.runs.length && i < rows.length; i++) rows[i].classList.add("raw-series");
    }

    // Called from uPlot's draw hook, so the time includes the actual painting.
    drawn() {
      if (this.drawStarted === null) return;
      this.el.setAttribute("data-draw-ms", (performance.now() - this.drawStarted).toFixed(1));
      this.drawStarted = null;
      this.el.setAttribute("data-points", String(this.points));
      // the y axis labels as drawn (they are painted on the canvas), for tests and tools
      const ticks = this.plot && this.plot.axes[1] ? this.plot.axes[1]._values : null;
      if (ticks) this.el.setAttribute("data-y-ticks", JSON.stringify(ticks));
      const y = this.plot ? this.plot.scales.y : null;  // the drawn range, which holds every point drawn
      if (y && y.min != null) this.el.setAttribute("data-y-range", JSON.stringify([y.min, y.max]));
      this.el.setAttribute("data-drawn", "1");
    }

    resize(width) {
      if (this.plot && width > 0 && width !== this.plot.width) {
        this.plot.setSize({ width, height: CHART_HEIGHT });
      }
    }
  }

  /* ---------- a panel of charts with a shared toolbar ---------- */

  let panelCount = 0;

  class ChartPanel {
    constructor(root) {
      this.root = root;
      this.runs = readJSONAttr(root, "data-runs", []).map(String);
      this.labels = readJSONAttr(root, "data-labels", []);
      this.options = { xMode: "step", logScale: false, smoothing: 0, groupBy: "" };
      this.runParams = readJSONAttr(root, "data-params", {}); // run id -> params, for "Group by"
      // > 0: the chart view across runs, which fetches each metric of all its runs sampled, at once
      this.samplePoints = Number(root.getAttribute("data-sample-points")) || 0;
      this.cards = new Map();
      this.runKeys = this.runs.map(() => null); // per run: Set of its metric keys, once known
      this.settled = new Set(); // run indexes that finished and got their last refresh
      this.syncKey = "gitml-charts-" + ++panelCount;
      this.grid = h("div", { class: "chart-grid" });
      this.empty = h("p", { class: "muted chart-empty" }, "No metrics logged yet.");
      this.empty.hidden = true;
      this.filter = h("input", {
        type: "search", class: "chart-filter", placeholder: "Filter metrics", "aria-label": "Filter metrics",
      });
      this.resizer = new ResizeObserver((entries) => this.onResize(entries));
      root.append(this.toolbar(), this.grid, this.empty);
      document.addEventListener("gitml:theme", () => this.redrawAll());
      this.start(readJSONAttr(root, "data-keys", []).map(String));
    }

    // The theme changed: new plots, with the new axis colours.
    redrawAll() {
      for (const card of this.cards.values()) {
        card.shape = "";
        if (card.histories.some((history) => history !== null)) card.draw();
      }
    }

    async start(keys) {
      // A sampled answer says which runs lack the metric: no need to ask each run for its keys first.
      if (!this.samplePoints) this.runKeys = await Promise.all(this.runs.map(fetchRunKeys));
      const allRuns = this.runs.map((_, i) => i);
      for (const key of keys) this.addCard(key, allRuns);
      this.empty.hidden = this.cards.size > 0;
      this.showFilterIfUseful();
      if (this.root.getAttribute("data-live") === "1") this.schedulePoll();
    }

    mayHave(runIndex, key) {
      const keys = this.runKeys[runIndex];
      return keys === null || keys.has(key);
    }

    labelOf(i) {
      return String(this.labels[i] != null ? this.labels[i] : this.runs[i]);
    }

    toolbar() {
      const xSelect = h("select", { "aria-label": "X axis" }, X_MODES.map(([value, text]) => {
        const option = h("option", {}, text);
        option.value = value;
        return option;
      }));
      const logBox = h("input", { type: "checkbox" });
      const smoothing = h("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: "0" });
      const smoothingValue = h("output", { class: "mono" }, "0.00");
      xSelect.addEventListener("change", () => this.setOption("xMode", xSelect.value));
      logBox.addEventListener("change", () => this.setOption("logScale", logBox.checked));
      smoothing.addEventListener("input", () => {
        smoothingValue.textContent = Number(smoothing.value).toFixed(2);
        this.setOption("smoothing", Number(smoothing.value));
      });
      this.filter.addEventListener("input", () => this.applyFilter());
      const controls = [
        h("label", {}, ["X axis ", xSelect]),
        h("label", {}, [logBox, " Log scale"]),
        h("label", {}, ["Smoothing ", smoothing, smoothingValue]),
      ];
      const paramKeys = new Set();
      for (const run of Object.keys(this.runParams)) {
        for (const key of Object.keys(this.runParams[run] || {})) paramKeys.add(key);
      }
      if (paramKeys.size) {
        const groupSelect = h("select", { class: "group-by", "aria-label": "Group runs by a param" },
          [h("option", { value: "" }, "none")].concat(Array.from(paramKeys).sort().map((key) => {
            const option = h("option", {}, key);
            option.value = key;
            return option;
          })));
        groupSelect.addEventListener("change", () => this.setOption("groupBy", groupSelect.value));
        controls.push(h("label", { title: "One line per value of a param: the mean of its runs, with their min-max band" },
          ["Group by ", groupSelect]));
      }
      return h("div", { class: "chart-toolbar" }, controls.concat([this.filter]));
    }

    // Slider moves arrive faster than 100k-point charts redraw: one redraw per frame.
    setOption(name, value) {
      this.options[name] = value;
      if (this.redrawQueued) return;
      this.redrawQueued = true;
      requestAnimationFrame(() => {
        this.redrawQueued = false;
        for (const card of this.cards.values()) {
          if (card.histories.some((history) => history !== null)) card.draw();
        }
      });
    }

    addCard(key, runIndexes) {
      if (this.cards.has(key)) return;
      const card = new ChartCard(this, key);
      this.cards.set(key, card);
      this.grid.append(card.el);
      this.empty.hidden = true;
      this.applyFilterTo(card);
      this.resizer.observe(card.body);
      card.load(runIndexes);
    }

    showFilterIfUseful() {
      this.filter.hidden = this.cards.size <= 6;
    }

    applyFilter() {
      for (const card of this.cards.values()) this.applyFilterTo(card);
    }

    applyFilterTo(card) {
      const query = this.filter.value.trim().toLowerCase();
      card.el.hidden = query !== "" && !card.key.toLowerCase().includes(query);
    }

    onResize(entries) {
      for (const entry of entries) {
        for (const card of this.cards.values()) {
          if (card.body === entry.target) card.resize(Math.floor(entry.contentRect.width));
        }
      }
    }

    plotOptions(card, withSmoothed, many) {
      const groups = this.groups();
      if (groups) return this.groupedPlotOptions(card, groups, many);
      const points = many ? { show: false } : {};
      const lines = (stroke, width, suffix) => this.runs.map((_, i) => ({
        label: this.labelOf(i) + suffix,
        stroke: stroke(PALETTE[i % PALETTE.length]),
        width,
        points,
        value: legendValue,
      }));
      const series = withSmoothed
        ? lines(faint, 1, " (raw)").concat(lines(solid, 1.5, ""))
        : lines(solid, 1.5, "");
      const xMode = this.options.xMode;
      return {
        width: card.body.clientWidth || 400,
        height: CHART_HEIGHT,
        scales: { x: { time: xMode === "wall" }, y: { distr: this.options.logScale ? 3 : 1 } },
        series: [{ label: X_MODES.find((mode) => mode[0] === xMode)[1] }].concat(series),
        axes: [axis(), Object.assign(axis(), { size: yAxisSize, values: (u, splits) => splits.map(formatTick) })],
        cursor: { sync: { key: this.syncKey }, drag: { x: true, y: false } },
        hooks: {
          draw: [() => card.drawn()],
          setSeries: [(u, index, opts) => this.toggleRawWithSmoothed(u, index, opts, withSmoothed)],
        },
      };
    }

    groupedPlotOptions(card, groups, many) {
      const points = many ? { show: false } : {};
      const n = groups.length;
      const color = (g) => PALETTE[g % PALETTE.length];
      const means = groups.map((group, g) => ({
        label: group.label + " (" + group.runs.length + " run" + (group.runs.length === 1 ? "" : "s") + ", mean)",
        stroke: color(g), width: 1.75, points, value: legendValue,
      }));
      const edge = (g, what) => ({ label: groups[g].label + " " + what, stroke: faint(color(g)), width: 0.5,
        points: { show: false }, value: legendValue });
      const lows = groups.map((_, g) => edge(g, "min"));
      const highs = groups.map((_, g) => edge(g, "max"));
      const bands = groups.map((_, g) => ({ series: [1 + 2 * n + g, 1 + n + g], fill: color(g) + "26" }));
      const xMode = this.options.xMode;
      return {
        width: card.body.clientWidth || 400,
        height: CHART_HEIGHT,
        scales: { x: { time: xMode === "wall" }, y: { distr: this.options.logScale ? 3 : 1 } },
        series: [{ label: X_MODES.find((mode) => mode[0] === xMode)[1] }].concat(means, lows, highs),
        bands,
        axes: [axis(), Object.assign(axis(), { size: yAxisSize, values: (u, splits) => splits.map(formatTick) })],
        cursor: { sync: { key: this.syncKey }, drag: { x: true, y: false } },
        hooks: {
          draw: [() => card.drawn()],
          ready: [(u) => {
            const rows = u.root.querySelectorAll(".u-legend .u-series");
            for (let i = 1 + n; i < rows.length; i++) rows[i].classList.add("raw-series");
          }],
        },
      };
    }

    // Groups of run indexes by the value of the param chosen in "Group by" (null: no grouping).
    groups() {
      const param = this.options.groupBy;
      if (!param) return null;
      const byValue = new Map();
      this.runs.forEach((run, i) => {
        const params = this.runParams[run] || {};
        const value = has(params, param) ? String(params[param]) : "(none)";
        if (!byValue.has(value)) byValue.set(value, []);
        byValue.get(value).push(i);
      });
      return Array.from(byValue.keys()).sort().map((value) => ({ label: param + "=" + value, runs: byValue.get(value) }));
    }

    // The raw series has no legend row of its own: it follows its smoothed line.
    toggleRawWithSmoothed(u, index, opts, withSmoothed) {
      const runCount = this.runs.length;
      if (withSmoothed && index > runCount && opts.show != null) {
        u.setSeries(index - runCount, { show: opts.show });
      }
    }

    /* live updates */

    // A run page has two panels: the run's own metrics, and its system/ metrics.
    wants(key) {
      const filter = this.root.getAttribute("data-key-filter");
      if (filter === "system") return key.startsWith("system/");
      if (filter === "own") return !key.startsWith("system/");
      return true;
    }

    schedulePoll() {
      setTimeout(() => this.poll(), POLL_MS);
    }

    async poll() {
      const pending = this.runs.map((_, i) => i).filter((i) => !this.settled.has(i));
      const answers = await Promise.all(pending.map((i) => fetchJSON(runUrl(this.runs[i])).catch(() => null)));
      const existingCards = Array.from(this.cards.values());
      let running = false;
      answers.forEach((answer, n) => {
        const i = pending[n];
        if (!answer || !answer.run) {
          running = true; // a failed request says nothing: ask again
          return;
        }
        updateLiveFields(answer.run, this.runs[i], i === 0);
        this.runKeys[i] = new Set((answer.metric_keys || []).map(String));
        for (const key of answer.metric_keys || []) {
          if (this.wants(String(key))) this.addCard(String(key), this.runs.map((_, r) => r));
        }
        if (answer.run.info.status === "RUNNING") running = true;
        else this.settled.add(i);
      });
      this.showFilterIfUseful();
      await Promise.all(existingCards.map((card) => card.load(pending)));
      stampLiveUpdate();
      if (running) this.schedulePoll();
      else this.root.setAttribute("data-live", "0");
    }
  }

  /* ---------- light / dark (theme.js set it before the page was drawn) ---------- */

  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function startThemeToggle() {
    const button = document.querySelector("button.theme-toggle");
    if (!button) return;
    button.addEventListener("click", () => {
      const dark = document.documentElement.getAttribute("data-theme") !== "dark";
      document.documentElement.setAttribute("data-theme", dark ? "dark" : "light");
      try {
        window.localStorage.setItem("gitml-theme", dark ? "dark" : "light");
      } catch (e) {
        /* private mode: the choice lasts for this page */
      }
      document.dispatchEvent(new CustomEvent("gitml:theme"));
    });
  }

  /* ---------- images logged per step: a slider over the steps ---------- */

  function startImageSteps(figure) {
    const frames = readJSONAttr(figure, "data-frames", []);
    const slider = figure.querySelector("input.image-slider");
    const img = figure.querySelector("img");
    const link = figure.querySelector("a.image-full");
    const label = figure.querySelector("output.image-step");
    if (!slider || !img || !frames.length) return;
    slider.addEventListener("input", () => {
      const frame = frames[Number(slider.value)];
      if (!frame) return;
      img.src = String(frame.src);
      img.alt = figure.getAttribute("data-image-key") + " at step " + frame.step;
      if (link) link.href = String(frame.full);
      if (label) label.textContent = String(frame.step);
    });
  }

  /* ---------- live fields outside the charts ---------- */

  // A field belongs to the run named by its nearest data-run-id ancestor,
  // or, without one, to the panel's first run.
  function fieldsOf(runId, isDefault, attribute) {
    return Array.from(document.querySelectorAll("[" + attribute + "]")).filter((el) => {
      const owner = el.closest("[data-run-id]");
      return owner ? owner.getAttribute("data-run-id") === runId : isDefault;
    });
  }

  function updateLiveFields(run, runId, isDefault) {
    const status = String(run.info.status || "");
    for (const el of fieldsOf(runId, isDefault, "data-live-field")) {
      if (el.dataset.liveField !== "status") continue;
      el.textContent = status;
      for (const name of Array.from(el.classList)) {
        if (name.startsWith("status-")) el.classList.remove(name);
      }
      const badge = status.toLowerCase().replace(/[^a-z0-9_-]/g, "");
      if (badge) el.classList.add("status-" + badge);
    }
    const data = run.data || {};
    updateValues(data.metrics || {}, runId, isDefault, "metric-value", formatNumber);
    updateValues(data.params || {}, runId, isDefault, "param-value", String);
  }

  // Sets each shown value; a key logged since the page loaded gets a new row in its table.
  function updateValues(values, runId, isDefault, field, format) {
    const attribute = "data-" + field;
    const shown = new Set();
    for (const el of fieldsOf(runId, isDefault, attribute)) {
      const key = el.getAttribute(attribute);
      shown.add(key);
      if (has(values, key)) el.textContent = format(values[key]);
    }
    const table = fieldsOf(runId, isDefault, "data-live-table")
      .find((el) => el.getAttribute("data-live-table") === field);
    if (!table) return;
    for (const key of Object.keys(values).sort()) {
      if (shown.has(key)) continue;
      for (const empty of table.querySelectorAll("td.muted")) empty.closest("tr").remove();
      const cell = h("td", {}, format(values[key]));
      cell.setAttribute(attribute, key);
      (table.tBodies[0] || table).append(h("tr", {}, [h("th", {}, key), cell]));
    }
  }

  function stampLiveUpdate() {
    const now = new Date();
    for (const el of document.querySelectorAll("[data-live-field]")) {
      if (el.dataset.liveField !== "updated") continue;
      el.textContent = now.toLocaleTimeString();
      if (el.tagName === "TIME") el.setAttribute("datetime", now.toISOString());
    }
  }

  function startChartPanel(root) {
    if (typeof uPlot === "undefined") {
      root.append(h("p", { class: "error" }, "Charts need static/vendor/uPlot.iife.min.js, which did not load."));
      return;
    }
    new ChartPanel(root);
  }

  /* ---------- parallel coordinates ---------- */

  const PC = { height: 380, top: 52, bottom: 56, left: 80, right: 90 };

  function isNumeric(value) {
    if (typeof value === "number") return isFinite(value);
    return typeof value === "string" && value.trim() !== "" && isFinite(Number(value));
  }

  function niceTicks(min, max) {
    if (min === max) return [min];
    const rough = (max - min) / 5;
    const magnitude = Math.pow(10, Math.floor(Math.log10(rough)));
    const step = magnitude * [1, 2, 5, 10].find((m) => m * magnitude >= rough);
    const first = Math.ceil(min / step);
    const ticks = [];
    for (let k = first; k * step <= max + step * 1e-9; k++) ticks.push(Number((k * step).toPrecision(12)));
    return ticks;
  }

  function powersOfTen(min, max) {
    const ticks = [];
    for (let e = Math.ceil(Math.log10(min)); e <= Math.floor(Math.log10(max)); e++) ticks.push(Math.pow(10, e));
    return ticks;
  }

  // Fractions run from 0 (bottom) to 1 (top); null means the run lacks a value.
  function numericAxis(values) {
    const numbers = values.map((v) => (v == null ? null : Number(v)));
    const present = numbers.filter((v) => v !== null);
    const min = Math.min(...present);
    const max = Math.max(...present);
    const logarithmic = min > 0 && max / min >= 1000; // learning rates and the like
    const scale = logarithmic ? Math.log10 : (v) => v;
    const low = scale(min);
    const span = scale(max) - low;
    const fraction = (v) => (v === null ? null : span ? (scale(v) - low) / span : 0.5);
    const ticks = logarithmic ? powersOfTen(min, max) : niceTicks(min, max);
    return {
      fractions: numbers.map(fraction),
      ticks: ticks.map((v) => ({ fraction: fraction(v), label: formatNumber(v) })),
    };
  }

  function categoricalAxis(values) {
    const collator = new Intl.Collator(undefined, { numeric: true });
    const labels = Array.from(new Set(values.filter((v) => v != null).map(String))).sort(collator.compare);
    const position = new Map(labels.map((label, i) => [label, i]));
    const fraction = (i) => (labels.length < 2 ? 0.5 : i / (labels.length - 1));
    return {
      fractions: values.map((v) => (v == null ? null : fraction(position.get(String(v))))),
      ticks: labels.map((label, i) => ({ fraction: fraction(i), label })),
    };
  }

  function makeAxis(kind, key, values) {
    const present = values.filter((v) => v != null);
    const axis = present.length && present.every(isNumeric) ? numericAxis(values) : categoricalAxis(values);
    axis.kind = kind;
    axis.key = key;
    axis.hasMissing = axis.fractions.includes(null);
    return axis;
  }

  function parcoordsAxes(data, metricKey) {
    const axes = [];
    for (const key of Object.keys(data.params || {})) {
      if (data.params[key].changed) axes.push(makeAxis("param", key, data.params[key].values));
    }
    if (has(data.metrics, metricKey)) axes.push(makeAxis("metric", metricKey, data.metrics[metricKey].values));
    return axes;
  }

  function shorten(text, length) {
    return text.length > length ? text.slice(0, length - 1) + "…" : text;
  }

  function blueToRed(fraction) {
    if (fraction == null) return "#9a9a9a";
    const mix = (from, to) => Math.round(from + (to - from) * fraction);
    return "rgb(" + mix(37, 220) + "," + mix(99, 38) + "," + mix(235, 38) + ")";
  }

  function runName(run) {
    const info = run.info || {};
    return String(info.run_name || info.run_id || "?");
  }

  function axisGroup(axis, index, x, yAt, missingY) {
    const group = svg("g", { class: "pc-axis pc-axis-" + axis.kind });
    group.append(svg("line", { class: "pc-axis-line", x1: x, x2: x, y1: yAt(1), y2: yAt(0) }));
    const labelY = yAt(1) - 12 - (index % 2) * 16; // staggered so long names do not collide
    const label = svg("text", { class: "pc-label", x, y: labelY, "text-anchor": "middle" }, shorten(axis.key, 24));
    label.append(svg("title", {}, axis.key));
    group.append(label);
    const every = Math.ceil(axis.ticks.length / 16);
    axis.ticks.forEach((tick, i) => {
      if (i % every) return;
      const y = yAt(tick.fraction);
      group.append(
        svg("line", { class: "pc-tick", x1: x - 4, x2: x, y1: y, y2: y }),
        svg("text", { class: "pc-tick-label", x: x - 7, y: y + 4, "text-anchor": "end" }, shorten(tick.label, 14)));
    });
    if (axis.hasMissing) {
      group.append(svg("text", {
        class: "pc-tick-label pc-missing-label", x: x - 7, y: missingY + 4, "text-anchor": "end",
      }, "missing"));
    }
    return group;
  }

  function runLine(chart, run, points, colorFraction, dashed) {
    const line = svg("polyline", { class: "pc-line", points, stroke: blueToRed(colorFraction) });
    line.setAttribute("data-run-id", String((run.info || {}).run_id || ""));
    if (dashed) {
      line.classList.add("pc-missing");
      line.setAttribute("stroke-dasharray", "5 4");
    }
    line.append(svg("title", {}, runName(run)));
    line.addEventListener("mouseenter", () => {
      chart.classList.add("pc-hovering");
      line.classList.add("pc-hover");
    });
    line.addEventListener("mouseleave", () => {
      chart.classList.remove("pc-hovering");
      line.classList.remove("pc-hover");
    });
    return line;
  }

  function parcoordsSvg(data, metricKey, width) {
    const runs = data.runs || [];
    const axes = parcoordsAxes(data, metricKey);
    const chartWidth = Math.max(width, 480);
    const bottomY = PC.height - PC.bottom;
    const missingY = bottomY + 26;
    const chart = svg("svg", {
      class: "pc-svg", width: chartWidth, height: PC.height, viewBox: "0 0 " + chartWidth + " " + PC.height,
    });
    const xAt = (i) => (axes.length < 2 ? chartWidth / 2
      : PC.left + i * (chartWidth - PC.left - PC.right) / (axes.length - 1));
    const yAt = (fraction) => (fraction == null ? missingY : bottomY - fraction * (bottomY - PC.top));
    const metricAxis = axes.find((axis) => axis.kind === "metric");
    const lines = svg("g", { class: "pc-lines" });
    runs.forEach((run, r) => {
      const fractions = axes.map((axis) => axis.fractions[r]);
      let points = fractions.map((f, i) => xAt(i) + "," + yAt(f)).join(" ");
      if (axes.length === 1) points = (xAt(0) - 30) + "," + yAt(fractions[0]) + " " + (xAt(0) + 30) + "," + yAt(fractions[0]);
      const colorFraction = metricAxis ? metricAxis.fractions[r] : null;
      lines.append(runLine(chart, run, points, colorFraction, fractions.includes(null)));
    });
    chart.append(lines);
    axes.forEach((axis, i) => chart.append(axisGroup(axis, i, xAt(i), yAt, missingY)));
    return chart;
  }

  async function startParcoords(root) {
    const src = root.getAttribute("data-src");
    if (!isLocalPath(src)) return;
    let data;
    try {
      data = await fetchJSON(src);
    } catch (error) {
      root.append(h("p", { class: "error" }, "Could not load the comparison: " + error.message));
      return;
    }
    const select = h("select", { "aria-label": "Metric" }, Object.keys(data.metrics || {}).map((key) => {
      const option = h("option", {}, key);
      option.value = key;
      return option;
    }));
    const controls = h("div", { class: "parcoords-controls" }, [h("label", {}, ["Color by metric ", select])]);
    controls.hidden = select.options.length === 0;
    const box = h("div", { class: "parcoords-chart" });
    const note = h("p", { class: "muted" }, "No parameter differs between these runs.");
    note.hidden = Object.keys(data.params || {}).some((key) => data.params[key].changed);
    root.append(controls, note, box);
    let drawnWidth = -1;
    const draw = () => {
      drawnWidth = box.clientWidth;
      box.textContent = "";
      box.append(parcoordsSvg(data, select.value, drawnWidth));
      root.setAttribute("data-drawn", "1");
    };
    select.addEventListener("change", draw);
    new ResizeObserver(() => {
      if (box.clientWidth !== drawnWidth) draw();
    }).observe(box);
    draw();
  }

  /* ---------- tables ---------- */

  function initOnlyChanged() {
    const box = document.getElementById("only-changed");
    if (!box) return;
    const apply = () => {
      for (const table of document.querySelectorAll("table.compare-table")) {
        table.classList.toggle("only-changed", box.checked);
      }
    };
    box.addEventListener("change", apply);
    apply(); // the browser may restore the box checked on back/forward
  }

  function runBoxes(form) {
    return Array.from(form.elements).filter((el) => el.type === "checkbox" && el.name === "run");
  }

  function updateRunForm(form) {
    const boxes = runBoxes(form);
    const checked = boxes.filter((box) => box.checked).length;
    for (const el of form.elements) {
      if (el.classList.contains("compare-btn")) el.disabled = checked < 2;
      if (el.classList.contains("select-all")) {
        el.checked = boxes.length > 0 && checked === boxes.length;
        el.indeterminate = checked > 0 && checked < boxes.length;
      }
    }
  }

  function initRunSelection() {
    const forms = new Set();
    for (const el of document.querySelectorAll("input.select-all, .compare-btn")) {
      if (el.form) forms.add(el.form);
    }
    forms.forEach(updateRunForm);
    // Listening on the document also catches inputs tied to a form by form="...".
    document.addEventListener("change", (event) => {
      const form = event.target.form;
      if (!form || !forms.has(form)) return;
      if (event.target.classList.contains("select-all")) {
        for (const box of runBoxes(form)) box.checked = event.target.checked;
      }
      updateRunForm(form);
    });
    window.addEventListener("pageshow", () => forms.forEach(updateRunForm));
  }

  // A parent run's ▸ button shows or hides its nested runs (the rows right below it).
  function initNestedRows() {
    document.addEventListener("click", (event) => {
      const button = event.target.closest("button.expand[data-expands]");
      if (!button) return;
      event.preventDefault();
      const open = button.getAttribute("aria-expanded") !== "true";
      button.setAttribute("aria-expanded", open ? "true" : "false");
      button.textContent = (open ? "▾ " : "▸ ") + button.textContent.replace(/^[▸▾]\s*/, "");
      const id = button.getAttribute("data-expands");
      for (const row of document.querySelectorAll("tr.child-row")) {
        if (row.getAttribute("data-parent") === id) row.hidden = !open;
      }
    });
  }

  function initRowLinks() {
    document.addEventListener("click", (event) => {
      if (event.defaultPrevented || event.button !== 0) return;
      const row = event.target.closest("tr[data-href]");
      if (!row || event.target.closest("a, button, input, select, textarea, label")) return;
      if (String(window.getSelection()) !== "") return; // the user is selecting text
      const href = row.getAttribute("data-href");
      if (!isLocalPath(href)) return;
      if (event.ctrlKey || event.metaKey) window.open(href, "_blank", "noopener");
      else window.location.assign(href);
    });
  }

  /* ---------- relative times ---------- */

  function describeAge(ms) {
    const seconds = Math.round((Date.now() - ms) / 1000);
    const abs = Math.abs(seconds);
    let text;
    if (abs < 10) return "just now";
    if (abs < 60) text = abs + " s";
    else if (abs < 3600) text = Math.floor(abs / 60) + " min";
    else if (abs < 86400) text = Math.floor(abs / 3600) + " h";
    else if (abs < 30 * 86400) {
      const days = Math.floor(abs / 86400);
      text = days + (days === 1 ? " day" : " days");
    } else return new Date(ms).toLocaleDateString();
    return seconds < 0 ? "in " + text : text + " ago";
  }

  function renderAge(el) {
    const ms = Date.parse(el.getAttribute("datetime") || "");
    if (isNaN(ms)) return; // keep the server's text
    el.title = new Date(ms).toLocaleString();
    el.textContent = describeAge(ms);
  }

  function initRelativeTimes() {
    const update = () => document.querySelectorAll("time.ago").forEach(renderAge);
    update();
    setInterval(update, 30000);
  }

  /* ---------- start ---------- */

  function init() {
    startThemeToggle();
    document.querySelectorAll(".chart-panel").forEach(startChartPanel);
    document.querySelectorAll("figure.image-steps").forEach(startImageSteps);
    document.querySelectorAll(".parcoords").forEach(startParcoords);
    initOnlyChanged();
    initRunSelection();
    initRowLinks();
    initNestedRows();
    initRelativeTimes();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
