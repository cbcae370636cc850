// End-to-end tests of the admin UI in Chromium (Debian's, driven by playwright-core) against a real
// `hub serve`: a fresh SQLite data directory, this UI's build, the first-party plugins. Each run
// saves screenshots of the main pages in e2e/screenshots/.
//
//   HUB_BIN      the hub binary (default ../target/debug/hub)
//   HUB_PLUGINS  built first-party plugins (default ../dist/plugins)
//   CHROMIUM     the browser (default /usr/bin/chromium)
import { spawn } from "node:child_process";
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const here = resolve(import.meta.dirname);
const root = resolve(here, "../..");
const hubBin = process.env.HUB_BIN ?? join(root, "target/debug/hub");
const pluginsDir = process.env.HUB_PLUGINS ?? join(root, "dist/plugins");
const shots = join(here, "screenshots");
rmSync(shots, { recursive: true, force: true });
mkdirSync(shots, { recursive: true });

function startHub(dataDir) {
  const child = spawn(hubBin, [
    "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0",
    "--web-dir", join(root, "web/dist"), "--plugins-dir", pluginsDir,
    // Detectors run 2 s after their step ends rather than 20 (the e2e's spike is seen sooner).
    "--analysis-settle", "2s",
    // The webhook receiver of the alerts check listens on 127.0.0.1.
    "--plugin-allow-private-http", "true",
  ], { env: { ...process.env, HUB_LOG: "warn", RUST_BACKTRACE: "0" }, stdio: ["ignore", "pipe", "pipe"] });
  const out = { lines: [] };
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("the hub did not start:\n" + out.lines.join("\n"))), 60_000);
    child.on("exit", (code) => fail(new Error(`the hub exited (${code}):\n${out.lines.join("\n")}`)));
    createInterface({ input: child.stderr }).on("line", (l) => out.lines.push(l));
    createInterface({ input: child.stdout }).on("line", (line) => {
      out.lines.push(line);
      const admin = /^Admin login: (\S+) with one-time password (\S+)/.exec(line);
      if (admin) [out.email, out.password] = [admin[1], admin[2]];
      const listen = /^hub listening on (\S+)/.exec(line);
      if (listen) out.base = listen[1];
      if (line.startsWith("hub_")) {
        out.key = line.trim();
        clearTimeout(timer);
        ok({ child, ...out });
      }
    });
  });
}

const now = () => new Date().toISOString();

async function send(base, key, events) {
  const r = await fetch(base + "/v1/events", {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify(events),
  });
  const body = await r.json();
  assert.equal(r.status, 202, JSON.stringify(body));
  assert.equal(body.accepted, events.length, JSON.stringify(body));
}

async function summary(base, key) {
  const r = await fetch(base + "/v1/metrics/summary?from=now-1h&to=now", { headers: { Authorization: `Bearer ${key}` } });
  return (await r.json()).groups[0];
}

function calls(n, offset) {
  return Array.from({ length: n }, (_, i) => ({
    event_id: `e2e-${offset + i}`, timestamp: now(), app: i % 2 ? "support-bot" : "search",
    environment: "production", model: i % 3 ? "gpt-4o" : "gpt-4o-mini", provider: "openai",
    input_tokens: 1000 + i, output_tokens: 100 + i, latency_ms: 300 + 10 * i, status: i % 10 === 9 ? "error" : "ok",
    correlation_id: `conv-${Math.floor(i / 4)}`,
  }));
}

let step = "start";
const results = [];
async function check(name, f) {
  step = name;
  const t = Date.now();
  await f();
  results.push(`ok  ${name} (${Date.now() - t} ms)`);
  console.log(results.at(-1));
}

