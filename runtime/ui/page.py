"""The dashboard page: plain HTML, CSS and JavaScript, shipped as strings (no build step, nothing fetched from
elsewhere: it works offline). The script never puts the app's text into HTML: logs, names and tracebacks are set
as text, so a work printing markup shows markup."""

from __future__ import annotations

HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lit run</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="app.css">
</head>
<body>
<header>
  <span class="brand">lit</span>
  <span id="app-name" class="app-name"></span>
  <span id="run-name" class="dim mono small"></span>
  <span class="spacer"></span>
  <span id="cluster" class="tag" title="cluster"></span>
  <span id="run-state" class="pill stage-pending">connecting</span>
  <span id="elapsed" class="mono small" title="elapsed"></span>
  <span id="conn" class="dim small"></span>
</header>
<div id="banner" class="banner" hidden></div>
<nav id="tabs" class="tabs" hidden><button type="button" class="tab active" data-tab="">Run</button></nav>
<div id="app-view" class="app-view" hidden></div>
<main id="run-view">
  <aside>
    <section>
      <h2>Components</h2>
      <div id="tree" class="tree"></div>
    </section>
    <section id="schedules-section" hidden>
      <h2>Schedules</h2>
      <ul id="schedules" class="schedules"></ul>
    </section>
  </aside>
  <div class="content">
    <section>
      <h2>Works</h2>
      <div class="table-wrap">
        <table id="works">
          <thead><tr>
            <th>work</th><th>status</th><th>compute</th><th>cluster</th><th>machine</th>
            <th class="num">calls</th><th class="num">wall time</th><th class="num">cost</th><th>detail</th>
          </tr></thead>
          <tbody></tbody>
        </table>
      </div>
    </section>
    <section id="failures-section" hidden>
      <h2>Failures</h2>
      <div id="failures"></div>
    </section>
    <section class="logs-section">
      <div class="logs-head">
        <h2>Logs</h2>
        <select id="log-work" title="which work's lines"><option value="">all works</option></select>
        <input id="log-filter" type="search" placeholder="filter lines" autocomplete="off" spellcheck="false">
        <label class="small"><input type="checkbox" id="follow" checked> follow</label>
        <span class="spacer"></span>
        <span id="log-count" class="dim small"></span>
      </div>
      <div id="logs" class="logs mono"></div>
    </section>
  </div>
</main>
<script src="app.js"></script>
</body>
</html>
"""

STYLE = """
:root {
  --bg: #f5f6f8; --panel: #ffffff; --ink: #1d2330; --dim: #6b7383; --line: #e2e5eb;
  --accent: #4b5bd6; --log-bg: #161a22; --log-ink: #d7dbe3;
  --grey: #8a91a0; --amber: #c98a04; --blue: #2f6fdb; --green: #1f9d55; --red: #d2372e; --brown: #9a6b17;
}
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; }
body { background: var(--bg); color: var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
  "Helvetica Neue", Arial, sans-serif; display: flex; flex-direction: column; }
.mono, pre, code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace; }
.small { font-size: 12px; }
.dim { color: var(--dim); }
.spacer { flex: 1; }
[hidden] { display: none !important; }

header { display: flex; align-items: center; gap: 12px; padding: 10px 18px; background: var(--panel);
  border-bottom: 1px solid var(--line); min-width: 0; }
.brand { font-weight: 800; letter-spacing: .5px; color: #fff; background: var(--accent); border-radius: 6px;
  padding: 1px 8px; }
.app-name { font-weight: 600; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 40vw; }
#elapsed, #conn { white-space: nowrap; }
#run-name { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; min-width: 0; }
.tag { border: 1px solid var(--line); border-radius: 999px; padding: 1px 9px; font-size: 12px; color: var(--dim);
  white-space: nowrap; }
