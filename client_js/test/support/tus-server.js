/**
 * A tiny but real tus 1.0.0 server (creation, termination) plus the processing-status endpoint,
 * on 127.0.0.1 and a free port, for exercising the uploader over real HTTP. Faults are real too:
 * queued with `fault()`, each one answers, cuts or stalls the next matching request.
 */
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';

/**
 * @typedef {object} Fault
 * @property {string} method request method the fault applies to
 * @property {number} [status] answer this status (with an error body) without reading the body
 * @property {number} [cutAfter] keep this many body bytes, then drop the connection
 * @property {boolean} [stall] read nothing and never answer (until the client gives up)
 */

export async function startTusServer({ patchDelayMs = 0, processingPolls = 1 } = {}) {
  const uploads = new Map();
  const faults = [];
  const log = [];
  const state = { inFlight: 0, maxInFlight: 0, active: new Set(), maxActive: 0, seq: 0 };
  const sockets = new Set();

  const send = (res, status, headers = {}, body = null) => {
    res.writeHead(status, { 'Tus-Resumable': '1.0.0', ...headers });
    res.end(body);
  };
  const error = (res, status, code, detail) => send(res, status,
    { 'Content-Type': 'application/json' }, JSON.stringify({ error: code, detail }));
  const takeFault = (method) => {
    const i = faults.findIndex((f) => f.method === method);
    return i === -1 ? null : faults.splice(i, 1)[0];
  };
  const parseMetadata = (header) => Object.fromEntries((header || '').split(',').filter(Boolean)
    .map((pair) => {
      const [key, value = ''] = pair.trim().split(' ');
      return [key, Buffer.from(value, 'base64').toString('utf8')];
    }));

  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const entry = { method: req.method, path: url.pathname, auth: req.headers.authorization,
      offset: req.headers['upload-offset'], status: 0, bytes: 0 };
    log.push(entry);
    res.on('finish', () => { entry.status = res.statusCode; });
    const status = url.pathname.match(/^\/api\/uploads\/([^/]+)$/);
    if (status && req.method === 'GET') {
      const up = uploads.get(status[1]);
      if (!up) return error(res, 404, 'not_found', 'no such upload');
      const complete = up.offset === up.length;
      let value = complete ? 'processing' : 'receiving';
      if (complete && ++up.polls > processingPolls) value = up.meta.filename?.startsWith('bad')
        ? 'failed' : 'ready';
      const body = { status: value, offset: up.offset, length: up.length };
      if (value === 'failed') body.error = 'not an image';
      return send(res, 200, { 'Content-Type': 'application/json' }, JSON.stringify(body));
    }
    if (req.headers['tus-resumable'] !== '1.0.0') return error(res, 412, 'bad_version', 'tus');
    const fault = takeFault(req.method);
    if (fault?.status) {
      req.resume();
      return error(res, fault.status, 'injected', `injected ${fault.status}`);
    }
    if (fault?.stall) return undefined; // hold the request open, read nothing
    if (req.method === 'POST' && url.pathname === '/files/') {
      state.seq += 1;
      const id = `up${state.seq}`;
      uploads.set(id, { id, length: Number(req.headers['upload-length']), offset: 0,
        chunks: [], meta: parseMetadata(req.headers['upload-metadata']), polls: 0 });
      return send(res, 201, { Location: `/files/${id}` });
    }
    const m = url.pathname.match(/^\/files\/([^/]+)$/);
    const up = m && uploads.get(m[1]);
    if (!up) return error(res, 404, 'not_found', 'no such upload');
    if (req.method === 'HEAD') {
      return send(res, 200, { 'Upload-Offset': String(up.offset),
        'Upload-Length': String(up.length), 'Cache-Control': 'no-store' });
    }
    if (req.method === 'DELETE') {
      uploads.delete(up.id);
      up.deleted = true;
      return send(res, 204);
    }
    if (req.method !== 'PATCH') return error(res, 405, 'method', 'not allowed');
    if (Number(req.headers['upload-offset']) !== up.offset) {
      req.resume();
      return error(res, 409, 'offset_mismatch', `offset is ${up.offset}`);
    }
    state.inFlight += 1;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    state.active.add(up.id);
    state.maxActive = Math.max(state.maxActive, state.active.size);
    let kept = 0;
    const finish = () => { state.inFlight -= 1; };
    req.on('data', (chunk) => {
      let data = chunk;
      if (fault?.cutAfter !== undefined) data = chunk.subarray(0, Math.max(0, fault.cutAfter - kept));
      up.chunks.push(data);
      up.offset += data.length;
      kept += data.length;
      entry.bytes += data.length;
      if (fault?.cutAfter !== undefined && kept >= fault.cutAfter) {
        finish();
        req.socket.destroy();
      }
    });
    req.on('end', () => {
      setTimeout(() => {
        finish();
        if (up.offset === up.length) state.active.delete(up.id);
        send(res, 204, { 'Upload-Offset': String(up.offset) });
      }, patchDelayMs);
    });
    return undefined;
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base,
    endpoint: `${base}/files/`,
    uploads,
    log,
    state,
    /** @param {Fault} f */
    fault(f) { faults.push(f); },
    bytesOf(id) { return Buffer.concat(uploads.get(id).chunks); },
    sha256(buf) { return createHash('sha256').update(buf).digest('hex'); },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** tus-js-client URL storage kept in memory (the browser default is localStorage). */
export class MemoryUrlStorage {
  constructor() {
    this.entries = new Map();
    this.seq = 0;
  }

  findAllUploads() {
    return Promise.resolve([...this.entries.entries()].map(([key, v]) => ({ ...v,
      urlStorageKey: key })));
  }

  findUploadsByFingerprint(fingerprint) {
    return this.findAllUploads().then((all) => all
      .filter((u) => u.urlStorageKey.startsWith(`tus::${fingerprint}::`)));
  }

  removeUpload(key) {
    this.entries.delete(key);
    return Promise.resolve();
  }

  addUpload(fingerprint, upload) {
    this.seq += 1;
    const key = `tus::${fingerprint}::${this.seq}`;
    this.entries.set(key, upload);
    return Promise.resolve(key);
  }
}
