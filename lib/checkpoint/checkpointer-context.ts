import type { Logger } from '@nestjs/common';
import type { FencedWriteError } from '../change-stream.errors.js';
import type { PositionStore } from '../interfaces/position-store.interface.js';
import type { ReplacedStreams } from './replaced-position.js';
import type { FellOffGuard } from './start-position.js';

/** `checkpoint.*` of the module options. */
export interface CheckpointSettings {
  maxEvents: number;
  intervalMs: number;
  maxUnsavedEvents: number;
}

/** What a `Checkpointer` works with: its stream's store and key, its bounds, and who it tells what happened. */
export interface CheckpointerContext {
  readonly store: PositionStore;
  readonly key: string;
  readonly settings: CheckpointSettings;
  /** The stream's logger, so its position lines carry the stream's context (`DatabaseStream`…); else `Checkpointer`. */
  readonly logger?: Logger;
  /** The streams that share its collections (a `streams` mode switch, a collection joining or leaving a database stream): see `readStartPosition`. */
  readonly replaces?: ReplacedStreams;
  /** A database stream's: lets a collection whose position fell off the oplog go instead of the whole stream's history (see `readStartPosition`). */
  readonly fellOff?: FellOffGuard;
  /** Told when saving starts failing or stalls (with the reason) and when it works again (null). */
  onSaveTrouble?(reason: string | null): void;
  /** Told when the store refused a write because another instance holds the stream now. */
  onFenced?(error: FencedWriteError): void;
  /** Told after each write attempt (for metrics). */
  onWrite?(outcome: 'stored' | 'failed' | 'refused', ms: number): void;
}
