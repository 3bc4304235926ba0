// Small shared pieces: contexts, dialogs, toasts, formatting and the live-subscription hook.
import { createContext, type ComponentChildren } from 'preact';
import { useCallback, useContext, useEffect, useRef, useState } from 'preact/hooks';
import { useClient, type AnyVariables, type CombinedError, type DocumentInput } from '@urql/preact';
import type { Api } from './api.ts';
import { describeError } from './api.ts';

// ---------------------------------------------------------------------------------------------
// Contexts

export const ApiContext = createContext<Api | null>(null);

export function useApi(): Api {
  const api = useContext(ApiContext);
  if (!api) throw new Error('useApi outside of the session');
  return api;
}

export interface Viewer {
  name: string;
  role: 'ADMIN' | 'OPERATOR' | 'VIEWER';
  /** OPERATOR and ADMIN change tasks and agents; VIEWER only reads. */
  canEdit: boolean;
}

export const ViewerContext = createContext<Viewer>({ name: '', role: 'VIEWER', canEdit: false });

export function useViewer(): Viewer {
  return useContext(ViewerContext);
}

// ---------------------------------------------------------------------------------------------
// Live data

/**
 * Runs a subscription while the component is mounted and hands every event to `onData`.
 * urql's useSubscription keeps only the latest result between renders; the board and the feed
 * must apply each event, so they take them from the source one by one.
 */
export function useLive<Data, Variables extends AnyVariables>(
  query: DocumentInput<Data, Variables>,
  variables: Variables,
  onData: (data: Data) => void,
  options: { pause?: boolean; onError?: (error: CombinedError) => void; restart?: number } = {},
): void {
  const client = useClient();
  const handlers = useRef({ onData, onError: options.onError });
  handlers.current = { onData, onError: options.onError };
  const key = JSON.stringify(variables);
  const pause = options.pause ?? false;
  const restart = options.restart ?? 0;
  useEffect(() => {
    if (pause) return;
    const subscription = client.subscription(query, variables).subscribe((result) => {
      if (result.data) handlers.current.onData(result.data);
      if (result.error) handlers.current.onError?.(result.error);
    });
    return () => subscription.unsubscribe();
    // `key` stands for `variables`, whose identity changes on every render.
  }, [client, query, key, pause, restart]);
}

/** Runs `run` each time `value` changes after the first render (not on mount, when the
 * component's own query is already on its way). */
export function useOnChange(value: unknown, run: () => void): void {
  const first = useRef(true);
  const latest = useRef(run);
  latest.current = run;
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    latest.current();
  }, [value]);
}

// ---------------------------------------------------------------------------------------------
// Dialogs

/** A modal on the native <dialog>: focus stays inside, Escape closes it. */
export function Dialog(props: {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
  testId?: string;
  wide?: boolean;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
  }, []);
  return (
    <dialog
      ref={ref}
      class={props.wide ? 'dialog wide' : 'dialog'}
      data-testid={props.testId}
      onCancel={(e) => {
        e.preventDefault();
        props.onClose();
      }}
    >
      <header class="dialog-head">
        <h2>{props.title}</h2>
        <button type="button" class="icon" aria-label="Close" onClick={props.onClose}>
          ×
        </button>
      </header>
      {props.children}
    </dialog>
  );
}

interface ConfirmRequest {
  title: string;
  body: string;
  action: string;
  resolve: (ok: boolean) => void;
}

type Confirm = (title: string, body: string, action: string) => Promise<boolean>;
const ConfirmContext = createContext<Confirm>(async () => false);

/** The page's own confirmation (window.confirm cannot be styled, and blocks the page). */
export function ConfirmProvider(props: { children: ComponentChildren }) {
  const [request, setRequest] = useState<ConfirmRequest | null>(null);
  const confirm = useCallback<Confirm>(
    (title, body, action) => new Promise((resolve) => setRequest({ title, body, action, resolve })),
    [],
  );
  const answer = (ok: boolean) => {
    request?.resolve(ok);
    setRequest(null);
  };
  return (
    <ConfirmContext.Provider value={confirm}>
      {props.children}
      {request && (
        <Dialog title={request.title} onClose={() => answer(false)} testId="confirm-dialog">
          <p class="confirm-body">{request.body}</p>
          <div class="actions">
            <button type="button" onClick={() => answer(false)} data-testid="confirm-cancel">
              Cancel
            </button>
            <button type="button" class="danger" onClick={() => answer(true)} data-testid="confirm-ok">
              {request.action}
            </button>
          </div>
        </Dialog>
      )}
    </ConfirmContext.Provider>
  );
}

