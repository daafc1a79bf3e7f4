// The details that make the console trustworthy (issue 13, item 13), in headless Chromium:
// the rotate-token confirmation step, the delete page keeping the volume choice after a
// wrong confirmation, the notice after delete and "Show deleted", the audit log's filters.
import { base, test, assert, launch, signIn, finish } from './lib.mjs';

const { browser, page, errors, shot } = await launch();

try {
  await test('sign in', async () => {
    await signIn(page);
  });

  await test('rotate token asks for confirmation, then shows the new token once', async () => {
    await page.goto(`${base}/clients?q=acme`);
    await page.click('a:has-text("Acme Legal LLP")');
    await page.click('a:has-text("Rotate gateway token")');
    assert(/\/clients\/\d+\/rotate-token$/.test(page.url()), `at ${page.url()}`);
    const text = await page.textContent('main');
    assert(text.includes('The old token stops working'), text);
    assert(text.includes('The new token is shown once'), text);
    await shot('confirm');
    // Cancel changes nothing and goes back to the client.
    await page.click('a:has-text("Cancel")');
    assert(/\/clients\/\d+$/.test(page.url()), `at ${page.url()}`);
    await page.click('a:has-text("Rotate gateway token")');
    await page.click('button:has-text("Rotate gateway token")');
    const token = (await page.textContent('#gateway-token')).trim();
    assert(token.length === 43, `token ${token}`);
  });

  await test('delete with a wrong confirmation keeps the volume choice', async () => {
    await page.goto(`${base}/clients?q=bakery`);
    await page.click('a:has-text("Bageri Lund AB")');
    await page.click('text=Delete…');
    assert(await page.isChecked('input[value=Retain]'), 'Retain is the current choice');
    await page.check('input[value=Delete]');
    await page.fill('#confirm', 'bakery-lnud');
    await page.click('button:has-text("Delete client")');
    assert((await page.textContent('ul.errors')).includes('to confirm deletion'), 'mismatch refused');
    assert(await page.isChecked('input[value=Delete]'), 'the Delete choice was kept');
    assert(!(await page.isChecked('input[value=Retain]')), 'not switched back to Retain');
    await shot('delete');
  });

  await test('the list says what was deleted; deleted clients can be shown', async () => {
    await page.fill('#confirm', 'bakery-lund');
    await page.click('button:has-text("Delete client")');
    await page.waitForURL(/\/clients\?deleted=\d+$/);
    const notice = await page.textContent('.notice');
    assert(notice.includes('Client Bageri Lund AB (bakery-lund) was deleted; its volume was deleted'), notice);
    assert(!(await page.textContent('tbody')).includes('Bageri'), 'hidden by default');
    await page.check('input[name=include_deleted]');
    await page.click('button:has-text("Filter")');
    const row = page.locator('tr.deleted', { hasText: 'Bageri Lund AB' });
    assert((await row.count()) === 1, 'listed when asked');
    assert((await row.textContent()).includes('Deleted'), 'marked deleted');
    await row.locator('a').click();
    assert((await page.textContent('main')).includes('was deleted on'), 'its kept record');
  });

  await test('audit log: readable changes and filters', async () => {
    // A client without a subscription: a subscribed one's billing status is set by billing.
    await page.goto(`${base}/clients?q=chen-studio`);
    await page.click('tbody a:has-text("Chen Design Studio")');
    await page.selectOption('select[name=billing_status]', 'past_due');
    await page.click('button:has-text("Save record")');
    await page.goto(`${base}/audit`);
    const changed = await page.textContent('table.audit tbody tr');
    assert(changed.includes('billing_status: active → past_due'), changed);
    const all = await page.locator('table.audit tbody tr').count();
    assert(all >= 2, `events ${all}`);
    assert(!(await page.textContent('main')).includes('{"'), 'no raw JSON');
    await page.selectOption('select[name=action]', 'client.delete');
    await page.click('button:has-text("Filter")');
    const rows = page.locator('table.audit tbody tr');
    assert((await rows.count()) === 1, `one delete, got ${await rows.count()}`);
    const text = await rows.first().textContent();
    assert(text.includes('bakery-lund') && text.includes('volume: Delete'), text);
    await page.fill('input[name=client]', 'acme');
    await page.click('button:has-text("Filter")');
    assert((await page.textContent('tbody')).includes('No events.'), 'no delete of acme');
    await page.goto(`${base}/audit?client=acme`);
    const acme = await page.textContent('tbody');
    assert(acme.includes('client.rotate_token') && !acme.includes('bakery'), acme);
    await page.goto(`${base}/audit`);
    await shot('audit');
  });

  await test('no browser console errors (CSP violations included)', async () => {
    assert(errors.length === 0, errors.join('\n'));
  });
} finally {
  await browser.close();
}
finish('details');
