import type { ResolvedStreams } from './streams-option.js';
import type {
  ChangeStreamModuleOptions,
  LeaseOptions,
} from '../interfaces/change-stream-module-options.interface.js';
import type {
  HandlerFailurePolicy,
  HistoryLostPolicy,
} from '../interfaces/failure-policies.interface.js';

/** The module options after validation, with every default filled in. */
export interface ResolvedChangeStreamOptions {
  consumer: string;
  redis: ChangeStreamModuleOptions['redis'];
  tokenStore: ChangeStreamModuleOptions['tokenStore'];
  deadLetterStore: ChangeStreamModuleOptions['deadLetterStore'];
  /** For the module's own dead-letter stores (Redis, in memory); 0 in the input is no limit (Infinity). */
  deadLetterRetention: { maxLetters: number; maxAgeMs: number };
  onHandlerFailure: HandlerFailurePolicy;
  onHistoryLost: HistoryLostPolicy;
  keyPrefix: string;
  connectionName: string | undefined;
  checkpoint: { maxEvents: number; intervalMs: number; maxUnsavedEvents: number };
  handlerRetry: { retries: number; initialDelayMs: number; maxDelayMs: number };
  reconnect: { initialDelayMs: number; maxDelayMs: number };
  shutdownTimeoutMs: number;
  startupTimeoutMs: number;
  handlerTimeoutMs: number;
  onHandlerTimeout: 'warn' | 'abort';
  concurrency: number;
  maxAwaitTimeMS: number;
  batchSize: number | undefined;
  /** `false`: off. `explicit`: the user asked for them (an unsupported store is then an error). */
  leases: false | (Required<LeaseOptions> & { explicit: boolean });
  telemetry: boolean;
  positionMirror:
    false | { collection: string; intervalMs: number; connectionName: string | undefined };
  historyHeadroom: false | { warnMs: number; intervalMs: number };
  /** `false`: handlers are validated, but no stream opens (see `ChangeStreamModuleOptions.enabled`). */
  enabled: boolean;
  /** The `streams` option: each connection's mode (see `streamModeOf`). */
  streams: ResolvedStreams;
}
