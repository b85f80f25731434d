import type { mongo } from 'mongoose';
import { errorText } from '../common/errors.js';

/** Failed oplog reads in a row at a database stream's start before it is decided without one. */
export const OPLOG_START_ATTEMPTS = 5;

/**
 * `read`, retried by the stream's own backoff while it fails, up to `OPLOG_START_ATTEMPTS` in a
 * row: then null (as if the oplog could not be read, the rule from before), said through
 * `givenUp`. A failure that persists (a code no refusal list knows, a proxy) must not keep the
 * stream from starting for good.
 */
export function withAttemptBudget(
  read: () => Promise<mongo.Timestamp | null>,
  givenUp: (attempts: number, error: string) => void,
): () => Promise<mongo.Timestamp | null> {
  let failures = 0;
  return async () => {
    try {
      const oldest = await read();
      failures = 0;
      return oldest;
    } catch (error) {
      if (++failures < OPLOG_START_ATTEMPTS) throw error;
      failures = 0;
      givenUp(OPLOG_START_ATTEMPTS, errorText(error));
      return null;
    }
  };
}
