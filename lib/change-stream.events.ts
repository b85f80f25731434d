import type {
  ChangeStreamRole,
  ChangeStreamState,
} from './interfaces/change-stream-status.interface.js';
import type { HistoryLost, HistoryLostAction } from './interfaces/failure-policies.interface.js';

/** What `ChangeStreamRegistry.onEvent` reports, for alerting and metrics. */
export type ChangeStreamEvent =
  | {
      /** A stream changed state (including to `degraded` and back). */
      type: 'state';
      /** The stream's position key. */
      key: string;
      /** The new state. */
      state: ChangeStreamState;
      /** The state before. */
      previous: ChangeStreamState;
      /** Why, when there is a reason (the stream's `lastError`); see docs/troubleshooting.md. */
      reason: string | null;
    }
  | ({
      /** A stored position could not be resumed from; `onHistoryLost` decided `action`. */
      type: 'history-lost';
      /** What was done: the stream failed, or it went on from now (changes in between are lost). */
      action: HistoryLostAction;
    } & HistoryLost)
  | {
      /** A handler gave up on an event and it was stored as a dead letter. */
      type: 'dead-lettered';
      /** The stream's position key. */
      key: string;
      /** The dead letter's id (for `ChangeStreamDeadLetters.replay` and `discard`). */
      id: string;
      /** `ClassName.methodName` of the handler. */
      handler: string;
    }
  | {
      /** Leases: this instance became active (`fence` of its lease) or standby (lost, handed over, released). */
      type: 'role';
      /** The stream's position key. */
      key: string;
      /** The new role. */
      role: ChangeStreamRole;
      /** This instance (`leases.instanceId`). */
      instanceId: string;
      /** The fence of the acquired lease; null when standing by. */
      fence: number | null;
      /** Why: `lease acquired`, `lease lost: …`, `handed over: …`. */
      reason: string;
    };

/** A listener passed to `ChangeStreamRegistry.onEvent`; it is called synchronously, and what it throws is ignored. */
export type ChangeStreamEventListener = (event: ChangeStreamEvent) => void;
