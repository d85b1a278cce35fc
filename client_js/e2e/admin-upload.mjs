#!/usr/bin/env node
/**
 * Drives the admin page in Debian's Chromium like an admin would: log in, create a home, pick
 * every photo of a directory for one gallery, type a caption per photo, watch every progress bar
 * reach 100 %, press Save once. Prints one JSON line with what it saw and how long it took.
 *
 *   node e2e/admin-upload.mjs --base http://127.0.0.1:PORT --token T --photos DIR
 *        [--gallery rooms] [--reload-at 0.4] [--screenshot FILE] [--chunk-size BYTES]
 *        [--stall-ms MS] [--upload-kbps N] [--timeout-ms MS] [--scenario upload|troubles]
 *
 * --base is where the page and API are reached (a proxy in front of the server, for faults).
 * --reload-at F leaves the page once when F of all bytes are accepted, reads every upload's offset
 *   from the server while no page runs, and opens the home again, without any other action; the
 *   result's `reload` says how many PATCH body bytes were sent after that beyond what was missing.
 * --upload-kbps throttles the browser's uploads (Chromium's own network emulation).
 * --scenario troubles: the homes list pages through more homes than a page; one of the files is
 *   no image; its reason shows and Save waits for its removal; someone else's save meanwhile is
 *   a version conflict, resolved with Reload keeping the admin's edits (twice: fields, captions).
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

/** Homes a page of the list in the troubles scenario: small, so paging is cheap to reach. */
const HOMES_PAGE = 2;

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

/** Form controls a screen reader could not name (no label, aria-label or text). */
function unlabelledControls(page) {
  return page.evaluate(() => [...document.querySelectorAll(
    'input:not([type=hidden]), button, select, textarea, progress',
  )].filter((el) => !el.closest('[hidden]'))
    .filter((el) => !(el.labels?.length || el.getAttribute('aria-label')?.trim()
      || el.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent.trim())))
    .map((el) => el.outerHTML.slice(0, 120)));
}

/**
 * The page's unsaved photos as its draft (IndexedDB) keeps them, with the upload URL the page
 * will resume: the draft's, or else the one tus-js-client stored under the photo's fingerprint
 * (the draft's copy is written a moment later and an unload can beat it).
 */
function draftPhotos(page) {
  return page.evaluate(() => new Promise((resolve, reject) => {
    const stored = Object.keys(localStorage).filter((key) => key.startsWith('tus::'))
      .map((key) => ({ key, url: JSON.parse(localStorage.getItem(key)).uploadUrl }));
    const open = indexedDB.open('tusgallery-admin');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const get = open.result.transaction('draft-photos').objectStore('draft-photos').getAll();
      get.onerror = () => reject(get.error);
      get.onsuccess = () => resolve(get.result.map((p) => {
        const print = ['', p.homeId, p.gallery, p.file.name, p.file.type, p.file.size,
          p.file.lastModified].join('|') + '::'; // tus-js-client's key: tus::FINGERPRINT::ID
        return { uploadUrl: p.uploadUrl || stored.find((s) => s.key.includes(print))?.url
          || null, size: p.file.size };
      }));
    };
  }));
}

/** What the server still lacks of the draft's photos, from its upload offsets. */
async function missingBytes(photos, opts) {
  let missing = 0;
  let unfinished = 0;
  for (const photo of photos) {
    if (!photo.uploadUrl) {
      missing += photo.size;
      unfinished += 1;
      continue;
    }
    const id = photo.uploadUrl.replace(/\/+$/, '').split('/').pop();
    const res = await fetch(`${opts.base}/api/uploads/${id}`,
      { headers: { Authorization: `Bearer ${opts.token}` } });
    const body = await res.json();
    if (!res.ok) throw new Error(`upload ${id}: HTTP ${res.status} ${JSON.stringify(body)}`);
    missing += body.length - body.offset;
    if (body.offset < body.length) unfinished += 1;
  }
  return { missing, unfinished };
}

/**
 * Leave the page mid-upload, ask the server what every upload still lacks, open the home again
 * and count the PATCH body bytes the browser sends from then on.
 */
