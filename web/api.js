// HTTP helpers for the lab's own endpoints, and the optional publish token.

const TOKEN_KEY = 'transport-lab.token';

/** The token lives in sessionStorage: it survives a reload, not the tab. */
export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? '';
  } catch {
    return '';
  }
}

/** @param {string} token */
export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: the token then lasts as long as the page.
  }
}

/** A failed request, with the server's error code when it sent one. */
export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * fetch → parsed JSON, or an ApiError carrying `{error:{code,message}}` from the body.
 * @param {string} path @param {RequestInit & {json?: unknown, auth?: boolean}} [init]
 */
export async function api(path, init = {}) {
  const { json, auth, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (json !== undefined) headers.set('content-type', 'application/json');
  const token = getToken();
  if (auth && token) headers.set('authorization', `Bearer ${token}`);
  const res = await fetch(path, {
    cache: 'no-store',
    ...rest,
    headers,
    ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
  });
  const text = await res.text();
  let body;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const err = body && typeof body === 'object' && body.error ? body.error : {};
    throw new ApiError(
      res.status,
      String(err.code ?? `HTTP_${res.status}`),
      String(err.message ?? (text.slice(0, 200) || res.statusText)),
    );
  }
  return body;
}

/** Epoch milliseconds with a sub-millisecond fraction, from the monotonic clock. */
export const nowMs = () => performance.timeOrigin + performance.now();
