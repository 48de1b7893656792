// The browser half of test_ui.py: drives Debian's headless chromium with
// playwright-core through the web UI of two running daemons (one open, one
// asking for a token) and checks what the page shows against the HTTP API.
// Environment (set by test_ui.py): UI_URL, UI_AUTH_URL, UI_TOKEN,
// BOOTSTRAP and TOPIC (for kcat), ARTIFACTS (screenshots), DOCS (optional:
// also write the README's screenshots there), CHROMIUM.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import assert from "node:assert/strict";
import path from "node:path";

const env = process.env;
const shot = (page, name) => page.screenshot({ path: path.join(env.ARTIFACTS, name) });
const step = (what) => console.log("-- " + what);

const ZONE = "Europe/Berlin";   // the browser's time zone (the context's)

// The chart's columns must be the API's rows for the query the page sent:
// every row of the answer with a value is the point (ts, value) of the
// series named after its group, every bucket of the answer is a point of
// the chart's time axis (null, a gap, where empty), and the chart holds
// nothing else.
async function checkChartEqualsApi(page, groupBy, metric) {
  const probe = await page.evaluate(() => ({ ...window.lambdadUI }));
  const answer = await (await fetch(env.UI_URL + probe.query)).json();
  const want = new Map();
  for (const row of answer.rows) {
    const name = groupBy.map((d) => d + "=" + row.dims[d]).join(", ") || metric;
    if (row.metrics[metric] !== null) want.set(name + "@" + row.ts, row.metrics[metric]);
  }
  const got = new Map();
  for (const r of probe.data)
    probe.labels.slice(1).forEach((name, i) => {
      if (r[i + 1] !== null) got.set(name + "@" + r[0], r[i + 1]);
    });
  assert.ok(want.size > 0, "the API answered no rows for " + probe.query);
  assert.deepEqual(got, want, "chart points differ from " + probe.query);
  assert.deepEqual(probe.data.map((r) => r[0]), [...new Set(answer.rows.map((r) => r.ts))].sort((a, b) => a - b),
    "the chart's time axis differs from " + probe.query);
  return { probe, answer };
}

// The number of buckets of a fixed length (seconds) over [from, to) ms,
// from the one holding from (the query's fill and auto, README).
function bucketsOf(fromMs, toMs, secs) {
  const lo = Math.floor(fromMs / 1000), hi = Math.floor(toMs / 1000);
  return Math.ceil((hi - Math.floor(lo / secs) * secs) / secs);
}
// auto's choice for a view of seconds: the finest of the README's ladder
// with at most maxPoints buckets (a 15-minute range never needs days).
function autoGran(fromMs, toMs, maxPoints) {
  const ladder = [["second", 1], ["5s", 5], ["10s", 10], ["15s", 15], ["30s", 30], ["minute", 60],
    ["5m", 300], ["10m", 600], ["15m", 900], ["30m", 1800], ["hour", 3600]];
  return ladder.find(([, w]) => bucketsOf(fromMs, toMs, w) <= maxPoints);
}

// Waits for a render after the n-th whose query holds every string of
// has and none of hasNot (the page's CSP allows no eval: no string
// predicates).
async function waitRender(page, after, has = [], hasNot = []) {
  await page.waitForFunction(([n, yes, no]) => {
    const p = window.lambdadUI;
    return p.renders > n && yes.every((s) => p.query.includes(s)) && !no.some((s) => p.query.includes(s));
  }, [after, has, hasNot], { timeout: 30000 });
}

