// The aimass page: the models, a model's hierarchy drawn as a graph
// (cytoscape, `cose` layout), and live figures on every node from the
// server's own Prometheus counters (/metrics), polled every second.
"use strict";

const POLL_MS = 1000;
const page = { cy: null, model: null, previous: null, ready: false };
window.aimass = page;

const $ = (id) => document.getElementById(id);
const getJson = async (url) => {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
};

// ---- Prometheus text: series name -> [{labels, value}]
function parseMetrics(text) {
  const series = new Map();
  for (const line of text.split("\n")) {
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{([^}]*)\})? ([^ ]+)/);
    if (!m) continue;
    const labels = {};
    for (const pair of (m[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    if (!series.has(m[1])) series.set(m[1], []);
    series.get(m[1]).push({ labels, value: Number(m[4]) });
  }
  return series;
}

const sum = (series, name, match) =>
  (series.get(name) || []).filter((s) => match(s.labels)).reduce((a, s) => a + s.value, 0);

// A quantile from two snapshots of a histogram's buckets (the window between).
function quantile(now, before, name, match, q) {
  const buckets = new Map();
  for (const s of now.get(`${name}_bucket`) || []) {
    if (!match(s.labels)) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) || 0) + s.value);
  }
  for (const s of (before && before.get(`${name}_bucket`)) || []) {
    if (!match(s.labels)) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) || 0) - s.value);
  }
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const total = sorted.length ? sorted[sorted.length - 1][1] : 0;
  if (total <= 0) return null;
  const wanted = sorted.find(([, count]) => count >= q * total);
  return wanted ? wanted[0] : null;
}

const ms = (seconds) => (seconds === null ? "–" : seconds === Infinity ? ">10 s" : `${(seconds * 1000).toFixed(seconds < 0.001 ? 2 : 1)} ms`);

