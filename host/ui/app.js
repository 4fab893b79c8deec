// The aimass page. `/` is the overview: every model with its calls/s, p99
// and errors over the last minute, and the first hierarchy drawn. A
// model's page draws its hierarchy as a graph (cytoscape) with live figures
// on every node and small plots of calls/s and p99 per node over the last
// minutes, all from the server's own counters (/metrics, see metrics.js),
// polled every second. Every string shown (names, labels, errors) is text,
// never markup.
"use strict";

const POLL_MS = 1000;
const RECENT_MS = 60_000; // errors count while this recent
const LATENCY_MS = 10_000; // p50 / p99 over this window
const page = {
  cy: null,
  model: null,
  history: new Metrics.History(RECENT_MS + 5_000),
  series: new Map(), // graph node id -> { calls, p99 }
  overview: [],
  ready: false,
  polls: 0,
};
window.aimass = page;

const $ = (id) => document.getElementById(id);
const getJson = async (url) => {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
};
const element = (tag, text, className) => {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
};
const ms = (seconds) =>
  seconds === null ? "–" : seconds === Infinity ? ">10 s" : `${(seconds * 1000).toFixed(seconds < 0.001 ? 2 : 1)} ms`;
const isClient = (status) => Number(status) >= 400 && Number(status) < 500;

// ---- the structure: a tree of uses from /v2/ui/graph/{model}
function elementsOf(tree) {
  const nodes = [];
  const edges = [];
  const walk = (use, id, parent) => {
    nodes.push({ data: { id, parent, name: use.name, kind: use.kind, role: use.role || "", detail: detailOf(use) } });
    const children = (use.members || []).map((member, i) => {
      const childId = `${id}/${i}`;
      walk(member, childId, id);
      return { id: childId, use: member };
    });
    edgesOf(use, children).forEach((e, i) => edges.push({ data: { id: `${id}#${i}`, ...e } }));
  };
  walk(tree, tree.name, undefined);
  return { nodes, edges };
}

// What the kind's section says, in a line.
function detailOf(use) {
  const s = use.section || {};
  switch (use.kind) {
    case "ensemble": return `combine: ${s.combine}`;
    case "switch": return s.parameter ? `on ${s.parameter}` : "by parameter";
    case "rollout": return `v${s.from} → v${s.to}`;
    default: return "";
  }
}

// The edges a composition draws between its members (ids in `children`).
function edgesOf(use, children) {
  const at = (i) => children[i] && children[i].id;
  const s = use.section || {};
  const edges = [];
  const link = (a, b, label, style) => a && b && edges.push({ source: a, target: b, label: label || "", style: style || "flow" });
  switch (use.kind) {
    case "sequence":
      children.slice(1).forEach((c, i) => link(at(i), c.id, ""));
      break;
    case "cascade":
      children.slice(1).forEach((c, i) => link(at(i), c.id, `below ${(s.stages || [])[i]?.threshold ?? "?"}`));
      break;
    case "dag": {
      // A step's inputs name `STEP.OUTPUT`: an edge from that step, skips included.
      const steps = s.steps || [];
      const index = new Map(steps.map((step, i) => [step.id, i]));
      steps.forEach((step, i) => {
        for (const source of Object.values(step.inputs || {})) {
          const from = index.get(String(source).split(".")[0]);
          if (from !== undefined) link(at(from), at(i), String(source), from < i - 1 ? "skip" : "flow");
        }
      });
      break;
    }
    case "shadow":
      link(at(0), at(1), "copy", "shadow");
      break;
    default:
      break; // ensemble, switch, splitter, rollout: members side by side
  }
  return edges;
}

