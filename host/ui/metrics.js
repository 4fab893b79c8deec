// The server's Prometheus counters (/metrics) as the page reads them: parsed
// snapshots, kept for the last minutes, so that every figure is over a
// recent window (an error from ten minutes ago no longer marks a node).
"use strict";

const Metrics = (() => {
  // Prometheus text: series name -> [{labels, value}].
  function parse(text) {
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

  // A quantile of a histogram over the window between two snapshots.
  function quantile(now, before, name, match, q) {
    const buckets = new Map();
    const add = (series, sign) => {
      for (const s of series.get(`${name}_bucket`) || []) {
        if (!match(s.labels)) continue;
        const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
        buckets.set(le, (buckets.get(le) || 0) + sign * s.value);
      }
    };
    add(now, 1);
    if (before) add(before, -1);
    const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
    const total = sorted.length ? sorted[sorted.length - 1][1] : 0;
    if (total <= 0) return null;
    const wanted = sorted.find(([, count]) => count >= q * total);
    return wanted ? wanted[0] : null;
  }

  // Snapshots of the last `keepMs`, newest last; a window reads two of them.
  class History {
    constructor(keepMs) {
      this.keepMs = keepMs;
      this.snapshots = [];
    }
    add(at, series) {
      this.snapshots.push({ at, series });
      while (this.snapshots.length > 2 && at - this.snapshots[1].at > this.keepMs) this.snapshots.shift();
    }
    get now() {
      return this.snapshots[this.snapshots.length - 1] || null;
    }
    get previous() {
      return this.snapshots[this.snapshots.length - 2] || null;
    }
    // The oldest snapshot within `ms` of the newest (null with one only).
    since(ms) {
      const now = this.now;
      if (!now || this.snapshots.length < 2) return null;
      return this.snapshots.find((s) => now.at - s.at <= ms && s !== now) || this.previous;
    }
    // How much a counter grew over the last `ms` (null: no window yet).
    growth(name, match, ms) {
      const base = this.since(ms);
      if (!base) return null;
      return sum(this.now.series, name, match) - sum(base.series, name, match);
    }
    // A counter's rate per second between the last two snapshots.
    rate(name, match) {
      const [now, before] = [this.now, this.previous];
      if (!now || !before) return 0;
      return (sum(now.series, name, match) - sum(before.series, name, match)) / ((now.at - before.at) / 1000);
    }
    // A histogram's quantile over the last `ms`.
    quantile(name, match, q, ms) {
      const base = this.since(ms);
      return this.now ? quantile(this.now.series, base && base.series, name, match, q) : null;
    }
  }

  return { parse, sum, quantile, History };
})();
