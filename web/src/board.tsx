// The board: a column per status, cards with priority, tags, assignee and due date; create,
// edit, move (a select on the card, or drag and drop), comment, dispatch and delete for the
// roles that may; filters; and "load more" per column for large boards.
//
// Columns load with a query each, then follow `taskUpdated`: each event
// puts the task where the current filters say it belongs. Counts are read again after events,
// since a moved task may not have been loaded in the column it left.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { useClient, useQuery } from '@urql/preact';
import { graphql, type ResultOf, type VariablesOf } from './graphql.ts';
import { useAgents, agentName } from './agents.tsx';
import { useStore } from './store.ts';
import {
  Badge,
  Dialog,
  ago,
  errorText,
  formatCost,
  formatDateTime,
  formatDay,
  formatTokens,
  label,
  useAction,
  useApi,
  useConfirm,
  useLive,
  useOnChange,
  useViewer,
} from './ui.tsx';

export const STATUSES = ['TODO', 'IN_PROGRESS', 'REVIEW', 'DONE', 'BLOCKED'] as const;
export const PRIORITIES = ['URGENT', 'HIGH', 'MEDIUM', 'LOW'] as const;
export type TaskStatus = (typeof STATUSES)[number];
export type TaskPriority = (typeof PRIORITIES)[number];

const PAGE = 50;
/** The largest page the API gives (`first` is 1..100). */
const MAX_PAGE = 100;

export const TaskFields = graphql(`
  fragment TaskFields on Task {
    id
    title
    description
    status
    priority
    assignedAgent
    agent { id label status }
    createdAt
    updatedAt
    dueDate
    tags
    commentCount
    tokens
    cost
    claimedBy
  }
`);

export type Task = ResultOf<typeof TaskFields>;

const ColumnFields = graphql(
  `
  fragment ColumnFields on TaskConnection {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { ...TaskFields }
  }
`,
  [TaskFields],
);

const CountsQuery = graphql(`
  query BoardCounts($todo: TaskFilter!, $inProgress: TaskFilter!, $review: TaskFilter!,
                    $done: TaskFilter!, $blocked: TaskFilter!) {
    TODO: tasks(filter: $todo, first: 1) { totalCount }
    IN_PROGRESS: tasks(filter: $inProgress, first: 1) { totalCount }
    REVIEW: tasks(filter: $review, first: 1) { totalCount }
    DONE: tasks(filter: $done, first: 1) { totalCount }
    BLOCKED: tasks(filter: $blocked, first: 1) { totalCount }
  }
`);

const ColumnPage = graphql(
  `
  query BoardColumnPage($filter: TaskFilter!, $first: Int!, $after: String) {
    tasks(filter: $filter, first: $first, after: $after) { ...ColumnFields }
  }
`,
  [ColumnFields],
);

const TaskEvents = graphql(
  `
  subscription BoardEvents {
    taskUpdated { kind taskId task { ...TaskFields } }
  }
`,
  [TaskFields],
);

const TaskDetailQuery = graphql(
  `
  query TaskDetail($id: ID!) {
    task(id: $id) {
      ...TaskFields
      metadata
      leaseExpiresAt
      comments { id author content createdAt }
      runs { id agentId kind status startedBy startedAt endedAt tokens cost result }
    }
  }
`,
  [TaskFields],
);

const CreateTask = graphql(
  `
  mutation CreateTask($input: CreateTaskInput!) {
    createTask(input: $input) { ...TaskFields }
  }
`,
  [TaskFields],
);

const UpdateTask = graphql(
  `
  mutation UpdateTask($id: ID!, $input: UpdateTaskInput!) {
    updateTask(id: $id, input: $input) { ...TaskFields }
  }
`,
  [TaskFields],
);

const DeleteTask = graphql(`
  mutation DeleteTask($id: ID!) { deleteTask(id: $id) }
`);

const AddComment = graphql(`
  mutation AddComment($taskId: ID!, $content: String!) {
    addComment(taskId: $taskId, content: $content) { id }
  }
`);

