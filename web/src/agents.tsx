// Agents: the live list from `agentStatus` (shared by every view through a context), and the
// agents view: status, model, tokens and cost, one agent's transcript and live output, and
// spawn / message / kill for the roles that may.
import { createContext, type ComponentChildren } from 'preact';
import { useContext, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { useClient, useQuery } from '@urql/preact';
import { graphql, type ResultOf } from './graphql.ts';
import {
  Badge,
  Dialog,
  ago,
  formatCost,
  formatTime,
  formatTokens,
  label,
  useAction,
  useApi,
  useConfirm,
  useLive,
  useOnChange,
  useViewer,
} from './ui.tsx';
import { useStore } from './store.ts';

const AgentFields = graphql(`
  fragment AgentFields on Agent {
    id
    label
    status
    runtimeStatus
    model
    sessionId
    updatedAt
    inputTokens
    outputTokens
    metrics { tokens cost runtimeSeconds tasksCompleted }
  }
`);

export type Agent = ResultOf<typeof AgentFields>;

const AgentStatusEvents = graphql(
  `
  subscription AgentStatus {
    agentStatus { changed agents { ...AgentFields } }
  }
`,
  [AgentFields],
);

const AgentDetailQuery = graphql(`
  query AgentDetail($id: ID!) {
    agent(id: $id) {
      id
      transcript(limit: 100) { role text timestamp model tokens cost }
      tasks { id title status }
    }
  }
`);

const AgentOutputEvents = graphql(`
  subscription AgentOutput($id: ID!) {
    agentOutput(id: $id) { agentId runId kind text toolName at }
  }
`);

const SpawnAgent = graphql(
  `
  mutation SpawnAgent($input: SpawnAgentInput!) {
    spawnAgent(input: $input) { ...AgentFields }
  }
`,
  [AgentFields],
);

const KillAgent = graphql(
  `
  mutation KillAgent($id: ID!) {
    killAgent(id: $id) { ...AgentFields }
  }
`,
  [AgentFields],
);

const SendAgentMessage = graphql(`
  mutation SendAgentMessage($id: ID!, $message: String!) {
    sendAgentMessage(id: $id, message: $message)
  }
`);

interface AgentsState {
  agents: Agent[];
  byId: Map<string, Agent>;
  /** Whether the first snapshot has arrived. */
  loaded: boolean;
  /** Moves for an agent each time `agentStatus` says it changed. */
  versions: Map<string, number>;
  /** Shows an agent a mutation returned before its event arrives. */
  upsert: (agent: Agent) => void;
}

const AgentsContext = createContext<AgentsState>({
  agents: [],
  byId: new Map(),
  loaded: false,
  versions: new Map(),
  upsert: () => undefined,
});

export function useAgents(): AgentsState {
  return useContext(AgentsContext);
}

export function agentName(agent: { id: string; label?: string | null }): string {
  return agent.label || agent.id.split(':').pop()?.slice(0, 8) || agent.id;
}

/** Stable order: by name, then id, so rows do not jump while statuses change. */
function sorted(agents: Agent[]): Agent[] {
  return [...agents].sort((a, b) => agentName(a).localeCompare(agentName(b)) || a.id.localeCompare(b.id));
}

export function AgentsProvider(props: { children: ComponentChildren }) {
  const [agents, setAgents] = useState<Agent[]>([]);
  const [loaded, setLoaded] = useState(false);
  const [versions, setVersions] = useState<Map<string, number>>(new Map());
  // Each (re)subscription starts with the whole snapshot, so a reconnect needs no refetch.
  useLive(AgentStatusEvents, {}, (data) => {
    setAgents(sorted(data.agentStatus.agents));
    setLoaded(true);
    setVersions((current) => {
      const next = new Map(current);
      for (const id of data.agentStatus.changed) next.set(id, (next.get(id) ?? 0) + 1);
      return next;
    });
  });
  const value = useMemo<AgentsState>(
    () => ({
      agents,
      byId: new Map(agents.map((a) => [a.id, a])),
      loaded,
      versions,
      upsert: (agent) => {
        setAgents((current) => sorted([...current.filter((a) => a.id !== agent.id), agent]));
        setVersions((current) => new Map(current).set(agent.id, (current.get(agent.id) ?? 0) + 1));
      },
    }),
    [agents, loaded, versions],
  );
  return <AgentsContext.Provider value={value}>{props.children}</AgentsContext.Provider>;
}

export function Agents() {
  const { agents, loaded, upsert } = useAgents();
  const viewer = useViewer();
  const client = useClient();
  const confirm = useConfirm();
  const act = useAction();
  const [selected, setSelected] = useState<string | null>(null);
  const [spawning, setSpawning] = useState(false);
  const current = agents.find((a) => a.id === selected) ?? null;

  const kill = async (agent: Agent) => {
    const ok = await confirm(
      'Kill agent',
      `Stop “${agentName(agent)}” now? Its current run is aborted and the agent is marked killed.`,
      'Kill',
    );
    if (!ok) return;
    await act(async () => {
      const result = await client.mutation(KillAgent, { id: agent.id }).toPromise();
      if (result.data) upsert(result.data.killAgent);
      return result;
    }, `Killed ${agentName(agent)}`);
  };

  const running = agents.filter((a) => a.status === 'RUNNING').length;
  const cost = agents.reduce((sum, a) => sum + a.metrics.cost, 0);
  const tokens = agents.reduce((sum, a) => sum + a.metrics.tokens, 0);

  return (
    <section class="agents-view" data-testid="agents" data-ready={loaded ? 'true' : 'false'}>
      <div class="toolbar">
        <span>
          <strong>{agents.length}</strong> agents · <strong>{running}</strong> running · {formatTokens(tokens)} tokens ·{' '}
          {formatCost(cost)}
        </span>
        <span class="spacer" />
        {viewer.canEdit && (
          <button type="button" class="primary" onClick={() => setSpawning(true)} data-testid="spawn-open">
            Spawn agent
          </button>
        )}
      </div>
      <div class="split">
        <table class="agents-table">
          <thead>
            <tr>
              <th>Agent</th>
              <th>Status</th>
              <th>Model</th>
              <th class="num">Tokens</th>
              <th class="num">Cost</th>
              <th>Updated</th>
              {viewer.canEdit && <th />}
            </tr>
          </thead>
          <tbody>
            {agents.map((agent) => (
              <tr
                key={agent.id}
                class={agent.id === selected ? 'selected' : ''}
                data-testid="agent-row"
                data-agent-id={agent.id}
                data-label={agent.label ?? ''}
                data-status={agent.status}
              >
                <td>
                  <button type="button" class="link" onClick={() => setSelected(agent.id)} title={agent.id} data-testid="agent-open">
                    {agentName(agent)}
                  </button>
                </td>
                <td>
                  <Badge kind="status" value={agent.status} testId="agent-status" />
                  {agent.runtimeStatus && <span class="muted"> {agent.runtimeStatus}</span>}
                </td>
                <td class="muted">{agent.model ?? '–'}</td>
                <td class="num">{formatTokens(agent.metrics.tokens)}</td>
                <td class="num">{formatCost(agent.metrics.cost)}</td>
                <td class="muted">{ago(agent.updatedAt)}</td>
                {viewer.canEdit && (
                  <td class="num">
                    {agent.status !== 'KILLED' && (
                      <button type="button" class="small danger" onClick={() => void kill(agent)} data-testid="agent-kill">
                        Kill
                      </button>
                    )}
                  </td>
                )}
              </tr>
            ))}
            {loaded && agents.length === 0 && (
              <tr>
                <td colSpan={7} class="empty">
                  No agents yet.
                </td>
              </tr>
            )}
            {!loaded && (
              <tr>
                <td colSpan={7} class="empty">
                  Waiting for the live status…
                </td>
              </tr>
            )}
          </tbody>
        </table>
        {current ? (
          <AgentDetail key={current.id} agent={current} onKill={() => void kill(current)} />
        ) : (
          <aside class="panel muted">Pick an agent to see its transcript.</aside>
        )}
      </div>
      {spawning && (
        <SpawnDialog
          onClose={() => setSpawning(false)}
          onSpawned={(agent) => {
            upsert(agent);
            setSelected(agent.id);
            setSpawning(false);
          }}
        />
      )}
    </section>
  );
}

function SpawnDialog(props: { onClose: () => void; onSpawned: (agent: Agent) => void }) {
  const client = useClient();
  const act = useAction();
  const [name, setName] = useState('');
  const [task, setTask] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    const ok = await act(async () => {
      const result = await client.mutation(SpawnAgent, { input: { label: name.trim(), task: task.trim() } }).toPromise();
      if (result.data) props.onSpawned(result.data.spawnAgent);
      return result;
    }, `Spawned ${name.trim()}`);
    if (!ok) setBusy(false);
  };
  return (
    <Dialog title="Spawn agent" onClose={props.onClose} testId="spawn-dialog">
      <form class="form" onSubmit={submit}>
        <label>
          Label
          <input required value={name} onInput={(e) => setName(e.currentTarget.value)} data-testid="spawn-label" />
        </label>
        <label>
          First message
          <textarea required rows={4} value={task} onInput={(e) => setTask(e.currentTarget.value)} data-testid="spawn-task" />
        </label>
        <div class="actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy || !name.trim() || !task.trim()} data-testid="spawn-submit">
            Spawn
          </button>
        </div>
      </form>
    </Dialog>
  );
}