// ---- drawing: at once, before any figures (a first look needs none)
function draw(tree) {
  const { nodes, edges } = elementsOf(tree);
  if (page.cy) page.cy.destroy();
  page.series = new Map(nodes.map((n) => [n.data.id, { calls: new Charts.Series(), p99: new Charts.Series() }]));
  page.cy = cytoscape({
    container: $("graph"),
    elements: [...nodes, ...edges],
    style: [
      { selector: "node", style: {
        "shape": "round-rectangle", "background-color": "#f4f6fb", "border-width": 1, "border-color": "#8899bb",
        "label": "data(label)", "text-wrap": "wrap", "text-valign": "center", "font-size": 13,
        "width": "label", "height": "label", "padding": "10px" } },
      { selector: ":parent", style: {
        "background-color": "#fbfbfb", "border-style": "dashed", "text-valign": "top", "text-halign": "center",
        "font-weight": "bold", "padding": "18px" } },
      { selector: "node.failing", style: { "border-color": "#d33", "border-width": 3, "background-color": "#fdecec" } },
      { selector: "node.client-errors", style: { "border-color": "#d90", "border-width": 2 } },
      { selector: "edge", style: {
        "curve-style": "bezier", "target-arrow-shape": "triangle", "width": 1.5, "line-color": "#8899bb",
        "target-arrow-color": "#8899bb", "label": "data(label)", "font-size": 12, "text-background-color": "#fff",
        "text-background-opacity": 1, "text-background-padding": "2px",
        // Above the boxes: a short edge into a hierarchy's box keeps its
        // whole label in view.
        "z-compound-depth": "top", "z-index": 10 } },
      { selector: 'edge[style = "skip"]', style: { "line-style": "dashed", "line-color": "#c80" } },
      { selector: 'edge[style = "shadow"]', style: { "line-style": "dotted" } },
    ],
  });
  page.cy.nodes().forEach((n) => n.data("label", labelOf(n.data(), null)));
  // breadthfirst, directed: each member one rank after what feeds it;
  // every hierarchy a box around its members. Room at the edges keeps
  // edge labels inside the canvas.
  page.cy.layout({
    name: "breadthfirst", directed: true, animate: false, nodeDimensionsIncludeLabels: true,
    spacingFactor: 1.7, padding: 40,
  }).run();
  page.cy.fit(undefined, 50);
  buildSeriesPanel();
}

// A node's label: name and kind, then its live figures (kept short: the
// narrower the nodes, the larger the graph is drawn).
function labelOf(d, live) {
  const head = [`${d.name} · ${d.kind}`, d.detail].filter(Boolean).join("\n");
  return live ? `${head}\n${live}` : head;
}