const DispatchTask = graphql(
  `
  mutation DispatchTask($id: ID!) {
    dispatchTask(id: $id) { ...TaskFields }
  }
`,
  [TaskFields],
);

type TaskFilter = VariablesOf<typeof ColumnPage>['filter'];
type UpdateInput = VariablesOf<typeof UpdateTask>['input'];

export interface Filters {
  status: TaskStatus | '';
  priority: TaskPriority | '';
  tag: string;
  agent: string;
  search: string;
}

export const NO_FILTERS: Filters = { status: '', priority: '', tag: '', agent: '', search: '' };

function serverFilter(filters: Filters, status: TaskStatus): TaskFilter {
  return {
    status: [status],
    priority: filters.priority ? [filters.priority] : null,
    tag: filters.tag.trim() || null,
    assignedAgent: filters.agent || null,
    search: filters.search.trim() || null,
  };
}

function columnVariables(filters: Filters) {
  return {
    todo: serverFilter(filters, 'TODO'),
    inProgress: serverFilter(filters, 'IN_PROGRESS'),
    review: serverFilter(filters, 'REVIEW'),
    done: serverFilter(filters, 'DONE'),
    blocked: serverFilter(filters, 'BLOCKED'),
  };
}

/** The same test the server's TaskFilter makes, for tasks that arrive by subscription. */
function matches(task: Task, filters: Filters): boolean {
  if (filters.priority && task.priority !== filters.priority) return false;
  const tag = filters.tag.trim();
  if (tag && !task.tags.includes(tag)) return false;
  if (filters.agent && task.assignedAgent !== filters.agent) return false;
  const search = filters.search.trim().toLowerCase();
  if (search && !`${task.title}\n${task.description ?? ''}`.toLowerCase().includes(search)) return false;
  return true;
}

interface Column {
  tasks: Task[];
  total: number;
  endCursor: string | null;
  hasNext: boolean;
}

type Columns = Record<TaskStatus, Column>;

const emptyColumns = (): Columns =>
  Object.fromEntries(
    STATUSES.map((s) => [s, { tasks: [] as Task[], total: 0, endCursor: null, hasNext: false } satisfies Column]),
  ) as unknown as Columns;

/** Newest first, ties by id, as the server orders `tasks` by default. */
function before(a: Task, b: Task): boolean {
  const at = Date.parse(a.createdAt);
  const bt = Date.parse(b.createdAt);
  return at !== bt ? at > bt : a.id > b.id;
}

/** Puts `task` where it belongs (or nowhere, if the filters exclude it). */
function place(columns: Columns, task: Task, filters: Filters): Columns {
  let known: Task | undefined;
  for (const status of STATUSES) known ??= columns[status].tasks.find((t) => t.id === task.id);
  // An event older than what the board shows (a query answered after it) changes nothing.
  if (known && Date.parse(known.updatedAt) > Date.parse(task.updatedAt)) return columns;
  const next = { ...columns };
  for (const status of STATUSES) {
    const column = next[status];
    if (column.tasks.some((t) => t.id === task.id)) {
      next[status] = { ...column, tasks: column.tasks.filter((t) => t.id !== task.id) };
    }
  }
  if (!matches(task, filters)) return next;
  const column = next[task.status];
  const tasks = column.tasks;
  const last = tasks[tasks.length - 1];
  // Past the loaded page it belongs to a later one, which "load more" brings.
  if (column.hasNext && last && before(last, task)) return next;
  const at = tasks.findIndex((t) => before(task, t));
  const placed = at < 0 ? [...tasks, task] : [...tasks.slice(0, at), task, ...tasks.slice(at)];
  next[task.status] = { ...column, tasks: placed };
  return next;
}

function remove(columns: Columns, id: string): Columns {
  const next = { ...columns };
  for (const status of STATUSES) {
    const column = next[status];
    if (column.tasks.some((t) => t.id === id)) next[status] = { ...column, tasks: column.tasks.filter((t) => t.id !== id) };
  }
  return next;
}

type BoardEvent = ResultOf<typeof TaskEvents>['taskUpdated'];

