import { BatchCollector } from './batch-collector.js';
import type { ChangeEvent } from '../common/change-event.js';
import type { ChangeDispatcher, DispatchScope } from './change-dispatcher.js';
import type { ChangeHandler } from './change-handler.js';
import { ABORTED, type DispatchOutcome, OK } from './dispatch-outcome.js';
import { type TrackedEvent, worse } from './tracked-event.js';

/** What the batch side needs of the scheduler. */
export interface BatchPartsHost {
  readonly dispatcher: ChangeDispatcher;
  readonly scope: DispatchScope;
  /** False after a failure for good or once this instance may no longer dispatch. */
  mayRunBatch(): boolean;
  /** Every part of `flight` finished (it is marked finished): settle it. */
  settle(flight: TrackedEvent): void;
}

/**
 * The `@OnChangeBatch` side of the scheduler: a collector per batch handler that cuts its events
 * into batches, and the completion of an event across its parts (its per-event dispatch and one
 * per batch handler that wants it).
 */
export class BatchParts {
  private readonly collectors = new Map<ChangeHandler, BatchCollector<TrackedEvent>>();
  /** Drains under way: an event that joins a batch meanwhile is handed over at once. */
  private draining = 0;

  constructor(private readonly host: BatchPartsHost) {}

  /** Cuts every batch handler's pending events into a batch now (a drain, or the reader must wait for room). */
  flush(): void {
    for (const collector of this.collectors.values()) collector.cut();
  }

  /** A drain begins: pending batches are cut, and so is every batch joined until `drainEnded`. */
  drainBegins(): void {
    this.flush();
    this.draining++;
  }

  drainEnded(): void {
    this.draining--;
  }

  /**
   * Adds `flight` to the pending batch of each batch handler that wants it, and counts its parts;
   * true when a per-event handler wants it too (`perEvent`: the caller dispatches that part).
   */
  join(flight: TrackedEvent, perEvent: boolean): boolean {
    const handlers = this.host.dispatcher.batchHandlersFor(flight.change);
    flight.parts = handlers.length + (perEvent ? 1 : 0);
    if (flight.parts === 0) {
      flight.parts = 1;
      this.partDone(flight, OK);
      return false;
    }
    for (const handler of handlers) {
      const collector = this.collectorOf(handler);
      collector.add(flight);
      if (this.draining > 0) collector.cut();
    }
    return perEvent;
  }

  /** Cuts the pending batch of each batch handler that wants `change` (it runs alone: a batch of its own). */
  cutFor(change: ChangeEvent): void {
    for (const handler of this.host.dispatcher.batchHandlersFor(change))
      this.collectors.get(handler)!.cut();
  }

  /** One part of `flight` finished; once all did, it is settled (acknowledged, or its failure recorded). */
  partDone(flight: TrackedEvent, outcome: DispatchOutcome): void {
    if (flight.finished) return;
    flight.outcome = worse(flight.outcome, outcome);
    if (--flight.parts > 0) return;
    flight.finished = true;
    this.host.settle(flight);
  }

  private collectorOf(handler: ChangeHandler): BatchCollector<TrackedEvent> {
    let collector = this.collectors.get(handler);
    if (!collector) {
      collector = new BatchCollector(handler.batch!, (batch) => this.runBatch(handler, batch));
      this.collectors.set(handler, collector);
    }
    return collector;
  }

  /**
   * One batch of `handler`: not after a failure for good or once this instance may no longer
   * dispatch (its events are not acknowledged); at shutdown it still runs (a drain flushes the
   * pending batches, and their handler gets them).
   */
  private runBatch(handler: ChangeHandler, batch: TrackedEvent[]): Promise<void> {
    if (!this.host.mayRunBatch()) {
      for (const flight of batch) this.partDone(flight, ABORTED);
      return Promise.resolve();
    }
    const now = Date.now();
    for (const flight of batch) if (flight.pending.size === 0) flight.startedAt = now;
    return this.host.dispatcher.dispatchBatch(handler, batch, this.host.scope).then((outcomes) => {
      for (let i = 0; i < batch.length; i++) this.partDone(batch[i], outcomes[i]);
    });
  }
}
