// Drives Debian's Chromium (headless, through playwright-core; no downloaded
// browser) over the subscription pages that tests/tests/subscription_page.rs
// renders and serves, as a phone would show them (360×800).
//
//   node subscription_page.mjs <base-url> <artifact-dir> <expectations.json>
//
// expectations.json: { "pages": [ { "lang", "path", "dir", "username",
//   "usage", "subscription_url", "links": [url, ...] } ] }
//
// For each page it checks what a subscriber must see, copies the first link
// (Clipboard API) and the subscription URL (the execCommand fallback of
// non-secure pages) and reads both back from the clipboard, and saves
// subscription-page-<lang>.png (light) and subscription-page-<lang>-dark.png
// in <artifact-dir>. Exits 1 with every failed check listed.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const WIDTH = 360;
const HEIGHT = 800;
const CHROMIUM = process.env.NEXPOINT_CHROMIUM_BIN || "/usr/bin/chromium";
const APP_SCHEMES = [
  "v2rayng://install-sub?url=",
  "hiddify://import/",
  "sing-box://import-remote-profile?url=",
  "clash://install-config?url=",
  "streisand://import/",
  "happ://add/",
  "sub://",
];

const [baseUrl, artifactDir, expectationsPath] = process.argv.slice(2);
if (!baseUrl || !artifactDir || !expectationsPath) {
  console.error("usage: node subscription_page.mjs <base-url> <artifact-dir> <expectations.json>");
  process.exit(2);
}
const { pages } = JSON.parse(fs.readFileSync(expectationsPath, "utf8"));
const origin = new URL(baseUrl).origin;
fs.mkdirSync(artifactDir, { recursive: true });

const failures = [];
function check(ok, message) {
  if (!ok) {
    failures.push(message);
    console.error(`  FAIL ${message}`);
  }
  return ok;
}

const external = [];
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "nexpoint-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: WIDTH, height: HEIGHT },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    colorScheme: "light",
    timeout: 60_000,
  });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin });
  // Nothing may leave the test's own server: no CDN, no web font.
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith("data:") || new URL(url).origin === origin) {
      return route.continue();
    }
    external.push(url);
    return route.abort();
  });

  for (const expected of pages) {
    console.error(`[${expected.lang}] ${baseUrl.replace(/\/$/, "")}${expected.path}`);
    await checkPage(expected);
  }
} catch (err) {
  failures.push(`browser run failed: ${err && err.stack ? err.stack : err}`);
} finally {
  if (context) {
    await context.close().catch(() => {});
  }
  fs.rmSync(userDataDir, { recursive: true, force: true });
}

check(external.length === 0, `requests outside the page's origin: ${external.join(", ")}`);
if (failures.length > 0) {
  console.error(`\n${failures.length} check(s) failed:`);
  for (const f of failures) {
    console.error(`  - ${f}`);
  }
  process.exit(1);
}
console.error(`all checks passed for ${pages.map((p) => p.lang).join(", ")}`);