export function Board(props: { filters: Filters; onFilters: (f: Filters) => void }) {
  const { filters } = props;
  const client = useClient();
  const api = useApi();
  const reconnects = useStore(api.reconnects);
  const viewer = useViewer();
  const [columns, setColumns] = useState<Columns>(emptyColumns);
  const [ready, setReady] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [editing, setEditing] = useState<Task | 'new' | null>(null);
  const [openId, setOpenId] = useState<string | null>(null);
  const [detailVersion, setDetailVersion] = useState(0);
  const [loadingMore, setLoadingMore] = useState<TaskStatus | null>(null);
  // Events that arrive while the columns load are applied once they have.
  const pending = useRef<BoardEvent[] | null>([]);
  const filtersRef = useRef(filters);
  filtersRef.current = filters;
  const loadedRef = useRef(0);
  const lastKey = useRef('');
  const [retries, setRetries] = useState(0);
  const countsTimer = useRef<ReturnType<typeof setTimeout>>();

  const apply = useCallback((event: BoardEvent) => {
    setColumns((current) => {
      if (event.kind === 'DELETED' || !event.task) return remove(current, event.taskId);
      return place(current, event.task, filtersRef.current);
    });
  }, []);

  const refreshCounts = useCallback(() => {
    clearTimeout(countsTimer.current);
    countsTimer.current = setTimeout(async () => {
      const result = await client.query(CountsQuery, columnVariables(filtersRef.current)).toPromise();
      const data = result.data;
      if (!data) return;
      setColumns((current) => {
        const next = { ...current };
        for (const status of STATUSES) next[status] = { ...next[status], total: data[status].totalCount };
        return next;
      });
    }, 400);
  }, [client]);

  useEffect(() => () => clearTimeout(countsTimer.current), []);

  const filterKey = JSON.stringify(filters);
  useEffect(() => {
    let cancelled = false;
    pending.current = [];
    setReady(false);
    // Reloaded for the same filters (a reconnect, a retry): as many as were shown, up to the
    // API's largest page. New filters start from one page.
    const first = lastKey.current === filterKey ? Math.min(MAX_PAGE, Math.max(PAGE, loadedRef.current)) : PAGE;
    lastKey.current = filterKey;
    // One query per column: together they would pass the server's complexity limit.
    Promise.all(
      STATUSES.map((status) => client.query(ColumnPage, { filter: serverFilter(filters, status), first }).toPromise()),
    ).then((results) => {
      if (cancelled) return;
      const failed = results.find((r) => !r.data);
      if (failed) {
        setError(failed.error ? errorText(failed.error) : 'The board could not be loaded.');
        return;
      }
      setError(null);
      let next = emptyColumns();
      STATUSES.forEach((status, i) => {
        const page = results[i]!.data!.tasks;
        next[status] = {
          tasks: page.nodes,
          total: page.totalCount,
          endCursor: page.pageInfo.endCursor ?? null,
          hasNext: page.pageInfo.hasNextPage,
        };
      });
      for (const event of pending.current ?? []) {
        next = event.kind === 'DELETED' || !event.task ? remove(next, event.taskId) : place(next, event.task, filters);
      }
      pending.current = null;
      setColumns(next);
      setReady(true);
    });
    return () => {
      cancelled = true;
    };
  }, [client, filterKey, reconnects, retries]);

  useEffect(() => {
    loadedRef.current = Math.max(...STATUSES.map((s) => columns[s].tasks.length));
  }, [columns]);

  useLive(TaskEvents, {}, (data) => {
    const event = data.taskUpdated;
    if (event.taskId === openId) setDetailVersion((v) => v + 1);
    if (pending.current) {
      pending.current.push(event);
      return;
    }
    apply(event);
    refreshCounts();
  });

  const loadMore = async (status: TaskStatus) => {
    const column = columns[status];
    if (!column.endCursor) return;
    setLoadingMore(status);
    const result = await client
      .query(ColumnPage, { filter: serverFilter(filters, status), first: PAGE, after: column.endCursor })
      .toPromise();
    setLoadingMore(null);
    const page = result.data?.tasks;
    if (!page) return;
    setColumns((current) => {
      const col = current[status];
      const seen = new Set(col.tasks.map((t) => t.id));
      return {
        ...current,
        [status]: {
          tasks: [...col.tasks, ...page.nodes.filter((t) => !seen.has(t.id))],
          total: page.totalCount,
          endCursor: page.pageInfo.endCursor ?? null,
          hasNext: page.pageInfo.hasNextPage,
        },
      };
    });
  };

  // A mutation's answer is applied at once; its event, arriving later, then changes nothing.
  const applyTask = (task: Task) => {
    setColumns((current) => place(current, task, filtersRef.current));
    refreshCounts();
  };

  const act = useAction();
  const move = (task: Task, status: TaskStatus) => {
    if (status === task.status) return;
    void act(async () => {
      const result = await client.mutation(UpdateTask, { id: task.id, input: { status } }).toPromise();
      if (result.data) applyTask(result.data.updateTask);
      return result;
    });
  };

  const shown: readonly TaskStatus[] = filters.status ? [filters.status] : STATUSES;
  const totalShown = shown.reduce((n: number, s) => n + columns[s].total, 0);

  return (
    <section class="board-view">
      <BoardFilters filters={filters} onFilters={props.onFilters} total={ready ? totalShown : null}>
        {viewer.canEdit && (
          <button type="button" class="primary" data-testid="new-task" onClick={() => setEditing('new')}>
            New task
          </button>
        )}
      </BoardFilters>
      {error && (
        <p class="error">
          {error}{' '}
          <button type="button" class="small" onClick={() => setRetries((n) => n + 1)}>
            Retry
          </button>
        </p>
      )}
      <div class="board" data-testid="board" data-ready={ready ? 'true' : 'false'}>
        {shown.map((status) => (
          <BoardColumn
            key={status}
            status={status}
            column={columns[status]}
            loadingMore={loadingMore === status}
            onLoadMore={() => void loadMore(status)}
            onMove={move}
            onOpen={(task) => setOpenId(task.id)}
            onEdit={(task) => setEditing(task)}
          />
        ))}
      </div>
      {editing && (
        <TaskForm
          task={editing === 'new' ? null : editing}
          onClose={() => setEditing(null)}
          onSaved={(task) => {
            applyTask(task);
            setEditing(null);
          }}
        />
      )}
      {openId && (
        <TaskDetail
          id={openId}
          version={detailVersion}
          onClose={() => setOpenId(null)}
          onEdit={(task) => {
            setOpenId(null);
            setEditing(task);
          }}
          onChanged={applyTask}
          onDeleted={(id) => {
            setOpenId(null);
            setColumns((current) => remove(current, id));
            refreshCounts();
          }}
        />
      )}
    </section>
  );
}

