/**
 * GalleryUploader: many images, one tus upload each, built for flaky mobile links.
 *
 * What it adds to tus-js-client:
 * - a per-image state machine (see {@link STATES}) that a page can render directly;
 * - progress counted from bytes the server ACCEPTED (the `Upload-Offset` it answers), never from
 *   bytes merely handed to the network stack;
 * - one concurrency limit across all images;
 * - stall detection: an upload that shows no progress for `stallTimeoutMs` is aborted and resumed
 *   (tus-js-client would wait on a dead connection for ever);
 * - resume after a page reload: tus-js-client keeps each upload URL in its URL storage under a
 *   fingerprint of the image (plus home and gallery), and `add()` finds it again;
 * - after the last byte, polling `GET /api/uploads/{id}` until the server has checked the image.
 *
 * @example
 * const uploader = new GalleryUploader({ endpoint: new URL('/files/', location.href).href,
 *                                        token: () => sessionStorage.token });
 * uploader.subscribe((item) => render(item));
 * const item = uploader.add(file, { homeId: '42', gallery: 'rooms' });
 * await uploader.whenSettled([item.id]);
 * @module uploader
 */
import * as tus from 'tus-js-client';
import {
  backoffDelays,
  describeUploadError,
  errorStatus,
  isRetryableStatus,
  parseErrorBody,
} from './policy.js';

/** Per-image states. */
export const STATES = Object.freeze({
  QUEUED: 'queued', // waiting for a free upload slot
  UPLOADING: 'uploading', // requests under way and answering
  RETRYING: 'retrying', // a request failed; waiting out the backoff before resuming
  STALLED: 'stalled', // no progress for stallTimeoutMs; the connection was dropped, resuming
  PROCESSING: 'processing', // every byte accepted; the server is checking the image
  READY: 'ready', // the server accepted the image; it can be attached by finalize
  FAILED: 'failed', // gave up; `error` says why; retry() puts it back in the queue
  CANCELLED: 'cancelled', // stopped by the user; the upload was terminated on the server
});

const TRANSITIONS = {
  queued: ['uploading', 'failed', 'cancelled'],
  uploading: ['retrying', 'stalled', 'processing', 'failed', 'cancelled'],
  retrying: ['uploading', 'stalled', 'processing', 'failed', 'cancelled'],
  stalled: ['uploading', 'retrying', 'stalled', 'processing', 'failed', 'cancelled'],
  processing: ['ready', 'failed', 'cancelled'],
  ready: ['cancelled'],
  failed: ['queued', 'cancelled'],
  cancelled: ['queued'],
};

/** States that hold one of the `concurrency` upload slots. */
const ACTIVE = new Set(['uploading', 'retrying', 'stalled']);
/** States after which nothing happens without the user. */
const SETTLED = new Set(['ready', 'failed', 'cancelled']);

/**
 * Is `from -> to` a legal state change?
 * @param {string} from
 * @param {string} to
 * @returns {boolean}
 */
export function canTransition(from, to) {
  return (TRANSITIONS[from] || []).includes(to);
}

/**
 * The upload id the server gave, i.e. the last path segment of its upload URL.
 * @param {string|null} url
 * @returns {string|null}
 */
