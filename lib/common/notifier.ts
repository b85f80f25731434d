/** Wakes every waiter on the next `notify()`: "something changed, look again". */
export class Notifier {
  private waiters: Array<() => void> = [];

  notify(): void {
    if (this.waiters.length === 0) return; // the hot path: nobody waits
    this.waiters.splice(0).forEach((wake) => wake());
  }

  /** Resolves true on the next notify, false if `signal` aborts first. */
  next(signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = () => resolve(false);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
      });
    });
  }
}
