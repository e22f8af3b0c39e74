// The beamlet dashboard: one page, hash routes, JSON from /api/*, live feed from /api/events.
"use strict";

const HISTORY = 60;
const state = { history: [], last: null, sort: "mailbox", search: "", offset: 0, limit: 50,
                restarts: null, view: null };

const $ = (sel, el = document) => el.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const size = (n) => {
  if (n == null) return "-";
  const u = ["B", "KB", "MB", "GB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return i ? n.toFixed(1) + " " + u[i] : n + " B";
};
const pidLink = (p) => p && p.startsWith("<0.")
  ? `<a class="mono" href="#/process/${encodeURIComponent(p)}">${esc(p)}</a>` : `<span class="mono">${esc(p)}</span>`;

async function get(path, params = {}) {
  const q = new URLSearchParams(params).toString();
  const r = await fetch(`/api/${path}${q ? "?" + q : ""}`);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function spark(values) {
  if (values.length < 2) return `<svg viewBox="0 0 100 40"></svg>`;
  const max = Math.max(...values, 1e-9), min = Math.min(...values, 0);
  const pts = values.map((v, i) => `${(i / (HISTORY - 1)) * 100},${38 - ((v - min) / (max - min || 1)) * 36}`);
  return `<svg viewBox="0 0 100 40" preserveAspectRatio="none"><polyline points="${pts.join(" ")}"/></svg>`;
}

// --- overview --------------------------------------------------------------------------------

function rates(key) {
  const h = state.history, out = [];
  for (let i = 1; i < h.length; i++) {
    const dt = h[i].time - h[i - 1].time;
    out.push(dt > 0 ? Math.max(0, (h[i][key] - h[i - 1][key]) / dt) : 0);
  }
  return out;
}

function renderOverview() {
  const o = state.last;
  if (!o) { $("#view").innerHTML = "<p>waiting for the first sample…</p>"; return; }
  const h = state.history;
  const lag = o.loop_lag == null ? "-" : (o.loop_lag * 1000).toFixed(1) + " ms";
  const rin = rates("dist_bytes_in"), rout = rates("dist_bytes_out");
  const cards = [
    ["processes", o.process_count, h.map((x) => x.process_count), "ov-processes"],
    ["run queue", o.run_queue, h.map((x) => x.run_queue), "ov-runq"],
    ["loop lag", lag, h.map((x) => (x.loop_lag || 0) * 1000), "ov-lag"],
    ["memory (RSS)", size(o.rss), h.map((x) => x.rss || 0), "ov-rss"],
    ["dist bytes in", size(o.dist_bytes_in) + (rin.length ? ` (${size(Math.round(rin.at(-1)))}/s)` : ""), rin, "ov-dist-in"],
    ["dist bytes out", size(o.dist_bytes_out) + (rout.length ? ` (${size(Math.round(rout.at(-1)))}/s)` : ""), rout, "ov-dist-out"],
    ["restarts", o.restarts ?? 0, h.map((x) => x.restarts || 0), "ov-restarts"],
    ["crashes", o.crashes ?? 0, h.map((x) => x.crashes || 0), "ov-crashes"],
  ];
  $("#view").innerHTML = `<h2>Node ${esc(o.name)}</h2>
    <div class="cards">${cards.map(([k, v, s, id]) =>
      `<div class="card"><div class="k">${k}</div><div class="v" id="${id}">${esc(v)}</div>${spark(s)}</div>`).join("")}
    </div>
    <p class="mono">Python ${esc(o.python)} · up ${Math.round(o.uptime)} s · ${o.registered} registered names ·
      ~${size(o.per_process)} per process · ${o.connections.length} distribution connections</p>`;
}

// what a process waits for, then (always shown) how many queued messages it will not take
function shortWait(w) {
  const i = w.indexOf("; ");
  const head = i < 0 ? w : w.slice(0, i), tail = i < 0 ? "" : w.slice(i);
  return (head.length > 60 ? head.slice(0, 57) + "…" : head) + tail.slice(0, 90);
}

// --- processes ---------------------------------------------------------------------------

async function renderProcesses() {
  const view = $("#view");
  if (!$("#proc-table", view)) {
    view.innerHTML = `<h2>Processes</h2>
      <div class="toolbar">
        <input id="search" placeholder="search pid, name or function" value="${esc(state.search)}">
        <button class="act" id="prev">◀ prev</button><button class="act" id="next">next ▶</button>
        <span id="proc-count" class="mono"></span>
      </div>
      <table id="proc-table"><thead><tr>
        <th>PID</th><th>NAME</th><th>STATUS</th>
        <th><button data-sort="mailbox">MSGQ</button></th>
        <th><button data-sort="work">WORK</button></th>
        <th><button data-sort="memory">MEMORY</button></th>
        <th>WAITING FOR</th><th>AT</th></tr></thead><tbody></tbody></table>
      <p id="proc-error" class="error"></p>`;
    view.querySelectorAll("th button").forEach((b) => b.onclick = () => {
      state.sort = b.dataset.sort; state.offset = 0; renderProcesses();
    });
    $("#search").onchange = (e) => { state.search = e.target.value.trim(); state.offset = 0; renderProcesses(); };
    $("#prev").onclick = () => { state.offset = Math.max(0, state.offset - state.limit); renderProcesses(); };
    $("#next").onclick = () => { state.offset += state.limit; renderProcesses(); };
  }
  view.querySelectorAll("th button").forEach((b) => b.classList.toggle("sorted", b.dataset.sort === state.sort));
  let d;
  try {
    d = await get("processes", { sort: state.sort, search: state.search, offset: state.offset, limit: state.limit });
    $("#proc-error").textContent = "";
  } catch (e) { $("#proc-error").textContent = e.message; return; }
  $("#proc-count").textContent = `${d.total} processes · rows ${d.offset + 1}-${d.offset + d.rows.length} by ${d.sort}`;
  $("#next").disabled = !d.more; $("#prev").disabled = d.offset === 0;
  $("#proc-table tbody").innerHTML = d.rows.map((r) => `
    <tr class="row" data-pid="${esc(r.pid)}">
      <td class="mono">${esc(r.pid)}</td><td>${esc(r.label.slice(-48))}</td><td>${esc(r.status)}</td>
      <td class="num msgq">${r.message_queue_len}</td><td class="num">${r.work}</td><td class="num">${size(r.memory)}</td>
      <td class="waiting" title="${esc(r.waiting)}">${esc(shortWait(r.waiting))}</td><td class="mono">${esc(r.current.split("/").pop().slice(0, 48))}</td>
    </tr>`).join("");
  view.querySelectorAll("tr.row").forEach((tr) => tr.onclick = () => {
    location.hash = "#/process/" + encodeURIComponent(tr.dataset.pid);
  });
}

// --- one process -----------------------------------------------------------------------------

function graph(p) {
  const peers = new Map();
  const add = (pid, rel) => { const s = String(pid); peers.set(s, [...(peers.get(s) || []), rel]); };
  (p.links || []).forEach((x) => add(x, "link"));
  (p.monitors || []).forEach((x) => add(x, "monitors"));
  (p.monitored_by || []).forEach((x) => add(x, "monitored by"));
  const n = peers.size, cx = 300, cy = 160, r = 120;
  let body = "", i = 0;
  for (const [pid, rels] of peers) {
    const a = (2 * Math.PI * i++) / Math.max(n, 1) - Math.PI / 2;
    const x = cx + r * Math.cos(a) * 1.6, y = cy + r * Math.sin(a);
    const dash = rels.includes("link") ? "" : 'stroke-dasharray="5,4"';
    body += `<line x1="${cx}" y1="${cy}" x2="${x}" y2="${y}" stroke="#8a7bb0" ${dash}/>
      <a href="#/process/${encodeURIComponent(pid)}"><circle cx="${x}" cy="${y}" r="6" fill="#6a3fb5"/>
      <text x="${x + 9}" y="${y + 4}">${esc(pid)} (${esc(rels.join(", "))})</text></a>`;
  }
  return `<svg class="graph" viewBox="0 0 600 320" id="proc-graph">${body}
    <circle cx="${cx}" cy="${cy}" r="9" fill="#251a3d"/><text x="${cx + 12}" y="${cy + 4}" font-weight="bold">${esc(p.pid)}</text>
    <text x="8" y="312" fill="#687385">solid: link · dashed: monitor</text></svg>`;
}

async function renderProcess(pid) {
  let p;
  try { p = await get("process", { pid }); } catch (e) {
    $("#view").innerHTML = `<h2>Process ${esc(pid)}</h2><p class="error" id="proc-error">${esc(e.message)}</p>`;
    return;
  }
  const kv = [
    ["label", p.label], ["registered name", p.registered_name], ["initial call", p.initial_call],
    ["status", p.status], ["waiting for", p.waiting_text], ["current", p.current],
    ["message queue", p.message_queue_len], ["memory", size(p.memory)], ["work", p.work],
    ["behaviour", p.behaviour && `${p.behaviour} (${p.module})`], ["restart budget", p.restarts_text],
    ["children", p.children], ["trap_exit", p.trap_exit], ["parent", p.parent],
    ["ancestors", (p.ancestors || []).join(" ")],
  ].filter(([, v]) => v != null && v !== "");
  $("#view").innerHTML = `<h2>Process <span class="mono" id="proc-pid">${esc(p.pid)}</span> ${esc(p.label)}</h2>
    <div class="detail"><div>
      <dl class="kv" id="proc-info">${kv.map(([k, v]) => `<dt>${k}</dt><dd>${k === "parent" ? pidLink(v) : esc(v)}</dd>`).join("")}</dl>
      <h3>State (via sys)</h3>
      <pre class="state" id="proc-state">${esc(p.sys_state ?? p.sys_state_error ?? p.state ?? "(not a behaviour)")}</pre>
      <button class="act danger" id="kill">Kill…</button>
      <div id="kill-confirm" class="confirm" hidden>Kill <b class="mono">${esc(p.pid)}</b> with reason <code>kill</code>?
        <button class="act danger" id="kill-yes">Yes, kill it</button> <button class="act" id="kill-no">Cancel</button></div>
      <p id="kill-result" class="mono"></p>
    </div><div>${graph(p)}</div></div>`;
  $("#kill").onclick = () => { $("#kill-confirm").hidden = false; };
  $("#kill-no").onclick = () => { $("#kill-confirm").hidden = true; };
  $("#kill-yes").onclick = async () => {
    const r = await fetch("/api/kill", { method: "POST", headers: { "Content-Type": "application/json" },
                                         body: JSON.stringify({ pid: p.pid }) });
    const body = await r.json();
    $("#kill-confirm").hidden = true;
    $("#kill-result").textContent = r.ok ? `killed ${body.killed}` : body.error;
  };
}

// --- supervision trees, tables, cluster --------------------------------------------------------

function treeItem(t) {
  const cls = t.status === "running" ? "ok" : "warn";
  return `<li><span class="mono">${t.pid ? pidLink(t.pid) : "-"}</span> <b>${esc(t.label)}</b>
    <span class="badge">${esc(t.type)}</span>${t.restart ? `<span class="badge">${esc(t.restart)}</span>` : ""}
    <span class="badge ${cls}">${esc(t.status)}</span>
    ${t.restarts_text ? `<span class="badge warn" data-budget>restarts ${esc(t.restarts_text)}</span>` : ""}
    ${t.children.length ? `<ul class="tree">${t.children.map(treeItem).join("")}</ul>` : ""}</li>`;
}

async function renderTree() {
  const d = await get("tree");
  state.restarts = d.restarts;
  $("#view").innerHTML = `<h2>Supervision trees</h2>
    <p>restarts since the dashboard started: <b id="restarts-total">${d.restarts ?? 0}</b></p>
    ${d.roots.length ? `<ul class="tree" id="tree">${d.roots.map(treeItem).join("")}</ul>` : "<p>no supervisors</p>"}`;
}

async function renderTables() {
  const d = await get("tables");
  $("#view").innerHTML = `<h2>ETS tables (${d.total})</h2>
    <table id="ets-table"><thead><tr><th>ID</th><th>NAME</th><th>TYPE</th><th>PROTECTION</th><th>OWNER</th><th>SIZE</th></tr></thead>
    <tbody>${d.rows.map((t) => `<tr><td class="mono">${esc(t.id)}</td><td>${esc(t.name)}</td><td>${esc(t.type)}</td>
      <td>${esc(t.protection)}</td><td>${pidLink(t.owner)}</td><td class="num">${t.size}</td></tr>`).join("")}</tbody></table>`;
}

async function renderCluster() {
  const d = await get("cluster");
  $("#view").innerHTML = `<h2>Cluster</h2>
    <table id="cluster-table"><thead><tr><th>NODE</th><th>KIND</th><th>RUNTIME</th><th>VISIBILITY</th><th>BYTES IN</th><th>BYTES OUT</th></tr></thead>
    <tbody>${d.nodes.map((n) => `<tr data-node="${esc(n.name)}"><td class="mono">${esc(n.name)}${n.self ? " (this node)" : ""}</td>
      <td><span class="badge ${n.kind === "beamlet" ? "py" : "erl"}">${n.kind === "beamlet" ? "Python" : "Erlang"}</span></td>
      <td>${esc(n.version)}</td><td>${n.hidden == null ? "-" : n.hidden ? "hidden" : "visible"}</td>
      <td class="num">${size(n.bytes_in)}</td><td class="num">${size(n.bytes_out)}</td></tr>`).join("")}</tbody></table>`;
}

// --- routing and the live feed ----------------------------------------------------------------

async function route() {
  const hash = location.hash || "#/";
  const [, view, arg] = hash.match(/^#\/([a-z]*)\/?(.*)$/) || [null, "", ""];
  state.view = view || "overview";
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === state.view));
  if (state.view !== "processes") $("#view").innerHTML = "";
  try {
    if (state.view === "overview") renderOverview();
    else if (state.view === "processes") await renderProcesses();
    else if (state.view === "process") await renderProcess(decodeURIComponent(arg));
    else if (state.view === "tree") await renderTree();
    else if (state.view === "tables") await renderTables();
    else if (state.view === "cluster") await renderCluster();
  } catch (e) { $("#view").innerHTML = `<p class="error">${esc(e.message)}</p>`; }
}

function live() {
  const es = new EventSource("/api/events");
  es.addEventListener("overview", (ev) => {
    const o = JSON.parse(ev.data);
    const restarted = state.last && state.last.restarts !== o.restarts;
    state.last = o; state.history.push(o);
    if (state.history.length > HISTORY) state.history.shift();
    $("#live").textContent = "live"; $("#live").classList.add("on");
    if (state.view === "overview") renderOverview();
    else if (state.view === "processes") renderProcesses();
    else if (state.view === "tree" && (restarted || state.restarts !== o.restarts)) renderTree();
    else if (state.view === "cluster") renderCluster();
  });
  es.addEventListener("failure", (ev) => { $("#live").textContent = JSON.parse(ev.data).error; $("#live").classList.remove("on"); });
  es.onerror = () => { $("#live").textContent = "reconnecting…"; $("#live").classList.remove("on"); };
}

window.addEventListener("hashchange", route);
route();
live();
