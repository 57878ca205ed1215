// The fault lab: one form per mock service, presets, and the last requests each one saw.
// Plain fetch() against this page's own origin (mock_services.lab); no build step.
"use strict";

// [field, label, input attributes]; rates are probabilities per request (0-1).
const FIELDS = [
  ["latency_ms", "Latency (ms)", { type: "number", min: 0, max: 600000, step: 1 }],
  ["jitter_ms", "Jitter (ms)", { type: "number", min: 0, max: 600000, step: 1 }],
  ["error_rate", "Error rate (0-1)", { type: "number", min: 0, max: 1, step: 0.01 }],
  ["error_status", "Error status", { type: "number", min: 400, max: 599, step: 1 }],
  ["slow_rate", "Slow rate (0-1)", { type: "number", min: 0, max: 1, step: 0.01 }],
  ["slow_ms", "Slow extra (ms)", { type: "number", min: 0, max: 600000, step: 1 }],
  ["malformed_rate", "Malformed rate (0-1)", { type: "number", min: 0, max: 1, step: 0.01 }],
  ["wrong_schema_rate", "Wrong schema rate (0-1)", { type: "number", min: 0, max: 1, step: 0.01 }],
  ["reset_rate", "Reset rate (0-1)", { type: "number", min: 0, max: 1, step: 0.01 }],
  ["seed", "Seed (blank: none)", { type: "number", step: 1 }],
  ["cache_control", "Cache-Control", { type: "text" }],
  ["etag", "Send ETag", { type: "checkbox" }],
];
const RECENT_SHOWN = 12;
const POLL_MS = 1000;

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

function notify(text, isError = false) {
  const notice = document.getElementById("notice");
  notice.textContent = text;
  notice.classList.toggle("error", isError);
}

async function call(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json();
  if (!response.ok) {
    throw new Error(data.detail || data.title || `${method} ${path}: ${response.status}`);
  }
  return data;
}

function fillForm(kind, faults) {
  for (const [field, , attrs] of FIELDS) {
    const input = document.getElementById(`${kind}-${field}`);
    if (attrs.type === "checkbox") input.checked = Boolean(faults[field]);
    else input.value = faults[field] === null ? "" : String(faults[field]);
  }
  document.getElementById(`${kind}-inforce`).textContent = JSON.stringify(faults, null, 1);
}

function readForm(kind) {
  const faults = {};
  for (const [field, , attrs] of FIELDS) {
    const input = document.getElementById(`${kind}-${field}`);
    if (attrs.type === "checkbox") faults[field] = input.checked;
    else if (attrs.type === "text") faults[field] = input.value;
    else if (input.value !== "") faults[field] = Number(input.value);
  }
  return faults;
}

function serviceCard(kind, url) {
  const fields = el("div", { class: "fields" });
  for (const [field, label, attrs] of FIELDS) {
    const id = `${kind}-${field}`;
    fields.append(el("label", { for: id, text: label }), el("input", { id, name: field, ...attrs }));
  }
  const apply = el("button", { type: "submit", text: "Apply" });
  const reset = el("button", { type: "button", class: "secondary", text: "Reset" });
  const form = el("form", { "aria-label": `${kind} faults` }, fields, el("div", { class: "actions" }, apply, reset));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      fillForm(kind, await call("PUT", `/services/${kind}/__faults`, readForm(kind)));
      notify(`${kind}: faults applied`);
    } catch (error) {
      notify(`${kind}: ${error.message}`, true);
    }
  });
  reset.addEventListener("click", async () => {
    fillForm(kind, await call("DELETE", `/services/${kind}/__faults`));
    notify(`${kind}: back to its defaults`);
  });
  const table = el("table", { id: `${kind}-recent` },
    el("caption", { class: "visually-hidden", text: `Recent requests to ${kind}` }),
    el("thead", {}, el("tr", {}, ...["Time", "Path", "Status", "ms", "Fault"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody"));
  return el("section", { class: "service", id: `service-${kind}`, "aria-labelledby": `${kind}-title` },
    el("h2", { id: `${kind}-title` }, kind, el("a", { href: `${url}/__faults`, text: url })),
    form,
    el("h3", { text: "In force" }), el("pre", { id: `${kind}-inforce` }),
    el("h3", { text: "Recent requests" }), el("p", { id: `${kind}-count`, class: "notice" }), table);
}

function showStats(kind, stats) {
  document.getElementById(`${kind}-count`).textContent =
    `${stats.requests} requests since start, ${stats.budget_exceeded} cut by the caller's budget`;
  const rows = stats.recent.slice(-RECENT_SHOWN).reverse().map((r) => el("tr", {},
    el("td", { text: new Date(r.arrived_at * 1000).toLocaleTimeString() }),
    el("td", { text: r.path }),
    el("td", { text: r.status === null ? "…" : String(r.status) }),
    el("td", { class: "num", text: r.duration_ms === null ? "" : r.duration_ms.toFixed(1) }),
    el("td", { class: "fault", text: r.fault || "" })));
  document.querySelector(`#${kind}-recent tbody`).replaceChildren(...rows);
}

async function applyPreset(name, kinds) {
  try {
    for (const kind of kinds) {
      fillForm(kind, await call("PUT", `/services/${kind}/__faults?preset=${encodeURIComponent(name)}`));
    }
    notify(`preset ${name} applied to ${kinds.join(", ")}`);
  } catch (error) {
    notify(error.message, true);
  }
}

async function poll(kinds) {
  for (const kind of kinds) {
    try {
      showStats(kind, await call("GET", `/services/${kind}/__stats?recent=${RECENT_SHOWN}`));
      const faults = await call("GET", `/services/${kind}/__faults`);
      document.getElementById(`${kind}-inforce`).textContent = JSON.stringify(faults, null, 1);
    } catch (error) {
      notify(`${kind}: ${error.message}`, true);
    }
  }
  setTimeout(() => poll(kinds), POLL_MS);
}

async function start() {
  const services = await call("GET", "/services");
  const kinds = services.map((s) => s.kind);
  const holder = document.getElementById("services");
  for (const { kind, url } of services) holder.append(serviceCard(kind, url));
  for (const kind of kinds) fillForm(kind, await call("GET", `/services/${kind}/__faults`));
  const presets = document.getElementById("presets");
  for (const preset of await call("GET", "/presets")) {
    const button = el("button", { type: "button", "data-preset": preset.name, text: preset.name });
    button.addEventListener("click", () => applyPreset(preset.name, kinds));
    presets.append(el("div", { class: "preset" }, button, el("small", { text: preset.description })));
  }
  document.body.dataset.ready = "true";
  poll(kinds);
}

start().catch((error) => notify(`cannot load the lab: ${error.message}`, true));
