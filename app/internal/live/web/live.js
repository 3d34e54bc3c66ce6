// The live page: one EventSource gives a snapshot and then every change; the tables are
// redrawn from that state at most once a frame. Text goes in with textContent only.
"use strict";
(() => {
  const maxJobs = 200, maxRecords = 100, maxSend = 100, sendConcurrency = 5;
  const state = { queue: { known: false }, jobsStatus: { state: "starting" }, jobs: new Map(), records: new Map() };
  const $ = (id) => document.getElementById(id);

  const es = new EventSource("events");
  es.onopen = () => setConn(true);
  es.onerror = () => setConn(false); // EventSource reconnects by itself and gets a new snapshot
  es.addEventListener("snapshot", (e) => {
    const s = JSON.parse(e.data);
    state.queue = s.queue; state.jobsStatus = s.jobsStatus;
    state.jobs = new Map(s.jobs.map((j) => [j.name, j]));
    state.records = new Map(s.records.map((r) => [r.id, r]));
    redraw();
  });
  es.addEventListener("queue", (e) => { state.queue = JSON.parse(e.data); redraw(); });
  es.addEventListener("jobs-status", (e) => { state.jobsStatus = JSON.parse(e.data); redraw(); });
  es.addEventListener("job", (e) => { const j = JSON.parse(e.data); state.jobs.set(j.name, j); trim(state.jobs, maxJobs, "created"); redraw(); });
  es.addEventListener("record", (e) => { const r = JSON.parse(e.data); state.records.set(r.id, r); trim(state.records, maxRecords, "createdAt"); redraw(); });

  function setConn(on) {
    const c = $("conn");
    c.textContent = on ? "live" : "reconnecting…";
    c.className = "conn " + (on ? "on" : "off");
  }

  function trim(map, max, key) {
    if (map.size <= max) return;
    const sorted = [...map.values()].sort((a, b) => Date.parse(a[key]) - Date.parse(b[key]));
    for (const v of sorted.slice(0, map.size - max)) map.delete(v.id || v.name);
  }

  let pending = false;
  function redraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  }

  function render() {
    const q = state.queue;
    $("q-work").textContent = q.known ? q.work : "?";
    $("q-dead").textContent = q.known ? q.deadLetter : "?";
    $("q-dead").classList.toggle("alert", q.known && q.deadLetter > 0);
    const jobs = [...state.jobs.values()].sort((a, b) => Date.parse(b.created) - Date.parse(a.created));
    const active = jobs.filter((j) => !j.deleted && (j.state === "running" || j.state === "pending"));
    $("j-active").textContent = state.jobsStatus.state === "watching"
      ? active.filter((j) => j.state === "running").length + " / " + active.filter((j) => j.state === "pending").length : "–";
    $("r-count").textContent = state.records.size;

    const st = $("jobs-status"), js = state.jobsStatus;
    st.textContent = js.state === "watching" ? "" : js.state + (js.detail ? ": " + js.detail : "");
    st.classList.toggle("problem", js.state === "forbidden" || js.state === "unavailable");
    st.dataset.state = js.state;

    const byJob = new Map();
    for (const r of state.records.values()) if (r.job) byJob.set(r.job, r);
    fill($("jobs"), jobs, 4, "no Jobs yet", (j) => {
      const r = byJob.get(j.name);
      const tr = row([j.name, j.state + (j.reason ? " (" + j.reason + ")" : "") + (j.deleted ? ", deleted" : ""), age(j.created),
        r ? r.name + ": " + r.content : "–"]);
      tr.dataset.job = j.name;
      tr.dataset.state = j.state;
      tr.cells[0].className = "mono";
      tr.cells[1].className = "state-" + j.state;
      if (j.deleted) tr.className = "deleted";
      return tr;
    });

    const records = [...state.records.values()].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
    fill($("records"), records, 5, "no records yet", (r) => {
      const done = r.workDoneAt ? "done in " + secs(Date.parse(r.workDoneAt) - Date.parse(r.storedAt)) : "running";
      const tr = row([r.name, r.content, r.job || "–", secs(Date.parse(r.storedAt) - Date.parse(r.createdAt)), done]);
      tr.dataset.record = r.id;
      tr.dataset.job = r.job || "";
      tr.dataset.work = r.workDoneAt ? "done" : "running";
      tr.cells[1].className = "content";
      tr.cells[2].className = "mono";
      return tr;
    });
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
    return tr;
  }

  function fill(table, items, cols, empty, make) {
    const body = document.createElement("tbody");
    if (items.length === 0) {
      const tr = row([empty]); tr.className = "empty"; tr.cells[0].colSpan = cols; body.appendChild(tr);
    }
    for (const it of items) body.appendChild(make(it));
    table.replaceChild(body, table.tBodies[0]);
  }

  function secs(ms) { return ms < 1000 ? Math.max(0, Math.round(ms)) + " ms" : (ms / 1000).toFixed(1) + " s"; }
  function age(t) {
    const s = Math.max(0, Math.floor((Date.now() - Date.parse(t)) / 1000));
    return s < 60 ? s + "s" : s < 3600 ? Math.floor(s / 60) + "m" + (s % 60) + "s" : Math.floor(s / 3600) + "h";
  }
  setInterval(redraw, 1000); // ages move on

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
})();
