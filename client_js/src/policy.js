/**
 * Pure decisions of the uploader: which failures are worth another attempt, how long to wait
 * before it, and how a failure reads to a person. Kept free of timers and I/O so they can be
 * checked exhaustively.
 * @module policy
 */

/** HTTP statuses in the 4xx range that still deserve a retry: 409 offset mismatch (a replayed
 * or cut PATCH; the client re-reads the offset), 423 upload locked by a request the server is
 * still winding down, 429 rate limited. */
const RETRYABLE_4XX = new Set([409, 423, 429]);

/**
 * Should a request that failed with this HTTP status be tried again?
 * @param {number} status response status, or 0 when no response arrived (network error, abort)
 * @returns {boolean} true for network errors, 5xx, 409, 423 and 429; false for other 4xx
 *   (the request itself is wrong: a retry would fail the same way) and anything else.
 */
export function isRetryableStatus(status) {
  if (!status) return true;
  if (status >= 500 && status <= 599) return true;
  return RETRYABLE_4XX.has(status);
}

/**
 * The status of the response behind a tus-js-client error (0 when there was none).
 * @param {any} err a tus DetailedError or any Error
 * @returns {number}
 */
export function errorStatus(err) {
  const res = err && err.originalResponse;
  if (!res || typeof res.getStatus !== 'function') return 0;
  return Number(res.getStatus()) || 0;
}

/**
 * Delays (ms) between attempts: exponential from `initialMs`, capped at `maxMs`, each spread
 * by +-`jitter` (a fraction) so that many images cut by one dropped link do not retry in step.
 * tus-js-client walks this list and starts again from its head whenever an attempt moved the
 * offset forward, so `count` bounds the attempts *without progress* before an image fails.
 * @param {{initialMs?: number, factor?: number, maxMs?: number, count?: number,
 *   jitter?: number, random?: () => number}} [opts]
 * @returns {number[]}
 */
export function backoffDelays({
  initialMs = 500,
  factor = 2,
  maxMs = 20_000,
  count = 16,
  jitter = 0.2,
  random = Math.random,
} = {}) {
  const delays = [];
  for (let i = 0; i < count; i += 1) {
    const base = Math.min(maxMs, initialMs * factor ** i);
    const spread = base * jitter * (2 * random() - 1);
    delays.push(Math.max(0, Math.round(base + spread)));
  }
  return delays;
}

/**
 * Parse an API error body `{"error": CODE, "detail": TEXT}`; anything else gives nulls.
 * @param {string|object|null|undefined} body
 * @returns {{code: string|null, detail: string|null, body: object|null}}
 */
export function parseErrorBody(body) {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      parsed = null;
    }
  }
  if (!parsed || typeof parsed !== 'object') return { code: null, detail: null, body: null };
  return {
    code: typeof parsed.error === 'string' ? parsed.error : null,
    detail: typeof parsed.detail === 'string' ? parsed.detail : null,
    body: parsed,
  };
}

const STATUS_WORDS = {
  0: 'the connection to the server was lost',
  400: 'the server rejected the request as malformed',
  401: 'you are not logged in, or your token is no longer valid',
  403: 'you are not allowed to do this',
  404: 'the upload no longer exists on the server',
  409: 'the server had a different upload offset',
  410: 'the upload expired on the server',
  413: 'the file is larger than the server accepts',
  415: 'the server does not accept this file type',
  423: 'the upload was busy on the server',
  429: 'the server asked to slow down',
  460: 'the data was damaged on the way (checksum mismatch)',
};

/**
 * Words for a failed tus request, for the per-image status line.
 * @param {any} err tus DetailedError or Error
 * @returns {string}
 */
export function describeUploadError(err) {
  const status = errorStatus(err);
  const res = err && err.originalResponse;
  const body = res && typeof res.getBody === 'function' ? res.getBody() : null;
  const { detail } = parseErrorBody(body);
  if (detail) return detail;
  // No response because of a failure in the page itself (reading the file, URL storage), not
  // the network (a dropped request fails with an Event): "connection lost" would hide it.
  const cause = err && err.causingError;
  if (!status && cause instanceof Error && cause.message) return cause.message;
  if (STATUS_WORDS[status]) return STATUS_WORDS[status];
  if (status >= 500) return `the server failed (HTTP ${status})`;
  if (status) return `the server answered HTTP ${status}`;
  return (err && err.message) || 'unknown error';
}