export function useConfirm(): Confirm {
  return useContext(ConfirmContext);
}

// ---------------------------------------------------------------------------------------------
// Toasts

interface Toast {
  id: number;
  text: string;
  kind: 'error' | 'info';
}

type Notify = (text: string, kind?: Toast['kind']) => void;
const ToastContext = createContext<Notify>(() => undefined);

export function ToastProvider(props: { children: ComponentChildren }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const next = useRef(1);
  const notify = useCallback<Notify>((text, kind = 'info') => {
    const id = next.current++;
    setToasts((list) => [...list.slice(-3), { id, text, kind }]);
    setTimeout(() => setToasts((list) => list.filter((t) => t.id !== id)), kind === 'error' ? 8_000 : 4_000);
  }, []);
  return (
    <ToastContext.Provider value={notify}>
      {props.children}
      <div class="toasts" role="status" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} class={`toast ${t.kind}`} data-testid="toast">
            {t.text}
          </div>
        ))}
      </div>
    </ToastContext.Provider>
  );
}

export function useToast(): Notify {
  return useContext(ToastContext);
}

/** Runs an action and shows its error, if any, as a toast; resolves to whether it worked. */
export function useAction() {
  const notify = useToast();
  return useCallback(
    async (run: () => Promise<{ error?: CombinedError | undefined }>, done?: string): Promise<boolean> => {
      try {
        const result = await run();
        if (result.error) {
          notify(describeError(result.error), 'error');
          return false;
        }
        if (done) notify(done);
        return true;
      } catch (error) {
        notify(describeError(error), 'error');
        return false;
      }
    },
    [notify],
  );
}

// ---------------------------------------------------------------------------------------------
// Routing: the hash only, so the server serves nothing but `/`.

export type Route = 'board' | 'agents' | 'feed' | 'usage';
const ROUTES: Route[] = ['board', 'agents', 'feed', 'usage'];

function currentRoute(): Route {
  const name = window.location.hash.replace(/^#\/?/, '').split('/')[0] as Route;
  return ROUTES.includes(name) ? name : 'board';
}

export function useRoute(): Route {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const changed = () => setRoute(currentRoute());
    window.addEventListener('hashchange', changed);
    return () => window.removeEventListener('hashchange', changed);
  }, []);
  return route;
}

// ---------------------------------------------------------------------------------------------
// Formatting

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const compact = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });

export function formatTokens(n: number | null | undefined): string {
  if (n == null) return '–';
  return n >= 100_000 ? compact.format(n) : integer.format(n);
}

export function formatCost(n: number | null | undefined): string {
  if (n == null) return '–';
  if (n === 0) return '$0';
  return n < 0.01 ? `$${n.toFixed(4)}` : `$${n.toFixed(2)}`;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const dateOnly = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

export function formatDateTime(iso: string | null | undefined): string {
  return iso ? dateTime.format(new Date(iso)) : '–';
}

export function formatDay(iso: string): string {
  return dateOnly.format(new Date(iso));
}

export function formatTime(iso: string): string {
  const at = new Date(iso);
  return Date.now() - at.getTime() < 86_400_000 ? timeOnly.format(at) : dateTime.format(at);
}

export function ago(iso: string | null | undefined): string {
  if (!iso) return '–';
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 45) return 'just now';
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86_400)} d ago`;
}

export function label(enumValue: string): string {
  const words = enumValue.toLowerCase().replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function Badge(props: { kind: string; value: string; testId?: string }) {
  return (
    <span class={`badge ${props.kind}-${props.value.toLowerCase()}`} data-testid={props.testId}>
      {label(props.value)}
    </span>
  );
}

export function errorText(error: unknown): string {
  return describeError(error);
}
