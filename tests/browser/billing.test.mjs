// Issue 15, billing: the needs-attention view (the demo seeds a past-due client about to
// be suspended), adding a price, starting a client's subscription from its page, running
// last month's invoices, opening one, marking it paid and printing it (the print style
// sheet hides the console around the invoice; page.pdf() gives the PDF the browser would
// save). Screenshots console-billing-*.
import { base, test, assert, launch, signIn, finish } from './lib.mjs';

const { browser, page, errors, shot } = await launch();
let invoiceUrl = '';

try {
  await test('sign in; Billing is in the navigation', async () => {
    await signIn(page);
    await page.click('header.top nav a:has-text("Billing")');
    await page.waitForURL(`${base}/billing`);
  });

  await test('needs attention lists the past-due client that will be suspended', async () => {
    const upcoming = await page.textContent('#upcoming');
    assert(upcoming.includes('will be suspended'), `upcoming: ${upcoming}`);
    assert(upcoming.includes('Bageri Lund AB'), 'the past-due client is named');
    assert((await page.locator('#upcoming a[href^="/clients/"]').count()) >= 1, 'linked to the client');
    await shot('billing-attention');
  });

  await test('add a price: it becomes the plan\'s current price', async () => {
    await page.click('nav.billing-tabs a:has-text("Prices")');
    await page.selectOption('#price-plan', 'small');
    await page.fill('#price-monthly', 'twenty');
    await page.click('button:has-text("Add price")');
    assert((await page.textContent('ul.errors')).includes('Monthly price'), 'a wrong amount is named');
    assert((await page.inputValue('#price-monthly')) === 'twenty', 'what was typed is kept');
    await page.fill('#price-monthly', '24.90');
    await page.fill('#price-setup', '');
    await page.fill('#price-trial', '7');
    await page.click('button:has-text("Add price")');
    await page.waitForSelector('.notice');
    const plan = await page.textContent('#plan-small');
    assert(plan.includes('24.90 EUR / month'), `current price: ${plan}`);
    assert(plan.includes('19.00 EUR'), 'the old price stays in the history');
    assert((await page.textContent('#plan-standard')).includes('scheduled'), 'a scheduled raise is shown');
    await shot('billing-prices');
  });

  await test('start a client\'s subscription from its page (confirmed)', async () => {
    await page.goto(`${base}/clients?q=chen-studio`);
    await page.click('tbody a:has-text("Chen Design Studio")');
    assert(await page.isVisible('#no-subscription'), 'no subscription yet');
    await page.click('#start-subscription');
    assert((await page.textContent('.confirm')).includes('What happens'), 'a confirmation page');
    await page.fill('#start-customer', 'cus_CHENSTUDIO');
    await page.click('button:has-text("Start subscription")');
    await page.waitForSelector('#subscription-state');
    assert((await page.textContent('.notice')).includes('subscription was started'), 'notice');
    assert((await page.textContent('#subscription-state')).trim() === 'active', 'active (no trial on large)');
    assert((await page.inputValue('#customer-id')) === 'cus_CHENSTUDIO', 'customer id kept');
  });

  await test('a past-due client\'s panel says when it will be suspended and lists its invoices', async () => {
    await page.goto(`${base}/clients?q=bakery-lund`);
    await page.click('tbody a:has-text("Bageri Lund AB")');
    assert((await page.textContent('#subscription-state')).trim() === 'past_due', 'past due');
    const panel = await page.textContent('#subscription');
    assert(panel.includes('Suspends on') && panel.includes('will be suspended for non-payment'), `dates: ${panel}`);
    assert((await page.locator('#subscription table.invoices tbody tr a').count()) >= 1, 'its invoices');
    await page.locator('#subscription').screenshot({ path: `${process.env.SCREENSHOTS}/console-billing-subscription.png` });
  });

  await test('run last month\'s invoices (confirmed); the list shows them', async () => {
    await page.goto(`${base}/billing/invoices`);
    await page.click('#run-invoices');
    assert((await page.textContent('.confirm')).includes('sequential numbers'), 'the run says what it does');
    await page.click('button:has-text("Issue invoices for")');
    const issued = Number((await page.textContent('#run-issued')).trim());
    // Acme and the bakery; the clinic was suspended by an admin all month: nothing billable.
    assert(issued === 2, `two subscribed clients invoiced: ${await page.textContent('main')}`);
    await page.click('a:has-text("Back to the invoices of")');
    assert((await page.locator('table.invoices tbody tr').count()) === 2, 'two rows');
    await shot('billing-invoices');
    invoiceUrl = await page.locator('table.invoices tbody tr:has-text("Acme Legal") a[href^="/billing/invoices/"]').first().getAttribute('href');
  });

  await test('open an invoice, mark it paid, print it to PDF without the console around it', async () => {
    await page.goto(`${base}${invoiceUrl}`);
    const doc = await page.textContent('article.invoice');
    assert(doc.includes('Acme Legal LLP') && doc.includes('Bill to'), 'bill-to block');
    assert(doc.includes('Total') && /\d+\.\d\d EUR/.test(doc), 'a total in EUR');
    assert((await page.locator('article.invoice table.lines tbody tr').count()) >= 1, 'lines');
    await page.click('#mark-paid');
    await page.waitForSelector('#paid-stamp');
    assert((await page.textContent('.notice')).includes('marked paid'), 'notice');
    await shot('billing-invoice');
    await page.emulateMedia({ media: 'print' });
    assert(!(await page.isVisible('header.top')), 'the navigation is hidden in print');
    assert(!(await page.isVisible('.no-print')), 'the actions are hidden in print');
    assert(await page.isVisible('article.invoice'), 'the invoice prints');
    const pdf = await page.pdf({ format: 'A4' });
    assert(pdf.length > 1000 && pdf.subarray(0, 4).toString() === '%PDF', `a PDF (${pdf.length} bytes)`);
    await page.emulateMedia({ media: 'screen' });
    assert(await page.isVisible('header.top'), 'the navigation is back on screen');
  });

  await test('settings page renders the rules', async () => {
    await page.goto(`${base}/billing/settings`);
    assert((await page.inputValue('#grace_days')) === '7', 'default grace days');
    await shot('billing-settings');
  });

  await test('no browser console errors (CSP violations included)', async () => {
    assert(errors.length === 0, errors.join('\n'));
  });
} finally {
  await browser.close();
}
finish('billing');
