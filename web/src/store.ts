// A value that components can watch. The session, the connection state and the live lists
// change from outside Preact's tree (timers, socket events), so they live here rather than in
// component state.
import { useEffect, useState } from 'preact/hooks';

export class Store<T> {
  private listeners = new Set<() => void>();
  constructor(private value: T) {}

  get(): T {
    return this.value;
  }

  set(next: T): void {
    if (Object.is(next, this.value)) return;
    this.value = next;
    for (const listener of [...this.listeners]) listener();
  }

  update(change: (value: T) => T): void {
    this.set(change(this.value));
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** The store's current value; the component renders again whenever it changes. */
export function useStore<T>(store: Store<T>): T {
  const [, setTick] = useState(0);
  const rerender = () => setTick((n) => n + 1);
  const value = store.get();
  useEffect(() => {
    const unsubscribe = store.subscribe(rerender);
    // A change between this render and the subscription would otherwise go unseen.
    if (!Object.is(store.get(), value)) rerender();
    return unsubscribe;
  }, [store]);
  return value;
}