function BoardFilters(props: {
  filters: Filters;
  onFilters: (f: Filters) => void;
  total: number | null;
  children: preact.ComponentChildren;
}) {
  const { filters, onFilters } = props;
  const { agents } = useAgents();
  // Typing in the search box asks the server once the typing pauses.
  const [search, setSearch] = useState(filters.search);
  const [tag, setTag] = useState(filters.tag);
  const latest = useRef(filters);
  latest.current = filters;
  useEffect(() => {
    const timer = setTimeout(() => {
      const now = latest.current;
      if (search !== now.search || tag !== now.tag) onFilters({ ...now, search, tag });
    }, 300);
    return () => clearTimeout(timer);
  }, [search, tag]);
  const any = Object.values(filters).some((v) => v !== '');
  return (
    <form class="filters" onSubmit={(e) => e.preventDefault()} data-testid="filters">
      <input
        type="search"
        placeholder="Search title and description"
        aria-label="Search"
        value={search}
        onInput={(e) => setSearch(e.currentTarget.value)}
        data-testid="filter-search"
      />
      <select
        aria-label="Status"
        value={filters.status}
        onChange={(e) => onFilters({ ...filters, status: e.currentTarget.value as Filters['status'] })}
        data-testid="filter-status"
      >
        <option value="">All statuses</option>
        {STATUSES.map((s) => (
          <option value={s}>{label(s)}</option>
        ))}
      </select>
      <select
        aria-label="Priority"
        value={filters.priority}
        onChange={(e) => onFilters({ ...filters, priority: e.currentTarget.value as Filters['priority'] })}
        data-testid="filter-priority"
      >
        <option value="">All priorities</option>
        {PRIORITIES.map((p) => (
          <option value={p}>{label(p)}</option>
        ))}
      </select>
      <input
        type="text"
        placeholder="Tag"
        aria-label="Tag"
        class="short"
        value={tag}
        onInput={(e) => setTag(e.currentTarget.value)}
        data-testid="filter-tag"
      />
      <select
        aria-label="Agent"
        value={filters.agent}
        onChange={(e) => onFilters({ ...filters, agent: e.currentTarget.value })}
        data-testid="filter-agent"
      >
        <option value="">All agents</option>
        {agents.map((a) => (
          <option value={a.id}>{agentName(a)}</option>
        ))}
        {filters.agent && !agents.some((a) => a.id === filters.agent) && <option value={filters.agent}>{filters.agent}</option>}
      </select>
      {any && (
        <button
          type="button"
          class="link"
          onClick={() => {
            setSearch('');
            setTag('');
            onFilters(NO_FILTERS);
          }}
        >
          Clear
        </button>
      )}
      <span class="spacer" />
      {props.total !== null && <span class="muted">{props.total} tasks</span>}
      {props.children}
    </form>
  );
}

