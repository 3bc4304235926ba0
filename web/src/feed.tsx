// The activity feed and the notifications bell.
//
// The feed loads its newest page, then subscribes to `activity(after:)` from the newest
// activity it has. When the socket drops, that subscription is dropped too, and once the
// socket is back a new one starts after the last activity seen: the server replays what was
// missed, with no gap and no duplicate.
import { createContext, type ComponentChildren } from 'preact';
import { useContext, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { useClient, useQuery } from '@urql/preact';
import { graphql, type ResultOf } from './graphql.ts';
import { Store, useStore } from './store.ts';
import { agentName, useAgents, type Agent } from './agents.tsx';
import { shortId } from './board.tsx';
import { Badge, ago, errorText, formatTime, label, useAction, useApi, useLive, useOnChange, useViewer } from './ui.tsx';

const ActivityFields = graphql(`
  fragment ActivityFields on Activity {
    id
    type
    actor
    action
    targetType
    targetId
    metadata
    timestamp
    cursor
  }
`);

export type Activity = ResultOf<typeof ActivityFields>;

const FeedQuery = graphql(
  `
  query Feed($first: Int!, $after: String) {
    feed(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes { ...ActivityFields }
    }
  }
`,
  [ActivityFields],
);

const ActivityEvents = graphql(
  `
  subscription Activity($after: String) {
    activity(after: $after) { ...ActivityFields }
  }
`,
  [ActivityFields],
);

const PAGE = 50;
/** The most activities kept in memory; older ones are paged in again when asked for. */
const KEEP = 2_000;

interface FeedState {
  items: Activity[];
  loaded: boolean;
  total: number;
  hasOlder: boolean;
  olderCursor: string | null;
  error: string | null;
}

interface Feed {
  state: Store<FeedState>;
  loadOlder: () => Promise<void>;
}

const FeedContext = createContext<Feed | null>(null);

export function FeedProvider(props: { children: ComponentChildren }) {
  const client = useClient();
  const api = useApi();
  const feed = useMemo<Feed>(() => {
    const state = new Store<FeedState>({ items: [], loaded: false, total: 0, hasOlder: false, olderCursor: null, error: null });
    return {
      state,
      loadOlder: async () => {
        const { olderCursor } = state.get();
        if (!olderCursor) return;
        const result = await client.query(FeedQuery, { first: PAGE, after: olderCursor }).toPromise();
        const page = result.data?.feed;
        if (!page) return;
        state.update((s) => {
          const seen = new Set(s.items.map((a) => a.id));
          return {
            ...s,
            items: [...s.items, ...page.nodes.filter((a) => !seen.has(a.id))],
            hasOlder: page.pageInfo.hasNextPage,
            olderCursor: page.pageInfo.endCursor ?? null,
          };
        });
      },
    };
  }, [client]);

  useEffect(() => {
    const { state } = feed;
    let live: { unsubscribe: () => void } | null = null;
    let lastCursor: string | null = null;
    let loaded = false;
    let stopped = false;

    // A resumed subscription may replay many activities at once: they are shown in batches,
    // not one render each.
    let queue: Activity[] = [];
    let flushTimer: ReturnType<typeof setTimeout> | undefined;
    const flush = () => {
      flushTimer = undefined;
      const batch = queue;
      queue = [];
      state.update((s) => {
        const seen = new Set(s.items.map((a) => a.id));
        const fresh: Activity[] = [];
        for (const activity of batch) {
          if (seen.has(activity.id)) continue;
          seen.add(activity.id);
          fresh.push(activity);
        }
        if (fresh.length === 0) return s;
        // They arrive oldest first; the feed shows newest first.
        let items = [...fresh.reverse(), ...s.items];
        let { hasOlder, olderCursor } = s;
        if (items.length > KEEP) {
          items = items.slice(0, KEEP);
          hasOlder = true;
          olderCursor = items[items.length - 1]?.cursor ?? olderCursor;
        }
        return { ...s, items, total: s.total + fresh.length, hasOlder, olderCursor };
      });
    };
    const add = (activity: Activity) => {
      lastCursor = activity.cursor;
      queue.push(activity);
      flushTimer ??= setTimeout(flush, 50);
    };

    const subscribe = () => {
      if (stopped || live) return;
      live = client.subscription(ActivityEvents, { after: lastCursor }).subscribe((result) => {
        if (result.data) add(result.data.activity);
        if (result.error) {
          // Ended by the server (not a drop): start again from where it stopped.
          live = null;
          setTimeout(subscribe, 2_000);
        }
      });
    };

    const load = async () => {
      const result = await client.query(FeedQuery, { first: PAGE }).toPromise();
      if (stopped) return;
      const page = result.data?.feed;
      if (!page) {
        state.update((s) => ({ ...s, error: result.error ? errorText(result.error) : 'The feed could not be loaded.' }));
        return;
      }
      loaded = true;
      lastCursor = page.nodes[0]?.cursor ?? null;
      state.set({
        items: page.nodes,
        loaded: true,
        total: page.totalCount,
        hasOlder: page.pageInfo.hasNextPage,
        olderCursor: page.pageInfo.endCursor ?? null,
        error: null,
      });
      subscribe();
    };

    void load();
    const offDrop = api.onDrop(() => {
      live?.unsubscribe();
      live = null;
    });
    const offBack = api.reconnects.subscribe(() => {
      if (loaded) subscribe();
      else void load();
    });
    return () => {
      stopped = true;
      clearTimeout(flushTimer);
      live?.unsubscribe();
      offDrop();
      offBack();
    };
  }, [feed, client, api]);

  return <FeedContext.Provider value={feed}>{props.children}</FeedContext.Provider>;
}

function useFeed(): Feed {
  const feed = useContext(FeedContext);
  if (!feed) throw new Error('useFeed outside of FeedProvider');
  return feed;
}

function quoted(text: unknown): string {
  return typeof text === 'string' && text !== '' ? `“${text}”` : '';
}

/** One line saying what happened, from the activity's action and metadata. */
export function describe(activity: Activity, agents: Map<string, Agent>): string {
  const meta = (activity.metadata ?? {}) as Record<string, unknown>;
  const target = activity.targetId ?? '';
  switch (activity.type) {
    case 'TASK': {
      const title = quoted(meta.title) || 'a task';
      if (activity.action === 'updated' && typeof meta.from === 'string' && typeof meta.to === 'string') {
        return `moved ${title} from ${label(meta.from)} to ${label(meta.to)}`;
      }
      if (activity.action === 'updated' && Array.isArray(meta.fields)) {
        return `updated ${title} (${meta.fields.join(', ')})`;
      }
      return `${activity.action.replace(/_/g, ' ')} task ${title}`;
    }
    case 'COMMENT':
      return `commented on task ${shortId(target)}`;
    case 'AGENT': {
      const agent = agents.get(target);
      const name = quoted(meta.label) || (agent ? quoted(agentName(agent)) : shortId(target));
      return `${activity.action.replace(/_/g, ' ')} agent ${name}`;
    }
    default:
      return `${activity.action.replace(/_/g, ' ')}${activity.targetType ? ` ${activity.targetType.replace(/_/g, ' ')}` : ''}${
        quoted(meta.name) ? ` ${quoted(meta.name)}` : ''
      }`;
  }
}

const TYPES = ['TASK', 'AGENT', 'COMMENT', 'SYSTEM'] as const;

export function FeedView() {
  const feed = useFeed();
  const state = useStore(feed.state);
  const { byId } = useAgents();
  const [type, setType] = useState('');
  const [loadingOlder, setLoadingOlder] = useState(false);
  const items = type ? state.items.filter((a) => a.type === type) : state.items;
  return (
    <section class="feed-view" data-testid="feed" data-ready={state.loaded ? 'true' : 'false'}>
      <div class="toolbar">
        <select aria-label="Type" value={type} onChange={(e) => setType(e.currentTarget.value)} data-testid="feed-type">
          <option value="">All activity</option>
          {TYPES.map((t) => (
            <option value={t}>{label(t)}</option>
          ))}
        </select>
        <span class="spacer" />
        <span class="muted">{state.total} activities</span>
      </div>
      {state.error && <p class="error">{state.error}</p>}
      <ol class="feed">
        {items.map((a) => (
          <li key={a.id} class="activity" data-testid="activity" data-target-id={a.targetId ?? ''}>
            <time dateTime={a.timestamp} title={a.timestamp}>
              {formatTime(a.timestamp)}
            </time>
            <Badge kind="type" value={a.type} />
            <span>
              <strong>{a.actor}</strong> {describe(a, byId)}
            </span>
          </li>
        ))}
        {state.loaded && items.length === 0 && <li class="empty">No activity yet.</li>}
      </ol>
      {state.hasOlder && (
        <button
          type="button"
          class="more"
          disabled={loadingOlder}
          onClick={async () => {
            setLoadingOlder(true);
            await feed.loadOlder();
            setLoadingOlder(false);
          }}
          data-testid="feed-more"
        >
          {loadingOlder ? 'Loading…' : 'Load older'}
        </button>
      )}
    </section>
  );
}

// ---------------------------------------------------------------------------------------------
// Notifications

const NotificationFields = graphql(`
  fragment NotificationFields on Notification {
    id
    kind
    severity
    title
    body
    targetType
    targetId
    createdAt
    readAt
    cursor
  }
`);

type Notification = ResultOf<typeof NotificationFields>;

const NotificationsQuery = graphql(
  `
  query Notifications {
    recent: notifications(first: 20) { nodes { ...NotificationFields } }
    counts: notifications(first: 1) { unreadCount }
  }
`,
  [NotificationFields],
);

const NotificationEvents = graphql(
  `
  subscription Notification {
    notification { ...NotificationFields }
  }
`,
  [NotificationFields],
);

const MarkRead = graphql(`
  mutation MarkNotificationsRead($ids: [ID!]) { markNotificationsRead(ids: $ids) }
`);

export function NotificationsBell() {
  const client = useClient();
  const api = useApi();
  const reconnects = useStore(api.reconnects);
  const viewer = useViewer();
  const act = useAction();
  const [{ data }, refetch] = useQuery({ query: NotificationsQuery });
  const [arrived, setArrived] = useState<Notification[]>([]);
  const [open, setOpen] = useState(false);
  const [restart, setRestart] = useState(0);
  const box = useRef<HTMLDivElement>(null);

  // The panel closes on a click elsewhere or on Escape, like any menu.
  useEffect(() => {
    if (!open) return;
    const click = (e: MouseEvent) => {
      if (box.current && !box.current.contains(e.target as Node)) setOpen(false);
    };
    const key = (e: KeyboardEvent) => {
      if (e.key === 'Escape') setOpen(false);
    };
    document.addEventListener('mousedown', click);
    document.addEventListener('keydown', key);
    return () => {
      document.removeEventListener('mousedown', click);
      document.removeEventListener('keydown', key);
    };
  }, [open]);

  const reload = () => {
    setArrived([]);
    refetch({ requestPolicy: 'network-only' });
  };
  useOnChange(reconnects, reload);

  useLive(NotificationEvents, {}, (event) => setArrived((list) => [event.notification, ...list.slice(0, 49)]), {
    // A subscriber that fell behind is ended (SUBSCRIPTION_LAGGED): read the stored ones and
    // subscribe again.
    onError: () => {
      reload();
      setTimeout(() => setRestart((n) => n + 1), 1_000);
    },
    restart,
  });

  const recent = useMemo(() => {
    const seen = new Set<string>();
    return [...arrived, ...(data?.recent.nodes ?? [])].filter((n) => !seen.has(n.id) && seen.add(n.id)).slice(0, 30);
  }, [arrived, data]);
  // The server's count at the fetch, plus the unread ones that arrived since (those already
  // in the fetched page were counted by it).
  const fetched = new Set(data?.recent.nodes.map((n) => n.id) ?? []);
  const unread =
    (data?.counts.unreadCount ?? 0) + arrived.filter((n) => !n.readAt && !fetched.has(n.id)).length;

  if (recent.length === 0) return null;
  return (
    <div class="bell" ref={box}>
      <button
        type="button"
        class={unread > 0 ? 'icon bell-button unread' : 'icon bell-button'}
        aria-label={`Notifications, ${unread} unread`}
        aria-expanded={open}
        onClick={() => setOpen(!open)}
        data-testid="bell"
      >
        <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
          <path d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22zm7-6V11a7 7 0 0 0-5-6.71V3a2 2 0 0 0-4 0v1.29A7 7 0 0 0 5 11v5l-2 2v1h18v-1z" />
        </svg>
        {unread > 0 && (
          <span class="bell-count" data-testid="bell-count">
            {unread}
          </span>
        )}
      </button>
      {open && (
        <div class="bell-panel" data-testid="notifications">
          <header class="panel-head">
            <h2>Notifications</h2>
            {viewer.canEdit && unread > 0 && (
              <button
                type="button"
                class="link"
                onClick={async () => {
                  if (await act(() => client.mutation(MarkRead, {}).toPromise())) reload();
                }}
              >
                Mark all read
              </button>
            )}
          </header>
          <ul>
            {recent.map((n) => (
              <li key={n.id} class={n.readAt ? '' : 'unread'}>
                <Badge kind="severity" value={n.severity} /> <strong>{n.title}</strong>
                <div class="muted">{n.body}</div>
                <div class="muted small-text">{ago(n.createdAt)}</div>
              </li>
            ))}
          </ul>
        </div>
      )}
    </div>
  );
}
