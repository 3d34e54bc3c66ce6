// The live page: one EventSource gives a snapshot and then every change. Events only change the
// state; the page is drawn from it at most once a frame, and drawing touches only what changed:
// table rows are kept by key, a row's cells are rewritten only when their text changed, and each
// table shows its newest `shown` rows with a count of the rest. Once a second the state is
// sampled into the chart's series (uPlot, vendored: /vendor/uplot.js). Text goes in with
// textContent only; nothing inline, so the page's policy (default-src 'self') holds.
"use strict";
(() => {
  const maxJobs = 200, maxRecords = 100, shown = 50, maxSend = 100, sendConcurrency = 5, maxSeen = 100000;
  const state = { connected: false, queue: { known: false }, jobsStatus: { state: "starting" }, jobs: new Map(), records: new Map() };
  // What this page has seen since it opened, by key (bounded; the counts go on past the bound):
  // the tables count the rows they do not show, and the chart counts records as they arrive.
  const seen = { jobs: new Set(), records: new Set(), jobCount: 0, recordCount: 0 };
  let arrived = 0; // records first seen since the last sample
  const $ = (id) => document.getElementById(id);

  const es = new EventSource("events");
  es.onopen = () => setConn(true);
  es.onerror = () => setConn(false); // EventSource reconnects by itself and gets a new snapshot
  es.addEventListener("snapshot", (e) => {
    const s = JSON.parse(e.data);
    if (s.chart && s.chart.windowSeconds > 0) chart.window = s.chart.windowSeconds;
    state.queue = s.queue; state.jobsStatus = s.jobsStatus;
    state.jobs = new Map(); for (const j of s.jobs) putJob(j);
    state.records = new Map(); for (const r of s.records) putRecord(r, false); // stored before: not counted as arriving
    redraw();
  });
  es.addEventListener("queue", (e) => { state.queue = JSON.parse(e.data); redraw(); });
  es.addEventListener("jobs-status", (e) => { state.jobsStatus = JSON.parse(e.data); redraw(); });
  es.addEventListener("job", (e) => { putJob(JSON.parse(e.data)); redraw(); });
  es.addEventListener("record", (e) => { putRecord(JSON.parse(e.data), true); redraw(); });

  function setConn(on) {
    state.connected = on;
    const c = $("conn");
    c.textContent = on ? "live" : "reconnecting…";
    c.className = "conn " + (on ? "on" : "off");
  }

  // see adds key to set and says whether it is new.
  function see(set, key) {
    if (set.has(key)) return false;
    set.add(key);
    if (set.size > maxSeen) set.delete(set.values().next().value);
    return true;
  }
  function putJob(j) {
    j.t = Date.parse(j.created);
    state.jobs.set(j.name, j);
    if (see(seen.jobs, j.name)) seen.jobCount++;
    // The hub's order: deleted Jobs leave before live ones, the oldest first.
    trim(state.jobs, maxJobs, (a, b) => (b.deleted ? 1 : 0) - (a.deleted ? 1 : 0) || a.t - b.t, "name");
  }
  function putRecord(r, live) {
    r.t = Date.parse(r.createdAt);
    state.records.set(r.id, r);
    if (see(seen.records, r.id)) { seen.recordCount++; if (live) arrived++; }
    trim(state.records, maxRecords, (a, b) => a.t - b.t, "id");
  }
  function trim(map, max, leavesFirst, key) {
    if (map.size <= max) return;
    for (const v of [...map.values()].sort(leavesFirst).slice(0, map.size - max)) map.delete(v[key]);
  }

  let pending = false;
  function redraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  }

  const jobsTable = keyedTable($("jobs"), $("jobs-more"), 4, "no Jobs yet", (j) => j.name, (tr, j) => {
    tr.dataset.job = j.name;
    tr.dataset.state = j.state;
    tr.cells[0].className = "mono";
    tr.cells[1].className = "state-" + j.state;
    tr.className = j.deleted ? "deleted" : "";
  });
  const recordsTable = keyedTable($("records"), $("records-more"), 5, "no records yet", (r) => r.id, (tr, r) => {
    tr.dataset.record = r.id;
    tr.dataset.job = r.job || "";
    tr.dataset.work = r.workDoneAt ? "done" : "running";
    tr.cells[1].className = "content";
    tr.cells[2].className = "mono";
  });

  function render() {
    const q = state.queue;
    $("q-work").textContent = q.known ? q.work : "?";
    $("q-dead").textContent = q.known ? q.deadLetter : "?";
    $("q-dead").classList.toggle("alert", q.known && q.deadLetter > 0);
    const active = activeJobs();
    $("j-active").textContent = state.jobsStatus.state === "watching" ? active.running + " / " + active.pending : "–";
    $("r-count").textContent = seen.recordCount;

    const st = $("jobs-status"), js = state.jobsStatus;
    st.textContent = js.state === "watching" ? "" : js.state + (js.detail ? ": " + js.detail : "");
    st.classList.toggle("problem", js.state === "forbidden" || js.state === "unavailable");
    st.dataset.state = js.state;

    const byJob = new Map();
    for (const r of state.records.values()) if (r.job) byJob.set(r.job, r);
    const jobs = newest(state.jobs);
    jobsTable(jobs, seen.jobCount, (j) => {
      const r = byJob.get(j.name);
      return [j.name, j.state + (j.reason ? " (" + j.reason + ")" : "") + (j.deleted ? ", deleted" : ""), age(j.t),
        r ? r.name + ": " + r.content : "–"];
    });
    recordsTable(newest(state.records), seen.recordCount, (r) => [r.name, r.content, r.job || "–",
      secs(Date.parse(r.storedAt) - r.t), r.workDoneAt ? "done in " + secs(Date.parse(r.workDoneAt) - Date.parse(r.storedAt)) : "running"]);
  }

  // newest returns the `shown` newest values of a map of Jobs or records.
  function newest(map) { return [...map.values()].sort((a, b) => b.t - a.t).slice(0, shown); }

  function activeJobs() {
    let running = 0, pending = 0;
    for (const j of state.jobs.values()) {
      if (j.deleted) continue;
      if (j.state === "running") running++;
      else if (j.state === "pending") pending++; // created, no pod running yet (jobwatch)
    }
    return { running, pending };
  }

  // keyedTable draws a table's rows: one <tr> per key, kept from frame to frame. A row's cells
  // are rewritten (and decorate called) only when their text changed, rows move only when the
  // order changed, and the line below the table counts the rows not shown.
  function keyedTable(table, more, cols, emptyText, keyOf, decorate) {
    const body = table.tBodies[0], rows = new Map();
    const empty = row([emptyText]);
    empty.className = "empty"; empty.cells[0].colSpan = cols;
    return (items, total, cellsOf) => {
      if (items.length === 0) body.appendChild(empty); else empty.remove();
      const keep = new Set();
      items.forEach((it, i) => {
        const key = keyOf(it), text = cellsOf(it);
        let r = rows.get(key);
        if (!r) { r = { tr: row(text.map(() => "")), text: [] }; rows.set(key, r); }
        let changed = false;
        text.forEach((t, c) => { if (r.text[c] !== t) { r.tr.cells[c].textContent = t; changed = true; } });
        if (changed) { r.text = text; decorate(r.tr, it); }
        keep.add(key);
        const at = body.children[i];
        if (at !== r.tr) body.insertBefore(r.tr, at || null);
      });
      for (const [key, r] of rows) if (!keep.has(key)) { r.tr.remove(); rows.delete(key); }
      const rest = Math.max(0, total - items.length);
      more.hidden = rest === 0;
      more.textContent = rest ? "and " + rest + " more (the newest " + items.length + " are shown)" : "";
      more.dataset.more = rest;
    };
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
    return tr;
  }

  function secs(ms) { return ms < 1000 ? Math.max(0, Math.round(ms)) + " ms" : (ms / 1000).toFixed(1) + " s"; }
  function age(t) {
    const s = Math.max(0, Math.floor((Date.now() - t) / 1000));
    return s < 60 ? s + "s" : s < 3600 ? Math.floor(s / 60) + "m" + (s % 60) + "s" : Math.floor(s / 3600) + "h";
  }

  // The chart: a sample a second over the window (LIVE_CHART_WINDOW, from the snapshot). Unknown
  // values are null (a gap): the queue while the broker does not answer, the Jobs while they are
  // not watched, everything while the stream is down.
  const chart = { window: 300, t: [], queue: [], running: [], pending: [], recordsPerSec: [], plot: null };
  const names = ["queue", "running", "pending", "recordsPerSec"];
  function sample() {
    const t = Date.now() / 1000, last = chart.t[chart.t.length - 1];
    const live = state.connected, watching = live && state.jobsStatus.state === "watching", a = activeJobs();
    chart.t.push(t);
    chart.queue.push(live && state.queue.known ? state.queue.work : null);
    chart.running.push(watching ? a.running : null);
    chart.pending.push(watching ? a.pending : null);
    // A timer in a background tab may fire late: a rate over the seconds that passed.
    chart.recordsPerSec.push(live ? Math.round(arrived / Math.max(1, Math.round(t - (last || t - 1)))) : null);
    arrived = 0;
    let old = 0;
    while (old < chart.t.length && chart.t[old] < t - chart.window) old++;
    if (old) for (const k of ["t", ...names]) chart[k].splice(0, old);
    drawChart();
  }

  function drawChart() {
    const m = Math.round(chart.window / 60);
    $("chart-window").textContent = "the last " + (chart.window % 60 === 0 ? m + " min" : chart.window + " s") + ", a sample a second";
    if (typeof uPlot !== "function") { $("chart-missing").hidden = false; return; }
    const el = $("chart");
    if (!chart.plot) {
      const count = (u, lo, hi) => [0, Math.max(4, Math.ceil((hi || 0) * 1.1))];
      const incrs = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];
      chart.plot = new uPlot({
        width: Math.max(300, el.clientWidth), height: 260,
        legend: { live: false }, // the names only: values under the cursor jump about while samples come in
        scales: {
          x: { time: true, range: (u, lo, hi) => { const end = chart.t[chart.t.length - 1] || Date.now() / 1000; return [end - chart.window, end]; } },
          msgs: { range: count }, n: { range: count },
        },
        axes: [
          {},
          { scale: "msgs", label: "messages ready", incrs, size: 50 },
          { scale: "n", side: 1, label: "Jobs · records/s", incrs, size: 50, grid: { show: false } },
        ],
        series: [
          {},
          { label: "work queue", scale: "msgs", stroke: "#7c3aed", fill: "rgba(124, 58, 237, 0.12)", width: 2, points: { show: false } },
          { label: "Jobs running", scale: "n", stroke: "#1d4ed8", width: 2, points: { show: false } },
          { label: "Jobs pending", scale: "n", stroke: "#b45309", width: 2, dash: [6, 4], points: { show: false } },
          { label: "records/s", scale: "n", stroke: "#15803d", width: 2, points: { show: false } },
        ],
      }, [chart.t, ...names.map((k) => chart[k])], el);
      new ResizeObserver(() => chart.plot.setSize({ width: Math.max(300, el.clientWidth), height: 260 })).observe(el);
      return;
    }
    if (!document.hidden) chart.plot.setData([chart.t, ...names.map((k) => chart[k])]);
  }
  document.addEventListener("visibilitychange", () => { if (!document.hidden) drawChart(); });
  setInterval(() => { sample(); redraw(); }, 1000); // and ages move on

  // The series as drawn, for tests and for a look from the browser's console.
  window.kedaDemoLive = Object.freeze({
    series: () => ({ windowSeconds: chart.window, t: chart.t.slice(), ...Object.fromEntries(names.map((k) => [k, chart[k].slice()])) }),
  });

  $("send").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target, out = $("send-result"), button = f.querySelector("button");
    const name = f.elements.namedItem("name").value, content = f.elements.namedItem("content").value;
    const n = Math.min(maxSend, Math.max(1, parseInt(f.elements.namedItem("count").value, 10) || 1));
    let next = 0, ok = 0, failed = 0, lastError = "";
    button.disabled = true;
    const show = () => { out.textContent = "queued " + ok + "/" + n + (failed ? ", failed " + failed + " (" + lastError + ")" : ""); };
    const stamp = Date.now().toString(36);
    async function worker() {
      while (next < n) {
        const i = ++next;
        try {
          const res = await fetch("send", {
            method: "POST", headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ name: n === 1 ? name : name + "-" + stamp + "-" + i, content: content }),
            signal: AbortSignal.timeout(15000),
          });
          if (res.ok) ok++;
          else { failed++; const b = await res.json().catch(() => ({})); lastError = b.reason || b.error || String(res.status); }
        } catch (err) { failed++; lastError = err.name; }
        show();
      }
    }
    show();
    await Promise.all(Array.from({ length: Math.min(sendConcurrency, n) }, worker));
    out.dataset.done = "true";
    out.dataset.ok = ok;
    button.disabled = false;
  });
  render();
  drawChart();
})();
