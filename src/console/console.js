// The edgefault console: polls the JSON API under /console/api/ every second and draws what it gets.
// No framework, no build step, nothing loaded from elsewhere. The token (when the server has tokens) is
// kept in this tab's sessionStorage and sent as `authorization: Bearer …`; never in a URL.
"use strict";

const KEY = "edgefault-console-token";
const POLL_MS = 1000;
const WINDOW_S = 300;
const MIN_WINDOW_S = 60;
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

let token = sessionStorage.getItem(KEY) || "";
let lastSeq = 0;
let timer = null;
let scenarios = [];
let caller = null;
// The experiments table's rows by experiment id, kept across refreshes.
const rowsById = new Map();

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

async function api(path, body) {
  const headers = {};
  if (token) headers["authorization"] = "Bearer " + token;
  const init = { headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    init.method = "POST";
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch("/console/api/" + path, init);
  } catch (e) {
    return { status: 0, body: { error: "the server did not answer: " + e.message } };
  }
  let data = {};
  try { data = await r.json(); } catch (_) { data = { error: "not JSON (" + r.status + ")" }; }
  return { status: r.status, body: data };
}

function notice(text, bad) {
  const n = $("notice");
  n.hidden = false;
  n.textContent = text;
  n.className = bad ? "notice bad" : "notice";
  n.dataset.status = bad ? "refused" : "ok";
}

function refusal(what, r) {
  return what + " refused (" + r.status + "): " + (r.body.error || "no reason given");
}

// === sign-in ===

function showLogin(message) {
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("signout").hidden = true;
  $("who").textContent = "not signed in";
  stop();
}

async function signIn(t) {
  token = t;
  const r = await api("state");
  if (r.status === 401 || r.status === 403) {
    sessionStorage.removeItem(KEY);
    token = "";
    showLogin(r.body.error || "refused");
    return;
  }
  if (token) sessionStorage.setItem(KEY, token);
  $("login").hidden = true;
  $("signout").hidden = !token;
  lastSeq = 0;
  $("events").replaceChildren();
  rowsById.clear();
  renderState(r.body);
  await loadScenarios();
  start();
}

function start() {
  stop();
  timer = setInterval(poll, POLL_MS);
  poll();
}

function stop() {
  if (timer) clearInterval(timer);
  timer = null;
}

async function poll() {
  const [s, e, h] = await Promise.all([api("state"), api("events?after=" + lastSeq), api("history?minutes=5")]);
  if (s.status === 401) return showLogin(s.body.error);
  if (s.status === 200) renderState(s.body);
  if (e.status === 200) renderEvents(e.body);
  if (h.status === 200) renderCharts(h.body);
}

// === experiments ===

function fmtDuration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "";
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (h) return h + "h" + String(m).padStart(2, "0") + "m";
  if (m) return m + "m" + String(r).padStart(2, "0") + "s";
  return r + "s";
}

