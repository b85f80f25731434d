import type { mongo } from 'mongoose';
import type { HandlerFailedError } from '../change-stream.errors.js';
import type { Checkpointer } from '../checkpoint/checkpointer.js';
import type { ChangeDispatcher } from '../stream/change-dispatcher.js';
import { ABORTED, type DispatchOutcome } from '../stream/dispatch-outcome.js';
import { collectionDocumentKeyOf, namespaceDocumentKeyOf } from '../common/document-key.js';
import { EventScheduler } from '../stream/event-scheduler.js';
import type { StreamPlan } from '../stream/stream-plan.js';

type ChangeEvent = mongo.ChangeStreamDocument;

/** Nothing is stored in the testing module: acknowledgements go nowhere (outcomes say what would be stored). */
const NO_CHECKPOINTER = {
  ack: () => undefined,
  ackSeq: () => undefined,
} as unknown as Checkpointer;

export interface ConcurrentDeliverySetup {
  plan: StreamPlan;
  dispatcher: ChangeDispatcher;
  /** The stream's cap: the module's `concurrency`, lowered by a handler's (as production computes it). */
  concurrency: number;
  /** The testing module closes: nothing new starts, failures are not recorded. */
  stopping: AbortSignal;
  fence: number | null;
  /** A handler failed for good under `'stop'`: the scheduler starts nothing more. */
  onFailed(error: HandlerFailedError): void;
}

/**
 * A stream's events with `concurrency` above 1, handed to production's `EventScheduler` as its
 * reader hands them: in emission order, each once a slot is free (one cap for the whole stream,
 * also a database or deployment stream), events of one document in order (keyed as production
 * keys them), events without a document alone. One per run of the stream: `restart()` starts another.
 */
export class ConcurrentDelivery {
  private readonly scheduler: EventScheduler;
  /** Emitted events whose outcome is not known yet. */
  private readonly waiting = new Map<ChangeEvent, (outcome: DispatchOutcome) => void>();
  /** What the reader does, one event after the other. */
  private reading: Promise<unknown> = Promise.resolve();

  constructor(private readonly setup: ConcurrentDeliverySetup) {
    const { plan, dispatcher } = setup;
    // Each event's outcome, as the scheduler gets it from the dispatcher.
    const tapped = Object.create(dispatcher) as ChangeDispatcher;
    tapped.dispatch = ((flight, scope, then: (outcome: DispatchOutcome) => unknown) =>
      dispatcher.dispatch(flight, scope, (outcome) => {
        this.settle(flight.change, outcome);
        return then(outcome);
      })) as ChangeDispatcher['dispatch'];
    this.scheduler = new EventScheduler({
      concurrency: setup.concurrency,
      signalPerAttempt: false,
      dispatcher: tapped,
      checkpointer: NO_CHECKPOINTER,
      stopping: setup.stopping,
      fence: setup.fence,
      ...(plan.scope.kind === 'database' && { documentKeyOf: collectionDocumentKeyOf }),
      ...(plan.scope.kind === 'deployment' && { documentKeyOf: namespaceDocumentKeyOf }),
      onHandled: () => undefined,
      onFailed: (error) => {
        setup.onFailed(error);
        this.abortUnstartedOnceDrained();
      },
    });
    setup.stopping.addEventListener('abort', () => this.abortUnstartedOnceDrained(), {
      once: true,
    });
  }

  /** Resolves with `change`'s outcome once its handlers are done; `ABORTED` if it never started. */
  deliver(change: ChangeEvent): Promise<DispatchOutcome> {
    const done = new Promise<DispatchOutcome>((resolve) => this.waiting.set(change, resolve));
    this.reading = this.reading.then(() => this.read(change));
    return done;
  }

  /** Aborts the `context.signal` of the calls running now. */
  abortInFlight(): void {
    this.scheduler.abortInFlight();
  }

  /** As production's reader dispatches one event (`change-reader.ts`). */
  private async read(change: ChangeEvent): Promise<void> {
    const scheduler = this.scheduler;
    if (scheduler.failed || this.setup.stopping.aborted) return this.settle(change, ABORTED);
    if (
      !scheduler.hasSlot() &&
      scheduler.needsSlot(change) &&
      !(await scheduler.waitForSlot(scheduler.halted))
    )
      return this.settle(change, ABORTED);
    const key = scheduler.keyOf(change);
    if (key !== null) return scheduler.submit(change, key);
    this.settle(change, await scheduler.runAlone(change, change.operationType !== 'invalidate'));
  }

  private settle(change: ChangeEvent, outcome: DispatchOutcome): void {
    const resolve = this.waiting.get(change);
    this.waiting.delete(change);
    resolve?.(outcome);
  }

  /** Events queued behind their document when the scheduler halted never reach the dispatcher. */
  private abortUnstartedOnceDrained(): void {
    void this.scheduler.drain().then(() => {
      for (const change of [...this.waiting.keys()]) this.settle(change, ABORTED);
    });
  }
}
