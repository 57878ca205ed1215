// The storefront's product page, read from the BFF's incremental answer (docs/contract.md):
//   first line  {"product": {...}, <optional parts already at hand>, "pending": [...]}
//   part line   {"part": "reviews", "reviews": [...], "reviewSummary": {...}}   ("reason" when
//               degraded, "age" when served from a stale copy)
//   last line   {"done": true, "degraded": {...}, "stale": {...}, "error": "...", "timings": {...}}
// A plain JSON answer (a proxy buffered the stream) renders the same page from one object.
// No build step, no library: fetch() and response.body.getReader().
"use strict";

const PARTS = ["reviews", "inventory"];
const REASONS = {
  timeout: "took too long",
  circuit_open: "switched off for a moment",
  unavailable: "unreachable",
  bad_response: "sent an answer we could not read",
  overloaded: "too busy",
};
const price = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });

// What the page rendered and when (ms after the request left), for the curious and the tests.
window.storefrontRenders = [];
let requestStarted = 0;
let generation = 0;

const $ = (id) => document.getElementById(id);
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

function mark(what) {
  window.storefrontRenders.push({ what, at: Math.round(performance.now() - requestStarted) });
}

function setText(id, text, className) {
  const node = $(id);
  node.textContent = text;
  if (className !== undefined) node.className = className;
}

function staleLabel(age) {
  return `Saved copy, ${age} s old`;
}

function resetPage(id) {
  window.storefrontRenders = [];
  $("problem").hidden = true;
  $("product").hidden = false;
  $("product").setAttribute("aria-busy", "true");
  setText("product-name", `Loading ${id}…`);
  setText("product-description", "");
  setText("product-price", "");
  $("stale-product").hidden = true;
  for (const part of PARTS) $(part === "reviews" ? "reviews" : "stock").hidden = false;
  setText("stock-text", "Checking stock…", "pending");
  setText("reviews-summary", "Loading reviews…", "pending");
  $("reviews-list").replaceChildren();
  setText("timing-note", "Waiting for the answer…", "muted");
  $("waterfall").replaceChildren();
}

function showProblem(title, detail) {
  const problem = $("problem");
  problem.textContent = detail ? `${title}: ${detail}` : title;
  problem.hidden = false;
  $("product").hidden = true;
  setText("timing-note", "No answer to show.", "muted");
  mark("problem");
}

function renderProduct(product) {
  setText("product-name", product.name);
  setText("product-description", product.description);
  setText("product-price", price.format(product.price / 100));
  document.title = `${product.name} · Gadget Store`;
  mark("product");
}

function stars(rating) {
  return el("span", { class: "stars", role: "img", "aria-label": `${rating} out of 5 stars`,
    text: "★".repeat(rating) + "☆".repeat(5 - rating) });
}

function renderReviews(line) {
  const list = $("reviews-list");
  list.replaceChildren();
  if (line.reason) {
    setText("reviews-summary", `Reviews unavailable (the review service ${REASONS[line.reason] || line.reason}).`, "degraded");
  } else {
    const reviews = line.reviews || [];
    const summary = line.reviewSummary || { count: reviews.length, averageRating: null };
    setText("reviews-summary", summary.count === 0 ? "No reviews yet."
      : `${summary.averageRating.toFixed(1)} out of 5 from ${summary.count} review${summary.count === 1 ? "" : "s"}.`, "");
    for (const review of reviews) {
      list.append(el("li", {}, stars(review.rating), " ", el("q", { text: review.comment }), ` by ${review.author}`));
    }
  }
  if (line.age !== undefined) $("reviews-summary").append(" ", el("span", { class: "stale", text: staleLabel(line.age) }));
  mark(line.reason ? "reviews:degraded" : "reviews");
}

function renderInventory(line) {
  const inventory = line.inventory;
  if (line.reason || inventory === null || inventory === undefined) {
    const why = line.reason ? ` (the stock service ${REASONS[line.reason] || line.reason})` : "";
    setText("stock-text", `Stock unknown${why}.`, "degraded");
  } else if (inventory.stock > 0) {
    setText("stock-text", `In stock: ${inventory.stock} left.`, "in-stock");
  } else {
    setText("stock-text", "Out of stock.", "out-of-stock");
  }
  if (line.age !== undefined) $("stock-text").append(" ", el("span", { class: "stale", text: staleLabel(line.age) }));
  mark(line.reason || !inventory ? "inventory:degraded" : "inventory");
}

const RENDER = { reviews: renderReviews, inventory: renderInventory };
const KEYS = { reviews: ["reviews", "reviewSummary"], inventory: ["inventory"] };

function partOf(source, part, reason, age) {
  const line = { part };
  for (const key of KEYS[part]) line[key] = source[key];
  if (reason) line.reason = reason;
  if (age !== undefined) line.age = age;
  return line;
}