function fmtTime(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

function renderState(st) {
  caller = st.caller;
  const host = location.host;
  const listeners = (st.server.listeners || []).map((l) => l[0] + " " + l[1]).join(", ");
  const kind = st.server.kind === "controller" ? "controller " : "";
  $("server").textContent = kind + st.server.name + " · " + host + (listeners ? " · " + listeners : "");
  document.body.dataset.kind = st.server.kind;
  $("selector-param").hidden = st.server.kind !== "controller";
  renderSidecars(st.sidecars);
  $("version").textContent = st.version;
  const badge = $("running");
  badge.textContent = "running " + st.running;
  badge.dataset.running = st.running;
  badge.className = st.running > 0 ? "badge live" : "badge";
  const who = $("who");
  who.textContent = st.caller.tokens ? st.caller.name + " (" + st.caller.role + ")" : "no tokens: " + (st.caller.may_change ? "changes from loopback" : "read-only from here");
  who.dataset.role = st.caller.role;
  who.title = st.caller.may_change ? "may start, stop and abort" : "sees everything, changes nothing";
  document.body.dataset.mayChange = st.caller.may_change;

  const body = $("experiments").tBodies[0];
  const rows = [];
  const seen = new Set();
  for (const x of st.experiments) {
    seen.add(x.id);
    const fresh = experimentRow(x, st.now);
    const old = rowsById.get(x.id);
    if (old && old.dataset.state === fresh.dataset.state) {
      // Same state: the cells are refreshed in place and the Stop button is kept, so a click that spans a
      // refresh still lands.
      const cells = Array.from(fresh.cells);
      for (let i = 0; i < cells.length - 1; i++) old.replaceChild(cells[i], old.cells[i]);
      old.dataset.phase = fresh.dataset.phase;
      rows.push(old);
    } else {
      rowsById.set(x.id, fresh);
      rows.push(fresh);
    }
  }
  for (const id of Array.from(rowsById.keys())) if (!seen.has(id)) rowsById.delete(id);
  if (!rows.length) rows.push(el("tr", { class: "empty" }, el("td", { colspan: 7, text: "no experiment yet" })));
  const unchanged = rows.length === body.children.length && rows.every((r, i) => body.children[i] === r);
  if (!unchanged) body.replaceChildren(...rows);
}

// The controller's fleet: one row per sidecar (connected, or lost in the last five minutes).
function renderSidecars(list) {
  const box = $("fleet");
  box.hidden = !list;
  if (!list) return;
  const connected = list.filter((s) => s.connected).length;
  $("fleet-count").textContent = connected + " connected of " + list.length;
  const rows = list.map((s) => el("tr", { "data-sidecar": s.id, class: s.connected ? "" : "ended" },
    el("td", {}, el("strong", { text: s.id })),
    el("td", { class: "muted small", text: Object.entries(s.labels).map(([k, v]) => k + "=" + v).join(", ") }),
    el("td", {}, el("span", { class: "state " + (s.connected ? "connected" : "lost"), text: s.connected ? "connected" : "lost" })),
    el("td", { class: "num", text: s.experiments_running }),
    el("td", { class: "muted small", text: s.last_rejection })));
  if (!rows.length) rows.push(el("tr", { class: "empty" }, el("td", { colspan: 5, text: "no sidecar has subscribed yet" })));
  $("sidecars").tBodies[0].replaceChildren(...rows);
}

// On the controller: where the experiment stands on its sidecars ("3 applied, 1 rejected").
function sidecarSummary(x) {
  if (!x.sidecars || !x.sidecars.length) return null;
  const by = {};
  for (const t of x.sidecars) by[t.state] = (by[t.state] || 0) + 1;
  const text = Object.entries(by).map(([k, n]) => n + " " + k).join(", ");
  const why = x.sidecars.filter((t) => t.reason).map((t) => t.id + ": " + t.reason).join("\n");
  return el("span", { class: "muted small sidecars", title: why, text: "sidecars: " + text });
}

function experimentRow(x, now) {
  const active = x.state === "running" || x.state === "pending";
  const targets = [].concat(x.targets.listeners, x.targets.routes, x.targets.hosts).join(", ") || "every route";
  const name = el("td", {},
    el("strong", { text: x.name }), el("br"),
    el("span", { class: "id", text: x.id }), el("br"),
    el("span", { class: "muted small", text: (x.faults.join(", ") || "faults") + (x.phases.length ? "" : " · " + x.percentage + " %") + " · " + targets + (x.dry_run ? " · dry run" : "") }));
  const fleet = sidecarSummary(x);
  if (fleet) name.append(el("br"), fleet);
  const phase = el("td", { class: "phase" });
  if (x.phase) phase.append(el("strong", { class: "phase-name", text: x.phase.name }));
  if (x.phases.length) {
    const chips = el("div", { class: "phases" });
    x.phases.forEach((p, i) => {
      const cls = x.phase && i === x.phase.index ? "chip now" : x.phase && i < x.phase.index ? "chip done" : "chip";
      chips.append(el("span", { class: cls, title: "from " + fmtDuration(p.start), text: p.name }));
    });
    phase.append(chips);
  }
  const bar = timelineBar(x, now);
  if (bar) phase.append(bar);
  if (x.timeline_state) phase.append(el("div", { class: "muted small", text: x.timeline_state }));
  if (x.phase && x.phase.next_at) phase.append(el("div", { class: "muted small", text: "next: " + x.phase.next_name + " in " + fmtDuration((x.phase.next_at - now) / 1000) }));
  if (!active && x.end_reason) phase.append(el("div", { class: "muted small", text: x.end_reason }));
  const ends = active ? (x.ends ? fmtDuration((x.ends - now) / 1000) : "") : (x.ended ? "ended " + fmtTime(x.ended) : "");
  const actions = el("td", {});
  if (active) {
    actions.append(el("button", {
      type: "button", class: "stop", "data-stop": x.id, text: "Stop",
      title: caller && caller.may_change ? "stop this experiment" : "your token is read-only: the server will refuse",
      onclick: () => stopExperiment(x.id, x.name),
    }));
  }
  return el("tr", { class: active ? "active" : "ended", "data-id": x.id, "data-state": x.state, "data-phase": x.phase ? x.phase.name : "" },
    name,
    el("td", {}, el("span", { class: "state " + x.state, text: x.state })),
    phase,
    el("td", { class: "num", text: ends }),
    el("td", { class: "num", text: x.counters.matched }),
    el("td", { class: "num", text: x.counters.injected }),
    actions);
}

// The experiment's life from start to end as a bar: its phases as segments (the current one dark), and
// where it stands now. Times are real seconds: phase starts come divided by the time_scale.
function timelineBar(x, now) {
  if (!x.started || !x.ends || x.ends <= x.started) return null;
  const span = (x.ends - x.started) / 1000;
  const at = Math.min(1, Math.max(0, ((x.ended || now) - x.started) / 1000 / span));
  const W = 300, H = 12;
  const bar = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "timeline", role: "img", "aria-label": Math.round(at * 100) + " % of its duration", preserveAspectRatio: "none" });
  bar.append(svg("rect", { x: 0, y: 0, width: W, height: H, fill: "#e9ecef" }));
  x.phases.forEach((p, i) => {
    const from = Math.min(1, p.start / span);
    const to = i + 1 < x.phases.length ? Math.min(1, x.phases[i + 1].start / span) : 1;
    const current = x.phase && x.phase.index === i;
    const fill = current ? "#343a40" : p.percentage === 0 ? "#dee2e6" : i % 2 ? "#adb5bd" : "#ced4da";
    bar.append(svg("rect", { x: (from * W).toFixed(1), y: 2, width: Math.max(1, (to - from) * W - 1).toFixed(1), height: H - 4, fill }));
  });
  bar.append(svg("rect", { x: 0, y: H - 3, width: (at * W).toFixed(1), height: 3, fill: "#e03131" }));
  bar.append(svg("rect", { x: Math.max(0, at * W - 1).toFixed(1), y: 0, width: 2, height: H, fill: "#e03131" }));
  return bar;
}

