// The HTTP API, as the page uses it. Every call goes through `api()`, so a
// session that ends in the middle of anything (401) lands on the login form
// in one place.

export class ApiError extends Error {
  constructor(status, body, retryAfter = null) {
    super(body || `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.retryAfter = retryAfter;
  }
}

let unauthorized = () => {};

/** Called whenever an API answer says the session is gone. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

/**
 * `api('/api/images')`, `api('/api/check', {method: 'POST'})`. Resolves to
 * the parsed JSON body; rejects with an ApiError (status 0: shipshape could
 * not be reached).
 */
export async function api(path, { method = 'GET', body, quiet401 = false } = {}) {
  const init = { method, headers: {}, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'cannot reach shipshape');
  }
  const text = await response.text().catch(() => '');
  if (!response.ok) {
    if (response.status === 401 && !quiet401) unauthorized();
    throw new ApiError(response.status, text.trim(), response.headers.get('retry-after'));
  }
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(response.status, 'unreadable answer from shipshape');
  }
}

/** `/` and `:` of a group's image name may be sent encoded. */
export function groupPath(image) {
  return `/api/groups/${encodeURIComponent(image)}/update`;
}

export function containerPath(id, action) {
  return `/api/images/${encodeURIComponent(id)}/${action}`;
}

/** The words a person reads for an API failure. */
export function describe(error) {
  if (!(error instanceof ApiError)) return String(error?.message || error);
  if (error.status === 0) return 'Cannot reach shipshape. Is it running?';
  if (error.status >= 500) return `shipshape had a problem (${error.status}${error.body ? `: ${error.body}` : ''}).`;
  return error.body || `Request failed (${error.status}).`;
}
