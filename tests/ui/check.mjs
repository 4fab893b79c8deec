// Opens the aimass page for one model in headless Chromium (puppeteer-core)
// and prints what it drew, twice a few polls apart, as JSON; saves a
// screenshot. Run by tests/ui.rs:
//
//   node check.mjs BASE_URL MODEL SCREENSHOT.png
//
// The browser is `$AIMASS_CHROMIUM` (default `chromium`).
import puppeteer from "puppeteer-core";

const [base, model, screenshot] = process.argv.slice(2);
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
  page.on("requestfailed", (r) => errors.push(`${r.url()}: ${r.failure()?.errorText}`));
  // What the page's Content-Security-Policy refused: the page itself
  // must need nothing it forbids.
  page.on("console", (m) => {
    if (m.type() === "error" && m.text().includes("Content Security Policy")) errors.push(m.text());
  });
  // The model's own link, as a user would open it.
  await page.goto(`${base}/ui/models/${encodeURIComponent(model)}`, { waitUntil: "load" });
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
      links: [...document.querySelectorAll("#models a")].map((a) => a.getAttribute("href")),
      linkTexts: [...document.querySelectorAll("#models a")].map((a) => a.textContent),
      // Set only by script smuggled in through a name (tests/configs/ui_hostile.toml).
      pwned: window.__pwned || null,
      injected: document.querySelectorAll("#models img, #models script, #models iframe").length,
    }));
  const first = await snapshot();
  await page.waitForFunction((p) => window.aimass.polls >= p + 3, { timeout: 15000 }, first.polls);
  const second = await snapshot();
  await page.screenshot({ path: screenshot });
  console.log(JSON.stringify({ first, second, errors }));
} finally {
  await browser.close();
}
