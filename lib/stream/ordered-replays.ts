import type { ChangeEvent } from '../common/change-event.js';
import type { Notifier } from '../common/notifier.js';
import type { DispatchGate } from './dispatch-gate.js';
import type { DocumentChains } from './document-chains.js';
import type { InFlightList } from './in-flight-list.js';
import type { TrackedEvent } from './tracked-event.js';

/** The parts of a stream's `EventScheduler` that its dead-letter replays run among. */
export interface ReplayHost {
  /** The scheduler's slots: a replay without a document takes them all. */
  readonly concurrency: number;
  /** The stream has batch handlers, whose events wait in no document chain. */
  readonly batching: boolean;
  readonly keys: DocumentChains;
  readonly inFlight: InFlightList<TrackedEvent>;
  /** Notified whenever something in flight finished. */
  readonly changed: Notifier;
  readonly gate: DispatchGate;
  /** Events running alone now (`EventScheduler.runAlone`). */
  aloneRunning(): number;
  /** Numbers `change` (stream order) and counts it in flight. */
  track(change: ChangeEvent): TrackedEvent;
  /** Event `seq` finished without a resume point: the acknowledged prefix may move past it. */
  acknowledge(seq: number): void;
  /** Cuts every batch handler's pending events into a batch now. */
  flushBatches(): void;
}

/** Dead-letter replays in their document's order among the stream's live events (see `run`). */
export class OrderedReplays {
  /** Slots taken by replays without a document (each takes them all). */
  private exclusiveSlots = 0;
  /** Replays waiting or running on a batching stream: nothing new is read meanwhile. */
  private replaying = 0;

  constructor(private readonly host: ReplayHost) {}

  /** Slots that replays take now (see `EventScheduler.hasSlot`). */
  get slotsTaken(): number {
    return this.exclusiveSlots;
  }

  /** Replays hold back the reading of new events (a batching stream). */
  get holdingBackReads(): boolean {
    return this.replaying > 0;
  }

  /**
   * Runs `task` (a dead-letter replay of `change`) in its document's order: after the events of
   * document `key` submitted before it, before those submitted after (`key` null: once every
   * earlier event finished, and nothing runs beside it on a sequential stream). It counts in
   * flight, so a drain waits for it, but it is no stream event: never acknowledged, not counted
   * as handled, and its failure is the caller's alone. `refused` makes the error when it may not start.
   */
  run<T>(
    change: ChangeEvent,
    key: string | null,
    task: (signal: AbortSignal) => Promise<T>,
    refused: () => Error,
  ): Promise<T> {
    const { host } = this;
    const flight = host.track(change);
    const run = async (): Promise<T> => {
      let slots = 0;
      try {
        if (key === null)
          while (host.inFlight.toArray().some((other) => other.seq < flight.seq))
            await host.changed.next();
        // Never beside an event that runs alone (drop, rename, DDL); one without a document runs alone itself: it takes every slot.
        while (host.aloneRunning() + this.exclusiveSlots > 0) await host.changed.next();
        if (key === null) this.exclusiveSlots += slots = host.concurrency;
        if (!host.gate.mayStart()) throw refused();
        flight.startedAt = Date.now();
        return await task(flight.abort.signal);
      } finally {
        this.exclusiveSlots -= slots;
        flight.finished = true;
        host.inFlight.remove(flight);
        if (key !== null) host.keys.release(key);
        host.acknowledge(flight.seq);
        host.changed.notify();
      }
    };
    if (host.batching) {
      // Batch handlers' events wait in no document chain: the replay waits for every earlier event
      // (flushed now), and nothing more is read until it ran (a later event of its document could be batched).
      host.flushBatches();
      key = null;
      this.replaying++;
      const done = () => {
        this.replaying--;
        host.changed.notify();
      };
      return run().finally(done);
    }
    if (key === null) return run();
    return host.keys.after(key, run);
  }
}
