// Drives Debian's Chromium (headless, through playwright-core) over the admin
// dashboard of a real `nexpoint serve` with a real node (tests/tests/dashboard.rs).
//
//   node dashboard.mjs e2e <base-url> <artifact-dir> <params.json>
//     params: { "username", "password", "node", "reseller": { "username", "password" } }
//     Logs in (first with a wrong password), creates a user, edits it, checks
//     its subscription link and QR code, watches the node's status and live
//     logs, visits every page, switches to Persian and checks the right-to-left
//     layout, checks nothing scrolls sideways at 360 px, and logs in as a
//     non-sudo admin who must see neither the sudo pages nor others' users. Saves a screenshot
//     of each page in <artifact-dir>.
//
//   node dashboard.mjs measure <base-url> <artifact-dir> <params.json>
//     params: { "username", "password", "runs" }
//     With many users in the database: loads the users page `runs` times and
//     reports the time from navigation start to the first rows on screen (the
//     page's performance mark), then the time a search and a page change take
//     to show their rows. Prints one JSON line: {"first_rows_ms": [...], ...}.
//
// Exits 1 with every failed check listed.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.NEXPOINT_CHROMIUM_BIN || "/usr/bin/chromium";
const [mode, baseUrl, artifactDir, paramsPath] = process.argv.slice(2);
if (!["e2e", "measure"].includes(mode) || !baseUrl || !artifactDir || !paramsPath) {
  console.error("usage: node dashboard.mjs e2e|measure <base-url> <artifact-dir> <params.json>");
  process.exit(2);
}
const params = JSON.parse(fs.readFileSync(paramsPath, "utf8"));
const origin = new URL(baseUrl).origin;
const dash = `${origin}/dashboard`;
fs.mkdirSync(artifactDir, { recursive: true });

const failures = [];
function check(ok, message) {
  if (!ok) {
    failures.push(message);
    console.error(`  FAIL ${message}`);
  } else {
    console.error(`  ok   ${message}`);
  }
  return ok;
}

async function shot(page, name) {
  await page.waitForTimeout(150); // let transitions settle before the picture
  await page.screenshot({ path: path.join(artifactDir, `${name}.png`), fullPage: true });
}

async function noSidewaysScroll(page, what) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
  }));
  check(scroll <= width + 1, `${what}: no sideways scrolling at ${width} px (content ${scroll} px)`);
}

async function login(page, username, password) {
  await page.goto(`${dash}/login`);
  await page.locator('input[name="username"]').fill(username);
  await page.locator('input[name="password"]').fill(password);
  await page.getByRole("button", { name: /sign in|ورود|войти|登录/i }).click();
}