function BoardColumn(props: {
  status: TaskStatus;
  column: Column;
  loadingMore: boolean;
  onLoadMore: () => void;
  onMove: (task: Task, status: TaskStatus) => void;
  onOpen: (task: Task) => void;
  onEdit: (task: Task) => void;
}) {
  const { status, column } = props;
  const viewer = useViewer();
  const [over, setOver] = useState(false);
  const dropProps = viewer.canEdit
    ? {
        onDragOver: (e: DragEvent) => {
          if (e.dataTransfer?.types.includes('application/x-mc-task')) {
            e.preventDefault();
            setOver(true);
          }
        },
        onDragLeave: () => setOver(false),
        onDrop: (e: DragEvent) => {
          setOver(false);
          const id = e.dataTransfer?.getData('application/x-mc-task');
          const task = id ? draggedTask.get(id) : undefined;
          if (task) props.onMove(task, status);
        },
      }
    : {};
  return (
    <section class={over ? 'column over' : 'column'} data-testid="column" data-status={status} {...dropProps}>
      <header class="column-head">
        <h2>{label(status)}</h2>
        <span class="count" data-testid="column-count">
          {column.total}
        </span>
      </header>
      <div class="cards">
        {column.tasks.map((task) => (
          <TaskCard key={task.id} task={task} onMove={props.onMove} onOpen={props.onOpen} onEdit={props.onEdit} />
        ))}
        {column.tasks.length === 0 && <p class="empty">Nothing here</p>}
      </div>
      {column.hasNext && (
        <button type="button" class="more" onClick={props.onLoadMore} disabled={props.loadingMore} data-testid="load-more">
          {props.loadingMore ? 'Loading…' : `Load more (${column.total - column.tasks.length} left)`}
        </button>
      )}
    </section>
  );
}

/** The card being dragged: the drop reads it back by the id in the drag data. */
const draggedTask = new Map<string, Task>();