type OutputItem = ResultOf<typeof AgentOutputEvents>['agentOutput'];

function AgentDetail(props: { agent: Agent; onKill: () => void }) {
  const { agent } = props;
  const viewer = useViewer();
  const client = useClient();
  const act = useAction();
  const { versions } = useAgents();
  const reconnects = useStore(useApi().reconnects);
  const [{ data, error }, refetch] = useQuery({ query: AgentDetailQuery, variables: { id: agent.id } });
  const [message, setMessage] = useState('');
  const [busy, setBusy] = useState(false);
  const [live, setLive] = useState<OutputItem[]>([]);
  const version = versions.get(agent.id) ?? 0;
  const transcriptBox = useRef<HTMLDivElement>(null);

  // The transcript grows with each change `agentStatus` reports (and may have while offline).
  const refetchTimer = useRef<ReturnType<typeof setTimeout>>();
  useOnChange(`${version}/${reconnects}`, () => {
    clearTimeout(refetchTimer.current);
    refetchTimer.current = setTimeout(() => refetch({ requestPolicy: 'network-only' }), 250);
  });
  useEffect(() => () => clearTimeout(refetchTimer.current), []);

  useLive(AgentOutputEvents, { id: agent.id }, (event) => {
    const item = event.agentOutput;
    if (item.kind === 'FINAL' || item.kind === 'ERROR') {
      setLive([]);
      refetch({ requestPolicy: 'network-only' });
    } else {
      setLive((items) => [...items.slice(-200), item]);
    }
  });

  useEffect(() => {
    // Follow the newest message, inside the box only (never scroll the page).
    const box = transcriptBox.current;
    if (box) box.scrollTop = box.scrollHeight;
  }, [data, live.length]);

  const send = async (e: Event) => {
    e.preventDefault();
    if (!message.trim()) return;
    setBusy(true);
    const ok = await act(() => client.mutation(SendAgentMessage, { id: agent.id, message: message.trim() }).toPromise(), 'Message sent');
    setBusy(false);
    if (ok) {
      setMessage('');
      refetch({ requestPolicy: 'network-only' });
    }
  };

  const transcript = data?.agent?.transcript ?? [];
  const streamed = live
    .filter((i) => i.kind === 'TEXT')
    .map((i) => i.text ?? '')
    .join('');
  const phase = [...live].reverse().find((i) => i.kind === 'STATUS' || i.kind === 'TOOL_CALL');

  return (
    <aside class="panel agent-detail" data-testid="agent-detail">
      <header class="panel-head">
        <div>
          <h2>{agentName(agent)}</h2>
          <div class="muted mono">{agent.id}</div>
        </div>
        <Badge kind="status" value={agent.status} />
      </header>
      <dl class="facts">
        <dt>Model</dt>
        <dd>{agent.model ?? '–'}</dd>
        <dt>Tokens</dt>
        <dd>
          {formatTokens(agent.metrics.tokens)}
          {agent.inputTokens != null && (
            <span class="muted">
              {' '}
              ({formatTokens(agent.inputTokens)} in / {formatTokens(agent.outputTokens)} out)
            </span>
          )}
        </dd>
        <dt>Cost</dt>
        <dd>{formatCost(agent.metrics.cost)}</dd>
        <dt>Updated</dt>
        <dd>{ago(agent.updatedAt)}</dd>
        {data?.agent && data.agent.tasks.length > 0 && (
          <>
            <dt>Tasks</dt>
            <dd>
              {data.agent.tasks.map((t) => (
                <div>
                  {t.title} <span class="muted">({label(t.status)})</span>
                </div>
              ))}
            </dd>
          </>
        )}
      </dl>
      <h3>Transcript</h3>
      {error && <p class="error">{error.message}</p>}
      <div class="transcript" data-testid="transcript" ref={transcriptBox}>
        {transcript.map((m) => (
          <div class={`message role-${m.role}`}>
            <div class="message-head">
              <strong>{m.role}</strong>
              {m.timestamp && <span class="muted"> {formatTime(m.timestamp)}</span>}
              {m.tokens != null && <span class="muted"> · {formatTokens(m.tokens)} tokens</span>}
              {m.cost != null && <span class="muted"> · {formatCost(m.cost)}</span>}
            </div>
            <div class="message-body">{m.text}</div>
          </div>
        ))}
        {data && transcript.length === 0 && <p class="muted">No messages.</p>}
        {(streamed || phase) && (
          <div class="message role-assistant live">
            <div class="message-head">
              <strong>assistant</strong> <span class="muted">live{phase ? ` · ${phase.toolName ?? phase.text ?? ''}` : ''}</span>
            </div>
            <div class="message-body">{streamed}</div>
          </div>
        )}
      </div>
      {viewer.canEdit && (
        <form class="comment-form" onSubmit={send}>
          <textarea
            rows={2}
            placeholder="Message this agent"
            value={message}
            onInput={(e) => setMessage(e.currentTarget.value)}
            data-testid="agent-message"
          />
          <div class="stack">
            <button type="submit" class="primary" disabled={busy || !message.trim()} data-testid="agent-send">
              Send
            </button>
            {agent.status !== 'KILLED' && (
              <button type="button" class="danger" onClick={props.onKill}>
                Kill
              </button>
            )}
          </div>
        </form>
      )}
    </aside>
  );
}
