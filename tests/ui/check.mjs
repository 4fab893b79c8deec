// Opens an aimass page (`/` or `/ui/models/MODEL`) in headless Chromium
// (puppeteer-core) and prints what it drew, twice a few polls apart, as
// JSON; saves a screenshot. Run by tests/ui.rs:
//
//   node check.mjs BASE_URL PATH SCREENSHOT.png [no-metrics]
//
// With `no-metrics`, every request for /metrics fails: the page must still
// draw (and the second snapshot is taken without waiting for polls).
// The browser is `$AIMASS_CHROMIUM` (default `chromium`).
import puppeteer from "puppeteer-core";

const [base, path, screenshot, mode] = process.argv.slice(2);
const noMetrics = mode === "no-metrics";
const browser = await puppeteer.launch({
  executablePath: process.env.AIMASS_CHROMIUM || "chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 900 });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("requestfailed", (r) => {
    if (!(noMetrics && r.url().endsWith("/metrics"))) errors.push(`${r.url()}: ${r.failure()?.errorText}`);
  });
  // What the page's Content-Security-Policy refused: the page itself
  // must need nothing it forbids.
  page.on("console", (m) => {
    if (m.type() === "error" && m.text().includes("Content Security Policy")) errors.push(m.text());
  });
  if (noMetrics) {
    await page.setRequestInterception(true);
    page.on("request", (r) => (new URL(r.url()).pathname === "/metrics" ? r.abort() : r.continue()));
  }
  // The page's own link, as a user would open it.
  await page.goto(`${base}${path}`, { waitUntil: "load" });
  await page.waitForFunction(() => window.aimass && window.aimass.ready, { timeout: 30000 });
  const snapshot = () =>
    page.evaluate(() => ({
      nodes: window.aimass.cy.nodes().map((n) => ({
        id: n.id(),
        name: n.data("name"),
        kind: n.data("kind"),
        parent: n.data("parent") || null,
        live: n.data("live") || "",
        failing: n.hasClass("failing"),
      })),
      edges: window.aimass.cy.edges().map((e) => ({
        source: e.data("source"),
        target: e.data("target"),
        label: e.data("label"),
      })),
      polls: window.aimass.polls,
      title: document.getElementById("title").textContent,
      graphTitle: document.getElementById("graph-title").textContent,
      status: document.getElementById("status").textContent,
      overview: document.getElementById("overview").hidden ? null : window.aimass.overview,
      // Each node's plotted points (calls/s, p99) and its drawn canvases.
      series: Object.fromEntries(
        [...window.aimass.series.entries()].map(([id, s]) => [
          id,
          { calls: s.calls.points.map((p) => p.value), p99: s.p99.points.map((p) => p.value) },
        ]),
      ),
      canvases: document.querySelectorAll("#series canvas").length,
      links: [...document.querySelectorAll("#models a")].map((a) => a.getAttribute("href")),
      linkTexts: [...document.querySelectorAll("#models a")].map((a) => a.textContent),
      // Set only by script smuggled in through a name (tests/configs/ui_hostile.toml).
      pwned: window.__pwned || null,
      injected: document.querySelectorAll("#models img, #models script, #models iframe").length,
    }));
  const first = await snapshot();
  if (noMetrics) await new Promise((r) => setTimeout(r, 2000));
  else await page.waitForFunction((p) => window.aimass.polls >= p + 4, { timeout: 15000 }, first.polls);
  const second = await snapshot();
  await page.screenshot({ path: screenshot });
  console.log(JSON.stringify({ first, second, errors }));
} finally {
  await browser.close();
}
