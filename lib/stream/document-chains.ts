const DONE = Promise.resolve();

/**
 * Per document key, the run of its last task (the next one chains on it) and how many tasks are
 * pending: tasks of one key run strictly in order, tasks of different keys side by side.
 */
export class DocumentChains {
  private readonly chains = new Map<string, { tail: Promise<unknown>; pending: number }>();

  /** Keys with a task pending or running: each takes a slot of the scheduler. */
  get size(): number {
    return this.chains.size;
  }

  /**
   * Runs `task` once the earlier tasks of `key` settled; at once (synchronously) when none is
   * pending, `queued` telling which. It runs also if an earlier one broke (a bug): never stuck.
   */
  submit(key: string, task: (queued: boolean) => unknown): void {
    const chain = this.chains.get(key);
    if (chain) {
      chain.pending++;
      const next = () => task(true);
      chain.tail = chain.tail.then(next, next);
      return;
    }
    // The common case, no earlier task of this key pending: start at once, no chaining. The entry
    // exists before the run starts, since a task that returns no promise releases it at once.
    const fresh = { tail: DONE as Promise<unknown>, pending: 1 };
    this.chains.set(key, fresh);
    const run = task(false);
    if (run instanceof Promise) fresh.tail = run;
  }

  /** Runs `task` after every task of `key` submitted so far (never synchronously). */
  after<T>(key: string, task: () => Promise<T>): Promise<T> {
    const chain = this.chains.get(key) ?? { tail: DONE as Promise<unknown>, pending: 0 };
    this.chains.set(key, chain);
    chain.pending++;
    const result = chain.tail.then(task, task);
    chain.tail = result;
    return result;
  }

  /** A task of `key` finished (it counts as pending until then). */
  release(key: string): void {
    const chain = this.chains.get(key)!;
    if (--chain.pending === 0) this.chains.delete(key);
  }
}
