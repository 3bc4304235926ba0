// The GraphQL clients of one session: urql for queries and mutations over HTTP
// (`POST /graphql`), graphql-ws for subscriptions (`/graphql/ws`, graphql-transport-ws), both
// with the session's bearer token. Also what the page shows about the socket (connected /
// reconnecting / offline) and a counter that moves each time the socket comes back after a
// drop, so views refetch what they may have missed.
import { Client, CombinedError, fetchExchange, mapExchange, subscriptionExchange } from '@urql/core';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws/client';
import { Store } from './store.ts';

export type Connection = 'connecting' | 'connected' | 'reconnecting' | 'offline';

export interface Api {
  client: Client;
  ws: WsClient;
  connection: Store<Connection>;
  /** Moves each time the socket is back after a drop. */
  reconnects: Store<number>;
  /** Called on every drop of the socket (before it is back). */
  onDrop(listener: () => void): () => void;
  dispose(): void;
}

/** After this long without a connection the page calls itself offline, not reconnecting. */
const OFFLINE_AFTER_MS = 10_000;
/** A ping the server does not answer within this long means the connection is dead. */
const PONG_TIMEOUT_MS = 6_000;

/** Waits before reconnect attempt `retries` (0 first): 0.5 s doubling to 8 s, with jitter
 * so that a restarted server is not met by every page at the same instant. */
function backoff(retries: number): Promise<void> {
  const base = Math.min(8_000, 500 * 2 ** retries);
  return new Promise((resolve) => setTimeout(resolve, base / 2 + Math.random() * (base / 2)));
}

function isCloseEvent(value: unknown): value is CloseEvent {
  return typeof value === 'object' && value !== null && 'code' in value && typeof value.code === 'number';
}

/** True when the error says the token is no longer good (expired, revoked, disabled user). */
export function isUnauthenticated(error: CombinedError): boolean {
  return (
    error.response?.status === 401 ||
    error.graphQLErrors.some((e) => e.extensions?.code === 'UNAUTHENTICATED')
  );
}

export function createApi(token: string, onUnauthenticated: (why: string) => void): Api {
  const connection = new Store<Connection>('connecting');
  const reconnects = new Store(0);
  const dropListeners = new Set<() => void>();
  let disposed = false;
  /** When the connection was lost (null while connected). */
  let downSince: number | null = null;
  let dropped = false;
  let socket: WebSocket | null = null;
  let pongTimer: ReturnType<typeof setTimeout> | undefined;

  const lost = (): Connection =>
    !navigator.onLine || (downSince !== null && Date.now() - downSince >= OFFLINE_AFTER_MS) ? 'offline' : 'reconnecting';

  const unauthenticated = (why: string) => {
    if (disposed) return;
    disposed = true;
    onUnauthenticated(why);
  };

  const location = window.location;
  const ws = createWsClient({
    url: `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/graphql/ws`,
    connectionParams: { authorization: `Bearer ${token}` },
    // Connect at once and stay connected, so the indicator tells the truth even before a
    // view subscribes to anything.
    lazy: false,
    retryAttempts: Infinity,
    retryWait: backoff,
    // Every close is worth another try (a restart, a network blip), except a refused token:
    // graphql-ws treats 4401 as final by itself, and the session ends below.
    shouldRetry: (e) => !(isCloseEvent(e) && e.code === 4401),
    onNonLazyError: () => undefined,
    keepAlive: 10_000,
    on: {
      opened: (s) => {
        socket = s as WebSocket;
      },
      connecting: (isRetry) => {
        if (disposed) return;
        connection.set(isRetry ? lost() : 'connecting');
      },
      connected: () => {
        if (disposed) return;
        downSince = null;
        connection.set('connected');
        if (dropped) {
          dropped = false;
          reconnects.update((n) => n + 1);
        }
      },
      // A socket can die without a close (a cable pulled, a laptop asleep): a ping with no
      // pong in time closes it here, and the retries begin.
      ping: (received) => {
        if (received) return;
        clearTimeout(pongTimer);
        pongTimer = setTimeout(() => {
          if (socket?.readyState === WebSocket.OPEN) socket.close(4408, 'no pong');
        }, PONG_TIMEOUT_MS);
      },
      pong: (received) => {
        if (received) clearTimeout(pongTimer);
      },
      closed: (event) => {
        clearTimeout(pongTimer);
        socket = null;
        if (disposed) return;
        if (isCloseEvent(event) && event.code === 4401) {
          unauthenticated('Your session ended (it expired or was revoked). Log in again.');
          return;
        }
        dropped = true;
        downSince ??= Date.now();
        connection.set(lost());
        for (const listener of [...dropListeners]) listener();
      },
    },
  });

  const client = new Client({
    url: '/graphql',
    // No document cache: the views that need fresh data get it from subscriptions, and the
    // rest refetch on reconnect, so a cache would only hold copies that go stale.
    exchanges: [
      mapExchange({
        onError(error) {
          if (isUnauthenticated(error)) unauthenticated('Your session ended (it expired or was revoked). Log in again.');
        },
      }),
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query ?? '' };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
    fetchOptions: () => ({ headers: { authorization: `Bearer ${token}` } }),
    preferGetMethod: false,
  });

  const goOffline = () => {
    if (!disposed && connection.get() !== 'connected') connection.set('offline');
  };
  window.addEventListener('offline', goOffline);

  return {
    client,
    ws,
    connection,
    reconnects,
    onDrop(listener) {
      dropListeners.add(listener);
      return () => dropListeners.delete(listener);
    },
    dispose() {
      disposed = true;
      clearTimeout(pongTimer);
      window.removeEventListener('offline', goOffline);
      void ws.dispose();
    },
  };
}

/** What to tell the user about a failed operation. */
export function describeError(error: CombinedError | Error | unknown): string {
  if (error instanceof CombinedError) {
    const first = error.graphQLErrors[0];
    if (first) {
      const code = first.extensions?.code;
      if (code === 'FORBIDDEN') return 'Your role may not do this.';
      return first.message;
    }
    if (error.networkError) return 'The server cannot be reached. Try again when it is back.';
    return error.message;
  }
  if (error instanceof Error) return error.message;
  return String(error);
}
