import { isInvalidStoredTokenError } from '../change-stream.errors.js';
import { OplogStartUnreadableError } from '../headroom/oplog-window.js';
import { CollectionsHistoryLostError } from './history-lost.js';

/**
 * A position load's own verdicts, each with its own path when a stream recovers: a bad stored
 * value, a collection's history lost under `fail`, an oplog read that failed at the start. Any
 * other error of a load means the position store could not be reached.
 */
export function isStartVerdict(error: unknown): boolean {
  return (
    isInvalidStoredTokenError(error) ||
    error instanceof CollectionsHistoryLostError ||
    error instanceof OplogStartUnreadableError
  );
}
