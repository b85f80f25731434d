import type { ChangeStreamState } from './interfaces/change-stream-status.interface.js';
import type { HistoryLost, HistoryLostAction } from './interfaces/failure-policies.interface.js';

/** What `ChangeStreamRegistry.onEvent` reports, for alerting and metrics. */
export type ChangeStreamEvent =
  | { type: 'state'; key: string; state: ChangeStreamState; previous: ChangeStreamState; reason: string | null }
  | ({ type: 'history-lost'; action: HistoryLostAction } & HistoryLost)
  | { type: 'dead-lettered'; key: string; id: string; handler: string };

export type ChangeStreamEventListener = (event: ChangeStreamEvent) => void;