async function checkPage(expected) {
  const lang = expected.lang;
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") {
      errors.push(m.text());
    }
  });

  const url = new URL(expected.path, baseUrl).toString();
  const response = await page.goto(url, { waitUntil: "load" });
  check(response && response.ok(), `[${lang}] GET ${url}: ${response && response.status()}`);
  await page.evaluate(() => document.fonts.ready);

  // Language and direction.
  const doc = await page.evaluate(() => ({
    lang: document.documentElement.lang,
    attr: document.documentElement.getAttribute("dir"),
    dir: document.dir,
    computed: getComputedStyle(document.body).direction,
  }));
  check(doc.lang === lang, `[${lang}] <html lang> is ${doc.lang}`);
  check(doc.attr === expected.dir && doc.dir === expected.dir, `[${lang}] dir is ${doc.attr}/${doc.dir}, want ${expected.dir}`);
  check(doc.computed === expected.dir, `[${lang}] computed direction ${doc.computed}`);

  // Username, usage, expiry.
  const username = page.locator("#username");
  check(await username.isVisible(), `[${lang}] username not visible`);
  check((await username.innerText()).trim() === expected.username, `[${lang}] username is "${await username.innerText()}"`);
  const usage = page.locator("#usage-text");
  check(await usage.isVisible(), `[${lang}] usage not visible`);
  const usageText = (await usage.innerText()).trim();
  check(usageText === expected.usage, `[${lang}] usage is "${usageText}", want "${expected.usage}"`);
  check(await page.locator("#usage [role=progressbar]").isVisible(), `[${lang}] usage bar not visible`);
  check(await page.locator("#expire-text").isVisible(), `[${lang}] expiry not visible`);
  check(await page.locator("#status").isVisible(), `[${lang}] status not visible`);

  // Every share link, whole, inside the screen width, with a copy button and a QR code.
  const codes = page.locator("#configs code.link");
  check((await codes.count()) === expected.links.length, `[${lang}] ${await codes.count()} links on the page, want ${expected.links.length}`);
  for (let i = 0; i < expected.links.length; i++) {
    const code = codes.nth(i);
    await code.scrollIntoViewIfNeeded();
    check(await code.isVisible(), `[${lang}] link ${i} not visible`);
    check((await code.textContent()) === expected.links[i], `[${lang}] link ${i} text differs`);
    const box = await code.boundingBox();
    check(box && box.x >= 0 && box.x + box.width <= WIDTH + 0.5 && box.height >= 16, `[${lang}] link ${i} box ${JSON.stringify(box)}`);
    const config = page.locator("#configs .config").nth(i);
    check((await config.locator("button[data-copy]").getAttribute("data-copy")) === expected.links[i], `[${lang}] link ${i} copy button holds another text`);
    check((await config.locator(".qr svg").count()) === 1, `[${lang}] link ${i} has no QR code`);
  }

  // The subscription URL: text, copy button and a QR code big enough to scan.
  const sub = page.locator("#subscription-url");
  check(await sub.isVisible(), `[${lang}] subscription URL not visible`);
  check((await sub.textContent()) === expected.subscription_url, `[${lang}] subscription URL differs`);
  const subQr = await page.locator("#subscription .qr svg").boundingBox();
  check(subQr && subQr.width >= 180 && Math.abs(subQr.width - subQr.height) < 1, `[${lang}] subscription QR is ${JSON.stringify(subQr)}`);
  check(subQr && subQr.x >= 0 && subQr.x + subQr.width <= WIDTH, `[${lang}] subscription QR outside the screen`);

  // One-tap import buttons.
  const hrefs = await page.locator("#apps a.app").evaluateAll((as) => as.map((a) => a.getAttribute("href")));
  for (const scheme of APP_SCHEMES) {
    check(hrefs.some((h) => h.startsWith(scheme)), `[${lang}] no import button with ${scheme}`);
  }
  const columns = await page.locator("#apps a.app").evaluateAll((as) => new Set(as.map((a) => Math.round(a.getBoundingClientRect().left))).size);
  check(columns === 2, `[${lang}] import buttons in ${columns} column(s) at ${WIDTH} px, want 2`);
  for (const app of await page.locator("#apps .app").all()) {
    const box = await app.boundingBox();
    check(box && box.height >= 44 && box.x >= 0 && box.x + box.width <= WIDTH, `[${lang}] import button box ${JSON.stringify(box)}`);
  }

  // Open the first link's QR code (so the screenshot shows one) and check it.
  const first = page.locator("#configs .config").first();
  await first.locator("summary").click();
  const linkQr = await first.locator(".qr svg").boundingBox();
  check(linkQr && linkQr.width >= 180, `[${lang}] first link's QR is ${JSON.stringify(linkQr)}`);

  // No horizontal scrolling at 360 px.
  const widths = await page.evaluate(() => ({
    doc: document.documentElement.scrollWidth,
    body: document.body.scrollWidth,
  }));
  check(widths.doc <= WIDTH && widths.body <= WIDTH, `[${lang}] page is ${widths.doc}/${widths.body} px wide at ${WIDTH} px`);

  // Copy the first link with the Clipboard API and read it back.
  const copyButton = first.locator("button[data-copy]");
  await page.evaluate(() => navigator.clipboard.writeText("-"));
  await copyButton.click();
  await page.waitForFunction((el) => el.hasAttribute("data-copied"), await copyButton.elementHandle());
  const how = await copyButton.getAttribute("data-copied");
  check(how === "clipboard", `[${lang}] first link copied by "${how}", want "clipboard"`);
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  check(copied === expected.links[0], `[${lang}] clipboard holds "${copied.slice(0, 60)}...", want the first link`);
  check(await page.locator("#toast.show").isVisible(), `[${lang}] no "copied" notice`);

  // Without navigator.clipboard (pages served over plain HTTP): the
  // textarea + execCommand fallback.
  await page.evaluate(() => {
    window.__clipboard = navigator.clipboard;
    Object.defineProperty(navigator, "clipboard", { value: undefined, configurable: true });
  });
  const subButton = page.locator("#subscription button[data-copy]");
  await subButton.click();
  await page.waitForFunction((el) => el.hasAttribute("data-copied"), await subButton.elementHandle());
  const fallbackHow = await subButton.getAttribute("data-copied");
  check(fallbackHow === "fallback", `[${lang}] subscription URL copied by "${fallbackHow}", want "fallback"`);
  const copiedSub = await page.evaluate(() => window.__clipboard.readText());
  check(copiedSub === expected.subscription_url, `[${lang}] clipboard holds "${copiedSub}" after the fallback copy`);
  await page.evaluate(() => {
    Object.defineProperty(navigator, "clipboard", { value: window.__clipboard, configurable: true });
  });

  check(errors.length === 0, `[${lang}] console errors: ${errors.join(" | ")}`);

  // Screenshots: light, then dark.
  await page.evaluate(() => {
    document.getElementById("toast").className = "";
    document.querySelectorAll(".done").forEach((el) => el.classList.remove("done"));
    window.scrollTo(0, 0);
  });
  const light = path.join(artifactDir, `subscription-page-${lang}.png`);
  await page.screenshot({ path: light, fullPage: true, animations: "disabled" });
  await page.emulateMedia({ colorScheme: "dark" });
  const dark = path.join(artifactDir, `subscription-page-${lang}-dark.png`);
  await page.screenshot({ path: dark, fullPage: true, animations: "disabled" });
  console.error(`  screenshots: ${light}, ${dark}`);
  await page.close();
}
