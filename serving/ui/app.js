/* lambdad web UI: views, a time-series chart and a totals table that
 * refresh live, and the layers' status. Plain JavaScript over the HTTP API
 * (/v1/views, /v1/views/{view}/query, /v1/views/{view}/values/{dim},
 * /v1/status); charts by dygraphs. When the API answers 401 the page asks
 * for a bearer token once and keeps it in sessionStorage. */
"use strict";
(function () {
  const REFRESH_MS = 3000;      // live refresh of the chart, table and status
  const PX_PER_POINT = 3;       // auto: about one bucket per 3 pixels of the chart's width
  const MAX_POINTS = 1000;      // ... and at most this many
  // Series colours that read on both themes.
  const COLORS = ["#4c7cf3", "#f08c3a", "#3fae5a", "#b25ed6", "#e5b321", "#22a6bf", "#e0527e",
    "#7fae2e", "#8a6cf0", "#19b38f", "#d9534f", "#8c96a8"];
  const MAX_SERIES = 12;        // groups drawn; the table lists them all
  // The granularities the picker offers, with their lengths in seconds
  // (week and month: null, calendar units); a view offers those that are
  // whole multiples of its own (the query refuses others).
  const GRANS = [["second", 1], ["5s", 5], ["15s", 15], ["minute", 60], ["5m", 300], ["15m", 900],
    ["hour", 3600], ["6h", 21600], ["day", 86400], ["week", null], ["month", null]];
  const UNIT_SECS = { second: 1, minute: 60, hour: 3600, day: 86400 };
  const ZONED = new Set(["day", "week", "month"]);   // buckets that start at local midnights
  const TOKEN_KEY = "lambdad.token";
  const $ = (id) => document.getElementById(id);

  const st = {
    views: [], view: null, range: 900, custom: null, gran: "auto", metric: null,
    groupBy: [], filters: [], chart: null, timer: null, seq: 0,
  };
  // What the page drew last, for the browser tests (tests/browser).
  const probe = window.lambdadUI = { renders: 0, query: null, labels: [], data: [], table: null, errors: 0 };

  // ---- the API, with the token ----
  let tokenWait = null;
  function askToken(refused) {
    if (!tokenWait) {
      tokenWait = new Promise((resolve) => {
        const dlg = $("token-dialog");
        $("token-error").hidden = !refused;
        $("token").value = "";
        $("token-form").onsubmit = (ev) => {
          ev.preventDefault();
          sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
          dlg.close();
          tokenWait = null;
          resolve();
        };
        if (!dlg.open) dlg.showModal();
      });
    }
    return tokenWait;
  }
  async function api(path) {
    for (;;) {
      const token = sessionStorage.getItem(TOKEN_KEY);
      const headers = token ? { Authorization: "Bearer " + token } : {};
      const r = await fetch(path, { headers, cache: "no-store" });
      if (r.status === 401) {
        // A request sent before the token was entered (or changed) is
        // simply sent again with it: only a refusal of the current token
        // asks the user.
        if (sessionStorage.getItem(TOKEN_KEY) === token) await askToken(!!token);
        continue;
      }
      const body = await r.json().catch(() => null);
      if (!r.ok) {
        const msg = body && body.error ? body.error.message : r.statusText;
        const e = new Error(r.status + ": " + msg);
        e.status = r.status;
        throw e;
      }
      return body;
    }
  }

  // ---- numbers and times ----
  const nf = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
  function fmtNum(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "object")
      return Object.entries(v).map(([k, x]) => k + " " + fmtNum(x)).join(" · ");
    const a = Math.abs(v);
    if (a >= 1e9) return nf.format(v / 1e9) + " G";
    if (a >= 1e6) return nf.format(v / 1e6) + " M";
    if (a >= 1e4) return nf.format(v / 1e3) + " k";
    return nf.format(v);
  }
  function ago(iso) {
    if (!iso) return "never";
    const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    if (s < 0) return "in " + dur(-s);
    return dur(s) + " ago";
  }
  function dur(s) {
    if (s < 90) return s + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 129600) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }
  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    Object.assign(e, props || {});
    for (const k of kids) e.append(k);
    return e;
  }

  // ---- views ----
  async function loadViews() {
    const r = await api("/v1/views");
    st.views = r.views;
    const ul = $("views");
    ul.replaceChildren();
    for (const v of st.views) {
      const a = el("a", { href: "#view=" + encodeURIComponent(v.name) }, v.name,
        el("span", { className: "sub" }, v.granularity + " · " + (v.dimensions.join(", ") || "no dimensions")));
      a.dataset.view = v.name;
      ul.append(el("li", null, a));
    }
    $("empty").textContent = st.views.length ? "" : "No views are configured.";
    route();
  }
  function route() {
    const m = /view=([^&]+)/.exec(location.hash);
    const name = m ? decodeURIComponent(m[1]) : (st.views[0] && st.views[0].name);
    const v = st.views.find((x) => x.name === name) || st.views[0];
    if (v) selectView(v);
  }
  function selectView(v) {
    if (st.view && st.view.name === v.name) return;
    st.view = v;
    st.groupBy = [];
    st.filters = [];
    st.gran = "auto";
    const count = v.metrics.find((m) => m.type === "count");
    st.metric = (count || v.metrics[0] || {}).name;
    for (const a of document.querySelectorAll("#views a"))
      a.classList.toggle("active", a.dataset.view === v.name);
    $("empty").hidden = true;
    $("view").hidden = false;
    $("view-name").textContent = v.name;
    $("view-info").textContent = "stream " + v.stream + ", stored per " + v.granularity;
    $("metric").replaceChildren(...v.metrics.map((m) =>
      el("option", { value: m.name, selected: m.name === st.metric }, m.name + " (" + m.type + ")")));
    $("gran").replaceChildren(el("option", { value: "auto" }, "auto"),
      ...grans(v).map((g) => el("option", { value: g }, g)), el("option", { value: "all" }, "all"));
    $("group-by").replaceChildren(...v.dimensions.map((d) => {
      const cb = el("input", { type: "checkbox", value: d });
      cb.addEventListener("change", () => {
        st.groupBy = [...document.querySelectorAll("#group-by input:checked")].map((x) => x.value);
        refresh();
      });
      return el("label", null, cb, " " + d);
    }));
    if (!v.dimensions.length) $("group-by").append(el("span", { className: "muted" }, "(no dimensions)"));
    $("filter-dim").replaceChildren(...v.dimensions.map((d) => el("option", { value: d }, d)));
    for (const id of ["filter-dim", "filter-val", "filter-add"]) $(id).disabled = !v.dimensions.length;
    renderFilters();
    loadValues();
    refresh();
  }

  function grans(v) {
    const own = UNIT_SECS[v.granularity];   // undefined: a month view
    return GRANS.filter(([name, secs]) => name === v.granularity ||
      (own && (secs === null ? own <= 86400 : secs > own && secs % own === 0))).map((g) => g[0]);
  }

  // ---- the query ----
  // [from, to) in epoch milliseconds, as the query takes them.
  function timeRange() {
    if (st.range === "custom" && st.custom) return st.custom;
    const to = Date.now() + 1;
    return { from: to - st.range * 1000, to };
  }
  // The chart's granularity parameters: the picked one, or auto with
  // about one bucket per PX_PER_POINT pixels of the chart.
  function granularity() {
    if (st.gran !== "auto") return { granularity: st.gran };
    const px = $("chart").clientWidth || 900;
    return { granularity: "auto", max_points: Math.max(1, Math.min(MAX_POINTS, Math.floor(px / PX_PER_POINT))) };
  }
  // The browser's zone, so that days, weeks and months start at its
  // midnights on the chart's (local) axis; only when every such midnight
  // falls on a bucket boundary of the view (the query refuses otherwise):
  // views of seconds or minutes, and hour views in a zone of whole hours.
  function zone(gran) {
    if (gran !== "auto" && !ZONED.has(gran)) return undefined;
    const g = st.view.granularity;
    const wholeHours = new Date().getTimezoneOffset() % 60 === 0;
    if (!(g === "second" || g === "minute" || (g === "hour" && wholeHours))) return undefined;
    return Intl.DateTimeFormat().resolvedOptions().timeZone;
  }
  function queryPath(params) {
    const q = Object.entries(params).filter(([, v]) => v !== "" && v !== undefined)
      .map(([k, v]) => k + "=" + encodeURIComponent(v)).join("&");
    return "/v1/views/" + encodeURIComponent(st.view.name) + "/query?" + q;
  }
  function filterParam() {
    return st.filters.map((f) => f.dim + ":" + f.val).join(",");
  }

  async function refresh() {
    if (!st.view || !window.Dygraph) return;
    const seq = ++st.seq;
    const { from, to } = timeRange();
    const gran = granularity();
    const dims = { group_by: st.groupBy.join(","), filter: filterParam() };
    // fill=null: every bucket is a point, an empty one null (a gap)
    const chart = { from, to, ...gran, fill: "null", tz: zone(gran.granularity), ...dims, metrics: st.metric };
    let chartPath = queryPath(chart);
    const tablePath = queryPath({ from, to, ...dims, granularity: "all", order_by: tableOrder(), limit: 200 });
    // Filled, many groups may pass http.limits.max_rows (413): then the
    // rows there are (a bucket no group has is bridged, not a gap).
    const series = () => api(chartPath).catch((e) => {
      if (e.status !== 413) throw e;
      chartPath = queryPath({ ...chart, fill: undefined });
      return api(chartPath);
    });
    try {
      const [answer, totals] = await Promise.all([series(), api(tablePath)]);
      if (seq !== st.seq) return;   // a newer question was asked meanwhile
      $("error").hidden = true;
      drawChart(answer, chartPath);
      drawTable(totals);
    } catch (e) {
      if (seq !== st.seq) return;
      probe.errors++;
      $("error").textContent = e.message;
      $("error").hidden = false;
    }
  }
  function tableOrder() {
    const m = st.view.metrics.find((x) => x.name === st.metric);
    return m && m.type !== "quantiles" ? st.metric : "";
  }

  // Rows of the answer as dygraph's native format: one column per group
  // (and per quantile of a quantiles metric), null where a bucket is empty.
  function seriesOf(answer) {
    const names = [], index = new Map(), byTime = new Map(), totals = [];
    const quantiles = (st.view.metrics.find((m) => m.name === st.metric) || {}).type === "quantiles";
    for (const row of answer.rows) {
      const g = st.groupBy.map((d) => d + "=" + row.dims[d]).join(", ") || st.metric;
      const v = row.metrics[st.metric];
      if (!byTime.has(row.ts)) byTime.set(row.ts, []);
      // an empty bucket of a quantiles metric is null, not one per quantile
      const parts = v !== null && typeof v === "object" ? Object.entries(v).map(([q, x]) => [g + " " + q, x])
        : v === null && quantiles ? [] : [[g, v]];
      for (const [name, x] of parts) {
        if (!index.has(name)) { index.set(name, names.length); names.push(name); totals.push(0); }
        const i = index.get(name);
        byTime.get(row.ts)[i] = x;
        totals[i] += typeof x === "number" ? x : 0;
      }
    }
    // the MAX_SERIES largest groups, in name order
    const keep = names.map((n, i) => i).sort((a, b) => totals[b] - totals[a]).slice(0, MAX_SERIES)
      .sort((a, b) => (names[a] < names[b] ? -1 : names[a] > names[b] ? 1 : 0));
    const data = [...byTime.keys()].sort((a, b) => a - b).map((ts) => {
      const vals = byTime.get(ts);
      return [new Date(ts * 1000), ...keep.map((i) => (vals[i] === undefined ? null : vals[i]))];
    });
    return { labels: ["time", ...keep.map((i) => names[i])], data, shown: keep.length, groups: names.length };
  }

  function drawChart(answer, path) {
    const s = seriesOf(answer);
    const dark = getComputedStyle(document.documentElement).colorScheme === "dark";
    const opts = {
      labels: s.labels, legend: "always", labelsDiv: $("legend"), labelsSeparateLines: true,
      drawPoints: s.data.length < 80, strokeWidth: 1.6,
      axisLineColor: dark ? "#3a404c" : "#c9ced8", gridLineColor: dark ? "#262b35" : "#eceef2",
      labelsKMB: true, includeZero: true, animatedZooms: false, colors: COLORS,
      ylabel: st.metric, axes: { y: { axisLabelWidth: 60 } },
    };
    const data = s.data.length ? s.data : [[new Date(), ...s.labels.slice(1).map(() => null)]];
    if (!st.chart) st.chart = new Dygraph($("chart"), data, opts);
    else st.chart.updateOptions({ file: data, ...opts });
    $("chart-note").textContent = (s.shown < s.groups ? "Showing the " + s.shown + " largest of " + s.groups +
      " series. " : "") + answer.rows.length + " rows per " + answer.granularity + "; batch R=" +
      answer.watermark.batch_seq + ", " + fmtNum(answer.watermark.live_events) + " live events.";
    probe.query = path;
    probe.labels = s.labels;
    probe.data = s.data.map((r) => [r[0].getTime() / 1000, ...r.slice(1)]);
    probe.chartWidth = $("chart").clientWidth;
    probe.renders++;
  }

  function drawTable(answer) {
    const v = st.view;
    const metrics = v.metrics.map((m) => m.name);
    const head = el("tr", null, ...st.groupBy.map((d) => el("th", null, d)),
      ...metrics.map((m) => el("th", { className: "num" }, m)));
    const rows = answer.rows.map((r) => el("tr", null,
      ...st.groupBy.map((d) => el("td", null, r.dims[d] === null ? "null" : r.dims[d])),
      ...metrics.map((m) => el("td", { className: "num", title: JSON.stringify(r.metrics[m]) }, fmtNum(r.metrics[m])))));
    $("table").replaceChildren(el("thead", null, head), el("tbody", null, ...rows));
    probe.table = answer;
  }

  // ---- filters, with values from the values endpoint ----
  async function loadValues() {
    const dim = $("filter-dim").value;
    if (!dim || !st.view) return;
    const { from, to } = timeRange();
    try {
      const r = await api("/v1/views/" + encodeURIComponent(st.view.name) + "/values/" +
        encodeURIComponent(dim) + "?limit=50&from=" + from + "&to=" + to);
      $("filter-values").replaceChildren(...r.values.filter((x) => x.value !== null).map((x) =>
        el("option", { value: x.value, label: x.value + (x.count === null ? "" : " (" + fmtNum(x.count) + ")") })));
      probe.values = r;
    } catch (e) {
      $("filter-values").replaceChildren();
    }
  }
  function renderFilters() {
    $("filters").replaceChildren(...st.filters.map((f, i) => {
      const x = el("button", { type: "button", title: "remove" }, "✕");
      x.addEventListener("click", () => { st.filters.splice(i, 1); renderFilters(); refresh(); });
      return el("span", { className: "chip" }, f.dim + " = " + f.val, x);
    }));
  }
  function addFilter() {
    const dim = $("filter-dim").value, val = $("filter-val").value;
    if (!dim || val === "") return;
    if (val.includes(",")) {
      $("error").textContent = "A filter value cannot hold a comma.";
      $("error").hidden = false;
      return;
    }
    st.filters.push({ dim, val });
    $("filter-val").value = "";
    renderFilters();
    refresh();
  }

  // ---- status strip ----
  async function loadStatus() {
    let s;
    try { s = await api("/v1/status"); } catch (e) {
      $("status").replaceChildren(el("span", { className: "bad" }, "status: " + e.message));
      return;
    }
    const sp = s.speed || {}, b = s.batch || {}, a = s.archive || {};
    const item = (k, v, cls) => el("span", { className: "item " + (cls || "") }, el("span", { className: "k" }, k), el("b", null, v));
    const reasons = Object.entries(sp.rejects_by_reason || {}).filter(([, n]) => n > 0)
      .map(([r, n]) => r + " " + fmtNum(n)).join(", ");
    const rej = item("rejects", fmtNum(a.rejects || 0) + (reasons ? " (" + reasons + " since start)" : ""),
      a.rejects ? "warn" : "");
    if ((sp.latest_rejects || []).length) {
      const link = el("a", { title: "the latest rejects" }, " details");
      link.addEventListener("click", () => showRejects(sp.latest_rejects));
      rej.append(link);
    }
    $("status").replaceChildren(
      item("consumer lag", fmtNum(sp.lag || 0), sp.lag > 10000 ? "warn" : "ok"),
      item("newest event", ago(sp.newest_event_at)),
      item("last message", sp.since_message_ms === undefined ? "–" : dur(Math.round(sp.since_message_ms / 1000)) + " ago"),
      item("batch R", String(b.R === undefined ? "–" : b.R) + ", " + (b.running ? "running" : "ran " + ago(b.last_run_at)),
        b.last_error ? "bad" : ""),
      item("next batch", b.next_run_at ? ago(b.next_run_at) : "–"),
      item("live events", fmtNum((sp.live_events || 0) + (sp.pending_events || 0))),
      item("archive", fmtNum(a.events || 0) + " events"),
      rej);
  }
  function showRejects(list) {
    $("rejects-body").replaceChildren(...list.flatMap((r) => [
      el("div", null, el("b", null, r.reason), " " + r.topic + "[" + r.partition + "] @" + r.offset +
        (r.detail ? " — " + r.detail : "")),
      el("pre", null, r.payload)]));
    $("rejects").hidden = false;
  }

  // ---- live refresh: every few seconds while the tab is visible ----
  function tick() {
    if (document.hidden) return;
    loadStatus();
    if ($("live").checked && st.range !== "custom") refresh();
  }
  function startTimer() {
    if (!st.timer) st.timer = setInterval(tick, REFRESH_MS);
    probe.refreshing = true;
  }
  function stopTimer() {
    clearInterval(st.timer);
    st.timer = null;
    probe.refreshing = false;
  }
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) stopTimer();
    else { tick(); startTimer(); }
  });

  // ---- controls ----
  function setRange(r) {
    st.range = r === "custom" ? "custom" : Number(r);
    for (const b of document.querySelectorAll("#ranges button"))
      b.classList.toggle("on", b.dataset.range === String(r));
    $("custom").hidden = r !== "custom";
    if (r === "custom") {
      const { from, to } = st.custom || timeRange();
      const local = (ms) => new Date(ms - new Date(ms).getTimezoneOffset() * 60000).toISOString().slice(0, 19);
      $("custom-from").value = local(from);
      $("custom-to").value = local(to);
      return;
    }
    refresh();
  }
  function setTheme(t) {
    if (t) document.documentElement.dataset.theme = t;
    else delete document.documentElement.dataset.theme;
    if (st.chart) refresh();
  }
  function init() {
    setTheme(localStorage.getItem("lambdad.theme"));
    $("theme").addEventListener("click", () => {
      const dark = getComputedStyle(document.documentElement).colorScheme === "dark";
      const t = dark ? "light" : "dark";
      localStorage.setItem("lambdad.theme", t);
      setTheme(t);
    });
    for (const b of document.querySelectorAll("#ranges button"))
      b.addEventListener("click", () => setRange(b.dataset.range));
    $("custom-apply").addEventListener("click", () => {
      const from = new Date($("custom-from").value).getTime();
      const to = new Date($("custom-to").value).getTime();
      if (!(from < to)) {
        $("error").textContent = "The custom range needs a start before its end.";
        $("error").hidden = false;
        return;
      }
      st.custom = { from, to };
      refresh();
    });
    $("metric").addEventListener("change", () => { st.metric = $("metric").value; refresh(); });
    $("gran").addEventListener("change", () => { st.gran = $("gran").value; refresh(); });
    $("filter-dim").addEventListener("change", loadValues);
    $("filter-val").addEventListener("focus", loadValues);
    $("filter-add").addEventListener("click", addFilter);
    $("filter-val").addEventListener("keydown", (e) => { if (e.key === "Enter") addFilter(); });
    $("rejects-close").addEventListener("click", () => { $("rejects").hidden = true; });
    window.addEventListener("hashchange", route);
    for (const b of document.querySelectorAll("#ranges button"))
      b.classList.toggle("on", b.dataset.range === String(st.range));
    loadViews().catch((e) => { $("empty").textContent = "Cannot list the views: " + e.message; });
    loadStatus();
    startTimer();
  }
  init();
})();
