import { Notifier } from '../common/notifier.js';
import type { HandlerFailedError } from '../change-stream.errors.js';
import type { ChangeEvent } from '../common/change-event.js';
import {
  type DispatchOutcome,
  dispatchBug,
  type Attempt,
  type DispatchScope,
  type EventInFlight,
  type MaybePromise,
} from './change-dispatcher.js';
import { InFlightList } from './in-flight-list.js';
import { DispatchGate } from './dispatch-gate.js';
import type { SchedulerDeps } from './scheduler-deps.js';
import { DocumentChains } from './document-chains.js';
import { EventSettlement } from './event-settlement.js';
import { OrderedReplays } from './ordered-replays.js';
import { BatchParts } from './batch-parts.js';
import { documentKeyOf, hasDocumentKey } from '../common/document-key.js';
import { ABORTED } from './dispatch-outcome.js';
import { type TrackedEvent, trackedEvent, worse } from './tracked-event.js';

/** `keyOf` for an event with a document that no per-event handler wants: it joins no document's chain. */
export const NO_CHAIN = '';

/**
 * Dispatches events with bounded concurrency: events of one document (`documentKey`) strictly
 * in order, events without one (drop, rename, invalidate, DDL) alone; the position advances only
 * over a contiguous prefix of handled events. After a failure or at shutdown nothing new starts,
 * and nothing past the first unfinished event is acknowledged.
 */
export class EventScheduler {
  private seq = 0;
  private readonly inFlight = new InFlightList<TrackedEvent>();
  /** Events of one document key run in order; each busy key takes a slot. */
  private readonly keys = new DocumentChains();
  /** Events running alone (`runAlone`): with the busy documents (`keys.size`) and the replays' slots, the slots taken. */
  private alone = 0;
  private readonly scope: DispatchScope;
  private readonly changed = new Notifier();
  private sharedAbort = new AbortController();
  /** May events still start (no failure for good, no shutdown, the lease)? */
  private readonly gate: DispatchGate;
  /** The stream has batch handlers (`@OnChangeBatch`): events take the batching path. */
  readonly batching: boolean;
  private readonly batches: BatchParts;
  private readonly settlement: EventSettlement;
  private readonly replays: OrderedReplays;

  readonly documentKey: (change: ChangeEvent) => string | null;

  constructor(private readonly deps: SchedulerDeps) {
    this.gate = new DispatchGate(deps.stopping, deps.mayDispatch);
    this.batching = deps.dispatcher.batching;
    this.documentKey = deps.documentKeyOf ?? documentKeyOf;
    this.scope = {
      stopping: deps.stopping,
      mayDispatch: deps.mayDispatch,
      fence: deps.fence ?? null,
    };
    this.batches = new BatchParts({
      dispatcher: deps.dispatcher,
      scope: this.scope,
      mayRunBatch: () => !this.gate.failure && (deps.mayDispatch?.() ?? true),
      settle: (flight) => this.settleParts(flight),
    });
    this.settlement = new EventSettlement(deps, this.gate);
    this.replays = new OrderedReplays({
      concurrency: deps.concurrency,
      batching: this.batching,
      keys: this.keys,
      inFlight: this.inFlight,
      changed: this.changed,
      gate: this.gate,
      aloneRunning: () => this.alone,
      track: (change) => this.track(change),
      acknowledge: (seq) => this.settlement.acknowledge(seq, null),
      flushBatches: () => this.flushBatches(),
    });
  }

  /** For waits before a dispatch (room, slots): aborted at shutdown and after a failure. */
  get halted(): AbortSignal {
    return this.gate.halted;
  }

  /** One event at a time: no document keys needed. */
  get sequential(): boolean {
    return this.deps.concurrency <= 1;
  }

  /** Aborts the `context.signal` of every handler running now (shutdown ran out of time, or the lease was lost). */
  abortInFlight(): void {
    for (const event of this.inFlight.toArray())
      for (const attempt of event.attempts ?? []) attempt.abort.abort();
    this.sharedAbort.abort();
    this.sharedAbort = new AbortController();
  }

  /** Events handed to handlers so far (the number of the newest). */
  get dispatchedSeq(): number {
    return this.seq;
  }

  get failed(): boolean {
    return this.gate.failure !== null;
  }

  /** The first failure for good (`stop` policy), which ended dispatching. */
  get failure(): HandlerFailedError | null {
    return this.gate.failure;
  }

  /** Events submitted and not finished, oldest first. */
  get events(): EventInFlight[] {
    return this.inFlight.toArray();
  }

  /**
   * A slot per document being handled (its later events wait without one, however many: a stuck
   * document holds back only its own events) and per event running alone.
   */
  hasSlot(): boolean {
    return (
      this.keys.size + this.alone + this.replays.slotsTaken < this.deps.concurrency &&
      !this.gate.failure &&
      !this.replays.holdingBackReads
    );
  }

  /** Resolves true once another event may start; false after a failure or at shutdown. */
  async waitForSlot(signal: AbortSignal): Promise<boolean> {
    while (
      (this.keys.size + this.alone + this.replays.slotsTaken >= this.deps.concurrency ||
        this.replays.holdingBackReads) &&
      !this.gate.failure &&
      !signal.aborted
    ) {
      await this.changed.next(signal);
    }
    return !this.gate.failure && !signal.aborted;
  }

