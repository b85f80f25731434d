import type { mongo } from 'mongoose';
import { isInvalidStoredTokenError } from '../change-stream.errors.js';
import type { PositionStore, StreamPosition } from '../interfaces/position-store.interface.js';
import { clusterTimeOfToken } from '../position/resume-token-time.js';

/** Where a stream that replaces others starts, and the key it came from. */
export interface ReplacedPosition {
  position: StreamPosition;
  from: string;
}

/**
 * The oldest stored position of the streams a new stream replaces (a database stream: its
 * collections' streams; a collection stream: its database stream), as a cluster time
 * (`startAtOperationTime`, inclusive): a resume token belongs to the stream that produced it, a
 * cluster time means the same to every stream. A token whose time cannot be read (not a mongod
 * token) is used as it is, only when no position has a time. Null when none is stored.
 */
export async function oldestReplacedPosition(
  store: PositionStore,
  keys: readonly string[],
): Promise<ReplacedPosition | null> {
  let oldest: { time: mongo.Timestamp; from: string } | null = null;
  let untimed: ReplacedPosition | null = null;
  for (const key of keys) {
    const stored = await loadValid(store, key);
    if (!stored) continue;
    const time = 'token' in stored ? clusterTimeOfToken(stored.token) : stored.operationTime;
    if (time === null)
      untimed ??= { position: { token: (stored as { token: never }).token }, from: key };
    else if (!oldest || time.lessThan(oldest.time)) oldest = { time, from: key };
  }
  if (oldest) return { position: { operationTime: oldest.time }, from: oldest.from };
  return untimed;
}

/** A malformed value under another stream's key is that stream's problem: it is skipped here. */
async function loadValid(store: PositionStore, key: string): Promise<StreamPosition | null> {
  try {
    return await store.load(key);
  } catch (error) {
    if (isInvalidStoredTokenError(error)) return null;
    throw error;
  }
}
