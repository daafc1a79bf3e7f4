// Issue 13, "truth and money": Fleet lists Assistants created with kubectl (the demo seeds
// two: one Running, one Failed) with their phase and owner, counts the Failed one as needing
// attention, and adopts one into a client record; screenshots console-fleet and console-adopt.
import { base, test, assert, launch, signIn, finish } from './lib.mjs';

const { browser, page, errors, shot } = await launch();

try {
  await test('sign in', async () => { await signIn(page); });

  await test('fleet lists unmanaged Assistants with phase, owner and Adopt', async () => {
    await page.goto(`${base}/fleet`);
    const panel = await page.textContent('#unmanaged');
    assert(panel.includes('clawhost-clients/kubectl-lab') || panel.includes('kubectl-lab'), `lab listed: ${panel}`);
    assert(panel.includes('Lab Team') && panel.includes('lab@example.com'), 'owner shown');
    assert(panel.includes('Failed') && panel.includes('Running'), 'phases shown');
    const attention = await page.locator('.stat', { hasText: 'need attention' }).locator('.n').textContent();
    // chen-studio (Degraded) and kubectl-broken (Failed, unmanaged).
    assert(attention.trim() === '2', `need attention ${attention}`);
    assert((await page.locator('#unmanaged a:has-text("Adopt")').count()) === 2, 'two Adopt links');
    await shot('fleet');
  });

  await test('adopt one: the form is prefilled from spec.owner, the client appears', async () => {
    await page.click('#unmanaged tr:has-text("kubectl-lab") a:has-text("Adopt")');
    const form = await page.textContent('main');
    assert(form.includes('Lab Team') && form.includes('lab@example.com'), 'owner prefilled');
    await page.selectOption('#billing_status', 'trial');
    await page.fill('#notes', 'Created with kubectl by the lab.');
    await shot('adopt');
    await page.click('button:has-text("Adopt as client")');
    await page.waitForSelector('.notice');
    assert((await page.textContent('.notice')).includes('adopted'), 'notice');
    assert((await page.textContent('.titlebar')).includes('Lab Team'), 'client page of the adopted Assistant');
    await page.goto(`${base}/clients?q=kubectl-lab`);
    assert((await page.locator('tbody tr').count()) === 1, 'in the clients list');
    await page.goto(`${base}/fleet`);
    const panel = await page.textContent('#unmanaged');
    assert(!panel.includes('kubectl-lab'), 'no longer unmanaged');
    await page.goto(`${base}/audit`);
    assert((await page.textContent('main')).includes('client.adopt'), 'audited');
  });

  await test('no browser console errors (CSP violations included)', async () => {
    assert(errors.length === 0, errors.join('\n'));
  });
} finally {
  await browser.close();
}
finish('truth');