// ---- the structure: a tree of uses from /v2/ui/graph/{model}
function elementsOf(tree) {
  const nodes = [];
  const edges = [];
  const walk = (use, id, parent) => {
    const kind = use.kind;
    nodes.push({ data: { id, parent, name: use.name, kind, role: use.role || "", detail: detailOf(use) } });
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

// ---- drawing
function draw(tree) {
  const { nodes, edges } = elementsOf(tree);
  if (page.cy) page.cy.destroy();
  page.cy = cytoscape({
    container: $("graph"),
    elements: [...nodes, ...edges],
    style: [
      { selector: "node", style: {
        "shape": "round-rectangle", "background-color": "#f4f6fb", "border-width": 1, "border-color": "#8899bb",
        "label": "data(label)", "text-wrap": "wrap", "text-valign": "center", "font-size": 10,
        "width": "label", "height": "label", "padding": "8px" } },
      { selector: ":parent", style: {
        "background-color": "#fbfbfb", "border-style": "dashed", "text-valign": "top", "text-halign": "center",
        "font-weight": "bold" } },
      { selector: "node.failing", style: { "border-color": "#d33", "border-width": 3, "background-color": "#fdecec" } },
      { selector: "edge", style: {
        "curve-style": "bezier", "target-arrow-shape": "triangle", "width": 1.5, "line-color": "#8899bb",
        "target-arrow-color": "#8899bb", "label": "data(label)", "font-size": 9, "text-background-color": "#fff",
        "text-background-opacity": 1 } },
      { selector: 'edge[style = "skip"]', style: { "line-style": "dashed", "line-color": "#c80" } },
      { selector: 'edge[style = "shadow"]', style: { "line-style": "dotted" } },
    ],
  });
  page.cy.nodes().forEach((n) => n.data("label", labelOf(n.data(), null)));
  // breadthfirst, directed: each member one rank after what feeds it;
  // every hierarchy a box around its members.
  page.cy.layout({
    name: "breadthfirst", directed: true, animate: false, nodeDimensionsIncludeLabels: true,
    spacingFactor: 1.6, padding: 20,
  }).run();
  page.cy.fit(undefined, 30);
}

// A node's label: name, kind and role, then its live figures.
function labelOf(d, live) {
  const head = [`${d.name} · ${d.kind}`, d.role, d.detail].filter(Boolean).join("\n");
  return live ? `${head}\n${live}` : head;
}

// ---- live figures for every node from two snapshots of /metrics
function figures(d, now, before, seconds) {
  const delta = (name, match) => sum(now, name, match) - (before ? sum(before, name, match) : 0);
  const rate = (name, match) => (before ? delta(name, match) / seconds : 0);
  const lines = [];
  let failing = false;
  if (d.kind === "node") {
    const mine = (l) => l.node === d.name;
    lines.push(`${rate("aimass_node_duration_seconds_count", mine).toFixed(1)} calls/s`);
    lines.push(`p50 ${ms(quantile(now, before, "aimass_node_duration_seconds", mine, 0.5))} · p99 ${ms(quantile(now, before, "aimass_node_duration_seconds", mine, 0.99))}`);
    lines.push(`in use ${sum(now, "aimass_node_instances_in_use", mine)} of ${sum(now, "aimass_node_instances", mine)}`);
    const failures = (now.get("aimass_plugin_failures_total") || []).filter((s) => mine(s.labels) && s.value > 0);
    if (failures.length) {
      failing = true;
      lines.push("errors: " + failures.map((s) => `${s.labels.kind} ${s.value}`).join(", "));
    }
    const batches = sum(now, "aimass_batch_rows_count", mine);
    if (batches) {
      const rows = sum(now, "aimass_batch_rows_sum", mine);
      lines.push(`${(rows / batches).toFixed(1)} rows/batch · queue p99 ${ms(quantile(now, before, "aimass_batch_queue_duration_seconds", mine, 0.99))}`);
    }
  } else {
    // Every call of the hierarchy, from the top of a request or inside
    // another one; requests that failed, when clients call it directly.
    const mine = (l) => l.model === d.name;
    const h = "aimass_hierarchy_duration_seconds";
    lines.push(`${rate(`${h}_count`, mine).toFixed(1)} calls/s`);
    lines.push(`p50 ${ms(quantile(now, before, h, mine, 0.5))} · p99 ${ms(quantile(now, before, h, mine, 0.99))}`);
    const failed = sum(now, "aimass_request_failures_total", mine);
    if (failed) {
      failing = true;
      lines.push(`failed requests ${failed}`);
    }
    if (d.kind === "cascade") {
      const mine = (l) => l.cascade === d.name;
      const all = sum(now, "aimass_cascade_rows_total", mine);
      const stages = (now.get("aimass_cascade_rows_total") || []).filter((s) => mine(s.labels));
      if (all) lines.push(stages.map((s) => `stage ${s.labels.stage} ${(100 * s.value / all).toFixed(1)}%`).join(" · "));
    }
    const dropped = (now.get("aimass_dropped_members_total") || []).filter((s) => s.labels.hierarchy === d.name && s.value > 0);
    if (dropped.length) {
      failing = true;
      lines.push("dropped: " + dropped.map((s) => `${s.labels.model} ${s.value}`).join(", "));
    }
  }
  return { text: lines.join("\n"), failing };
}

async function poll() {
  try {
    const started = performance.now();
    const now = parseMetrics(await (await fetch("/metrics")).text());
    const before = page.previous;
    const seconds = before ? (started - before.at) / 1000 : 1;
    if (page.cy) {
      page.cy.nodes().forEach((n) => {
        const live = figures(n.data(), now, before && before.series, seconds);
        n.data("label", labelOf(n.data(), live.text));
        n.data("live", live.text);
        n.toggleClass("failing", live.failing);
      });
    }
    page.previous = { series: now, at: started };
    page.polls = (page.polls || 0) + 1;
    $("status").textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    $("status").textContent = `not updated: ${e.message}`;
  }
}

async function show(model) {
  page.model = model;
  page.ready = false;
  $("title").textContent = model;
  document.querySelectorAll("#models a").forEach((a) => a.classList.toggle("current", a.dataset.model === model));
  draw(await getJson(`/v2/ui/graph/${encodeURIComponent(model)}`));
  page.previous = null;
  await poll();
  page.ready = true;
}

async function start() {
  const { models } = await getJson("/v2/ui/models");
  $("models").replaceChildren();
  for (const m of models) {
    const a = document.createElement("a");
    a.href = `/ui/models/${encodeURIComponent(m.name)}`;
    a.dataset.model = m.name;
    // Names come from the config and plugins: text, never markup.
    const state = document.createElement("span");
    state.className = "state";
    state.textContent = `v${m.version} ${m.state.toLowerCase()}`;
    a.append(document.createTextNode(`${m.name} `), state);
    a.onclick = (e) => { e.preventDefault(); history.pushState({}, "", a.href); show(m.name); };
    $("models").appendChild(a);
  }
  const linked = location.pathname.match(/^\/ui\/models\/(.+)$/);
  if (linked) await show(decodeURIComponent(linked[1]));
  setInterval(poll, POLL_MS);
}

window.onpopstate = () => {
  const linked = location.pathname.match(/^\/ui\/models\/(.+)$/);
  if (linked) show(decodeURIComponent(linked[1]));
};
start();