function renderFirst(line) {
  renderProduct(line.product);
  const pending = line.pending || [];
  for (const part of PARTS) {
    if (KEYS[part][0] in line) RENDER[part](partOf(line, part));
    else if (!pending.includes(part)) $(part === "reviews" ? "reviews" : "stock").hidden = true; // not asked for
  }
}

function renderTimings(timings, degraded) {
  const names = Object.keys(timings).filter((n) => n !== "total");
  if ("total" in timings) names.push("total");
  const longest = Math.max(1, ...names.map((n) => timings[n]));
  $("waterfall").replaceChildren(...names.map((name) => {
    const bar = el("div", { class: `bar${degraded[name] ? " bar-degraded" : ""}${name === "total" ? " bar-total" : ""}` });
    bar.style.width = `${(100 * timings[name]) / longest}%`;
    const label = degraded[name] ? `${name} (${degraded[name]})` : name;
    return el("li", { "data-part": name }, el("span", { text: label }), el("div", { class: "track", "aria-hidden": "true" }, bar),
      el("span", { class: "ms", text: `${timings[name].toFixed(1)} ms` }));
  }));
}

function finish(last) {
  const degraded = last.degraded || {};
  const stale = last.stale || {};
  if (stale.product !== undefined) {
    $("stale-product").textContent = staleLabel(stale.product);
    $("stale-product").hidden = false;
  }
  renderTimings(last.timings || {}, degraded);
  const took = Math.round(performance.now() - requestStarted);
  const first = window.storefrontRenders.find((r) => r.what === "product");
  const parts = [`Product shown after ${first ? first.at : took} ms, page complete after ${took} ms.`];
  if (last.error) parts.push(`Degraded: ${last.error}.`);
  setText("timing-note", parts.join(" "), last.error ? "degraded" : "muted");
  $("product").setAttribute("aria-busy", "false");
  mark("done");
}

function apply(line) {
  if ("product" in line) renderFirst(line);
  else if ("part" in line && RENDER[line.part]) RENDER[line.part](line);
  else if (line.done) finish(line);
}

// "product;dur=51.2, reviews;dur=80.4;desc=\"timeout\"" -> {timings, degraded}
function parseServerTiming(header) {
  const timings = {};
  for (const entry of (header || "").split(",")) {
    const [name, ...params] = entry.split(";").map((p) => p.trim());
    const dur = params.find((p) => p.startsWith("dur="));
    if (name && dur) timings[name] = Number(dur.slice(4));
  }
  return timings;
}

function applyWhole(body, serverTiming) {
  const degraded = body.degraded || {};
  const stale = body.stale || {};
  renderProduct(body.product);
  for (const part of PARTS) {
    if (KEYS[part][0] in body) RENDER[part](partOf(body, part, degraded[part], stale[part]));
    else $(part === "reviews" ? "reviews" : "stock").hidden = true;
  }
  finish({ done: true, degraded, stale, error: body.error, timings: parseServerTiming(serverTiming) });
}

async function readLines(response, onLine) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line) onLine(JSON.parse(line));
    }
  }
  buffered += decoder.decode();
  if (buffered.trim()) onLine(JSON.parse(buffered));
}

async function problemTitle(response) {
  try {
    const problem = await response.json();
    return [problem.title || `Error ${response.status}`, problem.detail];
  } catch {
    return [`Error ${response.status}`, ""];
  }
}

async function load(config, id) {
  const mine = ++generation;
  resetPage(id);
  requestStarted = performance.now();
  let response;
  try {
    response = await fetch(`${config.bffUrl}/product-details/${encodeURIComponent(id)}`, {
      headers: { Accept: "application/x-ndjson" },
    });
  } catch (error) {
    showProblem("The shop cannot be reached right now", error.message);
    return;
  }
  if (mine !== generation) return; // another product was asked for meanwhile
  const type = (response.headers.get("Content-Type") || "").split(";")[0].trim().toLowerCase();
  try {
    if (!response.ok) {
      showProblem(...(await problemTitle(response)));
    } else if (type === "application/x-ndjson") {
      await readLines(response, (line) => mine === generation && apply(line));
    } else {
      applyWhole(await response.json(), response.headers.get("Server-Timing"));
    }
  } catch (error) {
    showProblem("The answer could not be read", error.message);
  }
}

async function start() {
  const config = await (await fetch("/config.json")).json();
  const input = $("product-id");
  const wanted = () => new URLSearchParams(window.location.search).get("id") || input.value;
  input.value = wanted();
  $("choose").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = input.value.trim();
    window.history.pushState({}, "", `?id=${encodeURIComponent(id)}`);
    load(config, id);
  });
  window.addEventListener("popstate", () => {
    input.value = wanted();
    load(config, input.value);
  });
  document.body.dataset.ready = "true";
  await load(config, input.value);
}

start().catch((error) => showProblem("The page could not start", error.message));
