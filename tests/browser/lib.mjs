// Shared by every browser suite: Chromium launch, a tiny test runner, screenshots, sign-in.
// Each suite runs against its own console (tests/browser/run.sh), so suites never share state.
import { createRequire } from 'node:module';
import path from 'node:path';
const require = createRequire(import.meta.url);
const { chromium } = require(path.join(process.env.NODE_PATH, 'playwright-core'));

export const base = process.env.BASE_URL;
export const shots = process.env.SCREENSHOTS;
let passed = 0, failed = 0;

export async function test(name, fn) {
  try { await fn(); passed++; console.log(`ok - ${name}`); }
  catch (e) { failed++; console.log(`not ok - ${name}\n  ${String(e.stack || e).split('\n').slice(0, 4).join('\n  ')}`); }
}
export function assert(cond, msg) { if (!cond) throw new Error(msg); }

/** A fresh persistent Chromium profile; `viewport` defaults to a laptop screen. */
export async function launch(viewport = { width: 1360, height: 860 }) {
  const browser = await chromium.launchPersistentContext(process.env.USER_DATA_DIR, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--disable-quic'],
    viewport,
  });
  const page = browser.pages()[0] || await browser.newPage();
  const errors = [];
  // Deliberately refused submissions (401 sign-in, 4xx forms) log their status; anything else is a defect.
  page.on('console', m => { if (m.type() === 'error' && !/status of (401|403|404|409|422|429)/.test(m.text())) errors.push(m.text()); });
  const shot = async (name) => page.screenshot({ path: path.join(shots, `console-${name}.png`), fullPage: true });
  return { browser, page, errors, shot };
}

/** Signs in as the admin run.sh created. */
export async function signIn(page, email = process.env.ADMIN_EMAIL, password = process.env.ADMIN_PASSWORD) {
  await page.goto(`${base}/login`);
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}/clients`);
}

/** Prints the suite's summary line and exits with its status. */
export function finish(suite) {
  console.log(`browser ${suite}: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