async function reloadMeasured(page, opts, homeId, fraction) {
  await page.goto('about:blank');
  // A same-origin page that runs no uploader: its IndexedDB holds the draft the editor wrote.
  await page.goto(`${opts.base}/api/health`);
  const photos = await draftPhotos(page);
  // Bytes of the aborted requests may still be on their way into the server: read the offsets
  // until they stop moving.
  let previous = null;
  let missing = 0;
  let unfinished = 0;
  for (let round = 0; round < 50; round += 1) {
    ({ missing, unfinished } = await missingBytes(photos, opts));
    if (missing === previous) break;
    previous = missing;
    await page.waitForTimeout(200);
  }
  // Every PATCH body the page hands to XMLHttpRequest from now on, counted in full even when
  // the request is cut: an upper bound of what goes on the wire again. (Chromium reports no
  // request body size for Blob bodies, so this is counted in the page.)
  await page.addInitScript(() => {
    const send = XMLHttpRequest.prototype.send;
    const open = XMLHttpRequest.prototype.open;
    window.__patchBodyBytes = 0;
    XMLHttpRequest.prototype.open = function openAndRemember(method, ...rest) {
      this.tusgalleryMethod = String(method).toUpperCase();
      return open.call(this, method, ...rest);
    };
    XMLHttpRequest.prototype.send = function sendAndCount(body) {
      if (this.tusgalleryMethod === 'PATCH' && body) window.__patchBodyBytes += body.size ?? 0;
      return send.call(this, body);
    };
  });
  await page.goto(`${opts.base}/admin/#/homes/${encodeURIComponent(homeId)}`);
  await page.locator('.editor').waitFor();
  return {
    before: { at_fraction: fraction, draft_photos: photos.length,
      unfinished_uploads: unfinished, missing_bytes: missing },
    after: () => page.evaluate(() => ({ patch_body_bytes: window.__patchBodyBytes })),
  };
}

async function photoFiles(folder) {
  const files = (await readdir(folder)).filter((f) => /\.jpe?g$/i.test(f)).sort()
    .map((f) => path.join(folder, f));
  if (!files.length) throw new Error(`no JPEG in ${folder}`);
  return files;
}

async function logIn(page, opts) {
  await page.goto(`${opts.base}/admin/`);
  await page.getByLabel('Access token').fill(opts.token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'New home' }).waitFor();
}

async function logInAndCreateHome(page, opts) {
  await logIn(page, opts);
  return createHome(page);
}

async function createHome(page) {
  const homeName = `E2E home ${new Date().toISOString()}`;
  await page.getByLabel('Name', { exact: true }).fill(homeName);
  await page.getByLabel('Address').fill('1 Test Street');
  await page.getByLabel('Description').fill('Made by the browser end-to-end test');
  await page.getByRole('button', { name: 'Create home' }).click();
  await page.locator('.editor').waitFor();
  const homeId = await page.locator('.editor').getAttribute('data-home-id');
  return { homeId, homeName };
}

/** Wait until every card of the gallery is ready or failed; returns their snapshots. */
async function settledCards(page, count, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { cards } = await snapshot(page);
    const done = cards.filter((c) => c.state === 'ready' || c.state === 'failed');
    if (cards.length === count && done.length === count) return cards;
    if (Date.now() > deadline) throw new Error(`cards did not settle: ${JSON.stringify(cards)}`);
    await page.waitForTimeout(100);
  }
}

