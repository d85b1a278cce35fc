import test from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { GalleryUploader } from '../src/uploader.js';
import { MemoryUrlStorage, startTusServer } from './support/tus-server.js';

const KIB = 1024;

function photo(name, size) {
  return { bytes: randomBytes(size), info: { homeId: '7', gallery: 'rooms', name,
    type: 'image/jpeg', lastModified: 1700000000000 } };
}

function makeUploader(server, options = {}) {
  return new GalleryUploader({
    endpoint: server.endpoint,
    token: 'secret',
    chunkSize: 64 * KIB,
    retryDelays: [10, 20, 40, 80, 160],
    pollDelaysMs: [10],
    urlStorage: new MemoryUrlStorage(),
    ...options,
  });
}

/** Records every state an item passes through, and every accepted byte count it reports. */
function record(uploader) {
  const states = new Map();
  const accepted = new Map();
  uploader.subscribe((item) => {
    const seen = states.get(item.id) ?? [];
    if (seen.at(-1) !== item.state) seen.push(item.state);
    states.set(item.id, seen);
    const acc = accepted.get(item.id) ?? [];
    if (acc.at(-1) !== item.accepted) acc.push(item.accepted);
    accepted.set(item.id, acc);
  });
  return { states, accepted };
}

const serverCopy = (server, item) => server.bytesOf(item.uploadId);

test('uploads every image in bounded chunks with metadata, token and a concurrency limit', async (t) => {
  const server = await startTusServer({ patchDelayMs: 15 });
  t.after(() => server.close());
  const uploader = makeUploader(server, { concurrency: 2 });
  const photos = Array.from({ length: 5 }, (_, i) => photo(`p${i}.jpg`, 150 * KIB + i));
  const items = photos.map((p) => uploader.add(p.bytes, p.info));
  const settled = await uploader.whenSettled();
  assert.deepEqual(settled.map((it) => it.state), Array(5).fill('ready'));
  assert.equal(server.state.maxActive, 2, 'two images in flight at most, and both slots used');
  items.forEach((item, i) => {
    assert.equal(server.sha256(serverCopy(server, item)), server.sha256(photos[i].bytes));
    assert.deepEqual(server.uploads.get(item.uploadId).meta,
      { filename: `p${i}.jpg`, filetype: 'image/jpeg', home_id: '7', gallery: 'rooms' });
  });
  const patches = server.log.filter((e) => e.method === 'PATCH');
  assert.ok(patches.every((e) => e.bytes <= 64 * KIB));
  assert.ok(server.log.every((e) => e.auth === 'Bearer secret'));
  const overall = uploader.progress();
  assert.equal(overall.fraction, 1);
  assert.equal(overall.counts.ready, 5);
});

test('retries network-ish failures (503, 423, 429, 409) and shows them as retrying', async (t) => {
  const server = await startTusServer();
  t.after(() => server.close());
  for (const status of [503, 423, 429, 409]) server.fault({ method: 'PATCH', status });
  const uploader = makeUploader(server);
  const { states } = record(uploader);
  const p = photo('a.jpg', 200 * KIB);
  const item = uploader.add(p.bytes, p.info);
  await uploader.whenSettled();
  assert.equal(item.state, 'ready');
  assert.equal(item.retries, 4);
  assert.ok(states.get(item.id).includes('retrying'));
  assert.equal(server.sha256(serverCopy(server, item)), server.sha256(p.bytes));
});

test('does not retry other 4xx: the image fails at once with the server detail', async (t) => {
  const server = await startTusServer();
  t.after(() => server.close());
  server.fault({ method: 'PATCH', status: 403 });
  const uploader = makeUploader(server);
  const p = photo('a.jpg', 100 * KIB);
  const item = uploader.add(p.bytes, p.info);
  await uploader.whenSettled();
  assert.equal(item.state, 'failed');
  assert.equal(item.errorStatus, 403);
  assert.equal(item.error, 'injected 403');
  assert.equal(server.log.filter((e) => e.method === 'PATCH').length, 1);
});

