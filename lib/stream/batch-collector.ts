import type { BatchLimits } from '../interfaces/on-change-batch-options.interface.js';

/**
 * Gathers the events of one batch handler into batches, in the order they are added (stream
 * order), and runs the batches one at a time. A batch is cut at `maxSize`, after `maxWaitMs`
 * without a new event, or when told (`cut`: an event without a document, a drain). A batch cut
 * while the previous one runs waits for it; quiet while one runs cuts when it ends.
 */
export class BatchCollector<E> {
  private pending: E[] = [];
  private readonly queue: E[][] = [];
  private running = false;
  private lastAddedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  /** The quiet time passed while a batch ran: cut when it ends. */
  private due = false;

  constructor(
    private readonly limits: BatchLimits,
    /** Runs one batch; resolves once every event of it is settled. */
    private readonly run: (batch: E[]) => Promise<void>,
  ) {}

  /** Events added and not yet in a running or queued batch. */
  get waiting(): number {
    return this.pending.length;
  }

  add(event: E): void {
    this.pending.push(event);
    if (this.pending.length >= this.limits.maxSize) return this.cut();
    this.lastAddedAt = Date.now();
    this.timer ??= setTimeout(this.onQuiet, this.limits.maxWaitMs);
  }

  /** Cuts the pending events into a batch now (none: nothing happens). */
  cut(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.due = false;
    if (this.pending.length === 0) return;
    this.queue.push(this.pending);
    this.pending = [];
    this.pump();
  }

  private readonly onQuiet = (): void => {
    this.timer = null;
    if (this.pending.length === 0) return;
    const quietFor = Date.now() - this.lastAddedAt;
    if (quietFor < this.limits.maxWaitMs)
      this.timer = setTimeout(this.onQuiet, this.limits.maxWaitMs - quietFor);
    else if (this.running) this.due = true;
    else this.cut();
  };

  private pump(): void {
    if (this.running) return;
    const batch = this.queue.shift();
    if (!batch) return;
    this.running = true;
    const next = () => {
      this.running = false;
      if (this.queue.length === 0 && this.due) this.cut();
      else this.pump();
    };
    this.run(batch).then(next, next);
  }
}
