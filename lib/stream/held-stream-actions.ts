import { messages } from '../change-stream.messages.js';
import type { StreamBackfill } from '../backfill/stream-backfill.js';
import type { ChangeStreamStatus } from '../interfaces/change-stream-status.interface.js';
import type { StreamLeaseKeeper } from '../lease/stream-lease-keeper.js';
import type { BackfillWiring } from './backfill-wiring.js';
import type { ChangeEvent } from '../common/change-event.js';
import type { LeaseTerm } from './lease-term.js';
import type { StreamState } from './stream-state.js';

export interface HeldStreamActionsDeps {
  key: string;
  lease?: StreamLeaseKeeper;
  state: StreamState;
  backfills: BackfillWiring;
  /** The lease term running now, if any. */
  term(): LeaseTerm | undefined;
  status(): ChangeStreamStatus;
}

/**
 * What other services ask of a stream that only the instance consuming it may do (a dead-letter
 * replay, a backfill action); refused otherwise, naming the instance that holds the stream.
 */
export class HeldStreamActions {
  constructor(private readonly deps: HeldStreamActionsDeps) {}

  /** See `CollectionStream.replayInOrder`. */
  replayInOrder<T>(change: ChangeEvent, task: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const term = this.deps.term();
    const refused = () => this.refusal(messages.replayRefused);
    if (!term || !this.consuming(term)) return Promise.reject(refused());
    const key = term.scheduler.sequential ? null : term.scheduler.documentKey(change);
    return term.scheduler.runInOrder(change, key, task, refused);
  }

  /** See `CollectionStream.backfillAction`. */
  backfillAction<T>(act: (backfill: StreamBackfill) => T): T {
    return this.deps.backfills.act(act, () =>
      this.consuming(this.deps.term()) ? null : this.refusal(messages.backfillRefused),
    );
  }

  /** This instance consumes the stream: a live term, not failed, under its lease (with leases). */
  private consuming(term: LeaseTerm | undefined): boolean {
    const { lease } = this.deps;
    return (
      term !== undefined &&
      term.active &&
      this.deps.state.baseState !== 'failed' &&
      (!lease || lease.current !== null)
    );
  }

  /** An action refused here, naming the instance that holds the stream (or the state, if none does). */
  private refusal(message: (key: string, state: string, holder: string | null) => string): Error {
    const { lease } = this.deps;
    const { state, holder } = this.deps.status();
    const other = lease && holder !== lease.instanceId ? (holder ?? null) : null;
    return new Error(message(this.deps.key, state, other));
  }
}
