import { AckWindow } from '../checkpoint/ack-window.js';
import type { ChangeEvent } from '../common/change-event.js';
import type { DispatchOutcome } from './change-dispatcher.js';
import type { DispatchGate } from './dispatch-gate.js';
import type { SchedulerDeps } from './scheduler-deps.js';

/**
 * What a finished event does: a handled one moves the acknowledged prefix (and the position, when
 * it carries a resume token), a failure for good closes the scheduler's gate.
 */
export class EventSettlement {
  private readonly window = new AckWindow();

  constructor(
    private readonly deps: Pick<SchedulerDeps, 'checkpointer' | 'onHandled' | 'onFailed'>,
    private readonly gate: DispatchGate,
  ) {}

  /** Event `seq` finished: the checkpointer hears of the acknowledged prefix, with a new token or without. */
  acknowledge(seq: number, token: ChangeEvent['_id'] | null): void {
    const before = this.window.acknowledgedSeq;
    if (this.window.complete(seq, token))
      this.deps.checkpointer.ack(this.window.token!, this.window.acknowledgedSeq);
    else if (this.window.acknowledgedSeq > before)
      this.deps.checkpointer.ackSeq(this.window.acknowledgedSeq);
  }

  settle(seq: number, change: ChangeEvent, outcome: DispatchOutcome, ack: boolean): void {
    if (outcome.ok) {
      this.deps.onHandled(change);
      // A backfill event has no resume token (`_id`): it moves the acknowledged prefix, not the position.
      this.acknowledge(seq, ack ? (change._id ?? null) : null);
    } else if ('error' in outcome) {
      this.gate.fail(outcome.error, (error) => this.deps.onFailed(error));
    }
  }
}
