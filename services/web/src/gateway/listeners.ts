// Listener sets keyed by a topic (a stream id, or '' for everyone): what the SSE connections register with.
export class Listeners<T> {
  private readonly byKey = new Map<string, Set<(value: T) => void>>();

  /** Adds a listener; returns the function that removes it. */
  add(key: string, listener: (value: T) => void): () => void {
    let set = this.byKey.get(key);
    if (!set) {
      set = new Set();
      this.byKey.set(key, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.byKey.delete(key);
    };
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  emit(key: string, value: T): void {
    for (const listener of this.byKey.get(key) ?? []) listener(value);
  }
}