function TaskCard(props: {
  task: Task;
  onMove: (task: Task, status: TaskStatus) => void;
  onOpen: (task: Task) => void;
  onEdit: (task: Task) => void;
}) {
  const { task } = props;
  const viewer = useViewer();
  const { byId } = useAgents();
  const agent = task.assignedAgent ? byId.get(task.assignedAgent) : undefined;
  const overdue = task.dueDate !== null && task.status !== 'DONE' && Date.parse(task.dueDate) < Date.now();
  const dragProps = viewer.canEdit
    ? {
        draggable: true,
        onDragStart: (e: DragEvent) => {
          draggedTask.clear();
          draggedTask.set(task.id, task);
          e.dataTransfer?.setData('application/x-mc-task', task.id);
        },
      }
    : {};
  return (
    <article
      class={`card prio-${task.priority.toLowerCase()}`}
      data-testid="task-card"
      data-task-id={task.id}
      data-status={task.status}
      {...dragProps}
    >
      <button type="button" class="card-title" onClick={() => props.onOpen(task)} data-testid="task-open">
        {task.title}
      </button>
      <div class="card-tags">
        <Badge kind="priority" value={task.priority} />
        {task.tags.map((tag) => (
          <span class="tag">{tag}</span>
        ))}
      </div>
      <div class="card-meta">
        {task.assignedAgent && (
          <span class="assignee" title={task.assignedAgent}>
            <span class={`dot status-${(agent?.status ?? task.agent?.status ?? 'UNKNOWN').toLowerCase()}`} />
            {agent ? agentName(agent) : task.agent ? agentName(task.agent) : shortId(task.assignedAgent)}
          </span>
        )}
        {task.dueDate && (
          <span class={overdue ? 'due overdue' : 'due'} title={formatDateTime(task.dueDate)}>
            due {formatDay(task.dueDate)}
          </span>
        )}
        {task.commentCount > 0 && (
          <span class="muted">
            {task.commentCount} {task.commentCount === 1 ? 'comment' : 'comments'}
          </span>
        )}
      </div>
      {viewer.canEdit && (
        <div class="card-actions">
          <select
            aria-label="Move to"
            value={task.status}
            onChange={(e) => props.onMove(task, e.currentTarget.value as TaskStatus)}
            data-testid="task-move"
          >
            {STATUSES.map((s) => (
              <option value={s}>{label(s)}</option>
            ))}
          </select>
          <button type="button" class="small" onClick={() => props.onEdit(task)} data-testid="task-edit">
            Edit
          </button>
        </div>
      )}
    </article>
  );
}

export function shortId(id: string): string {
  const tail = id.split(':').pop() ?? id;
  return tail.length > 12 ? `${tail.slice(0, 8)}…` : tail;
}