async function stopExperiment(id, name) {
  const r = await api("experiments/stop", { id });
  if (r.status === 200) notice("stopped " + name + " (" + id + ")");
  else notice(refusal("Stop", r), true);
  poll();
}

async function abortAll() {
  if (!confirm("Abort every pending and running experiment now?")) return;
  const r = await api("abort-all", {});
  if (r.status === 200) notice("Abort all: " + r.body.aborted.length + " experiment(s) aborted");
  else notice(refusal("Abort all", r), true);
  poll();
}

// === events ===

function renderEvents(ev) {
  if (ev.last < lastSeq) lastSeq = 0; // the server restarted
  const list = $("events");
  for (const line of ev.events) {
    if (line.seq <= lastSeq) continue;
    lastSeq = line.seq;
    list.prepend(el("li", { class: "k-" + line.kind, "data-kind": line.kind, "data-experiment": line.experiment },
      el("time", { text: fmtTime(line.time) }),
      el("span", {}, line.name ? el("b", { text: line.name + " " }) : "", line.detail)));
  }
  while (list.children.length > 200) list.lastChild.remove();
}

// === charts ===

// Shares of each second's requests: 2xx, 4xx, 5xx, no response (reset or hang), other (1xx, 3xx).
const BANDS = [
  ["s2xx", (s) => s[1]], ["s4xx", (s) => s[3]], ["s5xx", (s) => s[4]], ["sdrop", (s) => s[5]], ["sother", (s) => s[0] + s[2]],
];
const COLORS = { s2xx: "#2f9e44", s4xx: "#f08c00", s5xx: "#e03131", sdrop: "#7048e8", sother: "#868e96" };

