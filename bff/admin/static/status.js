// The status page: fetch /status.json twice a second and redraw every worker's block.
// Plain fetch() on this listener's own origin; no build step, nothing from elsewhere.
"use strict";

// Twice a second: a change (a breaker opening) is on screen within a second of happening,
// fetch and redraw included; a snapshot costs the worker well under a millisecond.
const REFRESH_MS = 500;
const COLUMNS = [
  ["Service", (name) => name],
  ["Breaker", (name, s) => badge(s.breaker), "breaker"],
  ["Calls", (name, s) => s.calls, "calls"],
  ["Success", (name, s) => (s.success_rate === null ? "–" : `${(s.success_rate * 100).toFixed(1)} %`), "success_rate"],
  ["p50 ms", (name, s) => (s.latency_ms ? s.latency_ms.p50.toFixed(1) : "–"), "p50"],
  ["p90 ms", (name, s) => (s.latency_ms ? s.latency_ms.p90.toFixed(1) : "–"), "p90"],
  ["p99 ms", (name, s) => (s.latency_ms ? s.latency_ms.p99.toFixed(1) : "–"), "p99"],
  ["Retries", (name, s) => s.retries, "retries"],
  ["Hedges", (name, s) => s.hedges, "hedges"],
  ["In flight", (name, s) => s.in_flight, "in_flight"],
  ["Cache hits", (name, s) => s.cache.hits, "cache_hits"],
  ["Misses", (name, s) => s.cache.misses, "cache_misses"],
  ["Stale", (name, s) => s.cache.stale, "cache_stale"],
];

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
};

function badge(state) {
  return el("span", { class: `state state-${state}`, text: state });
}

function fact(label, value, field) {
  return el("div", {}, el("dt", { text: label }), el("dd", { "data-field": field }, value));
}

function workerBlock(worker, index) {
  const a = worker.admission;
  const refused = Object.entries(a.refused).map(([why, n]) => `${why} ${n}`).join(", ") || "none";
  const admission = el("dl", { class: "admission" },
    fact("Admission", badge(a.state), "admission"),
    fact("At work", `${a.in_flight} of ${a.limit}`, "admission_in_flight"),
    fact("Waiting", String(a.waiting), "admission_waiting"),
    fact("Reserve", `${a.reserve_ms.toFixed(1)} ms`, "reserve_ms"),
    fact("Queue delay", `${a.queue_delay_ms.toFixed(2)} ms`, "queue_delay_ms"),
    fact("Loop lag", `${a.loop_lag_ms.toFixed(2)} ms`, "loop_lag_ms"),
    fact("Refused", refused, "refused"));
  const head = el("tr", {}, ...COLUMNS.map(([label]) => el("th", { scope: "col", text: label })));
  const rows = Object.entries(worker.services).map(([name, s]) => el("tr", { "data-service": name },
    ...COLUMNS.map(([, value, field], i) => {
      const cell = el(i === 0 ? "th" : "td", i === 0 ? { scope: "row" } : { "data-field": field });
      const content = value(name, s);
      cell.append(content instanceof Node ? content : String(content));
      return cell;
    })));
  const titleId = `worker-${index}-title`;
  return el("section", { class: "worker", "data-pid": String(worker.pid), "aria-labelledby": titleId },
    el("h2", { id: titleId, text: `Worker ${worker.pid} · up ${Math.round(worker.uptime_s)} s` }),
    admission,
    el("table", {}, el("caption", { class: "muted", text: "Downstream services" }), el("thead", {}, head), el("tbody", {}, ...rows)));
}

async function refresh() {
  const updated = document.getElementById("updated");
  try {
    const response = await fetch("/status.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`status ${response.status}`);
    const status = await response.json();
    document.getElementById("workers").replaceChildren(...status.workers.map(workerBlock));
    updated.textContent = `Updated ${new Date(status.generated_at * 1000).toLocaleTimeString()}`;
    updated.classList.remove("error");
    document.body.dataset.ready = "true";
  } catch (error) {
    updated.textContent = `Cannot reach /status.json (${error.message}); retrying`;
    updated.classList.add("error");
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