const browser = await chromium.launch({ executablePath: env.CHROMIUM, args: ["--no-sandbox"] });
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: "light",
    timezoneId: ZONE });
  const page = await ctx.newPage();
  const problems = [];
  page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("response", (r) => { if (r.status() >= 400) problems.push("HTTP " + r.status() + " " + r.url()); });

  step("the page loads and lists the views");
  await page.goto(env.UI_URL + "/");
  await page.waitForSelector("#views a");
  const names = await page.$$eval("#views a", (as) => as.map((a) => a.dataset.view));
  assert.deepEqual(names, ["pages", "sizes"]);
  await waitRender(page, 0);
  await page.waitForSelector("#status .item");

  step("the chart's points equal the API's answer (views, no group): auto for its width, gaps null");
  let { probe, answer } = await checkChartEqualsApi(page, [], "views");
  assert.deepEqual(probe.labels, ["time", "views"]);
  const m = /^\/v1\/views\/pages\/query\?from=(\d+)&to=(\d+)&granularity=auto&max_points=(\d+)&fill=null&tz=Europe%2FBerlin&metrics=views$/.exec(probe.query);
  assert.ok(m, "unexpected chart query " + probe.query);
  const [from, to, maxPoints] = m.slice(1).map(Number);
  assert.equal(to - from, 900 * 1000, "the last 15 minutes, in epoch ms");
  assert.ok(Math.abs(to - Date.now()) < 60000, "to is now, in ms: " + to);
  assert.equal(maxPoints, Math.min(1000, Math.floor(probe.chartWidth / 3)));
  const [gname, gsecs] = autoGran(from, to, maxPoints);
  assert.equal(answer.granularity, gname);
  // every bucket is a point; the 5 minutes before the events are gaps
  assert.equal(probe.data.length, bucketsOf(from, to, gsecs));
  assert.ok(probe.data.length > 60 && probe.data[0][1] === null, "no leading gap: " + JSON.stringify(probe.data[0]));
  assert.ok(await page.$("#chart canvas"), "dygraphs drew no canvas");

  step("a group-by changes the chart");
  let n = probe.renders;
  await page.check("#group-by input[value=country]");
  await waitRender(page, n, ["group_by=country"]);
  ({ probe } = await checkChartEqualsApi(page, ["country"], "views"));
  assert.deepEqual(probe.labels, ["time", "country=DE", "country=FR", "country=US"]);

  step("the filter's value picker offers the values endpoint's values; a filter changes the chart");
  await page.selectOption("#filter-dim", "country");
  await page.focus("#filter-val");
  await page.waitForFunction(() => document.querySelectorAll("#filter-values option").length > 0);
  const offered = await page.$$eval("#filter-values option", (os) => os.map((o) => o.value));
  const values = await (await fetch(env.UI_URL + "/v1/views/pages/values/country?limit=50")).json();
  assert.deepEqual(offered, values.values.filter((v) => v.value !== null).map((v) => v.value));
  assert.deepEqual(offered, ["DE", "FR", "US"]);
  n = (await page.evaluate(() => window.lambdadUI.renders));
  await page.fill("#filter-val", "DE");
  await page.click("#filter-add");
  await waitRender(page, n, ["filter=country%3ADE"]);
  ({ probe } = await checkChartEqualsApi(page, ["country"], "views"));
  assert.deepEqual(probe.labels, ["time", "country=DE"]);
  await shot(page, "ui-filtered.png");

  step("live refresh shows new events");
  const total = (p) => p.data.reduce((s, r) => s + (r[1] || 0), 0);
  const before = total(probe);
  const now = Math.floor(Date.now() / 1000);
  const events = Array.from({ length: 50 }, (_, i) => JSON.stringify(
    { ts: now - (i % 5), country: "DE", page: "/docs", bytes: 100 + i }) + "\n").join("");
  execFileSync("kcat", ["-P", "-b", env.BOOTSTRAP, "-t", env.TOPIC, "-X", "linger.ms=5"], { input: events });
  await page.waitForFunction((want) => window.lambdadUI.data.reduce((s, r) => s + (r[1] || 0), 0) === want,
    before + 50, { timeout: 30000 });
  await checkChartEqualsApi(page, ["country"], "views");

  step("a hidden tab stops refreshing; shown again, it refreshes at once");
  const setHidden = (hidden) => page.evaluate((h) => {
    Object.defineProperty(document, "hidden", { value: h, configurable: true });
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
  assert.equal(await page.evaluate(() => window.lambdadUI.refreshing), true);
  await setHidden(true);
  assert.equal(await page.evaluate(() => window.lambdadUI.refreshing), false);
  n = (await page.evaluate(() => window.lambdadUI.renders));
  await setHidden(false);
  assert.equal(await page.evaluate(() => window.lambdadUI.refreshing), true);
  await waitRender(page, n);

  step("the granularity picker offers the view's multiples; a picked one is sent as it is");
  const grans = await page.$$eval("#gran option", (os) => os.map((o) => o.value));
  assert.deepEqual(grans, ["auto", "second", "5s", "15s", "minute", "5m", "15m", "hour", "6h", "day", "week",
    "month", "all"]);
  n = (await page.evaluate(() => window.lambdadUI.renders));
  await page.selectOption("#gran", "5m");
  await waitRender(page, n, ["granularity=5m&fill=null&group_by=country"], ["max_points", "tz="]);
  ({ probe, answer } = await checkChartEqualsApi(page, ["country"], "views"));
  assert.equal(answer.granularity, "5m");
  assert.ok(probe.data.every((r) => r[0] % 300 === 0) && probe.data.length >= 3, JSON.stringify(probe.data));
  n = (await page.evaluate(() => window.lambdadUI.renders));
  await page.selectOption("#gran", "day");
  await waitRender(page, n, ["granularity=day&fill=null&tz=Europe%2FBerlin&"]);
  ({ probe } = await checkChartEqualsApi(page, ["country"], "views"));
  // days start at Berlin's midnights: the chart's (local) axis
  const berlin = new Intl.DateTimeFormat("en-GB", { timeZone: ZONE, hour: "2-digit", minute: "2-digit",
    hourCycle: "h23" });
  assert.ok(probe.data.length >= 1 && probe.data.every((r) => berlin.format(new Date(r[0] * 1000)) === "00:00"),
    JSON.stringify(probe.data));
  n = (await page.evaluate(() => window.lambdadUI.renders));
  await page.selectOption("#gran", "auto");
  await waitRender(page, n, ["granularity=auto&max_points="]);

  step("a quantiles metric: a series per quantile, its empty buckets gaps in each");
  n = (await page.evaluate(() => window.lambdadUI.renders));
  await page.selectOption("#metric", "ms");
  await waitRender(page, n, ["metrics=ms"]);
  probe = await page.evaluate(() => ({ ...window.lambdadUI }));
  answer = await (await fetch(env.UI_URL + probe.query)).json();
  assert.deepEqual(probe.labels, ["time", "country=DE p50", "country=DE p90", "country=DE p99"]);
  const qwant = answer.rows.map((r) => [r.ts, ...(r.metrics.ms === null ? [null, null, null]
    : [r.metrics.ms.p50, r.metrics.ms.p90, r.metrics.ms.p99])]);
  assert.deepEqual(probe.data, qwant);
  assert.ok(qwant[0][1] === null && qwant.some((r) => r[1] !== null), "no gap or no value");
  n = (await page.evaluate(() => window.lambdadUI.renders));
  await page.selectOption("#metric", "views");
  await waitRender(page, n, ["metrics=views"]);

  step("screenshots, light and dark");
  await page.uncheck("#group-by input[value=country]");
  await page.click("#filters .chip button");
  n = (await page.evaluate(() => window.lambdadUI.renders));
  await page.check("#group-by input[value=page]");
  await waitRender(page, n, ["group_by=page"], ["filter="]);
  await checkChartEqualsApi(page, ["page"], "views");
  await shot(page, "ui-light.png");
  if (env.DOCS) await page.screenshot({ path: path.join(env.DOCS, "ui-light.png") });
  n = (await page.evaluate(() => window.lambdadUI.renders));
  await page.click("#theme");
  await waitRender(page, n);
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
  await shot(page, "ui-dark.png");
  if (env.DOCS) await page.screenshot({ path: path.join(env.DOCS, "ui-dark.png") });
  assert.deepEqual(problems, [], "console errors on the open daemon's page");

  step("a token-protected daemon asks for the token, once");
  const actx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const apage = await actx.newPage();
  const aproblems = [];
  apage.on("console", (m) => {
    // the browser logs each 401 the page gets before it has the token
    if (m.type() === "error" && !/status of 401/.test(m.text())) aproblems.push(m.text());
  });
  apage.on("pageerror", (e) => aproblems.push(e.message));
  await apage.goto(env.UI_AUTH_URL + "/");
  await apage.waitForSelector("#token-dialog[open]");
  await shot(apage, "ui-token.png");
  await apage.fill("#token", "wrong-token");
  await apage.click("#token-form button");
  await apage.waitForSelector("#token-dialog[open] #token-error:not([hidden])");
  await apage.fill("#token", env.UI_TOKEN);
  await apage.click("#token-form button");
  await apage.waitForSelector("#views a");
  await apage.waitForFunction(() => window.lambdadUI.renders > 0);
  assert.equal(await apage.evaluate(() => sessionStorage.getItem("lambdad.token")), env.UI_TOKEN);
  assert.equal(await apage.$("#token-dialog[open]"), null);
  // a reload keeps the token: no dialog again
  await apage.reload();
  await apage.waitForFunction(() => window.lambdadUI.renders > 0);
  assert.equal(await apage.$("#token-dialog[open]"), null);
  assert.deepEqual(aproblems, [], "console errors on the protected daemon's page");
  console.log("ok: every browser check passed");
} finally {
  await browser.close();
}
