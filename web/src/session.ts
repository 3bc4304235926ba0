// The login session: the bearer token and when it stops working.
//
// The token lives in memory and in sessionStorage: it survives a reload of this tab but not
// the tab itself, is never shared with other tabs or written to disk for good (localStorage),
// and is never put in a URL (where it would end up in history and logs). The page is
// same-origin with the API and its CSP allows no other script, which is what keeps a
// script-readable token safe enough here.
import { Store } from './store.ts';

export interface Session {
  token: string;
  /** When the server stops accepting the token (ms since the epoch). */
  expiresAt: number;
}

const STORAGE_KEY = 'mission-control.session';
/** Log out a little before the server would refuse the token, so no request races it. */
const EXPIRY_MARGIN_MS = 5_000;
/** setTimeout's largest delay; longer waits are re-armed in steps. */
const MAX_TIMER_MS = 2_147_483_647;

/** The current session, or null while logged out. */
export const session = new Store<Session | null>(null);
/** Why the last session ended, shown above the login form. */
export const notice = new Store<string | null>(null);

let expiryTimer: ReturnType<typeof setTimeout> | undefined;

/** The `exp` claim of a JWT (ms), or null when the token is not a readable JWT. */
export function jwtExpiry(token: string): number | null {
  const payload = token.split('.')[1];
  if (!payload) return null;
  try {
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const exp: unknown = JSON.parse(json).exp;
    return typeof exp === 'number' ? exp * 1000 : null;
  } catch {
    return null;
  }
}

function start(next: Session): void {
  try {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(next));
  } catch {
    // Storage may be disabled; the session then lasts until a reload.
  }
  notice.set(null);
  session.set(next);
  armExpiry(next.expiresAt);
}

function armExpiry(expiresAt: number): void {
  clearTimeout(expiryTimer);
  const wait = expiresAt - EXPIRY_MARGIN_MS - Date.now();
  if (wait <= 0) {
    end('Your session expired. Log in again.', false);
    return;
  }
  expiryTimer = setTimeout(() => armExpiry(expiresAt), Math.min(wait, MAX_TIMER_MS));
}

/** Picks up the session this tab had before a reload, if it is still good. */
export function restore(): void {
  let saved: Partial<Session> | null = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? 'null');
  } catch {
    saved = null;
  }
  if (!saved || typeof saved.token !== 'string' || typeof saved.expiresAt !== 'number') return;
  if (saved.expiresAt - EXPIRY_MARGIN_MS <= Date.now()) {
    sessionStorage.removeItem(STORAGE_KEY);
    notice.set('Your session expired. Log in again.');
    return;
  }
  start({ token: saved.token, expiresAt: saved.expiresAt });
}

/**
 * `POST /api/auth/login`. Without a username the password is the server's bootstrap password
 * (the admin, or the viewer password). Throws an Error whose message can be shown as is.
 */
export async function login(username: string, password: string): Promise<void> {
  const body: Record<string, string> = { password };
  if (username.trim() !== '') body.username = username.trim();
  let response: Response;
  try {
    response = await fetch('/api/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
    });
  } catch {
    throw new Error('The server cannot be reached.');
  }
  const answer: { token?: unknown; expiresAt?: unknown; error?: { message?: unknown } } = await response
    .json()
    .catch(() => ({}));
  if (!response.ok || typeof answer.token !== 'string') {
    if (response.status === 401) throw new Error('Wrong username or password.');
    if (response.status === 429) throw new Error('Too many attempts. Wait a minute and try again.');
    const message = typeof answer.error?.message === 'string' ? answer.error.message : `HTTP ${response.status}`;
    throw new Error(`Login failed: ${message}`);
  }
  // Trust the earlier of the two: the answer's expiresAt and the token's own exp claim.
  const stated = typeof answer.expiresAt === 'string' ? Date.parse(answer.expiresAt) : NaN;
  const claimed = jwtExpiry(answer.token);
  const candidates = [stated, claimed ?? NaN].filter((t) => Number.isFinite(t));
  const expiresAt = candidates.length > 0 ? Math.min(...candidates) : Date.now() + 60 * 60 * 1000;
  start({ token: answer.token, expiresAt });
}

/**
 * Ends the session and returns to the login form, saying `why` there (null: say nothing).
 * `revoke` also asks the server to revoke the token (an explicit logout); a token the server
 * already refused needs no revoking.
 */
export function end(why: string | null, revoke: boolean): void {
  const current = session.get();
  clearTimeout(expiryTimer);
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // Nothing stored.
  }
  if (revoke && current) {
    // keepalive: the revocation still goes out if the tab is closing.
    void fetch('/api/auth/logout', {
      method: 'POST',
      headers: { authorization: `Bearer ${current.token}` },
      keepalive: true,
    }).catch(() => undefined);
  }
  notice.set(why);
  session.set(null);
}

/** A laptop that slept past the expiry fires no timer on time: check when the tab shows. */
export function watchVisibility(): void {
  document.addEventListener('visibilitychange', () => {
    const current = session.get();
    if (document.visibilityState === 'visible' && current) armExpiry(current.expiresAt);
  });
}