test('a connection cut mid-chunk resumes from the offset the server kept', async (t) => {
  const server = await startTusServer();
  t.after(() => server.close());
  server.fault({ method: 'PATCH', cutAfter: 10 * KIB });
  const uploader = makeUploader(server);
  const { accepted } = record(uploader);
  const p = photo('a.jpg', 150 * KIB);
  const item = uploader.add(p.bytes, p.info);
  await uploader.whenSettled();
  assert.equal(item.state, 'ready');
  assert.equal(server.sha256(serverCopy(server, item)), server.sha256(p.bytes));
  const sent = server.log.filter((e) => e.method === 'PATCH').reduce((n, e) => n + e.bytes, 0);
  assert.equal(sent, p.bytes.length, 'no byte stored twice');
  assert.ok(server.log.some((e) => e.method === 'HEAD'), 'asked the offset after the cut');
  const seen = accepted.get(item.id);
  assert.ok(seen.includes(10 * KIB), 'the kept bytes show up as accepted progress');
  assert.deepEqual([...seen].sort((a, b) => a - b), seen, 'accepted progress never goes back');
});

test('progress counts bytes the server acknowledged, never bytes merely sent', async (t) => {
  const server = await startTusServer({ patchDelayMs: 5 });
  t.after(() => server.close());
  const uploader = makeUploader(server, { concurrency: 1 });
  const acknowledged = new Set([0]);
  const { accepted } = record(uploader);
  const a = photo('a.jpg', 130 * KIB);
  const b = photo('b.jpg', 70 * KIB);
  const ia = uploader.add(a.bytes, a.info);
  const ib = uploader.add(b.bytes, b.info);
  const overall = [];
  uploader.subscribe(() => overall.push(uploader.progress()));
  await uploader.whenSettled();
  for (const e of server.log) if (e.method === 'PATCH') acknowledged.add(Number(e.offset) + e.bytes);
  for (const value of [...accepted.get(ia.id), ...accepted.get(ib.id)]) {
    assert.ok(acknowledged.has(value), `${value} is an offset the server answered`);
  }
  assert.deepEqual(accepted.get(ia.id), [0, 64 * KIB, 128 * KIB, 130 * KIB]);
  assert.ok(overall.every((o) => o.total === 200 * KIB));
  assert.ok(overall.some((o) => o.accepted === 130 * KIB && o.fraction === 0.65));
  assert.equal(overall.at(-1).fraction, 1);
});

test('a stalled request is aborted after the stall timeout and the upload resumes', async (t) => {
  const server = await startTusServer();
  t.after(() => server.close());
  const uploader = makeUploader(server, { stallTimeoutMs: 300 });
  const { states } = record(uploader);
  const p = photo('a.jpg', 150 * KIB);
  const item = uploader.add(p.bytes, p.info);
  // The second PATCH hangs: the first chunk gets through, then the link goes silent.
  await new Promise((resolve) => {
    const off = uploader.subscribe((it) => {
      if (it.accepted >= 64 * KIB) { off(); resolve(); }
    });
  });
  server.fault({ method: 'PATCH', stall: true });
  const started = Date.now();
  await uploader.whenSettled();
  assert.equal(item.state, 'ready');
  assert.equal(item.stalls, 1);
  assert.ok(Date.now() - started >= 250, 'waited for the stall timeout');
  assert.deepEqual(states.get(item.id),
    ['queued', 'uploading', 'stalled', 'uploading', 'processing', 'ready']);
  assert.equal(server.sha256(serverCopy(server, item)), server.sha256(p.bytes));
});

