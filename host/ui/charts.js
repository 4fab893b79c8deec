// Small time-series plots (calls/s and p99 per node over the last minutes),
// drawn on canvases from the points the page gathers as it polls.
"use strict";

const Charts = (() => {
  const KEEP_POINTS = 300; // five minutes at one poll a second

  // The points of one series, oldest first, at most KEEP_POINTS.
  class Series {
    constructor() {
      this.points = [];
    }
    add(at, value) {
      this.points.push({ at, value });
      if (this.points.length > KEEP_POINTS) this.points.shift();
    }
    get last() {
      return this.points.length ? this.points[this.points.length - 1].value : null;
    }
  }

  // Draws `series` as a line filling `canvas`, scaled to its own maximum;
  // gaps (null values: nothing measured) are left out.
  function sparkline(canvas, series, color) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 140;
    const height = canvas.clientHeight || 32;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    const g = canvas.getContext("2d");
    g.scale(ratio, ratio);
    g.clearRect(0, 0, width, height);
    g.strokeStyle = "#e3e6ee";
    g.beginPath();
    g.moveTo(0, height - 0.5);
    g.lineTo(width, height - 0.5);
    g.stroke();
    const points = series.points;
    const values = points.map((p) => p.value).filter((v) => v !== null && Number.isFinite(v));
    if (points.length < 2 || !values.length) return;
    const max = Math.max(...values) || 1;
    const first = points[0].at;
    const span = Math.max(points[points.length - 1].at - first, 1);
    g.strokeStyle = color;
    g.lineWidth = 1.5;
    g.beginPath();
    let drawing = false;
    for (const p of points) {
      if (p.value === null || !Number.isFinite(p.value)) {
        drawing = false;
        continue;
      }
      const x = ((p.at - first) / span) * (width - 2) + 1;
      const y = height - 2 - (p.value / max) * (height - 6);
      if (drawing) g.lineTo(x, y);
      else g.moveTo(x, y);
      drawing = true;
    }
    g.stroke();
  }

  return { Series, sparkline, KEEP_POINTS };
})();
