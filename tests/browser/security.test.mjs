// Security flows in real headless Chromium: a spray of failed sign-ins with random e-mails
// does not lock the admin out; a read-only API token with an expiry is created on the tokens
// page (screenshot console-tokens.png) and cannot delete a client.
import { base, test, assert, launch, signIn, finish } from './lib.mjs';

const { browser, page, errors, shot } = await launch();

try {
  await test('a spray of failed sign-ins with random e-mails does not lock the admin out', async () => {
    // More failures than the old per-address limit (5), all from this browser's address.
    for (let i = 0; i < 8; i++) {
      await page.goto(`${base}/login`);
      await page.fill('#email', `random${i}-${Date.now()}@example.com`);
      await page.fill('#password', 'guessing-the-password');
      await page.click('button[type=submit]');
      const text = await page.textContent('.errors');
      assert(text.includes('Wrong e-mail or password'), `attempt ${i}: ${text}`);
    }
    await signIn(page);
    assert((await page.textContent('header')).includes(process.env.ADMIN_EMAIL), 'signed in');
  });

  let token = '';
  await test('create a read-only API token that expires in 30 days', async () => {
    await page.goto(`${base}/tokens`);
    await page.fill('#token-name', 'billing export');
    assert(await page.isChecked('input[name=preset][value=read]'), 'read-only is the default');
    assert((await page.inputValue('#token-expires')) === '90', 'default expiry 90 days');
    await page.selectOption('#token-expires', '30');
    await page.click('button:has-text("Create token")');
    token = (await page.textContent('#api-token')).trim();
    assert(token.startsWith('chk_'), `token ${token.slice(0, 4)}`);
    const row = await page.textContent('tbody tr:first-child');
    assert(row.includes('billing export') && row.includes('read'), row);
    const expires = new Date(Date.now() + 30 * 86400e3).toISOString().slice(0, 10);
    assert(row.includes(expires), `expires ${expires}: ${row}`);
    assert(row.includes('never'), 'not used yet');
    await shot('tokens');
  });

  await test('the read-only token reads but cannot delete a client', async () => {
    const auth = { Authorization: `Bearer ${token}` };
    const list = await page.request.get(`${base}/api/v1/clients`, { headers: auth });
    assert(list.status() === 200, `list ${list.status()}`);
    const id = (await list.json()).items[0].id;
    const del = await page.request.delete(`${base}/api/v1/clients/${id}?retention=Delete`, { headers: auth });
    assert(del.status() === 403, `delete ${del.status()}`);
    assert((await del.json()).error.includes('clients:delete'), 'names the missing scope');
    await page.goto(`${base}/tokens`);
    const row = await page.textContent('tbody tr:first-child');
    assert(!row.includes('never'), `last use shown: ${row}`);
  });

  await test('no console errors', async () => {
    assert(errors.length === 0, errors.join('\n'));
  });
} finally {
  await browser.close();
}
finish('security');