/** `datetime-local` wants local time without a zone. */
function toLocalInput(iso: string | null): string {
  if (!iso) return '';
  const at = new Date(iso);
  return new Date(at.getTime() - at.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}

function TaskForm(props: { task: Task | null; onClose: () => void; onSaved: (task: Task) => void }) {
  const { task } = props;
  const client = useClient();
  const { agents } = useAgents();
  const act = useAction();
  const [title, setTitle] = useState(task?.title ?? '');
  const [description, setDescription] = useState(task?.description ?? '');
  const [status, setStatus] = useState<TaskStatus>(task?.status ?? 'TODO');
  const [priority, setPriority] = useState<TaskPriority>(task?.priority ?? 'MEDIUM');
  const [assignee, setAssignee] = useState(task?.assignedAgent ?? '');
  const [due, setDue] = useState(toLocalInput(task?.dueDate ?? null));
  const [tags, setTags] = useState(task?.tags.join(', ') ?? '');
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const tagList = tags
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t !== '');
    const dueDate = due ? new Date(due).toISOString() : null;
    setBusy(true);
    const ok = await act(async () => {
      if (!task) {
        const result = await client
          .mutation(CreateTask, {
            input: {
              title: title.trim(),
              description: description.trim() || null,
              status,
              priority,
              assignedAgent: assignee.trim() || null,
              dueDate,
              tags: tagList,
            },
          })
          .toPromise();
        if (result.data) props.onSaved(result.data.createTask);
        return result;
      }
      // Only what changed: an edit must not undo someone else's change to another field.
      const input: UpdateInput = {};
      if (title.trim() !== task.title) input.title = title.trim();
      if ((description.trim() || null) !== task.description) input.description = description.trim() || null;
      if (status !== task.status) input.status = status;
      if (priority !== task.priority) input.priority = priority;
      if ((assignee.trim() || null) !== task.assignedAgent) input.assignedAgent = assignee.trim() || null;
      if (dueDate !== (task.dueDate ? new Date(task.dueDate).toISOString() : null)) input.dueDate = dueDate;
      if (tagList.join('\n') !== task.tags.join('\n')) input.tags = tagList;
      if (Object.keys(input).length === 0) {
        props.onClose();
        return {};
      }
      const result = await client.mutation(UpdateTask, { id: task.id, input }).toPromise();
      if (result.data) props.onSaved(result.data.updateTask);
      return result;
    }, task ? 'Task saved' : 'Task created');
    if (!ok) setBusy(false);
  };

  return (
    <Dialog title={task ? 'Edit task' : 'New task'} onClose={props.onClose} testId="task-form">
      <form class="form" onSubmit={submit}>
        <label>
          Title
          <input
            required
            maxLength={200}
            value={title}
            onInput={(e) => setTitle(e.currentTarget.value)}
            data-testid="task-title"
          />
        </label>
        <label>
          Description
          <textarea rows={4} value={description} onInput={(e) => setDescription(e.currentTarget.value)} data-testid="task-description" />
        </label>
        <div class="row">
          <label>
            Status
            <select value={status} onChange={(e) => setStatus(e.currentTarget.value as TaskStatus)} data-testid="task-status">
              {STATUSES.map((s) => (
                <option value={s}>{label(s)}</option>
              ))}
            </select>
          </label>
          <label>
            Priority
            <select value={priority} onChange={(e) => setPriority(e.currentTarget.value as TaskPriority)} data-testid="task-priority">
              {PRIORITIES.map((p) => (
                <option value={p}>{label(p)}</option>
              ))}
            </select>
          </label>
        </div>
        <div class="row">
          <label>
            Assignee (agent id)
            <input list="agent-ids" value={assignee} onInput={(e) => setAssignee(e.currentTarget.value)} data-testid="task-assignee" />
            <datalist id="agent-ids">
              {agents.map((a) => (
                <option value={a.id}>{agentName(a)}</option>
              ))}
            </datalist>
          </label>
          <label>
            Due
            <input type="datetime-local" value={due} onInput={(e) => setDue(e.currentTarget.value)} data-testid="task-due" />
          </label>
        </div>
        <label>
          Tags (comma separated)
          <input value={tags} onInput={(e) => setTags(e.currentTarget.value)} data-testid="task-tags" />
        </label>
        <div class="actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy || title.trim() === ''} data-testid="task-save">
            {task ? 'Save' : 'Create'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function TaskDetail(props: {
  id: string;
  version: number;
  onClose: () => void;
  onEdit: (task: Task) => void;
  onChanged: (task: Task) => void;
  onDeleted: (id: string) => void;
}) {
  const client = useClient();
  const viewer = useViewer();
  const confirm = useConfirm();
  const act = useAction();
  const { byId } = useAgents();
  const [{ data, fetching, error }, refetch] = useQuery({ query: TaskDetailQuery, variables: { id: props.id } });
  const [comment, setComment] = useState('');
  const [busy, setBusy] = useState(false);

  // A comment or change by anyone (this page included) arrives as an event: read it again;
  // and after a reconnect, since events may have been missed.
  const reconnects = useStore(useApi().reconnects);
  useOnChange(`${props.version}/${reconnects}`, () => refetch({ requestPolicy: 'network-only' }));

  const task = data?.task;
  const sendComment = async (e: Event) => {
    e.preventDefault();
    if (!task || comment.trim() === '') return;
    setBusy(true);
    const ok = await act(() => client.mutation(AddComment, { taskId: task.id, content: comment.trim() }).toPromise());
    setBusy(false);
    if (ok) {
      setComment('');
      refetch({ requestPolicy: 'network-only' });
    }
  };
  const remove = async () => {
    if (!task) return;
    if (!(await confirm('Delete task', `Delete “${task.title}” and its comments? This cannot be undone.`, 'Delete'))) return;
    const ok = await act(() => client.mutation(DeleteTask, { id: task.id }).toPromise(), 'Task deleted');
    if (ok) props.onDeleted(task.id);
  };
  const dispatch = async () => {
    if (!task) return;
    if (!(await confirm('Dispatch task', `Start a new agent on “${task.title}”? The task moves to In progress.`, 'Dispatch'))) return;
    await act(async () => {
      const result = await client.mutation(DispatchTask, { id: task.id }).toPromise();
      if (result.data) props.onChanged(result.data.dispatchTask);
      return result;
    }, 'Task dispatched to a new agent');
  };

  return (
    <Dialog title={task?.title ?? 'Task'} onClose={props.onClose} testId="task-detail" wide>
      {fetching && !task && <p class="muted">Loading…</p>}
      {error && !task && <p class="error">{error.message}</p>}
      {data && !task && <p class="muted">This task no longer exists.</p>}
      {task && (
        <div class="detail">
          <div class="card-tags">
            <Badge kind="status" value={task.status} />
            <Badge kind="priority" value={task.priority} />
            {task.tags.map((tag) => (
              <span class="tag">{tag}</span>
            ))}
          </div>
          {task.description && <p class="description">{task.description}</p>}
          <dl class="facts">
            <dt>Assignee</dt>
            <dd>
              {task.assignedAgent
                ? byId.get(task.assignedAgent)
                  ? agentName(byId.get(task.assignedAgent)!)
                  : task.assignedAgent
                : '–'}
            </dd>
            <dt>Due</dt>
            <dd>{formatDateTime(task.dueDate)}</dd>
            <dt>Created</dt>
            <dd>{formatDateTime(task.createdAt)}</dd>
            <dt>Updated</dt>
            <dd>{ago(task.updatedAt)}</dd>
            <dt>Tokens / cost</dt>
            <dd>
              {formatTokens(task.tokens)} / {formatCost(task.cost)}
            </dd>
            {task.claimedBy && (
              <>
                <dt>Claimed by</dt>
                <dd>
                  {task.claimedBy} until {formatDateTime(task.leaseExpiresAt)}
                </dd>
              </>
            )}
          </dl>
          {task.runs.length > 0 && (
            <>
              <h3>Runs</h3>
              <ul class="runs">
                {task.runs.map((run) => (
                  <li>
                    <Badge kind="status" value={run.status} /> {label(run.kind)} by {run.startedBy}, {ago(run.startedAt)} ·{' '}
                    {formatTokens(run.tokens)} tokens · {formatCost(run.cost)}
                    {run.result && <div class="muted clip">{run.result}</div>}
                  </li>
                ))}
              </ul>
            </>
          )}
          <h3>Comments ({task.comments.length})</h3>
          <ul class="comments" data-testid="comments">
            {task.comments.map((c) => (
              <li key={c.id}>
                <div class="comment-head">
                  <strong>{c.author}</strong> <span class="muted">{ago(c.createdAt)}</span>
                </div>
                <div class="comment-body">{c.content}</div>
              </li>
            ))}
            {task.comments.length === 0 && <li class="muted">No comments yet.</li>}
          </ul>
          {viewer.canEdit && (
            <form class="comment-form" onSubmit={sendComment}>
              <textarea
                rows={2}
                maxLength={10_000}
                placeholder="Add a comment"
                value={comment}
                onInput={(e) => setComment(e.currentTarget.value)}
                data-testid="comment-input"
              />
              <button type="submit" class="primary" disabled={busy || comment.trim() === ''} data-testid="comment-submit">
                Comment
              </button>
            </form>
          )}
          {viewer.canEdit && (
            <div class="actions">
              <button type="button" class="danger" onClick={() => void remove()} data-testid="task-delete">
                Delete
              </button>
              <span class="spacer" />
              <button type="button" onClick={() => void dispatch()} data-testid="task-dispatch">
                Dispatch to a new agent
              </button>
              <button type="button" class="primary" onClick={() => props.onEdit(task)}>
                Edit
              </button>
            </div>
          )}
        </div>
      )}
    </Dialog>
  );
}
