#!/usr/bin/env node
/**
 * Drives the admin page in Debian's Chromium like an admin would: log in, create a home, pick
 * every photo of a directory for one gallery, type a caption per photo, watch every progress bar
 * reach 100 %, press Save once. Prints one JSON line with what it saw and how long it took.
 *
 *   node e2e/admin-upload.mjs --base http://127.0.0.1:PORT --token T --photos DIR
 *        [--gallery rooms] [--reload-at 0.4] [--screenshot FILE] [--chunk-size BYTES]
 *        [--stall-ms MS] [--upload-kbps N] [--timeout-ms MS]
 *
 * --base is where the page and API are reached (a proxy in front of the server, for faults).
 * --reload-at F reloads the page once when F of all bytes are accepted, without any other action.
 * --upload-kbps throttles the browser's uploads (Chromium's own network emulation).
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync'];

/** Launch Debian's Chromium with a fresh profile; never a downloaded browser build. */
export async function launch() {
  const profile = await mkdtemp(path.join(tmpdir(), 'tusgallery-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 412, height: 915 }, // a phone
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** What the page shows of every card, and the overall byte progress. */
function snapshot(page) {
  return page.evaluate(() => {
    const cards = [...document.querySelectorAll('.card')].map((card) => ({
      key: card.dataset.key,
      state: card.dataset.state,
      progress: card.querySelector('progress')?.value ?? 0,
      caption: card.querySelector('.caption')?.value ?? '',
      status: card.querySelector('.status')?.textContent ?? '',
    }));
    const overall = document.querySelector('.savebar progress');
    return { cards, overall: overall ? overall.value / 100 : 0,
      version: document.querySelector('.editor')?.dataset.version };
  });
}

/**
 * @param {import('playwright-core').Page} page
 * @param {object} opts
 */
export async function run(page, opts) {
  const timings = {};
  const t0 = Date.now();
  const files = (await readdir(opts.photos)).filter((f) => /\.jpe?g$/i.test(f)).sort()
    .map((f) => path.join(opts.photos, f));
  if (!files.length) throw new Error(`no JPEG in ${opts.photos}`);
  const uploaderOptions = JSON.stringify({
    ...(opts.chunkSize ? { chunkSize: Number(opts.chunkSize) } : {}),
    ...(opts.stallMs ? { stallTimeoutMs: Number(opts.stallMs) } : {}),
  });
  await page.addInitScript((value) => {
    localStorage.setItem('tusgallery.uploader', value);
  }, uploaderOptions);
  if (opts.uploadKbps) {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0,
      downloadThroughput: -1, uploadThroughput: (Number(opts.uploadKbps) * 1024) / 8 });
  }

  await page.goto(`${opts.base}/admin/`);
  await page.getByLabel('Access token').fill(opts.token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'New home' }).waitFor();
  const homeName = `E2E home ${new Date().toISOString()}`;
  await page.getByLabel('Name').fill(homeName);
  await page.getByLabel('Address').fill('1 Test Street');
  await page.getByLabel('Description').fill('Made by the browser end-to-end test');
  await page.getByRole('button', { name: 'Create home' }).click();
  await page.locator('.editor').waitFor();
  const homeId = await page.locator('.editor').getAttribute('data-home-id');
  timings.login_create_ms = Date.now() - t0;

  const gallery = opts.gallery || 'rooms';
  const tUpload = Date.now();
  await page.locator(`input.file-input[data-gallery="${gallery}"]`).setInputFiles(files);
  const cards = page.locator(`section.gallery[data-gallery="${gallery}"] .card`);
  await cards.nth(files.length - 1).waitFor();
  // Captions in the order shown, so the API check can tell the order survived.
  for (let i = 0; i < files.length; i += 1) {
    await cards.nth(i).locator('.caption').fill(`photo ${String(i + 1).padStart(2, '0')}`);
  }

  const maxProgress = new Map();
  const statesSeen = new Set();
  let screenshotTaken = false;
  let reloaded = false;
  const deadline = Date.now() + Number(opts.timeoutMs || 110_000);
  for (;;) {
    const snap = await snapshot(page);
    for (const c of snap.cards) {
      maxProgress.set(c.key, Math.max(maxProgress.get(c.key) ?? 0, c.progress));
      statesSeen.add(c.state);
    }
    if (opts.screenshot && !screenshotTaken && snap.overall > 0.15 && snap.overall < 0.85) {
      await page.screenshot({ path: opts.screenshot, fullPage: false });
      screenshotTaken = true;
    }
    if (opts.reloadAt && !reloaded && snap.overall >= Number(opts.reloadAt)) {
      reloaded = true;
      timings.reload_at_fraction = snap.overall;
      await page.reload();
      await page.locator('.editor').waitFor();
      await cards.nth(files.length - 1).waitFor();
      continue;
    }
    const done = snap.cards.length === files.length
      && snap.cards.every((c) => c.state === 'ready');
    const failed = snap.cards.filter((c) => c.state === 'failed');
    if (done) break;
    if (failed.length) throw new Error(`failed uploads: ${JSON.stringify(failed)}`);
    if (Date.now() > deadline) {
      throw new Error(`uploads did not finish: ${JSON.stringify(snap.cards.map((c) => c.state))}`);
    }
    await page.waitForTimeout(100);
  }
  timings.upload_ms = Date.now() - tUpload;

  const tSave = Date.now();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('.message.success').waitFor({ timeout: 60_000 });
  timings.save_ms = Date.now() - tSave;
  const final = await snapshot(page);
  return {
    home_id: homeId,
    home_name: homeName,
    photos: files.length,
    version: Number(final.version),
    all_bars_reached_100: [...maxProgress.values()].length === files.length
      && [...maxProgress.values()].every((v) => v === 100),
    states_seen: [...statesSeen].sort(),
    reloaded,
    screenshot: screenshotTaken ? opts.screenshot : null,
    saved_cards: final.cards.length,
    saved_captions: final.cards.map((c) => c.caption),
    timings: { ...timings, total_ms: Date.now() - t0 },
  };
}

async function main() {
  const { values } = parseArgs({ options: {
    base: { type: 'string' }, token: { type: 'string' }, photos: { type: 'string' },
    gallery: { type: 'string' }, 'reload-at': { type: 'string' },
    screenshot: { type: 'string' }, 'chunk-size': { type: 'string' },
    'stall-ms': { type: 'string' }, 'upload-kbps': { type: 'string' },
    'timeout-ms': { type: 'string' },
  } });
  for (const required of ['base', 'token', 'photos']) {
    if (!values[required]) throw new Error(`--${required} is required`);
  }
  const browser = await launch();
  const page = await browser.context.newPage();
  const consoleErrors = [];
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(msg.text()); });
  page.on('pageerror', (err) => consoleErrors.push(String(err)));
  try {
    const result = await run(page, {
      base: values.base.replace(/\/+$/, ''), token: values.token, photos: values.photos,
      gallery: values.gallery, reloadAt: values['reload-at'], screenshot: values.screenshot,
      chunkSize: values['chunk-size'], stallMs: values['stall-ms'],
      uploadKbps: values['upload-kbps'], timeoutMs: values['timeout-ms'],
    });
    console.log(JSON.stringify({ ok: true, ...result, console_errors: consoleErrors }));
  } catch (err) {
    const shot = path.join(tmpdir(), `tusgallery-e2e-failure-${process.pid}.png`);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    console.log(JSON.stringify({ ok: false, error: String(err && err.stack ? err.stack : err),
      failure_screenshot: shot, console_errors: consoleErrors }));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