// ---- live figures for one graph node, over recent windows
function figures(d) {
  const h = page.history;
  const lines = [];
  const state = { failing: false, clientErrors: false, calls: 0, p99: null };
  const counted = (name, match, label) => {
    // Errors in the last minute mark the node; older ones are only told.
    const all = (h.now.series.get(name) || []).filter((s) => match(s.labels) && s.value > 0);
    if (!all.length) return false;
    const what = (s) => (label === "dropped" ? s.labels.model : s.labels.kind || s.labels.status);
    const grown = all.map((s) => {
      const key = JSON.stringify(s.labels);
      return { s, grew: h.growth(name, (l) => JSON.stringify(l) === key, RECENT_MS) };
    });
    if (grown.some(({ grew }) => grew === null)) {
      // One snapshot only: when they happened is not known yet.
      lines.push(`${label} since start: ${all.map((s) => `${what(s)} ${s.value}`).join(", ")}`);
      return false;
    }
    const recent = grown.filter(({ grew }) => grew > 0);
    if (recent.length) {
      lines.push(`${label} (last min): ${recent.map(({ s, grew }) => `${what(s)} ${grew}`).join(", ")}`);
      return true;
    }
    lines.push(`${label} before the last min: ${all.map((s) => `${what(s)} ${s.value}`).join(", ")}`);
    return false;
  };
  if (d.kind === "node") {
    const mine = (l) => l.node === d.name;
    const n = "aimass_node_duration_seconds";
    state.calls = h.rate(`${n}_count`, mine);
    state.p99 = h.quantile(n, mine, 0.99, 1_500);
    lines.push(`${state.calls.toFixed(1)} calls/s`);
    lines.push(`p99 ${ms(h.quantile(n, mine, 0.99, LATENCY_MS))}`);
    const now = h.now.series;
    lines.push(`in use ${Metrics.sum(now, "aimass_node_instances_in_use", mine)}/${Metrics.sum(now, "aimass_node_instances", mine)}`);
    state.failing = counted("aimass_plugin_failures_total", mine, "plugin errors");
    const batches = Metrics.sum(now, "aimass_batch_rows_count", mine);
    if (batches) {
      const rows = Metrics.sum(now, "aimass_batch_rows_sum", mine);
      lines.push(`${(rows / batches).toFixed(1)} rows/batch · queue p99 ${ms(h.quantile("aimass_batch_queue_duration_seconds", mine, 0.99, LATENCY_MS))}`);
    }
  } else {
    // Every call of the hierarchy, from the top of a request or inside
    // another one; requests that failed, when clients call it directly:
    // the client's mistakes (4xx) apart from failures (5xx).
    const mine = (l) => l.model === d.name;
    const n = "aimass_hierarchy_duration_seconds";
    state.calls = h.rate(`${n}_count`, mine);
    state.p99 = h.quantile(n, mine, 0.99, 1_500);
    lines.push(`${state.calls.toFixed(1)} calls/s`);
    lines.push(`p99 ${ms(h.quantile(n, mine, 0.99, LATENCY_MS))}`);
    const failures = "aimass_request_failures_total";
    state.clientErrors = counted(failures, (l) => mine(l) && isClient(l.status), "client errors");
    state.failing = counted(failures, (l) => mine(l) && !isClient(l.status), "failed");
    if (d.kind === "cascade") {
      const stage = (l) => l.cascade === d.name;
      const now = h.now.series;
      const all = Metrics.sum(now, "aimass_cascade_rows_total", stage);
      const stages = (now.get("aimass_cascade_rows_total") || []).filter((s) => stage(s.labels));
      if (all) lines.push(stages.map((s) => `stage ${s.labels.stage} ${(100 * s.value / all).toFixed(1)}%`).join(" · "));
    }
    if (counted("aimass_dropped_members_total", (l) => l.hierarchy === d.name, "dropped")) state.failing = true;
  }
  return { text: lines.join("\n"), ...state };
}

// ---- the plots beside the graph: calls/s and p99 per node
function buildSeriesPanel() {
  const panel = $("series");
  panel.replaceChildren(element("h2", "last minutes"));
  page.cy.nodes().forEach((n) => {
    const row = element("div", undefined, "series");
    row.dataset.node = n.id();
    row.append(element("div", n.data("name"), "series-name"));
    for (const [what, color] of [["calls", "#3366cc"], ["p99", "#cc6633"]]) {
      const line = element("div", undefined, "series-line");
      const canvas = element("canvas");
      canvas.dataset.series = what;
      canvas.dataset.color = color;
      line.append(element("span", what === "calls" ? "calls/s" : "p99", "series-label"), canvas, element("span", "–", "series-value"));
      row.append(line);
    }
    panel.append(row);
  });
}

function drawSeriesPanel() {
  for (const row of $("series").querySelectorAll("div.series")) {
    const series = page.series.get(row.dataset.node);
    if (!series) continue;
    for (const line of row.querySelectorAll("div.series-line")) {
      const canvas = line.querySelector("canvas");
      const which = series[canvas.dataset.series];
      Charts.sparkline(canvas, which, canvas.dataset.color);
      const last = which.last;
      line.querySelector(".series-value").textContent =
        canvas.dataset.series === "calls" ? (last === null ? "–" : last.toFixed(1)) : ms(last);
    }
  }
}

// ---- the overview: every model, its traffic and errors
function overviewRows(models) {
  const h = page.history;
  return models.map((m) => {
    const mine = (l) => l.model === m.name;
    const failures = "aimass_request_failures_total";
    const total = h.growth("aimass_requests_total", mine, RECENT_MS);
    const failed = h.growth(failures, (l) => mine(l) && !isClient(l.status), RECENT_MS);
    return {
      name: m.name,
      state: `v${m.version} ${m.state.toLowerCase()}`,
      calls: h.rate("aimass_requests_total", mine),
      p99: h.quantile("aimass_request_duration_seconds", mine, 0.99, LATENCY_MS),
      clientErrors: h.growth(failures, (l) => mine(l) && isClient(l.status), RECENT_MS),
      failed,
      errorRate: total ? failed / total : null,
    };
  });
}