async function e2e(context) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  // The base path redirects to the login page.
  await page.goto(`${dash}/`);
  await page.waitForURL(/\/dashboard\/login$/);
  check(true, "an anonymous visit lands on the login page");
  await shot(page, "01-login");

  await login(page, params.username, "wrong-password");
  const alert = page.getByTestId("login-error");
  await alert.waitFor();
  check((await alert.textContent()).includes("Wrong username or password"), "a wrong password says so clearly");
  await shot(page, "02-login-wrong-password");

  await login(page, params.username, params.password);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await page.getByText("Users by status").waitFor();
  check(true, "logging in shows the overview");
  await page.getByText(params.node).first().waitFor({ timeout: 20_000 });
  check(true, "the overview lists the node");
  await shot(page, "03-overview");

  // Create a user.
  await page.getByRole("link", { name: "Users" }).click();
  await page.getByTestId("users-table").waitFor();
  await page.getByTestId("new-user").click();
  const form = page.getByTestId("user-form");
  await form.waitFor();
  await form.locator('input[name="username"]').fill("x"); // invalid first
  await page.getByTestId("save-user").click();
  check(await form.getByText("3 to 32 characters").isVisible(), "the form refuses an invalid username");
  await form.locator('input[name="username"]').fill("dash_alice");
  await form.locator('input[name="data_limit"]').fill("5");
  await form.locator('textarea[name="note"]').fill("created in the browser");
  await shot(page, "04-user-create-form");
  await page.getByTestId("save-user").click();
  await page.waitForURL(/\/dashboard\/users\/dash_alice$/);
  await page.getByTestId("user-title").waitFor();
  check(true, "creating a user opens its page");

  // Edit it.
  await page.getByTestId("edit-user").click();
  await form.waitFor();
  await form.locator('textarea[name="note"]').fill("edited in the browser");
  await form.locator('input[name="data_limit"]').fill("7");
  await page.getByTestId("save-user").click();
  await form.waitFor({ state: "detached" });
  await page.getByText("edited in the browser").waitFor();
  const token = await page.evaluate(() => localStorage.getItem("nexpoint.token"));
  const saved = await (await fetch(`${origin}/api/user/dash_alice`, { headers: { Authorization: `Bearer ${token}` } })).json();
  check(saved.note === "edited in the browser", `the edit reached the API (note ${JSON.stringify(saved.note)})`);
  check(saved.data_limit === 7 * 1024 ** 3, `the data limit is 7 GiB (${saved.data_limit})`);

  // Its subscription link and QR code.
  const sub = (await page.getByTestId("subscription-url").textContent()).trim();
  // Tokens carry the second they were made, so compare the URL's shape, then use it.
  check(sub.startsWith(`${origin}/sub/`) && new URL(saved.subscription_url, origin).pathname.startsWith("/sub/"), `the page shows the subscription URL (${sub})`);
  const subResponse = await fetch(sub, { headers: { "User-Agent": "curl/8.5.0" } }); // base64 share links
  const subBody = subResponse.ok ? Buffer.from(await subResponse.text(), "base64").toString() : "";
  check(subResponse.ok && subBody.includes("vless://"), `the shown subscription URL serves her links (${subResponse.status})`);
  const qr = page.getByTestId("qr").first();
  await qr.waitFor();
  const qrBox = await qr.boundingBox();
  check(qrBox && qrBox.width >= 150, "a QR code of the subscription is drawn");
  check(saved.links.length > 0, `the user has share links (${saved.links.length})`);
  await shot(page, "05-user-detail");

  // The list finds it.
  await page.goto(`${dash}/users`);
  await page.getByTestId("user-search").fill("dash_al");
  await page.locator('[data-testid="user-row"]', { hasText: "dash_alice" }).waitFor();
  check(true, "searching the list finds the user");
  await shot(page, "06-users");

  // The node: status, versions, live logs.
  await page.getByRole("link", { name: "Nodes" }).click();
  const card = page.locator(`[data-testid="node-card"][data-node="${params.node}"]`);
  await card.getByText("Connected").waitFor({ timeout: 30_000 });
  const version = (await card.getByTestId("node-core-version").textContent()).trim();
  check(version !== "—" && version.length > 0, `the node shows its core version (${version})`);
  await shot(page, "07-nodes");
  await card.getByTestId("node-logs-button").click();
  const logs = page.getByTestId("node-logs");
  await logs.waitFor();
  await page.waitForFunction(
    () => {
      const text = document.querySelector('[data-testid="node-logs"]')?.textContent ?? "";
      return text.length > 0 && !text.startsWith("Waiting");
    },
    null,
    { timeout: 30_000 },
  );
  check(true, "the node's live logs stream in");
  await shot(page, "08-node-logs");
  await page.keyboard.press("Escape");

  for (const [name, heading] of [
    ["09-templates", "Templates"],
    ["10-hosts", "Hosts"],
    ["11-core", "Core config"],
    ["12-admins", "Admins"],
  ]) {
    await page.getByRole("link", { name: heading }).click();
    await page.getByRole("heading", { name: heading }).waitFor();
    await page.waitForLoadState("networkidle");
    await shot(page, name);
  }

  // Persian: right to left.
  await page.getByRole("link", { name: "Overview" }).click();
  await page.getByTestId("language").click();
  await page.getByRole("option", { name: "فارسی" }).click();
  await page.getByRole("heading", { name: "نمای کلی" }).waitFor();
  const rtl = await page.evaluate(() => {
    const nav = document.querySelector(".mantine-AppShell-navbar").getBoundingClientRect();
    const main = document.querySelector(".mantine-AppShell-main h2").getBoundingClientRect();
    return { dir: document.documentElement.dir, lang: document.documentElement.lang, navLeft: nav.left, mainRight: main.right, width: window.innerWidth };
  });
  check(rtl.dir === "rtl" && rtl.lang === "fa", `Persian sets dir=rtl (${rtl.dir}, ${rtl.lang})`);
  check(rtl.navLeft >= rtl.width / 2, `the navigation moves to the right (left edge ${rtl.navLeft} of ${rtl.width})`);
  await shot(page, "13-overview-fa");
  await page.goto(`${dash}/users/dash_alice`);
  await page.getByTestId("user-title").waitFor();
  await shot(page, "14-user-detail-fa");

  // A phone: 360 px wide, in Persian and in English.
  await page.setViewportSize({ width: 360, height: 800 });
  await page.goto(`${dash}/users`);
  await page.getByTestId("user-row").first().waitFor();
  await noSidewaysScroll(page, "users (fa)");
  await shot(page, "15-users-fa-360");
  await page.evaluate(() => localStorage.setItem("nexpoint.lang", "en"));
  for (const [name, url, ready] of [
    ["16-overview-360", "/", "Users by status"],
    ["17-users-360", "/users", null],
    ["18-user-detail-360", "/users/dash_alice", null],
    ["19-nodes-360", "/nodes", "Connected"],
  ]) {
    await page.goto(`${dash}${url}`);
    if (ready) await page.getByText(ready).first().waitFor();
    else await page.locator('[data-testid="user-row"], [data-testid="user-title"]').first().waitFor();
    await page.waitForLoadState("networkidle");
    await noSidewaysScroll(page, name);
    await shot(page, name);
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.goto(`${dash}/users`);
  await page.getByTestId("user-row").first().waitFor();
  await shot(page, "20-users-dark");

  // A non-sudo admin: only her own users, no sudo pages.
  await page.emulateMedia({ colorScheme: "light" });
  await page.evaluate(() => localStorage.removeItem("nexpoint.token"));
  await login(page, params.reseller.username, params.reseller.password);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  for (const link of ["Nodes", "Hosts", "Core config", "Admins"]) {
    check((await page.getByRole("link", { name: link }).count()) === 0, `a non-sudo admin has no ${link} link`);
  }
  await page.goto(`${dash}/users`);
  await page.getByText("No users match.").waitFor();
  check((await page.getByTestId("user-row").count()) === 0, "a non-sudo admin does not see the sudo admin's users");
  await shot(page, "21-users-non-sudo");
  await page.goto(`${dash}/nodes`);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  check(true, "a non-sudo admin opening the nodes page lands on the overview");

  check(errors.length === 0, `no script errors on the pages (${errors.join("; ")})`);
}

