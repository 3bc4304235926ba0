// Shared helpers for the Mission Control client-library tests.
//
// Environment:
//   MC_URL       base URL of a running server      (default http://127.0.0.1:3001)
//   MC_PASSWORD  admin password for /api/auth/login (default admin123)
//   MC_SUB_SETTLE_MS  delay between "subscribed" and firing the mutation (default 300)

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

export const MC_URL = (process.env.MC_URL || 'http://127.0.0.1:3001').replace(/\/+$/, '');
export const MC_PASSWORD = process.env.MC_PASSWORD ?? 'admin123';
export const GRAPHQL_URL = `${MC_URL}/graphql`;
export const WS_URL = `${MC_URL.replace(/^http/i, 'ws')}/graphql/ws`;

/** Per-HTTP-request timeout. */
export const REQUEST_TIMEOUT_MS = 15_000;
/** How long to wait for a subscription event after the mutation. */
export const EVENT_TIMEOUT_MS = 10_000;
/** How long to wait for the WebSocket handshake + connection_ack. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** Pause after the subscription is started so the server has registered it. */
export const SUBSCRIBE_SETTLE_MS = Number(process.env.MC_SUB_SETTLE_MS || 300);

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * fetch() with a timeout and an error message that says what to check when
 * the server cannot be reached at all.
 */
export async function fetchChecked(url, init = {}) {
  try {
    return await fetch(url, { ...init, signal: init.signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (err) {
    if (err?.name === 'TimeoutError') {
      throw new Error(`request to ${url} timed out after ${REQUEST_TIMEOUT_MS} ms`);
    }
    const cause = err?.cause?.code || err?.cause?.message || err?.message || String(err);
    throw new Error(
      `cannot reach Mission Control at ${url} (${cause}). ` +
        'Is the server running? Set MC_URL to its base URL.',
      { cause: err },
    );
  }
}

/** Reads a response body as JSON, failing with the status and a body excerpt otherwise. */
async function readJson(res, what) {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${what}: HTTP ${res.status}, body is not JSON: ${text.slice(0, 300)}`);
  }
}

/** POST /api/auth/login → JWT string. */
export async function login(password = MC_PASSWORD) {
  const url = `${MC_URL}/api/auth/login`;
  const res = await fetchChecked(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ password }),
  });
  const body = await readJson(res, `POST ${url}`);
  if (!res.ok) {
    throw new Error(`login failed: HTTP ${res.status} ${JSON.stringify(body)} (check MC_PASSWORD)`);
  }
  if (typeof body?.token !== 'string' || body.token.length === 0) {
    throw new Error(`login response has no "token": ${JSON.stringify(body)}`);
  }
  return body.token;
}

/** POST a GraphQL operation to /graphql; returns the parsed response body. */
export async function gql(query, variables, token) {
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetchChecked(GRAPHQL_URL, {
    method: 'POST',
    headers,
    body: JSON.stringify(variables === undefined ? { query } : { query, variables }),
  });
  return readJson(res, `POST ${GRAPHQL_URL}`);
}

export const CREATE_TASK = /* GraphQL */ `
  mutation($i: CreateTaskInput!) {
    createTask(input: $i) { id title }
  }
`;

/** A title no other run (or other test) will produce. */
export function uniqueTitle(label) {
  return `node-client-test ${label} ${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Creates a task over plain HTTP and returns `{ id, title }`. */
export async function createTask(token, title) {
  const body = await gql(
    CREATE_TASK,
    { i: { title, description: 'created by tests/node (client library checks)' } },
    token,
  );
  if (body.errors?.length || !body.data?.createTask?.id) {
    throw new Error(`createTask failed: ${JSON.stringify(body)}`);
  }
  return body.data.createTask;
}

/**
 * Rejects with a labelled error if `promise` does not settle within `ms`.
 * `label` may be a function, evaluated only when the timeout fires.
 */
export function withTimeout(promise, ms, label) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const what = typeof label === 'function' ? label() : label;
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A promise with its resolve/reject exposed; never reports an unhandled rejection. */
export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** Describes a close event / error from graphql-ws or ws in one line. */
export function describeClose(e) {
  if (e && typeof e === 'object' && 'code' in e) {
    return `socket closed with code ${e.code}${e.reason ? ` (${e.reason})` : ''}`;
  }
  if (e instanceof Error) return e.message;
  if (Array.isArray(e)) return `GraphQL errors: ${JSON.stringify(e)}`;
  return String(e?.message ?? JSON.stringify(e));
}

/**
 * Buffers everything a subscription delivers so a test can wait for a
 * matching event even if it arrived before the test started waiting
 * (the event often beats the mutation's own HTTP response).
 */
export class EventCollector {
  constructor(label) {
    this.label = label;
    this.events = [];
    this.error = null;
    this.waiters = new Set();
  }

  push(value) {
    this.events.push(value);
    for (const w of this.waiters) {
      if (w.predicate(value)) {
        this.waiters.delete(w);
        w.resolve(value);
      }
    }
  }

  fail(err) {
    if (this.error) return;
    this.error = err instanceof Error ? err : new Error(`${this.label}: ${describeClose(err)}`);
    for (const w of this.waiters) w.reject(this.error);
    this.waiters.clear();
  }

  /** A graphql-ws Sink that feeds `result.data` into the collector. */
  sink() {
    return {
      next: (result) => {
        if (result.errors?.length) this.fail(new Error(`${this.label}: GraphQL errors ${JSON.stringify(result.errors)}`));
        else this.push(result.data);
      },
      error: (err) => this.fail(err),
      complete: () => this.fail(new Error(`${this.label}: subscription completed before the expected event`)),
    };
  }

  waitFor(predicate, ms = EVENT_TIMEOUT_MS) {
    const found = this.events.find(predicate);
    if (found) return Promise.resolve(found);
    if (this.error) return Promise.reject(this.error);
    const d = deferred();
    const waiter = { predicate, resolve: d.resolve, reject: d.reject };
    this.waiters.add(waiter);
    const label = () => `${this.label} event (received so far: ${JSON.stringify(this.events).slice(0, 1000)})`;
    return withTimeout(d.promise, ms, label).finally(() =>
      this.waiters.delete(waiter),
    );
  }
}

/**
 * A graphql-ws client on /graphql/ws using the `ws` package (Node 20 has no
 * global WebSocket). No retries, so a broken server fails a test at once.
 * Returns the client plus `connected()`, which resolves on connection_ack
 * and rejects if the socket closes first or the ack takes too long.
 */
export function createWsClient({ connectionParams, on = {}, ...rest } = {}) {
  const connected = deferred();
  const client = createClient({
    url: WS_URL,
    webSocketImpl: WebSocket,
    connectionParams,
    retryAttempts: 0,
    connectionAckWaitTimeout: CONNECT_TIMEOUT_MS,
    ...rest,
    on: {
      ...on,
      connected: (...args) => {
        connected.resolve(args[1]);
        on.connected?.(...args);
      },
      closed: (event) => {
        connected.reject(new Error(`WebSocket ${WS_URL}: ${describeClose(event)} before connection_ack`));
        on.closed?.(event);
      },
      error: (err) => {
        connected.reject(new Error(`WebSocket ${WS_URL}: ${describeClose(err)}`));
        on.error?.(err);
      },
    },
  });
  return {
    client,
    connected: () => withTimeout(connected.promise, CONNECT_TIMEOUT_MS, `connection_ack from ${WS_URL}`),
  };
}