function renderCharts(snap) {
  const box = $("charts");
  const routes = snap.routes || [];
  if (!routes.length) {
    box.replaceChildren(el("p", { class: "muted", text: "no traffic yet" }));
    return;
  }
  // The window grows with the data, from a minute to five, so a fresh server's first seconds are visible.
  const end = Math.floor(Date.now() / 1000);
  const first = Math.min(...routes.map((r) => (r.points.length ? r.points[0].t : end)));
  const startT = end - Math.min(WINDOW_S, Math.max(MIN_WINDOW_S, end - first + 1));
  box.replaceChildren(...routes.map((r) => chartCard(r, startT, end, snap.resolution_seconds || 1)));
}

function pct(n, d) { return d ? (100 * n / d).toFixed(d >= 100 ? 1 : 0) + " %" : "–"; }

function chartCard(route, startT, end, step) {
  const points = route.points.filter((p) => p.t >= startT);
  let total = 0, injected = 0;
  const sums = [0, 0, 0, 0, 0, 0];
  for (const p of points) {
    total += p.requests;
    injected += p.injected;
    p.status.forEach((n, i) => { sums[i] += n; });
  }
  const last = points.filter((p) => p.requests > 0).slice(-1)[0];
  const W = 600, H = 120, L = 70, pad = 4;
  const x = (t) => ((t - startT) / (end - startT)) * W;
  const bw = Math.max(1, (step / (end - startT)) * W);

  const share = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "status share per second", preserveAspectRatio: "none", class: "share" });
  for (const p of points) {
    const n = p.status.reduce((a, b) => a + b, 0);
    if (!n) continue;
    let y = H;
    for (const [cls, f] of BANDS) {
      const h = (f(p.status) / n) * H;
      if (h <= 0) continue;
      y -= h;
      share.append(svg("rect", { x: x(p.t).toFixed(1), y: y.toFixed(1), width: bw.toFixed(1), height: h.toFixed(1), fill: COLORS[cls] }));
    }
  }

  const lat = svg("svg", { viewBox: "0 0 " + W + " " + L, role: "img", "aria-label": "latency p50 and p99", preserveAspectRatio: "none", class: "latency" });
  const withLat = points.filter((p) => p.requests > 0);
  const top = Math.max(1, ...withLat.map((p) => p.p99_ms));
  const y = (ms) => L - pad - (ms / top) * (L - 2 * pad);
  for (const [key, dash] of [["p50_ms", ""], ["p99_ms", "4 3"]]) {
    if (!withLat.length) break;
    const d = withLat.map((p, i) => (i ? "L" : "M") + (x(p.t) + bw / 2).toFixed(1) + " " + y(p[key]).toFixed(1)).join(" ");
    const attrs = { d, fill: "none", stroke: "#111", "stroke-width": 2, "vector-effect": "non-scaling-stroke" };
    if (dash) attrs["stroke-dasharray"] = dash;
    lat.append(svg("path", attrs));
  }
  const topLabel = svg("text", { x: 4, y: 12, "font-size": 11, fill: "#5b6470" });
  topLabel.textContent = Math.round(top) + " ms";
  lat.append(topLabel);

  const figures = el("div", { class: "figures" },
    el("span", { class: "requests", text: total + " req" }),
    el("span", { text: "2xx " + pct(sums[1], total) }),
    el("span", { text: "4xx " + pct(sums[3], total) }),
    el("span", { text: "5xx " + pct(sums[4], total) }),
    el("span", { text: "no response " + pct(sums[5], total) }),
    el("span", { text: "injected " + pct(injected, total) }),
    el("span", { text: last ? "p50 " + last.p50_ms.toFixed(1) + " ms · p99 " + last.p99_ms.toFixed(1) + " ms" : "" }));
  return el("div", { class: "chart", "data-route": route.listener + "/" + route.route, "data-requests": total, "data-5xx": sums[4] },
    el("h3", { text: route.route + " ", title: "listener " + route.listener }, el("span", { class: "muted small", text: route.listener })),
    figures, share, lat);
}

