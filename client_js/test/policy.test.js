import test from 'node:test';
import assert from 'node:assert/strict';
import {
  backoffDelays, describeUploadError, errorStatus, isRetryableStatus, parseErrorBody,
} from '../src/policy.js';
import { canTransition, fingerprintOf, STATES, uploadIdFromUrl } from '../src/uploader.js';

test('retry decision table: network, 5xx, 409, 423, 429 retry; other 4xx do not', () => {
  const table = {
    0: true, 409: true, 423: true, 429: true, 500: true, 502: true, 503: true, 504: true,
    400: false, 401: false, 403: false, 404: false, 405: false, 408: false, 410: false,
    412: false, 413: false, 415: false, 422: false, 460: false, 301: false,
  };
  for (const [status, expected] of Object.entries(table)) {
    assert.equal(isRetryableStatus(Number(status)), expected, `status ${status}`);
  }
});

test('errorStatus reads the response behind a tus error, 0 without one', () => {
  assert.equal(errorStatus(new Error('network')), 0);
  assert.equal(errorStatus({ originalResponse: { getStatus: () => 423 } }), 423);
  assert.equal(errorStatus(null), 0);
});

test('backoff doubles from the initial delay and stops at the cap', () => {
  const delays = backoffDelays({ initialMs: 500, maxMs: 4000, count: 6, jitter: 0 });
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 4000, 4000]);
});

test('backoff jitter stays within the asked fraction on both sides', () => {
  const low = backoffDelays({ initialMs: 1000, maxMs: 8000, count: 4, jitter: 0.25,
    random: () => 0 });
  const high = backoffDelays({ initialMs: 1000, maxMs: 8000, count: 4, jitter: 0.25,
    random: () => 0.999999 });
  assert.deepEqual(low, [750, 1500, 3000, 6000]);
  assert.deepEqual(high, [1250, 2500, 5000, 10000]);
  const defaults = backoffDelays();
  assert.equal(defaults.length, 16);
  assert.ok(defaults.every((d) => d >= 0 && d <= 24000));
});

test('error bodies give their detail; other bodies give nulls', () => {
  assert.deepEqual(parseErrorBody('{"error":"version_conflict","detail":"v3","version":3}'),
    { code: 'version_conflict', detail: 'v3',
      body: { error: 'version_conflict', detail: 'v3', version: 3 } });
  assert.deepEqual(parseErrorBody('<html>'), { code: null, detail: null, body: null });
  assert.deepEqual(parseErrorBody(undefined), { code: null, detail: null, body: null });
});

test('upload errors read as words: server detail first, then the status', () => {
  const res = (status, body) => ({ originalResponse: { getStatus: () => status,
    getBody: () => body } });
  assert.equal(describeUploadError(res(415, '{"error":"unsupported","detail":"HEIC is not allowed"}')),
    'HEIC is not allowed');
  assert.equal(describeUploadError(res(413, '')), 'the file is larger than the server accepts');
  assert.equal(describeUploadError(res(502, 'Bad Gateway')), 'the server failed (HTTP 502)');
  assert.equal(describeUploadError(new Error('tus: failed to upload chunk')),
    'the connection to the server was lost');
  // A failure inside the page (no response, caused by an Error, not a network Event) says so.
  const local = Object.assign(new Error('tus: failed to create upload'),
    { causingError: new TypeError('cannot read the file') });
  assert.equal(describeUploadError(local), 'cannot read the file');
  const dropped = Object.assign(new Error('tus: failed to upload chunk'),
    { causingError: { type: 'error' } });
  assert.equal(describeUploadError(dropped), 'the connection to the server was lost');
});

test('state machine allows the upload life cycle and nothing else', () => {
  const path = ['queued', 'uploading', 'retrying', 'uploading', 'stalled', 'uploading',
    'processing', 'ready', 'cancelled', 'queued'];
  for (let i = 1; i < path.length; i += 1) {
    assert.ok(canTransition(path[i - 1], path[i]), `${path[i - 1]} -> ${path[i]}`);
  }
  assert.ok(canTransition('failed', 'queued'));
  assert.ok(!canTransition('queued', 'ready'));
  assert.ok(!canTransition('ready', 'uploading'));
  assert.ok(!canTransition('processing', 'uploading'));
  assert.ok(!canTransition('cancelled', 'uploading'));
  assert.ok(!canTransition('failed', 'ready'));
  assert.equal(Object.keys(STATES).length, 8);
});

test('upload ids come from the upload URL; fingerprints separate galleries', () => {
  assert.equal(uploadIdFromUrl('http://h/files/abc123'), 'abc123');
  assert.equal(uploadIdFromUrl('http://h/files/abc123/?x=1'), 'abc123');
  assert.equal(uploadIdFromUrl(null), null);
  const img = { homeId: '1', gallery: 'rooms', name: 'a.jpg', type: 'image/jpeg', size: 5,
    lastModified: 7 };
  assert.notEqual(fingerprintOf(img, 'e'), fingerprintOf({ ...img, gallery: 'exterior' }, 'e'));
  assert.equal(fingerprintOf(img, 'e'), fingerprintOf({ ...img }, 'e'));
});
