// The page: the login form, or the dashboard of the current session (its own clients, made
// for its token and dropped with it).
import { useEffect, useMemo, useState } from 'preact/hooks';
import { Provider, useQuery } from '@urql/preact';
import { graphql } from './graphql.ts';
import { createApi, type Connection } from './api.ts';
import { end, session } from './session.ts';
import { useStore } from './store.ts';
import { Login } from './login.tsx';
import { Board, NO_FILTERS, type Filters } from './board.tsx';
import { Agents, AgentsProvider } from './agents.tsx';
import { FeedProvider, FeedView, NotificationsBell } from './feed.tsx';
import { Usage } from './usage.tsx';
import {
  ApiContext,
  ConfirmProvider,
  ToastProvider,
  ViewerContext,
  label,
  useApi,
  useOnChange,
  useRoute,
  useViewer,
  type Route,
  type Viewer,
} from './ui.tsx';

const MeQuery = graphql(`
  query Me { me { name role kind } }
`);

export function App() {
  const current = useStore(session);
  if (!current) return <Login />;
  return <Dashboard key={current.token} token={current.token} />;
}

function Dashboard(props: { token: string }) {
  const api = useMemo(() => createApi(props.token, (why) => end(why, false)), [props.token]);
  useEffect(() => () => api.dispose(), [api]);
  return (
    <ApiContext.Provider value={api}>
      <Provider value={api.client}>
        <ToastProvider>
          <ConfirmProvider>
            <WithViewer>
              <AgentsProvider>
                <FeedProvider>
                  <Shell />
                </FeedProvider>
              </AgentsProvider>
            </WithViewer>
          </ConfirmProvider>
        </ToastProvider>
      </Provider>
    </ApiContext.Provider>
  );
}

/** Who is logged in, from `me`: the role decides which controls show. */
function WithViewer(props: { children: preact.ComponentChildren }) {
  const reconnects = useStore(useApi().reconnects);
  const [{ data }, refetch] = useQuery({ query: MeQuery });
  // A role changed by an admin applies to tokens already issued: read it again on reconnect.
  useOnChange(reconnects, () => refetch({ requestPolicy: 'network-only' }));
  const viewer = useMemo<Viewer>(() => {
    const me = data?.me;
    if (!me) return { name: '', role: 'VIEWER', canEdit: false };
    return { name: me.name, role: me.role, canEdit: me.role !== 'VIEWER' };
  }, [data]);
  return <ViewerContext.Provider value={viewer}>{props.children}</ViewerContext.Provider>;
}

const TABS: { route: Route; text: string }[] = [
  { route: 'board', text: 'Board' },
  { route: 'agents', text: 'Agents' },
  { route: 'feed', text: 'Activity' },
  { route: 'usage', text: 'Usage' },
];

function Shell() {
  const route = useRoute();
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href="#/board">
          Mission Control
        </a>
        <nav class="tabs">
          {TABS.map((tab) => (
            <a
              href={`#/${tab.route}`}
              class={route === tab.route ? 'tab on' : 'tab'}
              aria-current={route === tab.route ? 'page' : undefined}
              data-testid={`tab-${tab.route}`}
            >
              {tab.text}
            </a>
          ))}
        </nav>
        <span class="spacer" />
        <ConnectionIndicator />
        <NotificationsBell />
        <UserMenu />
      </header>
      <main class="main">
        {route === 'board' && <Board filters={filters} onFilters={setFilters} />}
        {route === 'agents' && <Agents />}
        {route === 'feed' && <FeedView />}
        {route === 'usage' && <Usage />}
      </main>
    </div>
  );
}

const CONNECTION_TEXT: Record<Connection, string> = {
  connecting: 'Connecting…',
  connected: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};

function ConnectionIndicator() {
  const state = useStore(useApi().connection);
  return (
    <span class={`connection ${state}`} data-testid="connection" data-state={state} role="status" title="Live updates">
      <span class="dot" />
      {CONNECTION_TEXT[state]}
    </span>
  );
}

function UserMenu() {
  const viewer = useViewer();
  return (
    <span class="user">
      {viewer.name && (
        <span class="muted" data-testid="whoami">
          {viewer.name} · {label(viewer.role)}
        </span>
      )}
      <button type="button" onClick={() => end('You logged out.', true)} data-testid="logout">
        Log out
      </button>
    </span>
  );
}
