import mongoose from 'mongoose';
import { AckWindow } from '../checkpoint/ack-window.js';
import type { Checkpointer } from '../checkpoint/checkpointer.js';
import { Notifier } from '../common/notifier.js';
import { HandlerFailedError } from '../change-stream.errors.js';
import { errorText } from '../common/errors.js';
import type { ChangeEvent } from './change-cursor.js';
import type { ChangeDispatcher, DispatchOutcome, EventInFlight } from './change-dispatcher.js';

const { EJSON, ObjectId } = mongoose.mongo.BSON;

export interface SchedulerDeps {
  /** Events in flight at once (waiting for their document's previous event counts). */
  concurrency: number;
  /** Give each event its own `context.signal` (`onHandlerTimeout: 'abort'`); else the stream's handlers share one. */
  signalPerEvent: boolean;
  dispatcher: ChangeDispatcher;
  checkpointer: Checkpointer;
  /** Shutdown began: failures are no longer retried or recorded. */
  stopping: AbortSignal;
  /** Leases: false once this instance may no longer dispatch; checked right before each event starts. */
  mayDispatch?: () => boolean;
  /** Every handler of this event succeeded (or its failure was recorded per policy). */
  onHandled(change: ChangeEvent): void;
  /** A handler failed for good under the `stop` policy: nothing more is dispatched. */
  onFailed(error: HandlerFailedError): void;
}

/**
 * Dispatches events with bounded concurrency: events of one document (`documentKey`) strictly
 * in order, events without one (drop, rename, invalidate, DDL) alone; the position advances only
 * over a contiguous prefix of handled events. After a failure or at shutdown nothing new starts,
 * and nothing past the first unfinished event is acknowledged.
 */
export class EventScheduler {
  private seq = 0;
  private readonly window = new AckWindow();
  private readonly inFlight = new Map<number, EventInFlight>();
  /** Per document key: the last event's run (the next one chains on it) and how many are pending. */
  private readonly keys = new Map<string, { tail: Promise<unknown>; pending: number }>();
  private readonly changed = new Notifier();
  private failure: HandlerFailedError | null = null;
  private sharedAbort = new AbortController();
  /** Aborted at shutdown or after a failure: whatever waits to dispatch gives up. */
  private readonly halt = new AbortController();

  constructor(private readonly deps: SchedulerDeps) {
    if (deps.stopping.aborted) this.halt.abort();
    else deps.stopping.addEventListener('abort', () => this.halt.abort(), { once: true });
  }

  /** For waits before a dispatch (room, slots): aborted at shutdown and after a failure. */
  get halted(): AbortSignal {
    return this.halt.signal;
  }

  /** One event at a time: no document keys needed. */
  get sequential(): boolean {
    return this.deps.concurrency <= 1;
  }

  /** Aborts the `context.signal` of every handler running now (shutdown ran out of time, or the lease was lost). */
  abortInFlight(): void {
    this.inFlight.forEach((event) => event.abort.abort());
    this.sharedAbort.abort();
    this.sharedAbort = new AbortController();
  }

  /** Events handed to handlers so far (the number of the newest). */
  get dispatchedSeq(): number {
    return this.seq;
  }

  get failed(): boolean {
    return this.failure !== null;
  }

  /** Events submitted and not finished, oldest first. */
  get events(): EventInFlight[] {
    return [...this.inFlight.values()];
  }

  hasSlot(): boolean {
    return this.inFlight.size < this.deps.concurrency && !this.failure;
  }

  /** Resolves true once another event may start; false after a failure or at shutdown. */
  async waitForSlot(signal: AbortSignal): Promise<boolean> {
    while (this.inFlight.size >= this.deps.concurrency && !this.failure && !signal.aborted) {
      await this.changed.next(signal);
    }
    return !this.failure && !signal.aborted;
  }