export function uploadIdFromUrl(url) {
  if (!url) return null;
  const path = url.split(/[?#]/)[0].replace(/\/+$/, '');
  return decodeURIComponent(path.slice(path.lastIndexOf('/') + 1)) || null;
}

/**
 * Fingerprint under which an image's upload URL is stored for resuming. Home and gallery are
 * part of it so that the same photo added to two galleries becomes two uploads.
 * @param {{homeId: string, gallery: string, name: string, type: string, size: number,
 *   lastModified: number}} item
 * @param {string} endpoint
 * @returns {string}
 */
export function fingerprintOf(item, endpoint) {
  return ['tusgallery', endpoint, item.homeId, item.gallery, item.name, item.type, item.size,
    item.lastModified].join('|');
}

/**
 * @typedef {object} UploadItem
 * @property {string} id local id (not the server's)
 * @property {Blob|Uint8Array} file the bytes
 * @property {string} name
 * @property {string} type
 * @property {number} size
 * @property {number} lastModified
 * @property {string} homeId
 * @property {string} gallery
 * @property {string} state one of {@link STATES}
 * @property {number} accepted bytes the server has acknowledged
 * @property {string|null} uploadUrl tus upload URL once created
 * @property {string|null} uploadId server upload id (for finalize and status)
 * @property {string|null} error why it failed (words)
 * @property {number|null} errorStatus HTTP status of the failure (0: no response)
 * @property {string|null} lastError last retried problem, shown while retrying
 * @property {number} retries requests retried so far
 * @property {number} stalls stalls detected so far
 * @property {object|null} result last `GET /api/uploads/{id}` body
 */

/**
 * @typedef {object} UploaderOptions
 * @property {string} endpoint absolute tus creation URL, e.g. `https://host/files/`
 * @property {string|(() => string)} token bearer token, or a function returning the current one
 * @property {(uploadId: string) => string} [statusUrl] URL of the processing status; default
 *   `/api/uploads/{id}` on the endpoint's origin
 * @property {number} [concurrency=3] images transferring at once, across all galleries
 * @property {number} [chunkSize=4194304] bytes per PATCH; keeps every request short
 * @property {number} [stallTimeoutMs=30000] abort and resume after this long without progress
 * @property {number} [maxStalls=50] give up after this many stalls in a row of one image
 * @property {number[]} [retryDelays] waits between attempts without progress; default
 *   {@link backoffDelays}()
 * @property {number[]} [pollDelaysMs] waits between status polls (the last one repeats)
 * @property {number} [pollTimeoutMs=600000] give up waiting for processing after this long
 * @property {object} [urlStorage] tus-js-client URL storage (default: localStorage in browsers)
 * @property {typeof fetch} [fetch]
 */

/** Resumable uploads of many images with one concurrency limit. */
export class GalleryUploader {
  /** @param {UploaderOptions} options */
  constructor(options) {
    if (!options || !options.endpoint) throw new Error('GalleryUploader needs an endpoint');
    this.endpoint = options.endpoint;
    this._token = typeof options.token === 'function' ? options.token : () => options.token;
    const origin = new URL(this.endpoint).origin;
    this.statusUrl = options.statusUrl
      || ((id) => `${origin}/api/uploads/${encodeURIComponent(id)}`);
    this.concurrency = Math.max(1, options.concurrency ?? 3);
    this.chunkSize = options.chunkSize ?? 4 * 1024 * 1024;
    this.stallTimeoutMs = options.stallTimeoutMs ?? 30_000;
    this.maxStalls = options.maxStalls ?? 50;
    this.retryDelays = options.retryDelays ?? backoffDelays();
    this.pollDelaysMs = options.pollDelaysMs ?? [250, 500, 1000, 2000, 3000];
    this.pollTimeoutMs = options.pollTimeoutMs ?? 600_000;
    this.urlStorage = options.urlStorage;
    this._fetch = options.fetch ?? ((...args) => globalThis.fetch(...args));
    /** @type {Map<string, UploadItem>} */
    this.items = new Map();
    this._listeners = new Set();
    this._seq = 0;
    this._runtime = new Map(); // item id -> {gen, upload, watchdog, restart}
  }

  /**
   * Queue one image. It starts when a slot is free; a previous upload of the same image (same
   * home, gallery, name, type, size, mtime) is resumed instead of starting again.
   * @param {Blob|Uint8Array} file
   * @param {{homeId: string|number, gallery: string, name?: string, type?: string,
   *   size?: number, lastModified?: number, uploadUrl?: string|null}} info `uploadUrl` resumes
   *   that upload (e.g. kept in a draft across reloads)
   * @returns {UploadItem}
   */
  add(file, info) {
    this._seq += 1;
    const item = {
      id: `u${this._seq}`,
      file,
      name: info.name ?? file.name ?? 'image',
      type: info.type ?? file.type ?? '',
      size: info.size ?? file.size ?? file.byteLength ?? file.length,
      lastModified: info.lastModified ?? file.lastModified ?? 0,
      homeId: String(info.homeId ?? ''),
      gallery: info.gallery ?? '',
      state: STATES.QUEUED,
      accepted: 0,
      uploadUrl: info.uploadUrl ?? null,
      uploadId: uploadIdFromUrl(info.uploadUrl ?? null),
      error: null,
      errorStatus: null,
      lastError: null,
      retries: 0,
      stalls: 0,
      result: null,
    };
    this.items.set(item.id, item);
    this._runtime.set(item.id, { gen: 0, upload: null, watchdog: null, restart: null,
      transferFailed: false });
    this._emit(item);
    this._pump();
    return item;
  }

  /** @param {string} id @returns {UploadItem|undefined} */
  get(id) {
    return this.items.get(id);
  }

  /**
   * Be told of every change of any item (state, progress, error).
   * @param {(item: UploadItem) => void} listener
   * @returns {() => void} unsubscribe
   */
  subscribe(listener) {
    this._listeners.add(listener);
    return () => this._listeners.delete(listener);
  }

  /**
   * Stop one image and terminate its upload on the server (tus DELETE). Resolves when the
   * server answered (or the attempt gave up; then `cancelError` says why).
   * @param {string} id
   * @returns {Promise<void>}
   */
  cancel(id) {
    const item = this.items.get(id);
    if (!item || item.state === STATES.CANCELLED) return Promise.resolve();
    const rt = this._invalidate(item);
    const url = item.uploadUrl;
    const upload = rt.upload;
    rt.upload = null;
    this._set(item, STATES.CANCELLED);
    item.uploadUrl = null;
    item.uploadId = null;
    item.accepted = 0;
    this._pump();
    let done;
    if (upload && upload.url) {
      done = upload.abort(true); // DELETE, and forget the stored fingerprint
    } else if (url) {
      if (upload) upload.abort(false);
      done = tus.Upload.terminate(url, this._tusOptions(item, rt.gen));
    } else {
      done = Promise.resolve();
    }
    return done.then(
      () => { item.cancelError = null; },
      (err) => { item.cancelError = describeUploadError(err); },
    );
  }

  /**
   * Put a failed or cancelled image back in the queue. A transfer that failed mid-way resumes
   * from the server's offset; an image the server rejected, or a cancelled one, starts anew.
   * @param {string} id
   */
  retry(id) {
    const item = this.items.get(id);
    if (!item || !canTransition(item.state, STATES.QUEUED)) return;
    const rt = this._runtime.get(item.id);
    if (!rt.transferFailed) {
      item.uploadUrl = null;
      item.uploadId = null;
      item.accepted = 0;
    }
    item.error = null;
    item.errorStatus = null;
    item.lastError = null;
    item.stalls = 0;
    rt.transferFailed = false;
    this._set(item, STATES.QUEUED);
    this._pump();
  }

  /**
   * Cancel (when needed) and forget an image.
   * @param {string} id
   * @returns {Promise<void>}
   */
  remove(id) {
    const item = this.items.get(id);
    if (!item) return Promise.resolve();
    const done = item.state === STATES.CANCELLED ? Promise.resolve() : this.cancel(id);
    this.items.delete(id);
    this._runtime.delete(id);
    return done;
  }

  /**
   * Forget an image without touching the server, e.g. once finalize attached its upload.
   * @param {string} id
   */
  forget(id) {
    const item = this.items.get(id);
    if (!item) return;
    const rt = this._invalidate(item);
    if (rt.upload) rt.upload.abort(false);
    this.items.delete(id);
    this._runtime.delete(id);
    this._pump();
  }

  /**
   * Bytes accepted by the server over all images that are not cancelled. Images past the
   * transfer (processing, ready) count in full.
   * @returns {{accepted: number, total: number, fraction: number,
   *   counts: Record<string, number>}}
   */
  progress() {
    let accepted = 0;
    let total = 0;
    const counts = Object.fromEntries(Object.values(STATES).map((s) => [s, 0]));
    for (const item of this.items.values()) {
      counts[item.state] += 1;
      if (item.state === STATES.CANCELLED) continue;
      total += item.size;
      accepted += Math.min(item.accepted, item.size);
    }
    return { accepted, total, fraction: total ? accepted / total : 1, counts };
  }

  /**
   * Resolves when every listed image (default: all) is ready, failed or cancelled.
   * @param {string[]} [ids]
   * @returns {Promise<UploadItem[]>}
   */
  whenSettled(ids) {
    const wanted = () => (ids ?? [...this.items.keys()])
      .map((id) => this.items.get(id)).filter(Boolean);
    return new Promise((resolve) => {
      const check = () => {
        const items = wanted();
        if (items.every((it) => SETTLED.has(it.state))) {
          unsubscribe();
          resolve(items);
        }
      };
      const unsubscribe = this.subscribe(check);
      check();
    });
  }

  /** Abort every transfer (uploads stay resumable on the server) and stop all timers. */
  destroy() {
    for (const item of this.items.values()) {
      const rt = this._invalidate(item);
      if (rt.upload) rt.upload.abort(false);
      rt.upload = null;
    }
    this._listeners.clear();
  }

  // --- internals -----------------------------------------------------------------------

  _emit(item) {
    for (const listener of [...this._listeners]) {
      try {
        listener(item);
      } catch (err) {
        // A broken renderer must not stop the uploads.
        console.error('GalleryUploader listener failed', err);
      }
    }
  }

  _set(item, state) {
    if (item.state === state) return;
    if (!canTransition(item.state, state)) {
      throw new Error(`illegal upload state change ${item.state} -> ${state}`);
    }
    item.state = state;
    this._emit(item);
  }

  /** Make every callback of the current attempt stale and stop its timers. */
  _invalidate(item) {
    const rt = this._runtime.get(item.id);
    rt.gen += 1;
    clearTimeout(rt.watchdog);
    clearTimeout(rt.restart);
    rt.watchdog = null;
    rt.restart = null;
    return rt;
  }

  _pump() {
    let active = 0;
    for (const item of this.items.values()) if (ACTIVE.has(item.state)) active += 1;
    for (const item of this.items.values()) {
      if (active >= this.concurrency) break;
      if (item.state !== STATES.QUEUED) continue;
      active += 1;
      this._set(item, STATES.UPLOADING);
      this._launch(item);
    }
  }

  _tusOptions(item, gen) {
    const live = () => this._runtime.get(item.id)?.gen === gen;
    return {
      endpoint: this.endpoint,
      chunkSize: this.chunkSize,
      retryDelays: this.retryDelays,
      metadata: {
        filename: item.name,
        filetype: item.type,
        home_id: item.homeId,
        gallery: item.gallery,
      },
      // tus-js-client spreads these over its defaults: an undefined key would erase its
      // browser localStorage and break every upload.
      ...(this.urlStorage ? { urlStorage: this.urlStorage } : {}),
      fingerprint: () => Promise.resolve(fingerprintOf(item, this.endpoint)),
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      onBeforeRequest: (req) => {
        req.setHeader('Authorization', `Bearer ${this._token()}`);
        if (live() && ACTIVE.has(item.state)) this._arm(item);
      },
      onAfterResponse: (req, res) => {
        if (!live()) return;
        const status = res.getStatus();
        if (status < 200 || status > 299) return;
        const offset = Number.parseInt(res.getHeader('Upload-Offset'), 10);
        if (!Number.isNaN(offset)) this._accept(item, offset);
        if (item.state === STATES.RETRYING || item.state === STATES.STALLED) {
          this._set(item, STATES.UPLOADING);
        }
      },
      onProgress: () => {
        // Bytes leaving the browser prove the link is alive, even while a large chunk on a slow
        // link has not been acknowledged yet; a stalled link stops these too.
        if (live() && ACTIVE.has(item.state)) this._arm(item);
      },
      onChunkComplete: (_size, accepted) => {
        if (live()) this._accept(item, accepted);
      },
      onUploadUrlAvailable: () => {
        if (!live()) return;
        const url = this._runtime.get(item.id).upload?.url ?? null;
        if (url && url !== item.uploadUrl) {
          item.uploadUrl = url;
          item.uploadId = uploadIdFromUrl(url);
          this._emit(item);
        }
      },
      onShouldRetry: (err) => {
        const retry = isRetryableStatus(errorStatus(err));
        if (retry && live() && ACTIVE.has(item.state)) {
          item.retries += 1;
          item.lastError = describeUploadError(err);
          this._disarm(item);
          if (item.state !== STATES.RETRYING) this._set(item, STATES.RETRYING);
          else this._emit(item);
        }
        return retry;
      },
      onSuccess: () => {
        if (live()) this._transferred(item, gen);
      },
      onError: (err) => {
        if (!live()) return;
        this._runtime.get(item.id).transferFailed = isRetryableStatus(errorStatus(err));
        this._fail(item, describeUploadError(err), errorStatus(err));
      },
    };
  }

  /** Start (or restart) the tus transfer of an item, resuming whatever the server has. */
  async _launch(item) {
    const rt = this._runtime.get(item.id);
    const gen = rt.gen;
    const upload = new tus.Upload(item.file, this._tusOptions(item, gen));
    rt.upload = upload;
    let previous = [];
    try {
      previous = await upload.findPreviousUploads();
    } catch {
      previous = []; // unreadable storage only costs the resume
    }
    if (rt.gen !== gen) return;
    const claimed = new Set([...this.items.values()]
      .filter((other) => other !== item && other.uploadUrl).map((other) => other.uploadUrl));
    const match = item.uploadUrl
      ? previous.find((p) => p.uploadUrl === item.uploadUrl)
      : previous.find((p) => p.uploadUrl && !claimed.has(p.uploadUrl));
    if (match) {
      upload.resumeFromPreviousUpload(match);
      if (!item.uploadUrl) {
        item.uploadUrl = match.uploadUrl;
        item.uploadId = uploadIdFromUrl(match.uploadUrl);
      }
    } else if (item.uploadUrl) {
      upload.resumeFromPreviousUpload({ uploadUrl: item.uploadUrl, urlStorageKey: null });
    }
    this._arm(item);
    upload.start();
  }

  _accept(item, offset) {
    if (offset === item.accepted) return;
    item.accepted = offset;
    this._arm(item);
    this._emit(item);
  }

  _arm(item) {
    const rt = this._runtime.get(item.id);
    clearTimeout(rt.watchdog);
    const gen = rt.gen;
    rt.watchdog = setTimeout(() => this._stalled(item, gen), this.stallTimeoutMs);
  }

  _disarm(item) {
    const rt = this._runtime.get(item.id);
    clearTimeout(rt.watchdog);
    rt.watchdog = null;
  }

  _stalled(item, gen) {
    const rt = this._runtime.get(item.id);
    if (!rt || rt.gen !== gen || !ACTIVE.has(item.state)) return;
    const upload = rt.upload;
    this._invalidate(item);
    if (upload) upload.abort(false);
    rt.upload = null;
    item.stalls += 1;
    if (item.stalls > this.maxStalls) {
      rt.transferFailed = true;
      this._fail(item, 'the connection kept stalling', 0);
      return;
    }
    if (item.state === STATES.STALLED) this._emit(item);
    else this._set(item, STATES.STALLED);
    // The watchdog already waited; resume at once (the new HEAD asks for the offset).
    const nextGen = rt.gen;
    rt.restart = setTimeout(() => {
      if (rt.gen === nextGen && item.state === STATES.STALLED) this._launch(item);
    }, 0);
  }

  _fail(item, message, status) {
    this._invalidate(item);
    this._runtime.get(item.id).upload = null;
    item.error = message;
    item.errorStatus = status;
    this._set(item, STATES.FAILED);
    this._pump();
  }

  _transferred(item, gen) {
    this._disarm(item);
    const rt = this._runtime.get(item.id);
    rt.upload = null;
    item.accepted = item.size;
    item.lastError = null;
    this._set(item, STATES.PROCESSING);
    this._pump();
    this._poll(item, gen);
  }

  /** Ask the server how the image's processing went until it says ready or failed. */
  async _poll(item, gen) {
    const rt = this._runtime.get(item.id);
    const started = Date.now();
    for (let i = 0; ; i += 1) {
      const wait = this.pollDelaysMs[Math.min(i, this.pollDelaysMs.length - 1)];
      await new Promise((resolve) => { rt.restart = setTimeout(resolve, wait); });
      if (rt.gen !== gen || item.state !== STATES.PROCESSING) return;
      if (Date.now() - started > this.pollTimeoutMs) {
        this._fail(item, 'the server took too long to check the image', 0);
        return;
      }
      let res;
      let body = null;
      try {
        res = await this._fetch(this.statusUrl(item.uploadId), {
          headers: { Authorization: `Bearer ${this._token()}`, Accept: 'application/json' },
          cache: 'no-store',
        });
        body = await res.json().catch(() => null);
      } catch {
        continue; // network trouble: the server still has the image, ask again
      }
      if (rt.gen !== gen || item.state !== STATES.PROCESSING) return;
      if (res.ok && body) {
        item.result = body;
        if (body.status === 'ready') {
          this._set(item, STATES.READY);
          return;
        }
        if (body.status === 'failed') {
          this._fail(item, body.error || 'the server could not use this image', res.status);
          return;
        }
        continue;
      }
      if (!isRetryableStatus(res.status)) {
        const { detail, code } = parseErrorBody(body);
        this._fail(item, detail || code || `status check failed (HTTP ${res.status})`,
          res.status);
        return;
      }
    }
  }
}