  /**
   * The key to `submit` `change` under, or null when it must run alone (`runAlone`): one at a
   * time without batch handlers; with them, an event without a document, and `NO_CHAIN` for one
   * that only batch handlers want (no document chain to join).
   */
  keyOf(change: ChangeEvent): string | null {
    if (!this.batching) return this.sequential ? null : this.documentKey(change);
    if (!hasDocumentKey(change)) return null;
    return this.deps.dispatcher.hasPerEventHandlers(change) ? this.documentKey(change) : NO_CHAIN;
  }

  /** `change` takes a slot: not when only batch handlers want it and it has a document (it waits in their batches). */
  needsSlot(change: ChangeEvent): boolean {
    return (
      !this.batching ||
      this.replays.holdingBackReads ||
      !hasDocumentKey(change) ||
      this.deps.dispatcher.hasPerEventHandlers(change)
    );
  }

  /** Cuts every batch handler's pending events into a batch now (a drain, or the reader must wait for room). */
  flushBatches(): void {
    this.batches.flush();
  }

  /**
   * Starts `change` once the previous event of its document (`key`, see `keyOf`) finished; with
   * batch handlers, it also joins the pending batch of each that wants it.
   */
  submit(change: ChangeEvent, key: string): void {
    const flight = this.track(change);
    if (this.batching && !this.batches.join(flight, key !== NO_CHAIN)) return;
    this.keys.submit(key, (queued) => {
      if (queued) flight.startedAt = Date.now(); // it waited for its document's previous event
      return this.execute(flight, true, key);
    });
  }

  /**
   * Waits until nothing is in flight, then handles `change` alone. `ack: false` for an event that
   * is not a resume point (invalidate). Answers synchronously when nothing waits and the handlers did not.
   */
  runAlone(change: ChangeEvent, ack: boolean): MaybePromise<DispatchOutcome> {
    if (this.inFlight.size > 0) return this.drain().then(() => this.runAlone(change, ack));
    this.alone++;
    const flight = this.track(change);
    if (this.batching) return this.runAloneWithBatches(flight, ack);
    return this.execute(flight, ack);
  }

  /** `runAlone` on a stream with batch handlers: each that wants it gets it as a batch of one; the outcome once every part finished. */
  private runAloneWithBatches(flight: TrackedEvent, ack: boolean): Promise<DispatchOutcome> {
    flight.ack = ack;
    flight.alone = true;
    const done = new Promise<DispatchOutcome>((resolve) => (flight.whenDone = resolve));
    const perEvent = this.deps.dispatcher.hasPerEventHandlers(flight.change);
    if (this.batches.join(flight, perEvent)) void this.execute(flight, ack);
    this.batches.cutFor(flight.change);
    return done;
  }

  /** Every part of `flight` finished (`BatchParts`): it is settled (acknowledged, or its failure recorded). */
  private settleParts(flight: TrackedEvent): void {
    this.inFlight.remove(flight);
    try {
      if (flight.alone) this.alone--;
      this.settlement.settle(flight.seq, flight.change, flight.outcome, flight.ack);
    } finally {
      this.changed.notify();
      flight.whenDone?.(flight.outcome);
    }
  }

  /** A dead-letter replay of `change` in its document's order (see `OrderedReplays.run`). */
  runInOrder<T>(
    change: ChangeEvent,
    key: string | null,
    task: (signal: AbortSignal) => Promise<T>,
    refused: () => Error,
  ): Promise<T> {
    return this.replays.run(change, key, task, refused);
  }

  /** Resolves once nothing is in flight. */
  async drain(): Promise<void> {
    this.batches.drainBegins();
    try {
      while (this.inFlight.size > 0) await this.changed.next();
    } finally {
      this.batches.drainEnded();
    }
  }

  /** Numbers the event (stream order) and counts it in flight. */
  private track(change: ChangeEvent): TrackedEvent {
    const attempts = this.deps.signalPerAttempt ? new Set<Attempt>() : null;
    const flight = trackedEvent(change, ++this.seq, this.sharedAbort, attempts);
    this.inFlight.add(flight);
    return flight;
  }

  private execute(flight: TrackedEvent, ack: boolean, key?: string): MaybePromise<DispatchOutcome> {
    const finish = (outcome: DispatchOutcome) => this.finish(flight, ack, key, outcome);
    // After a failure or at shutdown, events queued behind others are not started (so never acknowledged).
    // Checked here, as each event starts (also one queued behind its document, or after a drain).
    if (!this.gate.mayStart()) return finish(ABORTED);
    let run: MaybePromise<DispatchOutcome>;
    try {
      run = this.deps.dispatcher.dispatch(flight, this.scope, finish);
    } catch (error) {
      if (flight.finished) throw error; // our own bookkeeping broke after the outcome: surface it (the stream reopens)
      return finish(dispatchBug(flight.change, error));
    }
    return run;
  }

  private finish(
    flight: TrackedEvent,
    ack: boolean,
    key: string | undefined,
    outcome: DispatchOutcome,
  ): DispatchOutcome {
    if (flight.finished || flight.eventPartDone) return outcome; // counted once, whatever calls again
    if (flight.parts > 1 || flight.alone) {
      // Batch handlers want it too: its slot is free now, the event is finished once its batches are.
      flight.eventPartDone = true;
      if (key !== undefined) this.keys.release(key);
      this.batches.partDone(flight, outcome);
      this.changed.notify(); // the slot is free: a reader waiting for one goes on now, not when the batch ends
      return outcome;
    }
    flight.finished = true;
    this.inFlight.remove(flight);
    try {
      if (key !== undefined) this.keys.release(key);
      else this.alone--;
      this.settlement.settle(flight.seq, flight.change, worse(flight.outcome, outcome), ack);
    } finally {
      this.changed.notify(); // a waiting drain() must see it left
    }
    return outcome;
  }
}
