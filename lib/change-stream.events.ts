import type { ChangeStreamRole, ChangeStreamState } from './interfaces/change-stream-status.interface.js';
import type { HistoryLost, HistoryLostAction } from './interfaces/failure-policies.interface.js';

/** What `ChangeStreamRegistry.onEvent` reports, for alerting and metrics. */
export type ChangeStreamEvent =
  | { type: 'state'; key: string; state: ChangeStreamState; previous: ChangeStreamState; reason: string | null }
  | ({ type: 'history-lost'; action: HistoryLostAction } & HistoryLost)
  | { type: 'dead-lettered'; key: string; id: string; handler: string }
  /** Leases: this instance became active (`fence` of its lease) or standby (lost, handed over, released). */
  | { type: 'role'; key: string; role: ChangeStreamRole; instanceId: string; fence: number | null; reason: string };

export type ChangeStreamEventListener = (event: ChangeStreamEvent) => void;
