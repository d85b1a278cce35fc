/**
 * Same-origin JSON calls to the tusgallery REST API. Every failure becomes an ApiError carrying
 * the HTTP status (0: no answer) and the server's `{"error": CODE, "detail": TEXT}`.
 */
import { parseErrorBody } from '../policy.js';

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the request got no answer
   * @param {string|null} code the server's error code
   * @param {string|null} detail the server's explanation
   * @param {object|null} body the whole error body (e.g. `version`, `uploads`)
   */
  constructor(status, code, detail, body) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.body = body;
  }
}

/**
 * @param {{getToken: () => string|null, onUnauthorized?: () => void}} auth
 */
export function createApi({ getToken, onUnauthorized = () => {} }) {
  async function request(method, path, { body, headers = {} } = {}) {
    const init = { method, headers: { Accept: 'application/json', ...headers }, cache: 'no-store' };
    const token = getToken();
    if (token) init.headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, 'network', String(err && err.message ? err.message : err), null);
    }
    const text = await res.text().catch(() => '');
    if (!res.ok) {
      const { code, detail, body: parsed } = parseErrorBody(text);
      if (res.status === 401) onUnauthorized();
      throw new ApiError(res.status, code, detail, parsed);
    }
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new ApiError(res.status, 'bad_response', 'the server answered something that is not JSON', null);
    }
  }

  return {
    request,
    /** Is this token accepted? Any authenticated read says so: 401 means no. */
    async checkToken(token) {
      let res;
      try {
        res = await fetch('/api/homes?limit=1', { cache: 'no-store',
          headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' } });
      } catch (err) {
        throw new ApiError(0, 'network', String(err && err.message), null);
      }
      if (res.status === 401 || res.status === 403) return false;
      if (!res.ok) {
        const { code, detail, body } = parseErrorBody(await res.text().catch(() => ''));
        throw new ApiError(res.status, code, detail, body);
      }
      return true;
    },
    /** @returns {Promise<{homes: object[], limit: number, offset: number}>} one page */
    listHomes: ({ limit, offset }) => request('GET',
      `/api/homes?limit=${encodeURIComponent(limit)}&offset=${encodeURIComponent(offset)}`),
    getHome: (id) => request('GET', `/api/homes/${encodeURIComponent(id)}`),
    createHome: (fields) => request('POST', '/api/homes', { body: fields }),
    finalize: (id, bodyText, idempotencyKey) => request('POST',
      `/api/homes/${encodeURIComponent(id)}/finalize`,
      { body: bodyText, headers: { 'Idempotency-Key': idempotencyKey } }),
  };
}