test('a new page (new uploader, same URL storage) resumes instead of starting again', async (t) => {
  const server = await startTusServer();
  t.after(() => server.close());
  const storage = new MemoryUrlStorage();
  const p = photo('a.jpg', 200 * KIB);
  const first = makeUploader(server, { urlStorage: storage, stallTimeoutMs: 60_000 });
  // Let the first chunk through, then hold the next: the "page" is closed during it.
  const item1 = first.add(p.bytes, p.info);
  await new Promise((resolve) => {
    const off = first.subscribe((it) => {
      if (it.accepted >= 64 * KIB) { off(); server.fault({ method: 'PATCH', stall: true }); resolve(); }
    });
  });
  await new Promise((resolve) => setTimeout(resolve, 100));
  first.destroy();
  const offsetAtReload = server.uploads.get(item1.uploadId).offset;
  assert.ok(offsetAtReload > 0 && offsetAtReload < p.bytes.length);
  assert.equal(storage.entries.size, 1, 'the upload URL was stored for resuming');

  const second = makeUploader(server, { urlStorage: storage });
  const posts = server.log.filter((e) => e.method === 'POST').length;
  const item2 = second.add(p.bytes, p.info);
  await second.whenSettled();
  assert.equal(item2.state, 'ready');
  assert.equal(item2.uploadId, item1.uploadId, 'same upload on the server');
  assert.equal(server.log.filter((e) => e.method === 'POST').length, posts, 'no new upload');
  assert.equal(server.sha256(serverCopy(server, item2)), server.sha256(p.bytes));
  assert.equal(storage.entries.size, 0, 'fingerprint removed on success');
});

test('cancel terminates the upload on the server; retry starts a new one', async (t) => {
  const server = await startTusServer({ patchDelayMs: 30 });
  t.after(() => server.close());
  const uploader = makeUploader(server);
  const p = photo('a.jpg', 300 * KIB);
  const item = uploader.add(p.bytes, p.info);
  await new Promise((resolve) => {
    const off = uploader.subscribe((it) => { if (it.accepted > 0) { off(); resolve(); } });
  });
  const firstId = item.uploadId;
  await uploader.cancel(item.id);
  assert.equal(item.state, 'cancelled');
  assert.ok(server.log.some((e) => e.method === 'DELETE' && e.path === `/files/${firstId}`
    && e.status === 204));
  assert.equal(server.uploads.has(firstId), false);
  assert.equal(uploader.progress().total, 0, 'a cancelled image leaves the overall progress');
  uploader.retry(item.id);
  await uploader.whenSettled();
  assert.equal(item.state, 'ready');
  assert.notEqual(item.uploadId, firstId);
});

test('after the last byte it polls the server until the image is ready or failed', async (t) => {
  const server = await startTusServer({ processingPolls: 3 });
  t.after(() => server.close());
  const uploader = makeUploader(server);
  const { states } = record(uploader);
  const good = photo('good.jpg', 20 * KIB);
  const bad = photo('bad.jpg', 20 * KIB);
  const ig = uploader.add(good.bytes, good.info);
  const ib = uploader.add(bad.bytes, bad.info);
  await uploader.whenSettled();
  assert.deepEqual(states.get(ig.id), ['queued', 'uploading', 'processing', 'ready']);
  assert.equal(ig.result.status, 'ready');
  assert.equal(ib.state, 'failed');
  assert.equal(ib.error, 'not an image');
  const polls = server.log.filter((e) => e.path === `/api/uploads/${ig.uploadId}`);
  assert.equal(polls.length, 4);
  assert.ok(polls.every((e) => e.auth === 'Bearer secret'));
});

test('without a urlStorage option it keeps tus-js-client\'s own storage and uploads', async (t) => {
  // The admin page passes none; an explicit `urlStorage: undefined` once erased the default
  // and every upload failed before its first PATCH.
  const server = await startTusServer();
  t.after(() => server.close());
  const uploader = makeUploader(server, { urlStorage: undefined });
  const p = photo('plain.jpg', 100 * KIB);
  const item = uploader.add(p.bytes, p.info);
  const [settled] = await uploader.whenSettled([item.id]);
  assert.equal(settled.state, 'ready', settled.error);
  assert.equal(server.sha256(serverCopy(server, item)), server.sha256(p.bytes));
});