// === scenarios ===

async function loadScenarios() {
  const r = await api("scenarios");
  if (r.status !== 200) return;
  scenarios = r.body.scenarios;
  const sel = $("scenario");
  const was = sel.value;
  sel.replaceChildren(...scenarios.map((s) => el("option", { value: s.name, text: s.name })));
  if (was) sel.value = was;
  renderParams();
}

function renderParams() {
  const s = scenarios.find((x) => x.name === $("scenario").value);
  const box = $("params");
  if (!s) { box.replaceChildren(); return; }
  $("scenario-summary").textContent = s.summary;
  box.replaceChildren(...s.params.map((p) => {
    const id = "param-" + p.name;
    let input;
    if (p.choices.length) {
      input = el("select", { id, name: p.name }, ...p.choices.map((c) => el("option", { value: c, text: c, selected: c === p.default })));
    } else if (p.type === "bool") {
      input = el("select", { id, name: p.name }, el("option", { value: "true", text: "true", selected: p.default === "true" }), el("option", { value: "false", text: "false", selected: p.default !== "true" }));
    } else if (p.type === "number" || p.type === "integer" || p.type === "percentage") {
      input = el("input", { id, name: p.name, type: "number", value: p.default, min: p.min, max: p.max, step: p.type === "integer" ? 1 : "any" });
    } else {
      input = el("input", { id, name: p.name, type: "text", value: p.default, placeholder: p.type === "list" ? "a,b" : p.type === "duration" ? "90s, 10m, 1h30m" : "" });
    }
    input.dataset.default = p.default;
    return el("div", { class: "param" },
      el("label", { for: id, text: p.name + " (" + p.type + ")" }),
      input,
      p.description ? el("span", { class: "muted", text: p.description }) : null);
  }));
}

async function startScenario(ev) {
  ev.preventDefault();
  const name = $("scenario").value;
  const params = {};
  for (const input of $("params").querySelectorAll("input, select")) {
    // Only what was changed: the server fills in the rest, as for `ctl scenario start`.
    if (input.value !== input.dataset.default) params[input.name] = input.value;
  }
  const body = { scenario: name, params };
  const selector = $("sidecars-selector").value.trim();
  if (!$("selector-param").hidden && selector) body.sidecars = selector;
  const r = await api("scenarios/start", body);
  if (r.status === 200) {
    const warn = r.body.warnings.length ? " — " + r.body.warnings.join("; ") : "";
    notice("started " + name + ": " + r.body.experiments.join(", ") + warn);
  } else notice(refusal("Start " + name, r), true);
  poll();
}

// === page ===

document.addEventListener("DOMContentLoaded", () => {
  if (localStorage.getItem("edgefault-console-big") === "1") document.documentElement.classList.add("big");
  $("big").addEventListener("click", () => {
    const big = document.documentElement.classList.toggle("big");
    localStorage.setItem("edgefault-console-big", big ? "1" : "0");
  });
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    signIn($("token").value.trim());
    $("token").value = "";
  });
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    token = "";
    showLogin("");
  });
  $("abort-all").addEventListener("click", abortAll);
  $("scenario").addEventListener("change", renderParams);
  $("scenario-form").addEventListener("submit", startScenario);
  signIn(token);
});
