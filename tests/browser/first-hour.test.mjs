// run.sh env: NO_ADMIN=1 CONSOLE_DEMO_STUCK_CLIENT=true
// A person's first hour (issue 13, items 10-12 and 14), on a console with no administrator yet
// and a seeded client whose data volume cannot be provisioned: readable titles (a contrast
// check), the first-run setup link from the console's log, accent-insensitive search, a stuck
// client that says why, one time format, and a downgrade that asks first.
import fs from 'node:fs';
import { base, test, assert, launch, finish } from './lib.mjs';

const { browser, page, errors, shot } = await launch();
const email = process.env.ADMIN_EMAIL, password = process.env.ADMIN_PASSWORD;

/** WCAG contrast ratio of an element's text against the first opaque background behind it. */
async function contrast(selector) {
  return page.$eval(selector, el => {
    const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const c = [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
      return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    };
    const fg = rgb(getComputedStyle(el).color);
    let bg = [255, 255, 255];
    for (let n = el; n; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) { bg = c.slice(0, 3); break; }
    }
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    return (a + 0.05) / (b + 0.05);
  });
}

/** The last setup link the console printed in its log. */
function setupPath() {
  const log = fs.readFileSync(process.env.CONSOLE_LOG, 'utf8');
  const all = [...log.matchAll(/\/setup\/([A-Za-z0-9_-]{20,})/g)];
  assert(all.length > 0, `no setup link in the console's log:\n${log}`);
  return `/setup/${all[all.length - 1][1]}`;
}

try {
  let link;

  await test('sign-in title is readable and says how to start', async () => {
    await page.goto(`${base}/login`);
    const c = await contrast('h1');
    assert(c >= 4.5, `sign-in title contrast ${c.toFixed(2)} < 4.5`);
    const text = await page.textContent('main');
    assert(text.includes('No administrator exists yet'), 'first-run notice');
    assert(text.includes('clawhost admin create --email you@example.com --database-url sqlite://'), 'the command to run');
    await shot('login');
  });

  await test('not-found title is readable', async () => {
    const r = await page.goto(`${base}/no-such-page`);
    assert(r.status() === 404, `status ${r.status()}`);
    const c = await contrast('h1');
    assert(c >= 4.5, `not-found title contrast ${c.toFixed(2)} < 4.5`);
  });

  await test('first run: the setup link creates the admin and signs in', async () => {
    link = setupPath();
    await page.goto(`${base}${link}`);
    const c = await contrast('h1');
    assert(c >= 4.5, `setup title contrast ${c.toFixed(2)} < 4.5`);
    await page.fill('#email', email);
    await page.fill('#password', 'short');
    await page.fill('#repeat', 'short');
    // The browser's own minlength check would stop the form: drop it to see the server's rule.
    await page.$eval('#password', el => el.removeAttribute('minlength'));
    await page.click('button[type=submit]');
    assert((await page.textContent('.errors')).includes('at least 12 characters'), 'password rule');
    await page.fill('#email', email);
    await page.fill('#password', password);
    await page.fill('#repeat', password);
    await shot('setup');
    await page.click('button[type=submit]');
    await page.waitForURL(`${base}/clients`);
    assert((await page.textContent('header')).includes(email), 'signed in as the new admin');
  });

  await test('the setup link works once', async () => {
    const r = await page.goto(`${base}${link}`);
    assert(r.status() === 410, `status ${r.status()}`);
    assert((await page.textContent('h1')).includes('Setup is complete'), 'says why');
    const c = await contrast('h1');
    assert(c >= 4.5, `message title contrast ${c.toFixed(2)} < 4.5`);
  });

  await test('accented names are found with or without accents', async () => {
    for (const q of ['Élodie', 'elodie', 'ÜNAL', 'unal']) {
      await page.goto(`${base}/clients`);
      await page.fill('input[name=q]', q);
      await page.press('input[name=q]', 'Enter');
      await page.waitForLoadState();
      const rows = page.locator('tbody tr');
      assert((await rows.count()) === 1, `q=${q}: ${await rows.count()} rows`);
      assert((await rows.first().textContent()).includes('Élodie Ünal'), `q=${q}`);
    }
  });

  await test('a client stuck on its volume says why', async () => {
    await page.click('tbody tr:has-text("elodie-unal") a');
    await page.waitForURL(/\/clients\/\d+$/);
    const main = await page.textContent('main');
    assert(main.includes('PersistentVolumeClaim/') && main.includes('ProvisioningFailed') && main.includes('fast-ssd'), 'volume events');
    assert(main.includes('No log lines yet'), 'the log panel says why it is empty');
    assert((await page.locator('pre.log').count()) === 0, 'no empty log box');
    assert(!/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(main), 'one time format (no RFC 3339)');
    assert(/\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC \(\d+[smhd] ago\)/.test(main), 'times with their age');
    await shot('client');
  });

  await test('a downgrade asks for confirmation first', async () => {
    await page.goto(`${base}/clients?q=acme`);
    await page.click('tbody tr:has-text("acme-legal") a');
    await page.waitForURL(/\/clients\/\d+$/);
    await page.fill('input[name=version]', '2026.1.24');
    await page.click('button:has-text("Change version")');
    assert((await page.textContent('h1')).includes('Confirm the downgrade'), 'asked');
    assert((await page.textContent('main')).includes('Downgrade from 2026.9.6 to 2026.1.24'), 'says from and to');
    await page.click('button:has-text("Downgrade to 2026.1.24")');
    await page.waitForSelector('.notice');
    assert((await page.textContent('.notice')).includes('version was changed'), 'done');
    await page.fill('input[name=version]', '9999.1.1');
    await page.click('button:has-text("Change version")');
    assert((await page.textContent('main')).includes('after today'), 'implausible version refused');
  });

  await test('no unexpected browser errors', async () => {
    const unexpected = errors.filter(e => !/status of 410/.test(e));
    assert(unexpected.length === 0, unexpected.join('\n'));
  });
} finally {
  await browser.close();
}
finish('first-hour');