.pill { display: inline-block; border-radius: 999px; padding: 1px 9px; font-size: 12px; font-weight: 600;
  color: #fff; white-space: nowrap; }
.banner { padding: 8px 18px; border-bottom: 1px solid var(--line); background: #eef7f1; color: #17603a;
  overflow-wrap: anywhere; }
.banner.failed { background: #fdeeed; color: #8c1d17; }

main { flex: 1; display: flex; min-height: 0; }
aside { width: 270px; flex: none; border-right: 1px solid var(--line); background: var(--panel); overflow: auto;
  padding: 6px 0; }
.content { flex: 1; min-width: 0; display: flex; flex-direction: column; overflow: auto; padding: 0 18px 14px; }
section { padding: 0 14px; }
.content section { padding: 0; }
h2 { font-size: 12px; text-transform: uppercase; letter-spacing: .8px; color: var(--dim); margin: 14px 0 8px; }

.tree ul { list-style: none; margin: 0; padding-left: 16px; border-left: 1px dashed var(--line); }
.tree > ul { padding-left: 0; border-left: none; }
.tree li { margin: 2px 0; }
.node { display: flex; align-items: center; gap: 6px; padding: 2px 6px; border-radius: 5px; min-width: 0; }
.node.work { cursor: pointer; }
.node.work:hover, .node.selected { background: #eef0fb; }
.node .label { font-weight: 500; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; min-width: 0; }
.node .cls { color: var(--dim); font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.kind { font-size: 10px; text-transform: uppercase; letter-spacing: .5px; color: var(--dim);
  border: 1px solid var(--line); border-radius: 4px; padding: 0 4px; flex: none; }
.dot { width: 9px; height: 9px; border-radius: 50%; flex: none; background: var(--grey); }

.stage-not_started { background: var(--grey); }
.stage-pending { background: var(--amber); }
.stage-running { background: var(--blue); }
.stage-succeeded { background: var(--green); }
.stage-failed { background: var(--red); }
.stage-stopped { background: var(--brown); }
.dot.stage-running { animation: pulse 1.2s ease-in-out infinite; }
@keyframes pulse { 50% { opacity: .35; } }

.schedules { list-style: none; margin: 0; padding: 0; }
.schedules li { padding: 4px 0; border-bottom: 1px solid var(--line); font-size: 12px; overflow-wrap: anywhere; }

.table-wrap { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); white-space: nowrap;
  vertical-align: middle; }
th { font-size: 12px; color: var(--dim); font-weight: 600; background: #fafbfc; }
tbody tr:last-child td { border-bottom: none; }
tbody tr { cursor: pointer; }
tbody tr:hover, tbody tr.selected { background: #f3f4fd; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.work-name { font-weight: 600; }
td.detail { white-space: normal; max-width: 420px; min-width: 160px; overflow-wrap: anywhere; color: var(--dim);
  font-size: 12px; }
td.machine { max-width: 260px; overflow: hidden; text-overflow: ellipsis; }

.failure { background: var(--panel); border: 1px solid #f1c5c2; border-left: 4px solid var(--red);
  border-radius: 8px; margin-bottom: 10px; overflow: hidden; }
.failure-head { padding: 8px 12px; font-weight: 600; overflow-wrap: anywhere; }
.failure-head .msg { font-weight: 400; color: #8c1d17; }
.failure pre { margin: 0; padding: 10px 12px; background: #fff7f6; border-top: 1px solid #f6dcda; font-size: 12.5px;
  overflow: auto; max-height: 320px; white-space: pre; }

.logs-section { display: flex; flex-direction: column; flex: 1; min-height: 260px; }
.logs-head { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; }
.logs-head h2 { margin-right: 6px; }
select, input[type=search] { font: inherit; font-size: 13px; padding: 4px 8px; border: 1px solid var(--line);
  border-radius: 6px; background: var(--panel); color: var(--ink); }
input[type=search] { width: 260px; max-width: 100%; }
.logs { flex: 1; min-height: 220px; background: var(--log-bg); color: var(--log-ink); border-radius: 8px;
  padding: 8px 0; overflow: auto; font-size: 12.5px; line-height: 1.5; }
.logs .empty { color: #7d8595; padding: 4px 12px; }
.line { display: flex; gap: 10px; padding: 0 12px; }
.line:hover { background: #222836; }
.line .t { color: #6f7889; flex: none; }
.line .w { flex: none; width: var(--name-width, 12ch); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.line .x { white-space: pre-wrap; overflow-wrap: anywhere; min-width: 0; }
.line.stderr .x { color: #f1a9a4; }
.line.lit .x { color: #8e97a8; font-style: italic; }
mark { background: #f5d76e; color: #111; border-radius: 2px; }
@media (max-width: 1000px) {
  aside { width: 200px; }
  .node .cls { display: none; }
  .content { padding: 0 10px 10px; }
}
.tabs { display: flex; gap: 2px; padding: 0 18px; background: var(--panel); border-bottom: 1px solid var(--line);
  overflow-x: auto; flex: none; }
.tab { font: inherit; font-size: 13px; border: none; background: none; color: var(--dim); padding: 8px 12px 7px;
  border-bottom: 2px solid transparent; cursor: pointer; white-space: nowrap; }
.tab:hover { color: var(--ink); }
.tab.active { color: var(--ink); border-bottom-color: var(--accent); font-weight: 600; }
.tab.error::after { content: " !"; color: var(--red); }
.app-view { flex: 1; min-height: 0; display: flex; flex-direction: column; background: var(--panel); }
.pane { flex: 1; min-height: 0; display: flex; flex-direction: column; }
.pane iframe { flex: 1; width: 100%; border: none; background: #fff; }
.pane .where { font-size: 12px; color: var(--dim); padding: 4px 18px; border-bottom: 1px solid var(--line);
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.tab-error { margin: 18px; padding: 10px 14px; border-radius: 8px; background: #fdeeed; color: #8c1d17;
  overflow-wrap: anywhere; }
.tab-none { margin: 18px; color: var(--dim); }
.c0 { color: #5fd0e6; } .c1 { color: #e48ce8; } .c2 { color: #eed060; } .c3 { color: #7fdc8a; }
.c4 { color: #8aa8ff; } .c5 { color: #ffa36c; } .c6 { color: #c9a6ff; } .c7 { color: #68e0c0; }
"""

SCRIPT = r"""
"use strict";
(function () {
  const MAX_LOGS = 20000;  // lines kept in the page (the server keeps the latest per work)
  const STAGES = ["not_started", "pending", "running", "succeeded", "failed", "stopped"];
  const state = { run: {}, tree: null, schedules: [], layout: [], works: {}, logs: [], colors: {} };
  const dirty = new Set();
  let source = null;
  let frame = 0;

  const $ = (id) => document.getElementById(id);
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function stageClass(stage) {
    return "stage-" + (STAGES.indexOf(stage) >= 0 ? stage : "not_started");
  }
  function color(work) {
    if (!(work in state.colors)) state.colors[work] = "c" + (Object.keys(state.colors).length % 8);
    return state.colors[work];
  }
  function seconds(value) {
    if (value === null || value === undefined) return "";
    if (value < 60) return value.toFixed(value < 10 ? 2 : 1) + " s";
    const m = Math.floor(value / 60), s = Math.floor(value % 60);
    if (m < 60) return m + "m " + String(s).padStart(2, "0") + "s";
    return Math.floor(m / 60) + "h " + String(m % 60).padStart(2, "0") + "m";
  }
  function clock(epoch) {
    const d = new Date(epoch * 1000);
    return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }
  function wallTime(work) {
    let total = work.wall_time || 0;
    if (work.stage === "running" && work.running_since) total += Math.max(0, Date.now() / 1000 - work.running_since);
    return total;
  }
  function machine(work) {
    const parts = [];
    if (work.machine) parts.push(work.machine);
    if (work.instance_type && work.machine !== work.instance_type) parts.push(work.instance_type);
    if (!parts.length) return work.cluster === "local" || !work.cluster ? "this machine" : "";
    return parts.join(" · ");
  }
  function workNames() {
    const names = [];
    (function walk(node) {
      if (!node) return;
      if (node.kind === "work") names.push(node.name);
      (node.children || []).forEach(walk);
    })(state.tree);
    Object.keys(state.works).forEach((n) => { if (names.indexOf(n) < 0) names.push(n); });
    return names;
  }

  // -- events ----------------------------------------------------------------------------------
  function onEvent(event) {
    switch (event.type) {
      case "snapshot":
        state.run = event.run || {};
        state.tree = event.tree;
        state.schedules = event.schedules || [];
        state.works = event.works || {};
        state.logs = event.logs || [];
        state.layout = event.layout || [];
        ["run", "tree", "works", "failures", "logs-all", "select", "layout"].forEach((k) => dirty.add(k));
        break;
      case "run":
        state.run = event.run;
        dirty.add("run"); dirty.add("failures");
        break;
      case "tree":
        state.tree = event.tree;
        state.schedules = event.schedules || [];
        dirty.add("tree"); dirty.add("works"); dirty.add("select");
        break;
      case "work":
        state.works[event.work.name] = event.work;
        dirty.add("tree"); dirty.add("works"); dirty.add("failures"); dirty.add("select");
        break;
      case "layout":
        state.layout = event.layout || [];
        dirty.add("layout");
        break;
      case "log":
        state.logs.push(event.log);
        pending.push(event.log);
        dirty.add("logs");
        break;
    }
    if (!frame) frame = requestAnimationFrame(render);
  }
  const pending = [];

  function connect() {
    source = new EventSource("events");
    source.onopen = () => { $("conn").textContent = "live"; };
    source.onmessage = (message) => onEvent(JSON.parse(message.data));
    source.onerror = () => {
      if (state.run.ended) return;
      $("conn").textContent = "reconnecting…";
    };
  }

  // -- rendering -------------------------------------------------------------------------------
  function render() {
    frame = 0;
    if (dirty.has("run")) renderRun();
    if (dirty.has("tree")) renderTree();
    if (dirty.has("works")) renderWorks();
    if (dirty.has("failures")) renderFailures();
    if (dirty.has("select")) renderSelect();
    if (dirty.has("layout")) renderLayout();
    if (dirty.has("logs-all")) renderLogs(true);
    else if (dirty.has("logs")) renderLogs(false);
    dirty.clear();
  }

  function runStage() {
    const run = state.run;
    if (!run.ended) return ["running", "stage-running"];
    if (run.interrupted) return ["interrupted", "stage-stopped"];
    if (run.exit_code === 0) return ["succeeded", "stage-succeeded"];
    return ["failed (exit " + run.exit_code + ")", "stage-failed"];
  }

  function renderRun() {
    const run = state.run;
    $("app-name").textContent = run.app || "";
    $("run-name").textContent = run.run_name || "";
    $("cluster").textContent = run.cluster ? "cluster: " + run.cluster : "";
    $("cluster").hidden = !run.cluster;
    const [label, cls] = runStage();
    const pill = $("run-state");
    pill.textContent = label;
    pill.className = "pill " + cls;
    document.title = "lit · " + (run.app || "run") + " · " + label;
    const banner = $("banner");
    if (run.ended) {
      const text = (run.exit_code === 0 ? "Run finished" : "Run ended") +
        (run.message ? ": " + run.message : "") + ". The server has stopped; this page keeps the last state.";
      banner.textContent = text;
      banner.className = "banner" + (run.exit_code === 0 ? "" : " failed");
      banner.hidden = false;
      $("conn").textContent = "ended";
      if (source) { source.close(); source = null; }
    }
    tick();
  }

  function tick() {
    const run = state.run;
    if (run.started) {
      const end = run.ended ? run.ended : Date.now() / 1000;
      $("elapsed").textContent = seconds(run.ended && run.elapsed ? run.elapsed : end - run.started);
    }
    document.querySelectorAll("td[data-wall]").forEach((cell) => {
      const work = state.works[cell.dataset.wall];
      if (work) cell.textContent = seconds(wallTime(work));
    });
  }

  let selected = "";
  function select(name) {
    selected = selected === name ? "" : name;
    $("log-work").value = selected;
    renderTree(); renderWorks(); renderLogs(true);
  }

  function renderTree() {
    const box = $("tree");
    box.textContent = "";
    if (!state.tree) { box.appendChild(el("div", "dim small", "waiting for the app…")); return; }
    const ul = el("ul");
    ul.appendChild(treeNode(state.tree));
    box.appendChild(ul);
    const list = $("schedules");
    list.textContent = "";
    state.schedules.forEach((s) => {
      const li = el("li");
      li.appendChild(el("code", "", s.expression));
      li.appendChild(el("div", "dim", "next " + new Date(s.next * 1000).toLocaleString() +
        " · fired " + s.fired + " times · " + s.flow));
      list.appendChild(li);
    });
    $("schedules-section").hidden = state.schedules.length === 0;
  }

  function treeNode(node) {
    const li = el("li");
    const row = el("div", "node " + node.kind);
    if (node.kind === "work") {
      const work = state.works[node.name] || {};
      row.appendChild(el("span", "dot " + stageClass(work.stage)));
      row.title = node.name + ": " + (work.stage || "not_started").replace("_", " ");
      row.addEventListener("click", () => select(node.name));
      if (selected === node.name) row.classList.add("selected");
    } else {
      row.appendChild(el("span", "kind", "flow"));
    }
    row.appendChild(el("span", "label", node.label));
    row.appendChild(el("span", "cls", node.cls));
    li.appendChild(row);
    if (node.children && node.children.length) {
      const ul = el("ul");
      node.children.forEach((child) => ul.appendChild(treeNode(child)));
      li.appendChild(ul);
    }
    return li;
  }

  function renderWorks() {
    const body = document.querySelector("#works tbody");
    body.textContent = "";
    const names = workNames();
    if (!names.length) {
      const row = el("tr");
      const cell = el("td", "dim", "no works yet");
      cell.colSpan = 9;
      row.appendChild(cell);
      body.appendChild(row);
    }
    names.forEach((name) => {
      const work = state.works[name] || { name: name };
      const row = el("tr");
      row.dataset.work = name;
      if (selected === name) row.classList.add("selected");
      row.addEventListener("click", () => select(name));
      row.appendChild(el("td", "work-name", name));
      const status = el("td");
      const stage = work.stage || "not_started";
      status.appendChild(el("span", "pill " + stageClass(stage), stage.replace("_", " ")));
      row.appendChild(status);
      row.appendChild(el("td", "", work.compute || ""));
      row.appendChild(el("td", "", work.cluster || state.run.cluster || ""));
      const where = machine(work);
      const cell = el("td", "machine mono small", where);
      cell.title = where;
      row.appendChild(cell);
      row.appendChild(el("td", "num", work.calls || 0));
      const wall = el("td", "num", seconds(wallTime(work)));
      wall.dataset.wall = name;
      row.appendChild(wall);
      row.appendChild(el("td", "num", work.cost ? "$" + work.cost.toFixed(4) : "—"));
      const detail = work.message || (stage === "pending" || stage === "not_started" ? work.step : "") || "";
      row.appendChild(el("td", "detail", detail));
      body.appendChild(row);
    });
  }

  function renderFailures() {
    const box = $("failures");
    box.textContent = "";
    let count = 0;
    if (state.run.traceback) {
      box.appendChild(failure("the flow", state.run.message || "", state.run.traceback));
      count++;
    }
    workNames().forEach((name) => {
      const work = state.works[name];
      if (!work || work.stage !== "failed") return;
      box.appendChild(failure(name, work.message || "", work.traceback || ""));
      count++;
    });
    $("failures-section").hidden = count === 0;
  }

  function failure(who, message, traceback) {
    const card = el("div", "failure");
    card.dataset.work = who;
    const head = el("div", "failure-head", who + " failed");
    if (message) { head.appendChild(document.createTextNode(" — ")); head.appendChild(el("span", "msg", message)); }
    card.appendChild(head);
    if (traceback) card.appendChild(el("pre", "traceback", traceback));
    return card;
  }

  function renderSelect() {
    const box = $("log-work");
    const names = workNames();
    // The log's name column fits the longest name (up to a point: a long one is cut, its title has it).
    const widest = names.reduce((n, name) => Math.max(n, name.length), 4);
    $("logs").style.setProperty("--name-width", Math.min(widest, 24) + "ch");
    const have = Array.from(box.options).map((o) => o.value).slice(1);
    if (have.join("\n") === names.join("\n")) return;
    const keep = box.value;
    while (box.options.length > 1) box.remove(1);
    names.forEach((name) => box.appendChild(new Option(name, name)));
    box.value = names.indexOf(keep) >= 0 ? keep : "";
  }

  function matches(entry, needle) {
    if (selected && entry.work !== selected) return false;
    return !needle || entry.line.toLowerCase().indexOf(needle) >= 0;
  }

  function lineNode(entry, needle) {
    const row = el("div", "line " + entry.stream);
    row.dataset.work = entry.work;
    row.appendChild(el("span", "t", clock(entry.t)));
    const who = el("span", "w " + color(entry.work), entry.work);
    who.title = entry.work;
    row.appendChild(who);
    const text = el("span", "x");
    if (needle) {
      const lower = entry.line.toLowerCase();
      let at = 0;
      for (;;) {
        const hit = lower.indexOf(needle, at);
        if (hit < 0) break;
        text.appendChild(document.createTextNode(entry.line.slice(at, hit)));
        text.appendChild(el("mark", "", entry.line.slice(hit, hit + needle.length)));
        at = hit + needle.length;
      }
      text.appendChild(document.createTextNode(entry.line.slice(at)));
    } else {
      text.textContent = entry.line;
    }
    row.appendChild(text);
    return row;
  }

  function renderLogs(all) {
    const box = $("logs");
    const needle = $("log-filter").value.trim().toLowerCase();
    if (state.logs.length > MAX_LOGS) state.logs.splice(0, state.logs.length - MAX_LOGS);
    const follow = $("follow").checked;
    const batch = all ? state.logs : pending;
    if (all) box.textContent = "";
    const fragment = document.createDocumentFragment();
    batch.forEach((entry) => { if (matches(entry, needle)) fragment.appendChild(lineNode(entry, needle)); });
    pending.length = 0;
    const empty = box.querySelector(".empty");
    if (empty) empty.remove();
    box.appendChild(fragment);
    while (box.childElementCount > MAX_LOGS) box.removeChild(box.firstChild);
    const shown = box.querySelectorAll(".line").length;
    if (!shown) box.appendChild(el("div", "empty", state.logs.length ? "no line matches" : "no output yet"));
    $("log-count").textContent = shown + " of " + state.logs.length + " lines";
    if (follow) box.scrollTop = box.scrollHeight;
  }

  // -- the app's own tabs (configure_layout) --------------------------------------------------------
  // A pane is made when its tab is first opened and kept (switching back does not reload the app's page);
  // when the layout names a new address for a tab (its work started), its frame follows.
  let activeTab = "";
  const panes = {};
  function paneFor(tab) {
    let pane = panes[tab.id];
    const key = tab.kind + " " + (tab.src || "") + " " + (tab.error || "");
    if (pane && pane.dataset.key === key) return pane;
    if (pane) pane.remove();
    pane = el("div", "pane");
    pane.dataset.tab = tab.id;
    pane.dataset.key = key;
    if (tab.kind === "error") {
      pane.appendChild(el("div", "tab-error", tab.error));
    } else if (tab.kind === "none" || !tab.src) {
      pane.appendChild(el("div", "tab-none", "Nothing to show yet" + (tab.error ? ": " + tab.error : ".")));
    } else {
      const where = tab.kind === "work" ? "served by " + tab.work + " (through this dashboard)"
        : tab.kind === "static" ? "files of the app's folder" : tab.src;
      pane.appendChild(el("div", "where", where));
      const frame = document.createElement("iframe");
      frame.title = tab.name;
      frame.referrerPolicy = "no-referrer";
      frame.src = tab.src;
      pane.appendChild(frame);
    }
    panes[tab.id] = pane;
    $("app-view").appendChild(pane);
    return pane;
  }
  function showTab(id) {
    const tab = state.layout.find((t) => t.id === id);
    activeTab = tab ? id : "";
    $("run-view").hidden = !!activeTab;
    $("app-view").hidden = !activeTab;
    Object.keys(panes).forEach((key) => { panes[key].hidden = key !== activeTab; });
    if (tab) paneFor(tab).hidden = false;
    document.querySelectorAll("#tabs .tab").forEach((b) => b.classList.toggle("active", b.dataset.tab === activeTab));
  }
  function renderLayout() {
    const nav = $("tabs");
    while (nav.children.length > 1) nav.removeChild(nav.lastChild);
    state.layout.forEach((tab) => {
      const button = el("button", "tab" + (tab.kind === "error" ? " error" : ""), tab.name);
      button.type = "button";
      button.dataset.tab = tab.id;
      if (tab.error) button.title = tab.error;
      nav.appendChild(button);
    });
    nav.hidden = state.layout.length === 0;
    Object.keys(panes).forEach((id) => {
      const tab = state.layout.find((t) => t.id === id);
      if (!tab) { panes[id].remove(); delete panes[id]; }
      else if (id === activeTab) paneFor(tab);
    });
    showTab(activeTab);
  }
  $("tabs").addEventListener("click", (e) => {
    const button = e.target.closest(".tab");
    if (button) showTab(button.dataset.tab);
  });

  $("log-filter").addEventListener("input", () => renderLogs(true));
  $("log-work").addEventListener("change", (e) => {
    selected = e.target.value;
    renderTree(); renderWorks(); renderLogs(true);
  });
  $("logs").addEventListener("scroll", () => {
    const box = $("logs");
    $("follow").checked = box.scrollHeight - box.scrollTop - box.clientHeight < 30;
  });
  setInterval(tick, 1000);
  renderTree(); renderWorks(); renderLogs(true);
  connect();
})();
"""