/** The API as another admin (or the test) uses it, outside the page. */
async function apiCall(opts, method, urlPath, body) {
  const res = await fetch(`${opts.base}${urlPath}`, { method,
    headers: { Authorization: `Bearer ${opts.token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body) });
  const answer = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`${method} ${urlPath}: HTTP ${res.status} ${JSON.stringify(answer)}`);
  return answer;
}

/**
 * With HOMES_PAGE homes a page and more homes than that: the list shows one page and "Load
 * more homes" until every home the API knows is on it, each once.
 */
async function pageThroughHomes(page, opts) {
  const all = (await apiCall(opts, 'GET', '/api/homes?limit=200')).homes.map((h) => h.id);
  const items = page.locator('ul.homes li a');
  const more = page.getByRole('button', { name: 'Load more homes' });
  await items.nth(HOMES_PAGE - 1).waitFor();
  const first = await items.count();
  let clicks = 0;
  while (await more.isVisible()) {
    const before = await items.count();
    await more.click();
    clicks += 1;
    // Done when the list grew or the button went (a full last page finds nothing more).
    await page.waitForFunction((n) => document.querySelectorAll('ul.homes li').length > n
      || document.querySelector('button.more')?.hidden, before);
    if (clicks > all.length) throw new Error('Load more never ends');
  }
  const listed = await items.evaluateAll((links) => links.map((a) => decodeURIComponent(
    a.getAttribute('href').split('/').pop())));
  return { homes_total: all.length, homes_first_page: first, homes_listed: listed.length,
    homes_listed_once: new Set(listed).size === listed.length,
    homes_all_listed: all.every((id) => listed.includes(id)), load_more_clicks: clicks };
}

/**
 * The troubles an admin meets, in words on the page: a file that is no image fails with the
 * server's reason and blocks Save until removed; a save that someone else's save overtook is a
 * version conflict with a Reload button, which keeps what the admin typed on top of the newer
 * version, so the next Save writes both. Starts with paging through more homes than a page.
 */
export async function runTroubles(page, opts) {
  await page.addInitScript((size) => {
    if (location.protocol === 'http:') localStorage.setItem('tusgallery.homesPage', size);
  }, String(HOMES_PAGE));
  // Two full pages: the last "Load more" finds nothing and the button goes.
  for (let n = 0; n < 2 * HOMES_PAGE; n += 1) {
    await apiCall(opts, 'POST', '/api/homes', { name: `Listed home ${n}` });
  }
  await logIn(page, opts); // lands on the list
  const paging = await pageThroughHomes(page, opts);
  const { homeId, homeName } = await createHome(page);
  const files = await photoFiles(opts.photos);
  await page.locator(`input.file-input[data-gallery="${opts.gallery}"]`).setInputFiles(files);
  const cards = await settledCards(page, files.length, Number(opts.timeoutMs || 60_000));
  const failed = cards.filter((c) => c.state === 'failed');
  if (failed.length !== 1) throw new Error(`expected one failed card: ${JSON.stringify(cards)}`);
  const failedName = path.basename(files[cards.indexOf(failed[0])]);

  await page.getByRole('button', { name: 'Save' }).click();
  const blocked = await page.locator('.message.error').textContent();
  await page.getByRole('button', { name: `Remove ${failedName}` }).click();
  // The admin types a new name; another admin saves a new description meanwhile.
  await page.getByLabel('Name', { exact: true }).fill('Renamed in the browser');
  await apiCall(opts, 'POST', `/api/homes/${homeId}/finalize`,
    { expected_version: 1, home: { description: 'Changed elsewhere' } });
  const first = await saveAfterConflict(page);

  // Second round on saved photos: the admin recaptions the first, the other admin the second.
  const captions = page.locator('.card .caption');
  await captions.nth(0).fill('Mine, typed in the browser');
  const saved = await apiCall(opts, 'GET', `/api/homes/${homeId}`);
  const images = saved.galleries[opts.gallery];
  await apiCall(opts, 'POST', `/api/homes/${homeId}/finalize`, {
    expected_version: saved.version,
    galleries: { [opts.gallery]: images.map((image, i) => ({ image_id: image.id,
      caption: i === 1 ? 'Theirs, saved elsewhere' : image.caption })) } });
  const second = await saveAfterConflict(page);
  const final = await snapshot(page);
  return { home_id: homeId, home_name: homeName, failed_name: failedName,
    failed_status: failed[0].status, blocked_message: blocked, first, second, ...paging,
    version: Number(final.version), saved_cards: final.cards.length,
    saved_captions: final.cards.map((c) => c.caption) };
}

/** Save, meet the version conflict, Reload, report what the page shows, Save again. */
async function saveAfterConflict(page) {
  await page.getByRole('button', { name: 'Save' }).click();
  const conflict = page.locator('.message.error', { has: page.getByRole('button',
    { name: 'Reload' }) });
  const conflictText = await conflict.textContent();
  await conflict.getByRole('button', { name: 'Reload' }).click();
  const reloaded = page.locator('.message.info', { hasText: 'Reloaded version' });
  await reloaded.waitFor();
  const shown = await page.evaluate(() => ({
    name: document.querySelector('input[name=name]').value,
    description: document.querySelector('textarea[name=description]').value,
    kept_notes: [...document.querySelectorAll('.kept-note:not([hidden])')]
      .map((note) => note.textContent),
    captions: [...document.querySelectorAll('.card .caption')].map((input) => input.value),
  }));
  const message = await reloaded.textContent();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('.message.success').waitFor({ timeout: 60_000 });
  return { conflict_message: conflictText, reload_message: message, ...shown };
}

/**
 * @param {import('playwright-core').Page} page
 * @param {object} opts
 */
export async function run(page, opts) {
  const timings = {};
  const t0 = Date.now();
  const files = await photoFiles(opts.photos);
  const uploaderOptions = JSON.stringify({
    ...(opts.chunkSize ? { chunkSize: Number(opts.chunkSize) } : {}),
    ...(opts.stallMs ? { stallTimeoutMs: Number(opts.stallMs) } : {}),
  });
  await page.addInitScript((value) => {
    if (location.protocol === 'http:') localStorage.setItem('tusgallery.uploader', value);
  }, uploaderOptions);
  if (opts.uploadKbps) {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0,
      downloadThroughput: -1, uploadThroughput: (Number(opts.uploadKbps) * 1024) / 8 });
  }

  const { homeId, homeName } = await logInAndCreateHome(page, opts);
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
  // The draft keeps captions in IndexedDB, written a moment after each keystroke; nobody reloads
  // within milliseconds of typing, and an unload would drop that last write.
  if (opts.reloadAt) await page.waitForTimeout(300);

  const maxProgress = new Map();
  const statesSeen = new Set();
  let screenshotTaken = false;
  let reloaded = false;
  let reload = null;
  const deadline = Date.now() + Number(opts.timeoutMs || 110_000);
  for (;;) {
    const snap = await snapshot(page);
    for (const c of snap.cards) {
      maxProgress.set(c.key, Math.max(maxProgress.get(c.key) ?? 0, c.progress));
      statesSeen.add(c.state);
    }
    if (opts.screenshot && !screenshotTaken && snap.overall > 0.15 && snap.overall < 0.85) {
      // Show the photos being sent rather than wherever typing the captions left the page.
      await page.evaluate(() => document.querySelector('.card[data-state="uploading"]')
        ?.scrollIntoView({ block: 'start' }));
      await page.screenshot({ path: opts.screenshot, fullPage: false });
      screenshotTaken = true;
    }
    if (opts.reloadAt && !reloaded && snap.overall >= Number(opts.reloadAt)) {
      reloaded = true;
      reload = await reloadMeasured(page, opts, homeId, snap.overall);
      await cards.nth(files.length - 1).waitFor();
      continue;
    }
    const done = snap.cards.length === files.length
      && snap.cards.every((c) => c.state === 'ready');
    const failed = snap.cards.filter((c) => c.state === 'failed');
    if (done) break;
    if (failed.length) throw new Error(`failed uploads: ${JSON.stringify(failed)}`);
    if (Date.now() > deadline) {
      throw new Error(`uploads did not finish: ${JSON.stringify(snap.cards.map((c) => c.status))}`);
    }
    await page.waitForTimeout(100);
  }
  timings.upload_ms = Date.now() - tUpload;
  const afterReload = reload ? await reload.after() : null;
  const unlabelled = await unlabelledControls(page);
  const overflow = await page.evaluate(() => Math.max(0,
    document.documentElement.scrollWidth - window.innerWidth));

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
    reload: reload && { ...reload.before, ...afterReload },
    screenshot: screenshotTaken ? opts.screenshot : null,
    unlabelled_controls: unlabelled,
    horizontal_overflow_px: overflow,
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
    'timeout-ms': { type: 'string' }, scenario: { type: 'string' },
  } });
  for (const required of ['base', 'token', 'photos']) {
    if (!values[required]) throw new Error(`--${required} is required`);
  }
  const browser = await launch();
  const page = await browser.context.newPage();
  const consoleErrors = [];
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(msg.text()); });
  page.on('pageerror', (err) => consoleErrors.push(String(err)));
  // Failed requests go to stderr: on a flaky link they are expected, elsewhere they explain a failure.
  page.on('requestfailed', (req) => console.error(`request failed: ${req.method()} ${req.url()} `
    + `${req.failure()?.errorText}`));
  try {
    const scenario = { upload: run, troubles: runTroubles }[values.scenario || 'upload'];
    if (!scenario) throw new Error(`unknown --scenario ${values.scenario}`);
    const result = await scenario(page, {
      base: values.base.replace(/\/+$/, ''), token: values.token, photos: values.photos,
      gallery: values.gallery || 'rooms', reloadAt: values['reload-at'], screenshot: values.screenshot,
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
