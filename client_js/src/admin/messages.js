/**
 * Words for API errors. The server's `detail` is already a sentence; the code picks the lead-in
 * and what the person can do about it.
 */

const BY_CODE = {
  version_conflict: 'Someone else saved this home while you were editing. Reload to see their '
    + 'changes; your new photos stay uploaded and are kept.',
  upload_not_ready: 'Some photos are still being checked by the server.',
  invalid_upload: 'Some photos cannot be attached',
  upload_already_attached: 'A photo is already attached to a home. Remove it here and add it again.',
  not_found: 'This home no longer exists.',
  unauthorized: 'Your token is not valid any more. Log in again.',
  network: 'Could not reach the server. Check the connection and try again.',
  bad_response: 'The server gave an answer this page does not understand.',
};

const BY_STATUS = {
  0: BY_CODE.network,
  401: BY_CODE.unauthorized,
  403: 'This token is not allowed to do that.',
  404: BY_CODE.not_found,
  413: 'That is more than the server accepts.',
  422: 'The server did not accept these values',
  429: 'The server is busy. Wait a moment and try again.',
};

/**
 * @param {{status: number, code: string|null, detail: string|null, body: object|null}} err
 * @returns {string}
 */
export function errorText(err) {
  if (!err || typeof err !== 'object') return String(err);
  const lead = BY_CODE[err.code] || BY_STATUS[err.status]
    || (err.status >= 500 ? `The server failed (HTTP ${err.status}). Try again.` : null);
  const detail = err.detail || (!lead && err.message) || '';
  const extra = listedUploads(err.body);
  const parts = [lead, detail && detail !== lead ? detail : null, extra].filter(Boolean);
  return parts.join(lead && lead.endsWith('.') ? ' ' : ': ') || `Error (HTTP ${err.status})`;
}

/** invalid_upload / upload_not_ready bodies may list the uploads concerned. */
function listedUploads(body) {
  const list = body && (body.uploads || body.invalid || body.not_ready);
  if (!Array.isArray(list) || list.length === 0) return null;
  const words = list.slice(0, 5).map((u) => (typeof u === 'string' ? u
    : [u.upload_id || u.id, u.reason || u.error || u.status].filter(Boolean).join(': ')));
  return `(${words.join('; ')}${list.length > 5 ? `; and ${list.length - 5} more` : ''})`;
}
