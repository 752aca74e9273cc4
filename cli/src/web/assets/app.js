// The Shoal web view: one column per node, a card per task, kept current by
// the daemon's server-sent events (/api/events). No build step, no library.
"use strict";

const $ = (id) => document.getElementById(id);
const collator = new Intl.Collator(undefined, { numeric: true });
const params = new URLSearchParams(location.search);
const filter = { node: params.get("node") || "", service: params.get("service") || "" };
let data = null;
let source = null;
let retry = null;

// An element with a class and text (never HTML: names come from users).
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function setStatus(status, text) {
  document.body.dataset.status = status;
  $("live").textContent = text;
}

function showNotice(message) {
  $("notice").textContent = message;
  $("notice").hidden = false;
  setStatus("unavailable", "unavailable");
}

function query() {
  const q = new URLSearchParams();
  if (filter.node) q.set("node", filter.node);
  if (filter.service) q.set("service", filter.service);
  const s = q.toString();
  return s ? "?" + s : "";
}

function connect() {
  clearTimeout(retry);
  if (source) source.close();
  const es = new EventSource("/api/events" + query());
  source = es;
  es.addEventListener("state", (e) => {
    data = JSON.parse(e.data);
    $("notice").hidden = true;
    setStatus("live", "live · " + new Date().toLocaleTimeString());
    render();
  });
  es.addEventListener("unavailable", (e) => showNotice(JSON.parse(e.data).message));
  es.onerror = () => {
    if (es !== source) return;
    if (es.readyState === EventSource.CLOSED) {
      // Refused (503): ask the state endpoint why, then try again.
      explain();
      retry = setTimeout(connect, 3000);
    } else {
      setStatus("connecting", "reconnecting…");
    }
  };
}

async function explain() {
  try {
    const r = await fetch("/api/state" + query());
    if (r.ok) return;
    const body = await r.json().catch(() => ({}));
    showNotice(body.message || r.status + " " + r.statusText);
  } catch (_) {
    showNotice("The daemon does not answer.");
  }
}

// Filters: kept in the URL, applied at once, then asked of the daemon.
function setFilter(key, value) {
  if (filter[key] === value) return;
  filter[key] = value;
  history.replaceState(null, "", location.pathname + query());
  render();
  connect();
}

function fillSelect(select, values, current) {
  const want = [""].concat(values);
  if (current && !values.includes(current)) want.push(current);
  const have = Array.from(select.options).map((o) => o.value);
  if (have.join("\n") !== want.join("\n")) {
    const first = select.options[0];
    select.replaceChildren(first);
    for (const v of want.slice(1)) select.append(new Option(v, v));
  }
  select.value = current;
}

function nodeMatches(node) {
  return !filter.node || filter.node === node.name || filter.node === node.id;
}

function serviceMatches(task) {
  return !filter.service || filter.service === task.service || filter.service === task.service_id;
}

function card(task) {
  const c = el("div", "card");
  c.dataset.taskId = task.id;
  c.dataset.service = task.service;
  c.dataset.state = task.state;
  c.style.setProperty("--hue", task.hue);
  c.title = [task.id, task.message].filter(Boolean).join("\n");
  c.append(el("span", "state", task.state), el("span", "label", task.label));
  if (task.state !== "running" && task.message) c.append(el("span", "message", task.message));
  return c;
}

function column(node, tasks) {
  const col = el("section", "column");
  col.dataset.nodeId = node.id;
  col.dataset.nodeName = node.name;
  col.dataset.status = node.status;
  const h = el("h2");
  h.append(el("span", "dot"), el("span", "name", node.name));
  if (node.role === "manager") h.append(el("span", "tag", node.manager || "manager"));
  if (node.availability !== "active") h.append(el("span", "tag " + node.availability, node.availability));
  col.append(h);
  const meta = [node.role, node.status, node.engine, node.addr].filter(Boolean).join(" · ");
  col.append(el("div", "meta", meta));
  if (!tasks.length) col.append(el("div", "empty", "no tasks"));
  for (const t of tasks) col.append(card(t));
  col.hidden = !nodeMatches(node);
  return col;
}

function render() {
  if (!data) return;
  const nodes = data.nodes.slice().sort((a, b) =>
    (a.role === b.role ? 0 : a.role === "manager" ? -1 : 1) || collator.compare(a.name, b.name));
  const services = data.services.slice().sort((a, b) => collator.compare(a.name, b.name));
  fillSelect($("node-filter"), nodes.map((n) => n.name), filter.node);
  fillSelect($("service-filter"), services.map((s) => s.name), filter.service);

  const tasks = data.tasks.filter(serviceMatches);
  const byNode = new Map(nodes.map((n) => [n.id, []]));
  const elsewhere = [];
  for (const t of tasks) (byNode.get(t.node_id) || elsewhere).push(t);

  const running = tasks.filter((t) => t.state === "running").length;
  $("summary").textContent =
    `${nodes.length} nodes · ${services.length} services · ${running}/${tasks.length} tasks running`;

  const legend = document.createDocumentFragment();
  for (const s of services) {
    const b = el("button", "", s.name);
    b.type = "button";
    b.style.setProperty("--hue", s.hue);
    b.title = `${s.mode} · ${s.image}`;
    b.setAttribute("aria-pressed", String(filter.service === s.name));
    b.append(el("span", "count", `${s.running}/${s.desired}`));
    b.onclick = () => setFilter("service", filter.service === s.name ? "" : s.name);
    const li = el("li");
    li.append(b);
    legend.append(li);
  }
  $("legend").replaceChildren(legend);

  const board = document.createDocumentFragment();
  for (const n of nodes) board.append(column(n, byNode.get(n.id)));
  if (elsewhere.length && !filter.node) {
    board.append(column({ id: "", name: "unassigned", role: "", status: "", availability: "active",
      engine: "", addr: "" }, elsewhere));
  }
  $("board").replaceChildren(board);

  const capped = $("capped");
  capped.hidden = data.shown >= data.total;
  capped.textContent = `Showing ${data.shown} of ${data.total} tasks: pick a node or a service to see the rest.`;
}

$("node-filter").addEventListener("change", (e) => setFilter("node", e.target.value));
$("service-filter").addEventListener("change", (e) => setFilter("service", e.target.value));
$("filters").addEventListener("submit", (e) => e.preventDefault());
connect();