const data = mkdtempSync(join(tmpdir(), "hub-e2e-"));
const hub = await startHub(join(data, "data"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
const page = await context.newPage();
const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const password = "an e2e password that is long";
let key;
try {
  await check("a person without a session lands on the login page", async () => {
    await page.goto(hub.base + "/plugins");
    await page.waitForURL(/\/login\?next=%2Fplugins/);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("Enter the email you sign in with.").waitFor();
    await shot("login");
  });

  await check("first login forces a password change, then returns to where the person was", async () => {
    await page.getByLabel("Email").fill(hub.email);
    await page.getByLabel("Password").fill("wrong password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("That email and password do not match").waitFor();
    await page.getByLabel("Password").fill(hub.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Choose your password" }).waitFor();
    await page.getByLabel("Current password").fill(hub.password);
    await page.getByLabel("New password", { exact: true }).fill("short");
    await page.getByLabel("New password again").fill("short");
    await page.getByRole("button", { name: "Save password" }).click();
    await page.getByText("Use at least 12 characters.").waitFor();
    await page.getByLabel("New password", { exact: true }).fill(password);
    await page.getByLabel("New password again").fill(password);
    await page.getByRole("button", { name: "Save password" }).click();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
  });

  await check("an admin creates an API key, shown once", async () => {
    await page.getByRole("link", { name: "API keys" }).click();
    await page.getByRole("button", { name: "Create key" }).click();
    await page.getByText("Give the key a name").waitFor();
    await page.getByLabel("Name").fill("e2e sender");
    await page.getByRole("button", { name: "Create key" }).click();
    key = (await page.getByTestId("new-key").textContent()).trim();
    assert.match(key, /^hub_[a-z0-9]{8}_[a-z0-9]{32}$/);
    await shot("api-keys");
    await page.getByRole("button", { name: "Done" }).click();
    await page.getByRole("cell", { name: "e2e sender" }).waitFor();
  });

  await check("uninstalling cost from the plugins page", async () => {
    await page.getByRole("link", { name: "Plugins" }).click();
    const cost = page.getByTestId("plugin-cost");
    await cost.getByRole("button", { name: "Uninstall" }).click();
    await cost.getByRole("button", { name: "Uninstall cost" }).click();
    await cost.waitFor({ state: "detached" });
    // registry's capabilities: HTTP to a host the tenant picks, only with an explicit confirmation.
    const registry = page.getByTestId("plugin-registry");
    await registry.getByRole("button", { name: "Capabilities" }).click();
    await registry.getByLabel(/HTTP hosts/).fill("registry.example.com");
    assert.equal(await registry.getByRole("button", { name: "Save capabilities" }).isDisabled(), true);
    await registry.getByLabel(/I grant exactly these/).check();
    await registry.getByRole("button", { name: "Save capabilities" }).click();
    await registry.getByText("http:registry.example.com").waitFor();
  });

  const first = calls(20, 0);
  await check("the dashboard shows what was sent over REST", async () => {
    const queryKey = (await (await fetch(hub.base + "/v1/auth/me", { headers: { Authorization: `Bearer ${key}` } })).json());
    assert.equal(queryKey.kind, "api_key");
    await send(hub.base, key, first);
    await page.getByRole("link", { name: "Overview" }).click();
    await page.getByRole("button", { name: "Refresh" }).click();
    const tokens = first.reduce((s, e) => s + e.input_tokens, 0);
    await page.getByTestId("requests").getByText("20", { exact: true }).waitFor({ timeout: 20_000 });
    await page.getByTestId("errors").getByText("2", { exact: true }).waitFor();
    await page.getByTestId("input-tokens").getByText(tokens.toLocaleString("en-US")).waitFor();
    await page.getByTestId("cost").getByText("$0.0000").waitFor();
    // Nothing prices them yet: the tile says so instead of passing them off as free.
    await page.getByTestId("cost").getByText(/\+ 20 unpriced calls/).waitFor();
    await page.locator(".chart canvas").first().waitFor();
    await shot("overview");
  });

  await check("installing cost from the marketplace with a configuration", async () => {
    await page.getByRole("link", { name: "Marketplace" }).click();
    await page.getByRole("link", { name: "cost", exact: true }).click();
    await page.getByRole("heading", { name: "cost 0.2.0" }).waitFor();
    await shot("package");
    await page.getByRole("button", { name: "Install…" }).click();
    await page.getByLabel("discounts").fill('[{"provider": "openai", "percent": 150}]');
    await page.getByRole("button", { name: "Install", exact: true }).click();
    // The hub refuses 150 % and says where.
    await page.locator(".field-error", { hasText: "150" }).waitFor();
    await page.getByLabel("discounts").fill('[{"provider": "openai", "percent": 10}]');
    await page.getByRole("button", { name: "Install", exact: true }).click();
    await page.getByTestId("plugin-cost").waitFor();
    await shot("plugins");
  });

  await check("events sent after the install get a cost, and the dashboard shows it", async () => {
    await send(hub.base, key, calls(20, 100));
    // The key made in the UI only ingests; the first start's key also queries.
    const s = await summary(hub.base, hub.key);
    assert.ok(s.cost_usd > 0, JSON.stringify(s));
    await page.getByRole("link", { name: "Overview" }).click();
    await page.getByTestId("requests").getByText("40", { exact: true }).waitFor({ timeout: 20_000 });
    const shown = "$" + s.cost_usd.toLocaleString("en-US", { minimumFractionDigits: 4, maximumFractionDigits: 4 });
    await page.getByTestId("cost").getByText(s.cost_usd < 1 ? shown : /\$/).waitFor();
    // The calls sent before the install stay unpriced (their price applies from the install on).
    assert.equal(s.unpriced_events, 20, JSON.stringify(s));
    await page.getByTestId("cost").getByText(/\+ 20 unpriced calls/).waitFor();
    await page.getByRole("tab", { name: "app" }).click();
    await page.getByRole("cell", { name: "support-bot" }).waitFor();
  });

  await check("a changed discount says it prices new events, and re-pricing brings history along", async () => {
    await page.getByRole("link", { name: "Plugins" }).click();
    const cost = page.getByTestId("plugin-cost");
    await cost.getByRole("button", { name: "Configure" }).click();
    await cost.getByLabel("discounts").fill('[{"provider": "openai", "percent": 20}]');
    await cost.getByRole("button", { name: "Save configuration" }).click();
    await cost.getByText(/apply to events that arrive from now on/).waitFor();
    const before = await summary(hub.base, hub.key);
    // Older than the raw events the tenant keeps, only the rollups are left: the panel says so.
    await cost.getByLabel("Events of").selectOption("92");
    await cost.getByTestId("reprice-retention").getByText(/keeps raw events for 30 days/).waitFor();
    await cost.getByLabel("Events of").selectOption("1");
    await cost.getByRole("button", { name: "Re-price stored events" }).click();
    await cost.getByTestId("reprice-status").getByText(/^Done: 40 events priced again, \d+ changed/).waitFor({ timeout: 30_000 });
    await shot("reprice");
    // The 20 calls sent before cost was installed now have a price, and the 20 after it have
    // the new discount's.
    const s = await summary(hub.base, hub.key);
    assert.equal(s.unpriced_events, 0, JSON.stringify(s));
    assert.ok(s.cost_usd > before.cost_usd, `${s.cost_usd} > ${before.cost_usd}`);
    await page.getByRole("link", { name: "Overview" }).click();
    const shown = "$" + s.cost_usd.toLocaleString("en-US", { minimumFractionDigits: 4, maximumFractionDigits: 4 });
    await page.getByTestId("cost").getByText(s.cost_usd < 1 ? shown : /\$/).waitFor({ timeout: 20_000 });
    assert.equal(await page.getByTestId("cost").getByText(/unpriced/).count(), 0);
  });

  await check("the event explorer filters, pages and shows an event with its conversation", async () => {
    await page.getByRole("link", { name: "Events" }).click();
    await page.getByLabel("model").fill("gpt-4o-mini");
    await page.getByRole("cell", { name: "gpt-4o-mini" }).first().waitFor();
    assert.equal(await page.getByRole("cell", { name: "gpt-4o", exact: true }).count(), 0);
    await page.getByRole("row").nth(1).click();
    await page.getByRole("heading", { name: "Original payload" }).waitFor();
    // The newest gpt-4o-mini call came after cost was installed: cost priced it and registry
    // tagged it, and the detail names each.
    const added = page.getByTestId("added-by-plugins");
    await added.getByRole("row").filter({ hasText: "cost_usd" }).getByRole("cell", { name: "cost", exact: true }).waitFor();
    await added.getByRole("row").filter({ hasText: "tags.model_family" }).getByRole("cell", { name: "registry", exact: true }).waitFor();
    // Every event of its conversation, across modules, oldest first; one of them opens in its place.
    await page.getByRole("heading", { name: /^Correlation conv-\d+: \d+ events, in time order$/ }).waitFor();
    const conversation = page.getByRole("table", { name: "Events of the same correlation" });
    const times = await conversation.locator("tbody tr td:first-child").allTextContents();
    assert.ok(times.length >= 2, times.join(" "));
    await shot("event");
    const other = conversation.locator("tbody tr:not(.on)").first();
    await other.click();
    await conversation.locator("tbody tr.on").waitFor();
    await page.getByRole("button", { name: "Close" }).click();
    // Any id by its start: e2e-11 and e2e-110 … e2e-119, whatever the model.
    await page.getByLabel("model").fill("");
    await page.getByLabel("any id starts with").fill("e2e-11");
    await page.waitForFunction(() => document.querySelectorAll("tbody tr").length === 11, null, { timeout: 10_000 });
    const ids = await page.locator("tbody tr td:nth-child(2)").allTextContents();
    assert.ok(ids.every((id) => id.startsWith("e2e-11")), ids.join(" "));
    await page.getByLabel("any id starts with").fill("");
    const tomorrow = new Date(Date.now() + 86_400_000 - new Date().getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    await page.getByLabel("from").fill(tomorrow);
    await page.getByText("No events match.").waitFor();
  });

  await check("a detector and a forecaster set up in the UI: a spike sent over REST is an anomaly on the chart, a forecast band beside it", async () => {
    // 90 minutes of steady traffic before this minute, 12 calls a minute.
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    const steady = [];
    for (let m = 90; m >= 1; m--) {
      for (let i = 0; i < 12; i++) {
        steady.push({ event_id: `steady-${m}-${i}`, timestamp: new Date(minute - m * 60_000 + i * 5_000).toISOString(), app: "search", model: "gpt-4o", provider: "openai", input_tokens: 500, output_tokens: 50, latency_ms: 400 });
      }
    }
    for (let i = 0; i < steady.length; i += 500) await send(hub.base, key, steady.slice(i, i + 500));
    // Both plugins from the marketplace, each set to watch the tenant's requests a minute at a time.
    for (const [name, forecaster] of [["robust-level", false], ["ets", true]]) {
      await page.getByRole("navigation").getByRole("link", { name: "Marketplace" }).click();
      // First-party packages are published in the background after the hub starts (each is
      // checked, i.e. compiled, first): a person who finds one missing reloads the page.
      const link = page.getByRole("link", { name, exact: true });
      for (let t = 0; t < 60 && !(await link.count()); t++) {
        await new Promise((ok) => setTimeout(ok, 2_000));
        await page.reload();
      }
      await link.click();
      await page.getByRole("button", { name: "Install…" }).click();
      await page.getByRole("button", { name: "Install", exact: true }).click();
      const row = page.getByTestId(`plugin-${name}`);
      await row.getByRole("button", { name: "Configure" }).click();
      const series = row.getByRole("group", { name: "Series watched" });
      // Unchecking one moves the others up the list of the checked: take the first until none is.
      const checked = (group) => series.getByRole("group", { name: group }).getByRole("checkbox", { checked: true });
      while (await checked("Metrics").count()) await checked("Metrics").first().uncheck();
      await series.getByRole("checkbox", { name: "requests", exact: true }).check();
      while (await checked("Group by").count()) await checked("Group by").first().uncheck();
      await series.getByLabel("Step").selectOption("1m");
      await series.getByLabel("Runs every").fill("1m");
      if (forecaster) await series.getByLabel("Points ahead").fill("30");
      // The hub checks the series like any configuration and names the field.
      await series.getByLabel("History").fill("2x");
      await row.getByRole("button", { name: "Save configuration" }).click();
      await series.locator(".field-error", { hasText: "series/history" }).waitFor();
      if (!forecaster) await shot("series-settings");
      await series.getByLabel("History").fill("1d");
      await row.getByRole("button", { name: "Save configuration" }).click();
      await row.getByTestId("watches").getByText(/^Watches requests of all traffic, a point every 1m over 1d .*runs every 1m/).waitFor();
    }
    await shot("detectors");
    // The spike: 240 calls in this minute, 20 times its usual.
    const now = Date.now(), start = Math.floor(now / 60_000) * 60_000;
    await send(hub.base, key, Array.from({ length: 240 }, (_, i) => ({
      event_id: `spike-${i}`, timestamp: new Date(start + Math.floor((i * (now - start)) / 240)).toISOString(),
      app: "search", model: "gpt-4o", provider: "openai", input_tokens: 500, output_tokens: 50, latency_ms: 400,
    })));
    // The detector runs once the minute is over (and --analysis-settle after it).
    let spike;
    for (let t = 0; t < 150 && !spike; t++) {
      const r = await fetch(hub.base + "/v1/anomalies?metric=requests", { headers: { Authorization: `Bearer ${hub.key}` } });
      spike = (await r.json()).anomalies.find((a) => a.value >= 240 && a.plugin === "robust-level");
      if (!spike) await new Promise((ok) => setTimeout(ok, 1_000));
    }
    assert.ok(spike, "robust-level found no spike within 150 s");
    assert.equal(new Date(spike.ts).getTime(), start);
    await page.getByRole("link", { name: "Overview" }).click();
    await page.getByRole("combobox", { name: "Time range" }).selectOption("1h");
    const traffic = page.locator("figure", { hasText: "Requests and errors" });
    const marker = traffic.getByRole("button", { name: `Anomaly (${spike.severity}): requests of all traffic: ${spike.reason}` });
    await marker.waitFor({ timeout: 20_000 });
    await traffic.getByText("forecast (ets)").waitFor({ timeout: 90_000 });
    await page.getByTestId("month-end").getByText(/so far, (projected at this month's rate|forecast by)/).waitFor();
    await shot("overview-anomaly");
    await marker.click();
    await page.waitForURL(/\/anomalies\?id=\d+/);
    await page.getByTestId("anomaly-reason").getByText(spike.reason).waitFor();
    await page.getByRole("region", { name: "Anomaly" }).getByRole("img").waitFor();
    // From the anomaly to the events of its series at that time: the spike's calls.
    await page.getByRole("link", { name: "the events of this series at that time" }).click();
    await page.waitForURL(/\/events\?.*from=/);
    await page.getByRole("cell", { name: /^spike-\d+$/ }).first().waitFor();
    await page.goBack();
    await page.getByTestId("anomaly-reason").getByText(spike.reason).waitFor();
    // The list filters: nothing of cost, the spike among the requests' anomalies.
    await page.getByLabel("metric").selectOption("cost_usd");
    await page.getByText("No anomalies match.").waitFor();
    await page.getByLabel("metric").selectOption("requests");
    await page.getByRole("cell", { name: spike.reason }).waitFor();
    await shot("anomalies");
  });

  await check("a threshold rule written in the UI (previewed over the last week) fires from events sent over REST, the webhook installed from the marketplace gets the signed message, a silence holds back the next, and the alert resolves when the metric recovers", async () => {
    // A receiver as a tenant's service would be: it checks the signature over "<t>.<body>".
    const secret = "e2e-shared-secret-0123456789";
    const received = [];
    const receiver = createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        const [t, v1] = (req.headers["x-hub-signature"] ?? "").split(",").map((p) => p.split("=")[1]);
        const mac = createHmac("sha256", secret).update(`${t}.`).update(body).digest();
        const ok = v1 && v1.length === 64 && timingSafeEqual(mac, Buffer.from(v1, "hex"));
        received.push({ ok, t: Number(t), doc: JSON.parse(body.toString()) });
        res.writeHead(ok ? 204 : 401).end();
      });
    });
    await new Promise((ok) => receiver.listen(0, "127.0.0.1", ok));
    const port = receiver.address().port;
    // The webhook from the marketplace: its URL and secret, and the receiver's host granted.
    await page.getByRole("navigation").getByRole("link", { name: "Marketplace" }).click();
    const link = page.getByRole("link", { name: "webhook", exact: true });
    for (let t = 0; t < 60 && !(await link.count()); t++) {
      await new Promise((ok) => setTimeout(ok, 2_000));
      await page.reload();
    }
    await link.click();
    await page.getByRole("button", { name: "Install…" }).click();
    const install = page.getByRole("region", { name: "Install webhook" });
    await install.getByLabel("url").fill(`http://127.0.0.1:${port}/hooks/llm`);
    await install.getByLabel("secret").fill(secret);
    await install.getByLabel(/HTTP hosts it may call/).fill(`127.0.0.1:${port}`);
    await install.getByRole("checkbox", { name: /I grant these capabilities/ }).check();
    await install.getByRole("button", { name: "Install", exact: true }).click();
    await page.getByTestId("plugin-webhook").waitFor();

    await page.getByRole("navigation").getByRole("link", { name: "Alerts" }).click();
    const form = page.getByRole("form", { name: "New rule" });
    await form.getByRole("group", { name: "Notify" }).getByRole("checkbox", { name: "webhook" }).check();
    await form.getByLabel("Name", { exact: true }).fill("Too many calls");
    await form.getByLabel("Metric", { exact: true }).selectOption("requests");
    await form.getByLabel("Value", { exact: true }).fill("100");
    await form.getByLabel("For", { exact: true }).fill("");
    await form.getByRole("checkbox", { name: "model", exact: true }).check();
    // The hub checks the rule and names the field.
    await form.getByLabel("Over", { exact: true }).fill("5x");
    await form.getByRole("button", { name: "Add rule" }).click();
    await form.getByRole("alert").getByText(/^\/condition\/window: /).waitFor();
    await form.getByLabel("Over", { exact: true }).fill("2m");
    // How often it would have fired over the last week, before it is saved.
    await form.getByRole("button", { name: "Preview the last 7 days" }).click();
    await form.getByTestId("rule-preview").getByText(/over the last 7 days/).waitFor();
    await shot("rule-preview");
    await form.getByRole("button", { name: "Add rule" }).click();
    const row = page.getByTestId("rule-Too many calls");
    await row.getByText("requests > 100 over 2m per model").waitFor();
    // 150 calls of one model in the minute before this one: above 100 over 2 minutes.
    const start = Math.floor(Date.now() / 60_000) * 60_000 - 60_000;
    await send(hub.base, key, Array.from({ length: 150 }, (_, i) => ({
      event_id: `alert-${i}`, timestamp: new Date(start + i * 200).toISOString(),
      app: "search", model: "alert-model", provider: "openai", input_tokens: 10, output_tokens: 5, latency_ms: 100,
    })));
    // Rules are evaluated once a minute (2 s after it ends in this hub): firing within about a minute.
    const firing = page.getByRole("region", { name: "Open alerts" }).getByTestId("alert-firing");
    await firing.getByText("requests of model=alert-model is 150 (> 100 over 2m)").waitFor({ timeout: 100_000 });
    // The notice reached the receiver, signed, and the delivery log says so.
    for (let t = 0; t < 30 && received.length === 0; t++) await new Promise((ok) => setTimeout(ok, 500));
    assert.equal(received.length, 1, JSON.stringify(received));
    assert.ok(received[0].ok, "the signature verifies");
    assert.ok(Math.abs(Date.now() / 1000 - received[0].t) < 300, "signed just now");
    // One message for the rule's groups that fired together (the earlier checks' gpt-4o traffic
    // crosses the line too).
    const alert = received[0].doc.alerts.find((a) => a.labels.model === "alert-model");
    assert.ok(alert, JSON.stringify(received[0].doc));
    assert.equal(alert.rule, "Too many calls");
    assert.equal(alert.state, "firing");
    assert.equal(alert.summary, "requests of model=alert-model is 150 (> 100 over 2m)");
    assert.equal(alert.labels.model, "alert-model");
    await row.getByText("notifies webhook").waitFor();
    const log = page.getByRole("region", { name: "Delivery log" });
    await log.getByTestId("delivery-delivered").getByText("requests of model=alert-model is 150 (> 100 over 2m)").waitFor({ timeout: 20_000 });
    // Someone on it: acknowledged with what they are doing (no more reminders).
    const first = firing.filter({ hasText: "requests of model=alert-model is 150" });
    page.once("dialog", (d) => d.accept("throttling the load generator"));
    await first.getByRole("button", { name: "Acknowledge" }).click();
    await first.getByText(/admin@localhost, .*: throttling the load generator/).waitFor();
    // A silence written in the UI holds back the next notice: another model crossing the line.
    const silences = page.getByRole("region", { name: "Silences" });
    const silence = silences.getByRole("form", { name: "New silence" });
    await silence.getByLabel("Matches").fill("model");
    await silence.getByRole("button", { name: "Silence" }).click();
    await silence.getByRole("alert").getByText(/^\/matchers: "model" is not name=value/).waitFor();
    await silence.getByLabel("Matches").fill("model=alert-model-2, rule=Too many calls");
    await silence.getByLabel("Silence for").fill("1h");
    await silence.getByLabel("Why").fill("load test of the second model");
    await silence.getByRole("button", { name: "Silence" }).click();
    await silences.getByTestId("silence").getByText("model=alert-model-2, rule=Too many calls").waitFor();
    const start2 = Math.floor(Date.now() / 60_000) * 60_000 - 60_000;
    await send(hub.base, key, Array.from({ length: 150 }, (_, i) => ({
      event_id: `alert2-${i}`, timestamp: new Date(start2 + i * 200).toISOString(),
      app: "search", model: "alert-model-2", provider: "openai", input_tokens: 10, output_tokens: 5, latency_ms: 100,
    })));
    await firing.getByText("requests of model=alert-model-2 is 150 (> 100 over 2m)").waitFor({ timeout: 100_000 });
    await log.getByTestId("delivery-silenced").getByText("requests of model=alert-model-2 is 150 (> 100 over 2m)").waitFor({ timeout: 20_000 });
    await log.getByTestId("delivery-silenced").getByText(/silenced by silence \d+ until .*: load test of the second model/).waitFor();
    // The metric recovers (the minute of calls leaves the 2-minute window): the first alert
    // resolves, and the resolution is sent, signed, like the firing was.
    const resolved = () => received.find((r) => r.doc.alerts.some((a) => a.labels.model === "alert-model" && a.state === "resolved"));
    for (let t = 0; t < 150 && !resolved(); t++) await new Promise((ok) => setTimeout(ok, 1_000));
    assert.ok(resolved()?.ok, "the resolution arrived, signed: " + JSON.stringify(received));
    await firing.filter({ hasText: "requests of model=alert-model is 150" }).waitFor({ state: "detached", timeout: 20_000 });
    receiver.close();
    assert.ok(!received.some((r) => r.doc.alerts.some((a) => a.labels.model === "alert-model-2")), "the silenced notice was not sent: " + JSON.stringify(received));
    await shot("alerts");
    await row.getByRole("button", { name: "Disable" }).click();
    await row.getByRole("cell", { name: "no", exact: true }).waitFor();
  });

  let joinLink;
  await check("an admin invites a viewer", async () => {
    await page.getByRole("link", { name: "Members" }).click();
    const form = page.getByRole("form", { name: "Invite a member" });
    await form.getByLabel("Email").fill("viewer@example.com");
    await form.getByRole("combobox").selectOption("viewer");
    await form.getByRole("button", { name: "Invite" }).click();
    joinLink = (await page.locator(".notice .secret").textContent()).trim();
    assert.match(joinLink, /\/join\?code=hinv_/);
    await page.getByRole("table", { name: "Pending invitations" }).getByRole("cell", { name: "viewer@example.com" }).waitFor();
    await shot("members");
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByRole("cell", { name: "plugin.install" }).first().waitFor();
    await shot("audit");
  });

  await check("an admin shortens the tenant's retention, within the hub's", async () => {
    await page.getByRole("link", { name: "Sign-in and retention" }).click();
    await page.getByTestId("retention-raw_ms").getByText("30 days").waitFor();
    const raw = page.getByLabel("Raw events (the event explorer): days kept");
    // Longer than the hub keeps: refused next to the field, nothing sent.
    await raw.fill("60");
    await page.getByRole("button", { name: "Save retention" }).click();
    await page.locator(".field-error", { hasText: "This hub keeps at most 30 days." }).waitFor();
    await raw.fill("7");
    await page.getByRole("button", { name: "Save retention" }).click();
    await page.getByTestId("retention-raw_ms").getByText("7 days").waitFor();
    const r = await fetch(hub.base + "/v1/settings/retention", { headers: { Authorization: `Bearer ${hub.key}` } });
    assert.equal((await r.json()).tenant.raw_ms, 7 * 86_400_000);
  });

  await check("an admin keeps the tenant's own single sign-on rules", async () => {
    const rules = page.getByRole("form", { name: "Single sign-on rules of this tenant" });
    await rules.getByRole("button", { name: "Add email domain rule" }).click();
    await rules.getByLabel("Email domain 1").fill("ann@example.org");
    await rules.getByRole("button", { name: "Save rules" }).click();
    await rules.locator(".field-error", { hasText: "without the @" }).waitFor();
    await rules.getByLabel("Email domain 1").fill("example.org");
    await rules.getByRole("combobox").first().selectOption("analyst");
    await rules.getByRole("button", { name: "Save rules" }).click();
    await rules.getByRole("status").getByText("Saved.").waitFor();
    const r = await fetch(hub.base + "/v1/settings/sso-rules", { headers: { Authorization: `Bearer ${hub.key}` } });
    assert.deepEqual((await r.json()).domain_roles, [{ pattern: "example.org", role: "analyst" }]);
    await shot("settings");
  });

  await check("a viewer cannot see settings", async () => {
    const viewer = await (await browser.newContext({ viewport: { width: 1280, height: 860 } })).newPage();
    // The invited person opens the link, chooses a password and is in.
    await viewer.goto(joinLink);
    await viewer.getByLabel("Password").fill("short");
    await viewer.getByRole("button", { name: "Join", exact: true }).click();
    await viewer.locator(".field-error", { hasText: "at least 12 characters" }).waitFor();
    await viewer.getByLabel("Password").fill(password);
    await viewer.getByRole("button", { name: "Join", exact: true }).click();
    await viewer.getByRole("heading", { name: "Overview" }).waitFor();
    assert.equal(await viewer.getByRole("link", { name: "API keys" }).count(), 0);
    assert.equal(await viewer.getByRole("link", { name: "Sign-in and retention" }).count(), 0);
    assert.equal(await viewer.getByRole("link", { name: "Plugins" }).count(), 0);
    await viewer.goto(hub.base + "/settings/keys");
    await viewer.getByRole("heading", { name: "Not for your role" }).waitFor();
    const r = await viewer.evaluate(() => fetch("/v1/api-keys").then((r) => r.status));
    assert.equal(r, 403);
  });

  await check("an expired session goes to login and back", async () => {
    await context.clearCookies();
    await page.goto(hub.base + "/marketplace");
    await page.waitForURL(/\/login\?next=%2Fmarketplace/);
    await page.getByLabel("Email").fill(hub.email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Marketplace" }).waitFor();
    await shot("marketplace");
  });

  await check("an API error is a readable message, not a blank page", async () => {
    await page.goto(hub.base + "/marketplace/no-such-plugin");
    await page.getByRole("alert").getByText("not in this marketplace").waitFor();
  });
} catch (e) {
  await shot("failure").catch(() => {});
  console.error(`FAILED at "${step}": ${e.stack ?? e}`);
  console.error("hub output:\n" + hub.lines.slice(-30).join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
  hub.child.kill("SIGTERM");
  rmSync(data, { recursive: true, force: true });
}
console.log(`${results.length} e2e checks passed; screenshots in ${shots}`);
