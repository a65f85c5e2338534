// The admin API (docs/API.md). The session cookie is HttpOnly and goes by
// itself (same origin); the CSRF token lives in this module's memory only
// and is asked for again after a reload. The admin token is sent once, to
// sign in, and never kept.
let csrf = null;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '' && v !== false) q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

export async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (csrf) headers['X-Licd-CSRF'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, {
      method, headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'NETWORK', 'licd cannot be reached (' + e.message + ')');
  }
  let doc = null;
  try { doc = await r.json(); } catch (e) { doc = null; }
  if (!r.ok) {
    const err = (doc && doc.error) || {};
    if (r.status === 401) csrf = null;
    throw new ApiError(r.status, err.code || 'HTTP_' + r.status, err.message || r.statusText);
  }
  return doc;
}

export const get = (path, params) => call('GET', path + query(params));
export const post = (path, body) => call('POST', path, body === undefined ? {} : body);

export async function resume() {
  const s = await call('GET', '/api/admin/session');
  csrf = s.signed_in ? s.csrf : null;
  return s.signed_in ? s : null;
}

export async function signIn(token) {
  const s = await call('POST', '/api/admin/session', { token });
  csrf = s.csrf;
  return s;
}

export async function signOut() {
  try {
    await post('/api/admin/session/end');
  } finally {
    csrf = null;
  }
}