function drawOverview() {
  const body = $("overview-rows");
  const rows = overviewRows(page.models || []);
  page.overview = rows;
  body.replaceChildren(
    ...rows.map((r) => {
      const tr = element("tr");
      const link = element("a", r.name);
      link.href = `/ui/models/${encodeURIComponent(r.name)}`;
      const name = element("td");
      name.append(link, element("span", ` ${r.state}`, "state"));
      const count = (v) => (v === null ? "–" : String(v));
      tr.append(
        name,
        element("td", r.calls.toFixed(1), "number"),
        element("td", ms(r.p99), "number"),
        element("td", r.errorRate === null ? "–" : `${(100 * r.errorRate).toFixed(1)}%`, "number"),
        element("td", count(r.failed), "number"),
        element("td", count(r.clientErrors), "number"),
      );
      if (r.failed > 0) tr.className = "failing";
      return tr;
    }),
  );
}

// ---- polling
async function poll() {
  try {
    const at = performance.now();
    page.history.add(at, Metrics.parse(await (await fetch("/metrics")).text()));
    if (page.cy) {
      page.cy.nodes().forEach((n) => {
        const live = figures(n.data());
        n.data("label", labelOf(n.data(), live.text));
        n.data("live", live.text);
        n.toggleClass("failing", live.failing);
        n.toggleClass("client-errors", live.clientErrors && !live.failing);
        const series = page.series.get(n.id());
        if (series && page.history.previous) {
          series.calls.add(at, live.calls);
          series.p99.add(at, live.p99);
        }
      });
      drawSeriesPanel();
    }
    if (page.model === null) drawOverview();
    page.polls += 1;
    $("status").textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    $("status").textContent = `not updated: ${e.message}`;
  }
}

async function show(model) {
  page.model = model;
  $("title").textContent = model;
  $("overview").hidden = true;
  document.querySelectorAll("#models a").forEach((a) => a.classList.toggle("current", a.dataset.model === model));
  draw(await getJson(`/v2/ui/graph/${encodeURIComponent(model)}`));
  page.ready = true;
}

// The overview, and the first hierarchy (a model that is not a lone node).
async function showOverview() {
  page.model = null;
  $("title").textContent = "all models";
  $("overview").hidden = false;
  document.querySelectorAll("#models a").forEach((a) => a.classList.remove("current"));
  drawOverview();
  for (const m of page.models || []) {
    const tree = await getJson(`/v2/ui/graph/${encodeURIComponent(m.name)}`).catch(() => null);
    if (tree && tree.kind !== "node") {
      $("graph-title").textContent = `${m.name}, the first hierarchy`;
      draw(tree);
      break;
    }
  }
  page.ready = true;
}

function route() {
  const linked = location.pathname.match(/^\/ui\/models\/(.+)$/);
  return linked ? show(decodeURIComponent(linked[1])) : showOverview();
}

async function start() {
  const { models } = await getJson("/v2/ui/models");
  page.models = models;
  $("models").replaceChildren();
  const overview = element("a", "overview");
  overview.href = "/";
  overview.onclick = (e) => { e.preventDefault(); history.pushState({}, "", "/"); showOverview(); };
  $("models").appendChild(overview);
  for (const m of models) {
    const a = document.createElement("a");
    a.href = `/ui/models/${encodeURIComponent(m.name)}`;
    a.dataset.model = m.name;
    // Names come from the config and plugins: text, never markup.
    a.append(document.createTextNode(`${m.name} `), element("span", `v${m.version} ${m.state.toLowerCase()}`, "state"));
    a.onclick = (e) => { e.preventDefault(); history.pushState({}, "", a.href); $("graph-title").textContent = ""; show(m.name); };
    $("models").appendChild(a);
  }
  await route();
  await poll();
  setInterval(poll, POLL_MS);
}

window.onpopstate = () => route();
start();