async function measure(context) {
  const page = await context.newPage();
  await login(page, params.username, params.password);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  const firstRows = [];
  for (let i = 0; i < (params.runs ?? 5); i++) {
    await page.goto(`${dash}/users`);
    await page.getByTestId("user-row").first().waitFor();
    const ms = await page.evaluate(() => performance.getEntriesByName("nexpoint:users-first-rows")[0]?.startTime ?? -1);
    firstRows.push(Math.round(ms));
  }
  const total = (await page.getByTestId("users-total").textContent()).trim();
  await shot(page, "measure-users-100k");

  // A search: from the last keystroke to the matching row on screen (300 ms of it is the debounce;
  // the default order is newest first, so the user searched for is not on the first page).
  const timeUntil = async (action, predicate, arg) => {
    const start = await page.evaluate(() => performance.now());
    await action();
    await page.waitForFunction(predicate, arg, { timeout: 10_000, polling: "raf" });
    return Math.round((await page.evaluate(() => performance.now())) - start);
  };
  const firstRowIs = (name) => document.querySelector('[data-testid="user-row"]')?.textContent?.includes(name);
  const searchMs = await timeUntil(() => page.getByTestId("user-search").fill("user050000"), firstRowIs, "user050000");
  await page.getByTestId("user-search").fill("");
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="user-row"]').length >= 20);
  const before = await page.getByTestId("user-row").first().textContent();
  const pageMs = await timeUntil(
    () => page.getByRole("button", { name: "2" }).first().click(),
    (old) => { const t = document.querySelector('[data-testid="user-row"]')?.textContent; return t && t !== old; },
    before,
  );
  // The main thread stays free: the longest task while scrolling the page.
  const longestTaskMs = await page.evaluate(async () => {
    let longest = 0;
    const observer = new PerformanceObserver((list) => list.getEntries().forEach((e) => (longest = Math.max(longest, e.duration))));
    observer.observe({ type: "longtask", buffered: false });
    for (let y = 0; y < 3000; y += 200) {
      window.scrollTo(0, y);
      await new Promise((r) => requestAnimationFrame(() => r()));
    }
    observer.disconnect();
    return Math.round(longest);
  });
  console.log(JSON.stringify({ total, first_rows_ms: firstRows, search_ms: searchMs, next_page_ms: pageMs, longest_task_while_scrolling_ms: longestTaskMs }));
  check(Math.min(...firstRows) >= 0, "the users page marks its first rows");
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "nexpoint-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 800 },
    colorScheme: "light",
    locale: "en-US",
    timeout: 60_000,
  });
  context.setDefaultTimeout(15_000);
  // Nothing may leave the server: no CDN, no web font.
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith("data:") || new URL(url).origin === origin) return route.continue();
    failures.push(`fetched from elsewhere: ${url}`);
    return route.abort();
  });
  if (mode === "e2e") await e2e(context);
  else await measure(context);
} catch (e) {
  failures.push(`unexpected: ${e.stack ?? e}`);
  console.error(e);
  const page = context?.pages().at(-1);
  if (page) await page.screenshot({ path: path.join(artifactDir, "failure.png"), fullPage: true }).catch(() => {});
} finally {
  await context?.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
if (failures.length) {
  console.error(`${failures.length} check(s) failed:\n- ${failures.join("\n- ")}`);
  process.exit(1);
}