  /** Starts `change` once the previous event of its document (`key`, see `documentKeyOf`) finished. */
  submit(change: ChangeEvent, key: string): void {
    const seq = ++this.seq;
    const flight = this.track(seq, change);
    const entry = this.keys.get(key);
    if (entry) {
      entry.pending++;
      entry.tail = entry.tail.then(() => this.execute(seq, flight, true, key));
    } else {
      // The common case, no earlier event of this document pending: start at once, no chaining.
      this.keys.set(key, { tail: this.execute(seq, flight, true, key), pending: 1 });
    }
  }

  /** Waits until nothing is in flight, then handles `change` alone. `ack: false` for an event that is not a resume point (invalidate). */
  runAlone(change: ChangeEvent, ack: boolean): Promise<DispatchOutcome> {
    if (this.inFlight.size > 0) return this.drain().then(() => this.runAlone(change, ack));
    const seq = ++this.seq;
    return this.execute(seq, this.track(seq, change), ack);
  }

  /** Resolves once nothing is in flight. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await this.changed.next();
  }

  private track(seq: number, change: ChangeEvent): EventInFlight {
    const abort = this.deps.signalPerEvent ? new AbortController() : this.sharedAbort;
    const flight: EventInFlight = { change, startedAt: Date.now(), pending: new Set(), abort };
    this.inFlight.set(seq, flight);
    return flight;
  }

  private async execute(seq: number, flight: EventInFlight, ack: boolean, key?: string): Promise<DispatchOutcome> {
    let outcome: DispatchOutcome = { ok: false, aborted: true };
    try {
      // After a failure or at shutdown, events queued behind others are not started (so never acknowledged).
      // Checked here, as each event starts (also one queued behind its document, or after a drain).
      if (!this.failure && !this.deps.stopping.aborted && (this.deps.mayDispatch?.() ?? true)) {
        outcome = await this.deps.dispatcher.dispatch(flight, this.deps.stopping);
      }
    } catch (error) {
      // The dispatcher records handler errors itself; anything else is a bug: stop rather than skip.
      outcome = { ok: false, error: new HandlerFailedError(`Dispatching event ${JSON.stringify(flight.change._id)} failed: ${errorText(error)}`, error) };
    } finally {
      this.inFlight.delete(seq);
      if (key !== undefined) this.release(key);
      this.settle(seq, flight.change, outcome, ack);
      this.changed.notify();
    }
    return outcome;
  }

  private release(key: string): void {
    const entry = this.keys.get(key)!;
    if (--entry.pending === 0) this.keys.delete(key);
  }

  private settle(seq: number, change: ChangeEvent, outcome: DispatchOutcome, ack: boolean): void {
    if (outcome.ok) {
      this.deps.onHandled(change);
      if (this.window.complete(seq, ack ? change._id : null)) this.deps.checkpointer.ack(this.window.token!, this.window.acknowledgedSeq);
    } else if ('error' in outcome && !this.failure) {
      this.failure = outcome.error;
      this.deps.onFailed(outcome.error);
      this.halt.abort();
    }
  }
}

/**
 * Events of one document share a key: its `_id` alone (an update that changes a shard key changes
 * the rest of `documentKey`, not the document). Events without a document (lifecycle, DDL), or
 * whose `documentKey` has no `_id` (malformed), have none and run alone: ordering is never guessed.
 */
export function documentKeyOf(change: ChangeEvent): string | null {
  const key = (change as { documentKey?: Record<string, unknown> }).documentKey;
  if (typeof key !== 'object' || key === null || !('_id' in key)) return null;
  const id = key._id;
  // Cheap keys for string, number and ObjectId ids; EJSON for the rest (compound ids and other types).
  if (typeof id === 'string') return `s:${id}`;
  if (typeof id === 'number') return `n:${id}`;
  if (id instanceof ObjectId) return `o:${id.toHexString()}`;
  return `e:${EJSON.stringify(id, { relaxed: false })}`;
}
