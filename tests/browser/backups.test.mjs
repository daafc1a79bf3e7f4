// Issue 16, backups: a client's Backups card (health, next run, the snapshot table with its
// restore buttons; the demo seeds snapshots per client, one failing, one client without a
// backup for 3 days), "Back up now", the in-place restore's confirmation and the restored
// banner with Resume, "Restore as new client" pre-filling the form, and Fleet → Backups
// listing the client without a recent backup first. Screenshots console-backups-*.
import { base, test, assert, launch, signIn, finish } from './lib.mjs';

const { browser, page, errors, shot } = await launch();

async function openClient(name) {
  await page.goto(`${base}/clients?q=${encodeURIComponent(name)}`);
  await page.click(`tbody a:has-text("${name}")`);
  await page.waitForSelector('#backups');
}

try {
  await test('sign in', async () => { await signIn(page); });

  await test('the Backups card shows health, next run and the snapshots with restore buttons', async () => {
    await openClient('Acme Legal LLP');
    const health = await page.textContent('#backup-health');
    assert(health.includes('SnapshotReady') && health.includes('is ready'), `health: ${health}`);
    assert(!(await page.textContent('#next-run')).includes('—'), 'a next run');
    const rows = await page.locator('#snapshots tbody tr').count();
    assert(rows === 4, `four snapshots, got ${rows}`);
    assert((await page.locator('#snapshots a:has-text("Restore here")').count()) === 4, 'restore on every ready row');
    assert((await page.locator('#snapshots a:has-text("Restore as new client")').count()) === 4, 'and as a new client');
    await page.locator('#backups').screenshot({ path: `${process.env.SCREENSHOTS}/console-backups-card.png` });
  });

  await test('a failing snapshot says why and offers no restore', async () => {
    await openClient('Bageri Lund AB');
    assert((await page.textContent('#backup-health')).includes('SnapshotFailed'), 'SnapshotFailed');
    const failed = page.locator('#snapshots tbody tr', { hasText: 'Failed' });
    assert((await failed.count()) === 1, 'one failed row');
    assert((await failed.textContent()).includes('quota exceeded'), 'the driver\'s error');
    assert((await failed.locator('a').count()) === 0, 'no restore on a failed snapshot');
  });

  await test('Back up now: a notice and a new manual snapshot', async () => {
    await openClient('Acme Legal LLP');
    await page.click('#backup-now');
    await page.waitForSelector('.notice');
    assert((await page.textContent('.notice')).includes('A snapshot was requested'), 'notice');
    assert((await page.locator('#snapshots tbody tr').count()) === 5, 'five snapshots now');
    assert((await page.textContent('#snapshots tbody tr:first-child')).includes('manual'), 'the newest is manual');
  });

  await test('restore as a new client pre-fills the form with a read-only snapshot line', async () => {
    const snapshot = (await page.textContent('#snapshots tbody tr:nth-child(2) code')).trim();
    await page.click('#snapshots tbody tr:nth-child(2) a:has-text("Restore as new client")');
    await page.waitForSelector('#restore-from');
    assert((await page.textContent('#restore-from')).includes(snapshot), 'the snapshot is named');
    assert((await page.locator('#restore-from input[name="from"]').count()) === 1, 'the form carries the source client');
    assert((await page.inputValue('#name')) === 'Acme Legal LLP', 'owner pre-filled');
    assert((await page.inputValue('#plan')) === 'standard', 'plan pre-filled');
    await shot('backups-new-client');
  });

  await test('restore in place: confirmation, a typo refused, then the restored banner with Resume', async () => {
    await openClient('Acme Legal LLP');
    const snapshot = (await page.textContent('#snapshots tbody tr:nth-child(2) code')).trim();
    await page.click('#snapshots tbody tr:nth-child(2) a:has-text("Restore here")');
    const confirm = await page.textContent('.confirm');
    assert(confirm.includes('What happens') && confirm.includes('suspended'), 'says it suspends');
    assert(confirm.includes('kept, labelled retained'), 'says the current volume is kept');
    await shot('backups-restore-confirm');
    await page.fill('#confirm', 'acme');
    await page.click('button:has-text("Suspend and restore")');
    assert((await page.textContent('ul.errors')).includes('to confirm the restore'), 'a typo is refused');
    await page.fill('#confirm', 'acme-legal');
    await page.click('button:has-text("Suspend and restore")');
    await page.waitForSelector('#restored-banner');
    const banner = await page.textContent('#restored-banner');
    assert(banner.includes(`Restored from ${snapshot}`), `banner: ${banner}`);
    assert(banner.includes('acme-legal-data') && banner.includes('is kept (retained)'), 'the old volume is kept');
    assert(banner.includes('Resume once the new claim') && !banner.includes('StorageReady'), `resume advice: ${banner}`);
    assert(await page.isVisible('#restored-banner button:has-text("Resume")'), 'Resume offered');
    assert((await page.textContent('#retained')).includes('acme-legal-data'), 'listed under retained volumes');
    await page.locator('#backups').screenshot({ path: `${process.env.SCREENSHOTS}/console-backups-restored.png` });
    await page.click('#restored-banner button:has-text("Resume")');
    await page.waitForSelector('.notice');
    assert(!(await page.isVisible('#restored-banner')), 'resumed: no banner');
  });

  await test('Fleet counts clients without a backup in 48 h and Fleet → Backups lists them first', async () => {
    await page.goto(`${base}/fleet`);
    const stat = await page.textContent('#backups-missing');
    assert(stat.includes('1') && stat.includes('without a backup in 48 h'), `count: ${stat}`);
    await page.click('#backups-missing');
    await page.waitForURL(`${base}/fleet/backups`);
    const first = await page.textContent('#fleet-backups tbody tr:first-child');
    assert(first.includes('Chen Design Studio') && first.includes('none in 48 h'), `first row: ${first}`);
    const second = await page.textContent('#fleet-backups tbody tr:nth-child(2)');
    assert(second.includes('Bageri Lund AB') && second.includes('SnapshotFailed'), `second row: ${second}`);
    await shot('fleet-backups');
  });

  await test('no browser console errors (CSP violations included)', async () => {
    assert(errors.length === 0, errors.join('\n'));
  });
} finally {
  await browser.close();
}
finish('backups');
